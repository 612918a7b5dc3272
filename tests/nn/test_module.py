"""Module API: registration, traversal, state_dict round trips and errors, modes, dtypes, hooks."""
from __future__ import annotations

import copy
import re

import numpy as np
import pytest

import ndiv
import ndiv.nn as nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 4)
        self.act = nn.ReLU()
        self.blocks = nn.ModuleList([nn.Linear(4, 4), nn.LayerNorm(4)])
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Sequential(nn.Linear(4, 2))
        self.scale = nn.Parameter(np.ones(1, np.float32))
        self.register_buffer("stat", ndiv.zeros(2))
        self.register_buffer("tmp", ndiv.zeros(1), persistent=False)

    def forward(self, x):
        x = self.act(self.fc1(x))
        for b in self.blocks:
            x = b(x)
        return self.head(self.bn(x)) * self.scale


def test_registration_and_traversal_names():
    m = Net()
    assert [n for n, _ in m.named_parameters()] == [
        "scale", "fc1.weight", "fc1.bias", "blocks.0.weight", "blocks.0.bias", "blocks.1.weight", "blocks.1.bias",
        "bn.weight", "bn.bias", "head.0.weight", "head.0.bias",
    ]
    assert [n for n, _ in m.named_buffers()] == ["stat", "tmp", "bn.running_mean", "bn.running_var", "bn.num_batches_tracked"]
    assert [n for n, _ in m.named_children()] == ["fc1", "act", "blocks", "bn", "head"]
    assert [n for n, _ in m.named_modules()][:4] == ["", "fc1", "act", "blocks"]
    sd = m.state_dict()
    assert "tmp" not in sd and "bn.num_batches_tracked" in sd
    assert sd["bn.num_batches_tracked"].dtype == np.int64
    assert isinstance(m.fc1.weight, nn.Parameter) and m.fc1.weight.requires_grad
    assert m.get_submodule("blocks.1") is m.blocks[1]
    assert m.get_parameter("head.0.bias") is m.head[0].bias


def test_shared_parameter_listed_once_and_reassignment():
    m = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    m[1].weight = m[0].weight
    assert len(list(m.parameters())) == 3
    m[0].bias = None
    assert "0.bias" not in m.state_dict()
    with pytest.raises(TypeError, match="cannot assign ndarray as parameter 'weight'"):
        m[0].weight = np.zeros((2, 2))


def test_state_dict_round_trip_and_sharing():
    a, b = Net(), Net()
    b.load_state_dict(a.state_dict())
    x = ndiv.randn(5, 3)
    np.testing.assert_array_equal(a.eval()(x).numpy(), b.eval()(x).numpy())
    # state_dict arrays are the live data (like torch), load_state_dict copies in place
    w = b.fc1.weight
    b.load_state_dict({k: v * 0 for k, v in a.state_dict().items()})
    assert b.fc1.weight is w and not w.data.any()


def test_load_state_dict_errors_name_the_keys():
    m = Net()
    sd = dict(m.state_dict())
    del sd["fc1.bias"]
    sd["extra.weight"] = np.zeros(3)
    with pytest.raises(RuntimeError, match=re.escape('Missing key(s) in state_dict: "fc1.bias"')):
        m.load_state_dict(sd)
    with pytest.raises(RuntimeError, match=re.escape('Unexpected key(s) in state_dict: "extra.weight"')):
        m.load_state_dict(sd)
    missing, unexpected = m.load_state_dict(sd, strict=False)
    assert missing == ["fc1.bias"] and unexpected == ["extra.weight"]
    sd = dict(m.state_dict())
    sd["fc1.weight"] = np.zeros((4, 5))
    with pytest.raises(RuntimeError, match=re.escape("size mismatch for fc1.weight: copying a param with shape (4, 5) from checkpoint, the shape in current model is (4, 3)")):
        m.load_state_dict(sd, strict=False)
    with pytest.raises(TypeError, match="mapping"):
        m.load_state_dict([1, 2])


def test_load_torch_state_dict_directly():
    torch = pytest.importorskip("torch")
    t = torch.nn.LSTM(3, 4, num_layers=2)
    n = nn.LSTM(3, 4, num_layers=2)
    n.load_state_dict(t.state_dict())  # torch tensors are accepted as they are
    np.testing.assert_array_equal(n.weight_hh_l1.data, t.weight_hh_l1.detach().numpy())


def test_train_eval_zero_grad_apply():
    m = Net()
    assert m.training and m.bn.training
    m.eval()
    assert not m.training and not m.head[0].training
    m.train()
    m(ndiv.randn(6, 3)).sum().backward()
    assert all(p.grad is not None for p in m.parameters())
    m.zero_grad()
    assert all(p.grad is None for p in m.parameters())
    seen = []
    m.apply(lambda mod: seen.append(type(mod).__name__))
    assert seen[-1] == "Net" and "Linear" in seen


def test_to_dtype_keeps_parameter_objects_and_int_buffers():
    m = Net()
    w = m.fc1.weight
    m.double()
    assert m.fc1.weight is w and w.dtype == np.float64
    assert m.bn.running_mean.dtype == np.float64 and m.bn.num_batches_tracked.dtype == np.int64
    assert m(ndiv.randn(4, 3, dtype="float64")).dtype == np.float64
    m.to(dtype=np.float32)
    assert w.dtype == np.float32
    m.to("float64")
    assert w.dtype == np.float64
    with pytest.raises(TypeError, match="floating point"):
        m.to(dtype=np.int32)
    with pytest.raises(ValueError, match="device must be 'cpu' or 'cuda'"):
        m.to(device="tpu")


def test_deepcopy_and_repr():
    m = Net()
    c = copy.deepcopy(m)
    assert c.fc1.weight is not m.fc1.weight
    np.testing.assert_array_equal(c.fc1.weight.data, m.fc1.weight.data)
    assert isinstance(c.fc1.weight, nn.Parameter) and c.fc1.weight.requires_grad
    assert [n for n, _ in c.named_parameters()] == [n for n, _ in m.named_parameters()]
    r = repr(m)
    assert "(fc1): Linear(in_features=3, out_features=4, bias=True)" in r
    assert "(0): Linear(in_features=4, out_features=4, bias=True)" in r


def test_containers():
    seq = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(seq) == 3 and isinstance(seq[-1], nn.Linear) and len(seq[:2]) == 2
    del seq[1]
    assert [n for n, _ in seq.named_children()] == ["0", "1"]
    ml = nn.ModuleList()
    ml.append(nn.Linear(1, 1))
    ml.extend([nn.Tanh()])
    ml.insert(0, nn.Identity())
    assert [type(m).__name__ for m in ml] == ["Identity", "Linear", "Tanh"]
    assert [n for n, _ in ml.named_parameters()] == ["1.weight", "1.bias"]
    md = nn.ModuleDict({"a": nn.Linear(1, 2)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md
    assert [n for n, _ in md.named_parameters()] == ["a.weight", "a.bias"]
    with pytest.raises(IndexError, match="out of range"):
        seq[5]


def test_forward_hooks_pre_and_post():
    m = nn.Linear(3, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: (args[0] * 2,))
    h2 = m.register_forward_hook(lambda mod, args, out: calls.append(out.shape) or out + 1)
    x = ndiv.randn(4, 3)
    expected = nn.functional.linear(x * 2, m.weight, m.bias).numpy() + 1
    np.testing.assert_allclose(m(x).numpy(), expected, rtol=1e-6)
    assert calls == [(4, 2)]
    h1.remove()
    h2.remove()
    assert not m._has_hooks
    np.testing.assert_allclose(m(x).numpy(), nn.functional.linear(x, m.weight, m.bias).numpy())


def _np(g):
    return g.numpy() if hasattr(g, "numpy") else np.asarray(g)  # torch tensor or raw array


def test_full_backward_hook_matches_torch():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    x = rng.standard_normal((4, 3))
    records = {}

    def run(lib, nnlib, tensor):
        model = nnlib.Sequential(nnlib.Linear(3, 5), nnlib.Tanh(), nnlib.Linear(5, 2))
        if lib == "torch":
            model = model.double()
            for i in (0, 2):
                model[i].weight.data = torch.from_numpy(weights[i][0])
                model[i].bias.data = torch.from_numpy(weights[i][1])
        else:
            model.double().load_state_dict({f"{i}.{n}": w for i in (0, 2) for n, w in zip(("weight", "bias"), weights[i])})
        got = []
        for i in (0, 1, 2):
            model[i].register_full_backward_hook(
                lambda mod, gi, go, i=i: got.append((i, [None if g is None else _np(g) for g in gi], [_np(g) for g in go]))
            )
        xin = tensor(x.copy(), requires_grad=True)
        (model(xin) ** 2).sum().backward()
        records[lib] = got

    weights = {i: (rng.standard_normal(s), rng.standard_normal(s[0])) for i, s in ((0, (5, 3)), (2, (2, 5)))}
    run("torch", torch.nn, lambda a, requires_grad: torch.tensor(a, requires_grad=requires_grad))
    run("ndiv", nn, ndiv.tensor)
    assert [r[0] for r in records["ndiv"]] == [r[0] for r in records["torch"]] == [2, 1, 0]
    for (i, gi_n, go_n), (_, gi_t, go_t) in zip(records["ndiv"], records["torch"]):
        for a, b in zip(go_n + gi_n, go_t + gi_t):
            np.testing.assert_allclose(a, b, rtol=1e-10, err_msg=f"module {i}")


def test_backward_hook_can_replace_grad_input_and_sees_none_for_data_inputs():
    m = nn.Sequential(nn.Linear(3, 3), nn.Linear(3, 1))
    seen = []
    m[0].register_full_backward_hook(lambda mod, gi, go: seen.append(gi))
    m[1].register_full_backward_hook(lambda mod, gi, go: tuple(g * 0 for g in gi))
    x = ndiv.randn(2, 3)  # plain data: no gradient needed
    m(x).sum().backward()
    assert seen == [(None,)]
    assert not m[0].weight.grad.any()  # zeroed by the second layer's hook
    assert m[1].weight.grad.any()

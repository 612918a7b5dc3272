"""Engine hardening (issue 12): None gradients, gradient counts, leaf hooks, scalar promotion.

Each behaviour is checked against torch where torch is installed, and against the values torch
gives (written out) where it is not.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
import ndiv.nn as nn
from ndiv.autograd import Function


class StopGrad(Function):
    """Identity forward; backward sends no gradient (None) although the input needs one."""

    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return None


class AddTooFew(Function):
    """a + b whose backward forgets b's gradient."""

    def forward(self, a, b):
        return a + b

    def backward(self, gy):
        return (gy,)


class ScaleExtra(Function):
    """2 * x whose backward returns a trailing extra gradient (`extra`: None or an array)."""

    def forward(self, x, extra=None):
        self.extra = extra
        return 2 * x

    def backward(self, gy):
        return 2 * gy, self.extra


def _torch_stopgrad(torch):
    class TorchStopGrad(torch.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.clone()

        @staticmethod
        def backward(ctx, g):
            return None

    return TorchStopGrad


# -- 1. a None gradient releases its input --------------------------------------------------------
def test_none_gradient_does_not_stop_other_paths():
    x = ndiv.tensor([1.0, 1.0], requires_grad=True)
    y = 2 * x
    (StopGrad.apply(y) + y).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])


def test_none_gradient_matches_torch():
    torch = pytest.importorskip("torch")
    TorchStopGrad = _torch_stopgrad(torch)
    xs = np.array([0.5, -1.5, 2.0], np.float32)

    x = ndiv.tensor(xs, requires_grad=True)
    y = x * x
    (StopGrad.apply(y) * 3 + y.exp() + StopGrad.apply(y.tanh())).sum().backward()
    xt = torch.tensor(xs, requires_grad=True)
    yt = xt * xt
    (TorchStopGrad.apply(yt) * 3 + yt.exp() + TorchStopGrad.apply(yt.tanh())).sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-6)


def test_leaf_reached_only_by_none_keeps_grad_none():
    # torch: x.grad stays None when every path to x carries no gradient
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    w = ndiv.tensor([3.0, 4.0], requires_grad=True)
    (StopGrad.apply(2 * x) * w).sum().backward()
    assert x.grad is None
    np.testing.assert_array_equal(w.grad, [2.0, 4.0])
    # and directly on a leaf
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    (StopGrad.apply(x) * w).sum().backward()
    assert x.grad is None


def test_non_leaf_hook_and_retain_grad_with_a_none_path():
    x = ndiv.tensor([1.0, 1.0], requires_grad=True)
    y = 2 * x
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(np.array(g)))
    (StopGrad.apply(y) + 3 * y).sum().backward()
    assert len(seen) == 1
    np.testing.assert_array_equal(seen[0], [3.0, 3.0])
    np.testing.assert_array_equal(y.grad, [3.0, 3.0])
    np.testing.assert_array_equal(x.grad, [6.0, 6.0])

    # nothing reaches y: its hook is not called, its retained grad stays None, like x.grad
    x = ndiv.tensor([1.0, 1.0], requires_grad=True)
    y = 2 * x
    y.retain_grad()
    seen = []
    y.register_hook(lambda g: seen.append(g))
    StopGrad.apply(y).sum().backward()
    assert seen == [] and y.grad is None and x.grad is None


def test_too_few_gradients_is_an_error_naming_the_function():
    a = ndiv.tensor([1.0], requires_grad=True)
    b = ndiv.tensor([2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"AddTooFew\.backward returned an incorrect number of gradients \(expected 2.*got 1\)"):
        AddTooFew.apply(a, b).sum().backward()


def test_extra_trailing_none_is_allowed_extra_array_is_not():
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    ScaleExtra.apply(x).sum().backward()
    np.testing.assert_array_equal(x.grad, [2.0, 2.0])
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"ScaleExtra\.backward returned an incorrect number of gradients \(expected 1.*got 2\)"):
        ScaleExtra.apply(x, extra=np.ones(2, np.float32)).sum().backward()


def test_module_backward_hook_returning_none_keeps_other_paths():
    ndiv.manual_seed(0)
    lin = nn.Linear(2, 2)
    lin.register_full_backward_hook(lambda m, gi, go: (None,))
    x = ndiv.tensor([[1.0, 1.0]], requires_grad=True)
    y = 2 * x
    (lin(y) + y).sum().backward()
    np.testing.assert_array_equal(x.grad, [[2.0, 2.0]])  # only the skip path: the hook cut lin's
    np.testing.assert_array_equal(lin.weight.grad, [[2.0, 2.0], [2.0, 2.0]])
    np.testing.assert_array_equal(lin.bias.grad, [1.0, 1.0])


def test_module_backward_hook_returning_none_matches_torch():
    torch = pytest.importorskip("torch")
    ndiv.manual_seed(1)
    lin = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 3))
    tlin = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 3))
    tlin.load_state_dict({k: torch.tensor(np.asarray(v)) for k, v in lin.state_dict().items()})
    lin[2].register_full_backward_hook(lambda m, gi, go: (None,))
    tlin[2].register_full_backward_hook(lambda m, gi, go: (None,))
    xs = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    x = ndiv.tensor(xs, requires_grad=True)
    xt = torch.tensor(xs, requires_grad=True)
    ((lin(x) + x.tanh()) ** 2).sum().backward()
    ((tlin(xt) + xt.tanh()) ** 2).sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-5, atol=1e-6)
    grads = {n: p.grad for n, p in lin.named_parameters()}
    for n, p in tlin.named_parameters():
        if p.grad is None:
            assert grads[n] is None, n
        else:
            np.testing.assert_allclose(grads[n], p.grad.numpy(), rtol=1e-5, atol=1e-6, err_msg=n)


# -- 2. leaf hooks fire once per backward, on the summed gradient ------------------------------
def test_leaf_hook_fires_once_with_the_accumulated_gradient():
    x = ndiv.tensor([1.0, 1.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(np.array(g)))
    (x * 2 + x * 3 + x).sum().backward()
    assert len(calls) == 1
    np.testing.assert_array_equal(calls[0], [6.0, 6.0])
    (x * 2).sum().backward()  # a second backward: one more call, with this backward's gradient only
    assert len(calls) == 2
    np.testing.assert_array_equal(calls[1], [2.0, 2.0])
    np.testing.assert_array_equal(x.grad, [8.0, 8.0])


def test_leaf_hook_replacement_applies_to_the_sum_and_matches_torch():
    torch = pytest.importorskip("torch")
    xs = np.array([0.3, -0.7], np.float32)
    x = ndiv.tensor(xs, requires_grad=True)
    xt = torch.tensor(xs, requires_grad=True)
    calls, tcalls = [], []
    x.register_hook(lambda g: calls.append(np.array(g)) or g * 10)
    xt.register_hook(lambda g: tcalls.append(g.numpy().copy()) or g * 10)
    (x.exp() * x + x.sin()).sum().backward()
    (xt.exp() * xt + xt.sin()).sum().backward()
    assert len(calls) == len(tcalls) == 1
    np.testing.assert_allclose(calls[0], tcalls[0], rtol=1e-6)
    np.testing.assert_allclose(x.grad, xt.grad.numpy(), rtol=1e-6)


def test_hooked_leaf_grad_does_not_alias_another_leafs():
    a = ndiv.tensor([1.0, 2.0], requires_grad=True)
    b = ndiv.tensor([3.0, 4.0], requires_grad=True)
    a.register_hook(lambda g: None)
    (a + b).sum().backward()  # Add's backward hands the same array to both inputs
    assert not np.shares_memory(a.grad, b.grad)
    a.grad[...] = 0  # an optimizer writing in place must not touch b
    np.testing.assert_array_equal(b.grad, [1.0, 1.0])


def test_root_leaf_hook_fires_once():
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    calls = []
    x.register_hook(lambda g: calls.append(np.array(g)))
    x.backward(np.array([1.0, 1.0]))
    assert len(calls) == 1


# -- 4. scalars do not widen a tensor; promotion as torch ---------------------------------------
SCALARS = [2, 2.5, True, np.float64(2.5), np.float32(2.5), np.int64(3), np.int32(3), np.float16(2.0)]
TENSOR_DTYPES = ["float32", "float64", "float16", "int32", "int64", "bool"]
OPS = {
    "add": lambda a, b: a + b, "radd": lambda a, b: b + a,
    "sub": lambda a, b: a - b, "rsub": lambda a, b: b - a,
    "mul": lambda a, b: a * b, "rmul": lambda a, b: b * a,
    "div": lambda a, b: a / b, "rdiv": lambda a, b: b / a,
    "pow": lambda a, b: a ** b,
}


def test_numpy_scalar_keeps_float32():
    t = ndiv.tensor([1.0, 2.0])
    assert (t * np.float64(2)).dtype == np.float32
    assert (np.float64(2) * t).dtype == np.float32
    assert (t / np.float64(2)).dtype == np.float32
    assert (t + np.int64(2)).dtype == np.float32
    assert (ndiv.tensor([1, 2]) * 2.5).dtype == np.float32  # int tensor * Python float: default float
    assert (ndiv.tensor(np.array([1, 2], np.int32)) / 2).dtype == np.float32
    x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    (x * np.float64(3)).sum().backward()
    assert x.grad.dtype == np.float32


@pytest.mark.parametrize("op", list(OPS), ids=str)
def test_scalar_promotion_matches_torch(op):
    torch = pytest.importorskip("torch")
    fn = OPS[op]
    for dt in TENSOR_DTYPES:
        data = np.array([1, 2, 3]).astype(dt)
        for c in SCALARS:
            if op == "pow" and dt == "bool":
                continue
            try:
                want = fn(torch.tensor(data), c).dtype
            except (RuntimeError, TypeError):
                continue  # torch refuses (e.g. bool - bool): not a promotion question
            got = fn(ndiv.tensor(data), c).dtype
            assert str(want) == f"torch.{got}", (op, dt, type(c).__name__, want, got)


@pytest.mark.parametrize("op", ["add", "mul", "div"], ids=str)
def test_tensor_pair_promotion_matches_torch(op):
    torch = pytest.importorskip("torch")
    fn = OPS[op]
    dtypes = ["float32", "float64", "int32", "int64", "bool", "complex64"]
    for da in dtypes:
        for db in dtypes:
            for sa, sb in [((3,), (3,)), ((3,), ()), ((), (3,)), ((), ())]:
                a, b = np.ones(sa, da), np.ones(sb, db)
                want = fn(torch.tensor(a), torch.tensor(b)).dtype
                got = fn(ndiv.tensor(a), ndiv.tensor(b)).dtype
                assert str(want) == f"torch.{got}", (op, da, sa, db, sb, want, got)


def test_promotion_keeps_gradients_in_each_inputs_dtype():
    x = ndiv.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    s = ndiv.tensor(np.array(3.0), requires_grad=True)  # 0-d float64: does not widen x
    y = x * s
    assert y.dtype == np.float32
    y.sum().backward()
    assert x.grad.dtype == np.float32 and s.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, [3.0, 3.0])
    np.testing.assert_allclose(s.grad, 3.0)


def test_python_constants_follow_the_tensor():
    x = ndiv.tensor([1.0, -1.0])
    assert ndiv.where(x > 0, x, 0).dtype == np.float32
    with np.errstate(divide="ignore"):
        y = x / 0
    assert y.dtype == np.float32
    np.testing.assert_array_equal(y.numpy(), [np.inf, -np.inf])
    assert (x + [1, 2]).dtype == np.float32

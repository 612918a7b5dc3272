"""One place decides the device (DESIGN, STYLE lesson 3): every fused op on a CuPy-typed array reaches
ndiv.kernels.cuda through kernels_for, on a machine without a GPU.

A stand-in CuPy (its ndarray a NumPy subclass whose type says 'cupy', its functions NumPy's) is
installed as ndiv.device's CuPy, and every kernel of ndiv.kernels.cuda is replaced by a spy that
records its name and runs the CPU twin; the CPU kernels themselves refuse to run meanwhile.
"""
import types

import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops import fused
import ndiv.nn.functional as F
from ndiv import device
from ndiv.kernels import cpu, cuda, reference


class StandInCupyArray(np.ndarray):
    """A 'cupy' array to ndiv.device, which reads the type's module (never imports CuPy)."""

    def get(self):                       # cupy.ndarray.get(): the host copy
        return self.view(np.ndarray)


StandInCupyArray.__module__ = "cupy"


def _host(a):
    return a.view(np.ndarray) if isinstance(a, StandInCupyArray) else a


def _gpu(a):
    if isinstance(a, tuple):
        return tuple(_gpu(x) for x in a)
    return a.view(StandInCupyArray) if isinstance(a, np.ndarray) else a


class StandInCupy(types.ModuleType):
    """numpy's functions under CuPy's name, their arrays handed out as StandInCupyArray (as CuPy's
    functions give cupy arrays); numpy's types and constants as they are."""
    ndarray = StandInCupyArray

    def __getattr__(self, name):
        attr = getattr(np, name)
        if isinstance(attr, type) or not callable(attr):
            return attr
        return lambda *args, **kwargs: _gpu(attr(*args, **kwargs))

    def asnumpy(self, a):
        return np.asarray(a).view(np.ndarray)


@pytest.fixture
def fake_gpu(monkeypatch):
    """Installs the stand-in CuPy and the spying ndiv.kernels.cuda; yields the list of kernel calls."""
    monkeypatch.setattr(device, "_CUPY", StandInCupy("cupy"))
    calls = []
    for name in reference.KERNELS:
        real = getattr(cpu, name)

        def spy(*args, _name=name, _real=real):
            assert any(isinstance(a, StandInCupyArray) for a in args), f"{_name}: no cuda array among its arguments"
            calls.append(_name)
            return _gpu(_real(*(_host(a) for a in args)))
        monkeypatch.setattr(cuda, name, spy)

        def refuse(*args, _name=name):
            raise AssertionError(f"ndiv.kernels.cpu.{_name} ran on arrays of device 'cuda'")
        monkeypatch.setattr(cpu, name, refuse)
    yield calls


def on_gpu(rng, *shape, dtype="float64"):
    x = ndiv.tensor(rng.standard_normal(shape).astype(dtype).view(StandInCupyArray), requires_grad=True)
    assert x.device == "cuda"
    return x


def test_kernels_for_a_cupy_array_is_the_cuda_package(fake_gpu):
    assert device.kernels_for(np.zeros(2).view(StandInCupyArray)) is cuda
    assert device.kernels_for(np.zeros(2)) is cpu


def _backward(out):
    out = out if isinstance(out, tuple) else (out,)
    loss = None
    for o in out:
        term = (o * o).sum()
        loss = term if loss is None else loss + term
    loss.backward()


OPS = {
    "softmax": (lambda r: F.softmax(on_gpu(r, 3, 5), -1), "softmax"),
    "log_softmax": (lambda r: F.log_softmax(on_gpu(r, 3, 5), 0), "log_softmax"),
    "layer_norm": (lambda r: F.layer_norm(on_gpu(r, 2, 3, 4), (4,), on_gpu(r, 4), on_gpu(r, 4)), "layer_norm"),
    "add_layer_norm": (lambda r: F.add_layer_norm(on_gpu(r, 2, 3, 4), on_gpu(r, 2, 3, 4), (4,), on_gpu(r, 4),
                                                  on_gpu(r, 4)), "add_layer_norm"),
    "gelu": (lambda r: F.gelu(on_gpu(r, 7), approximate="tanh"), "gelu"),
    "glu": (lambda r: F.glu(on_gpu(r, 3, 4, 5), 1), "glu"),
    "elu": (lambda r: F.elu(on_gpu(r, 2, 7), 0.5), "elu"),
    "sdpa": (lambda r: F.scaled_dot_product_attention(on_gpu(r, 1, 2, 70, 4), on_gpu(r, 1, 2, 70, 4),
                                                      on_gpu(r, 1, 2, 70, 4), is_causal=True), "flash_attn"),
    "sdpa_bool_mask": (lambda r: F.scaled_dot_product_attention(
        on_gpu(r, 1, 2, 70, 4), on_gpu(r, 1, 2, 70, 4), on_gpu(r, 1, 2, 70, 4),
        attn_mask=np.tril(np.ones((70, 70), bool))), "flash_attn"),
    "conv1d_dilated_causal": (lambda r: F.conv1d(F.pad(on_gpu(r, 2, 3, 9), (4, 0)), on_gpu(r, 5, 3, 2),
                                                 on_gpu(r, 5), dilation=4), "conv1d_dilated"),
    "small_attn": (lambda r: fused.small_attention(
        on_gpu(r, 2, 3, 4, 2), on_gpu(r, 2, 3, 2, 4), on_gpu(r, 2, 3, 4, 2), on_gpu(r, 2, 3, 4, 4), scale=0.5),
        "small_attn"),
    "batch_norm": (lambda r: F.batch_norm(on_gpu(r, 4, 3, 5), None, None, on_gpu(r, 3), on_gpu(r, 3), training=True),
                   "batch_norm"),
    "linear_relu": (lambda r: ndiv.nn.Sequential(ndiv.nn.Linear(4, 5), ndiv.nn.ReLU()).double().to("cuda")(
        on_gpu(r, 3, 4)), "linear_act"),
    "conv2d": (lambda r: F.conv2d(on_gpu(r, 2, 3, 4, 5), on_gpu(r, 4, 3, 3, 3), on_gpu(r, 4), padding=1), "conv2d"),
}


@pytest.mark.parametrize("op", list(OPS))
def test_fused_functional_reaches_the_cuda_kernels(op, fake_gpu):
    fn, kernel = OPS[op]
    out = fn(np.random.default_rng(0))
    assert all(o.device == "cuda" for o in (out if isinstance(out, tuple) else (out,)))
    _backward(out)
    assert fake_gpu == [f"{kernel}_fwd", f"{kernel}_bwd"]


@pytest.mark.parametrize("mode", ["LSTM", "GRU", "RNN_TANH", "RNN_RELU"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_recurrent_layers_reach_the_cuda_kernels(mode, bidirectional, fake_gpu):
    ndiv.manual_seed(0)
    cls, kw = (ndiv.nn.RNN, dict(nonlinearity=mode[4:].lower())) if mode.startswith("RNN") else (getattr(ndiv.nn, mode), {})
    layer = cls(3, 4, num_layers=2, batch_first=True, bidirectional=bidirectional, **kw).double()
    layer = layer.to("cuda")
    assert all(p.device == "cuda" for p in layer.parameters())
    y, _ = layer(on_gpu(np.random.default_rng(0), 2, 5, 3))
    assert y.device == "cuda"
    _backward(y)
    kernel = mode[:4].lower().rstrip("_") + "_seq"
    n = 2 * (2 if bidirectional else 1)                 # layers x directions
    assert fake_gpu == [f"{kernel}_fwd"] * n + [f"{kernel}_bwd"] * n


def test_tcn_conv_reaches_the_cuda_kernels(fake_gpu):
    from ndiv.models.common._modules import CausalConv1d
    ndiv.manual_seed(0)
    conv = CausalConv1d(3, 5, kernel_size=2, padding=4, dilation=4, activation="ReLU").double().to("cuda")
    _backward(conv(on_gpu(np.random.default_rng(0), 2, 3, 9)))
    assert fake_gpu == ["conv1d_dilated_fwd", "conv1d_dilated_bwd"]


def test_the_stand_in_routes_like_the_cpu(fake_gpu, monkeypatch):
    """The spied path computes what the CPU path computes (the stand-in changes nothing but the route)."""
    rng = np.random.default_rng(1)
    x = on_gpu(rng, 4, 6)
    y_gpu = F.softmax(x, -1).numpy()
    monkeypatch.undo()                                   # CPU kernels back
    y_cpu = F.softmax(ndiv.tensor(x.numpy()), -1).numpy()
    np.testing.assert_allclose(y_gpu, y_cpu, rtol=1e-12)

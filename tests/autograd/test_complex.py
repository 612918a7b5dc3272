"""Complex tensors: torch's gradient convention (grad = dL/dRe + i dL/dIm, so a holomorphic f
passes gy * conj(f'(z)) back), dtypes, construction, parameters and their state dicts.

Every op row is checked twice: by gradcheck (central differences in the real and imaginary
directions, no torch needed) and against torch's autograd with the same upstream gradient.
"""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ndiv
import ndiv.nn as nn
from ndiv.autograd import gradcheck


def _z(rng, shape, low=-1.5, high=1.5, dtype=np.complex128):
    return (rng.uniform(low, high, shape) + 1j * rng.uniform(low, high, shape)).astype(dtype)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


# name, ndiv fn, torch fn (t = torch module), input shapes, domain of the real part (low, high)
UNARY = [
    ("neg", lambda x: -x, lambda t, x: -x),
    ("exp", lambda x: x.exp(), lambda t, x: x.exp()),
    ("log", lambda x: x.log(), lambda t, x: x.log(), (0.3, 2.0)),
    ("log1p", lambda x: x.log1p(), lambda t, x: x.log1p(), (0.0, 2.0)),
    ("expm1", lambda x: x.expm1(), lambda t, x: x.expm1()),
    ("sqrt", lambda x: x.sqrt(), lambda t, x: x.sqrt(), (0.3, 2.0)),
    ("rsqrt", lambda x: x.rsqrt(), lambda t, x: x.rsqrt(), (0.3, 2.0)),
    ("tanh", lambda x: x.tanh(), lambda t, x: x.tanh()),
    ("sigmoid", lambda x: x.sigmoid(), lambda t, x: x.sigmoid()),
    ("sin", lambda x: x.sin(), lambda t, x: x.sin()),
    ("cos", lambda x: x.cos(), lambda t, x: x.cos()),
    ("square", lambda x: x.square(), lambda t, x: x.square()),
    ("pow_scalar_3", lambda x: x ** 3, lambda t, x: x ** 3),
    ("pow_scalar_half", lambda x: x ** 0.5, lambda t, x: x ** 0.5, (0.3, 2.0)),
    ("rpow_scalar", lambda x: 2.0 ** x, lambda t, x: 2.0 ** x),
    ("rdiv_scalar", lambda x: 1.5 / x, lambda t, x: 1.5 / x, (0.4, 2.0)),
    ("div_scalar", lambda x: x / 4.0, lambda t, x: x / 4.0),
    ("mul_complex_scalar", lambda x: x * (0.5 - 2j), lambda t, x: x * (0.5 - 2j)),
    ("mul_numpy_complex64_scalar", lambda x: x * np.complex64(0.5 - 2j), lambda t, x: x * (0.5 - 2j)),
    ("rsub_complex_scalar", lambda x: (1 + 1j) - x, lambda t, x: (1 + 1j) - x),
    ("conj", lambda x: x.conj(), lambda t, x: x.conj()),
    ("abs", lambda x: x.abs(), lambda t, x: x.abs()),
    ("angle", lambda x: x.angle(), lambda t, x: x.angle()),
    ("real", lambda x: x.real, lambda t, x: x.real),
    ("imag", lambda x: x.imag, lambda t, x: x.imag),
    ("sum_axis", lambda x: x.sum(axis=0), lambda t, x: x.sum(0)),
    ("mean", lambda x: x.mean(), lambda t, x: x.mean()),
    ("reshape_transpose", lambda x: x.reshape(4, 3).transpose(0, 1), lambda t, x: x.reshape(4, 3).transpose(0, 1)),
    ("getitem", lambda x: x[1:, ::2], lambda t, x: x[1:, ::2]),
    ("cumsum", lambda x: x.cumsum(axis=1), lambda t, x: x.cumsum(1)),
    ("tanh_abs_chain", lambda x: (x.tanh() * x.exp()).abs(), lambda t, x: (x.tanh() * x.exp()).abs()),
    # FEDformer writes the kept modes into a zero spectrum: pad / cat with zeros, pick modes by index
    ("pad_zero_spectrum", lambda x: ndiv.pad(x, ((0, 0), (1, 3))), lambda t, x: t.nn.functional.pad(x, (1, 3))),
    ("cat_zeros", lambda x: ndiv.cat([x, ndiv.zeros(3, 2, dtype=np.complex128)], dim=1),
     lambda t, x: t.cat([x, t.zeros(3, 2, dtype=t.complex128)], dim=1)),
    ("stack", lambda x: ndiv.stack([x, x * 2j], dim=0), lambda t, x: t.stack([x, x * 2j], dim=0)),
    ("getitem_modes", lambda x: x[:, np.array([0, 2, 3])], lambda t, x: x[:, t.tensor([0, 2, 3])]),
]

BINARY = [
    ("add", lambda a, b: a + b, lambda t, a, b: a + b, ((3, 1), (1, 4))),
    ("sub", lambda a, b: a - b, lambda t, a, b: a - b, ((3, 4), (4,))),
    ("mul", lambda a, b: a * b, lambda t, a, b: a * b, ((3, 4), (3, 1))),
    ("div", lambda a, b: a / b, lambda t, a, b: a / b, ((3, 4), (4,))),
    ("pow", lambda a, b: a ** b, lambda t, a, b: a ** b, ((3, 4), (3, 4))),
    ("matmul", lambda a, b: a @ b, lambda t, a, b: a @ b, ((3, 4), (4, 2))),
    ("matmul_batched", lambda a, b: a @ b, lambda t, a, b: a @ b, ((2, 3, 4), (4, 2))),
    ("matmul_vec", lambda a, b: a @ b, lambda t, a, b: a @ b, ((4,), (2, 4, 3))),
    ("einsum_fedformer", lambda a, b: ndiv.einsum("bhi,hio->bho", a, b),
     lambda t, a, b: t.einsum("bhi,hio->bho", a, b), ((2, 3, 4), (3, 4, 5))),
    ("fourier_cross_softmax", lambda q, k: ndiv.einsum("bhxy,bhey->bhex", _complex_softmax(
        ndiv.einsum("bhex,bhey->bhxy", q, k)), k), lambda t, q, k: t.einsum("bhxy,bhey->bhex", _complex_softmax_t(
            t, t.einsum("bhex,bhey->bhxy", q, k)), k), ((1, 2, 3, 4), (1, 2, 3, 5))),
    ("where", lambda a, b: ndiv.where(np.array([[True, False, True, False]] * 3), a, b),
     lambda t, a, b: t.where(t.tensor([[True, False, True, False]] * 3), a, b), ((3, 4), (3, 4))),
]


def _complex_softmax(z):
    """FEDformer's softmax activation: softmax(|z|) back as a complex tensor."""
    w = nn.functional.softmax(z.abs(), dim=-1)
    return ndiv.complex(w, ndiv.zeros_like(w))


def _complex_softmax_t(t, z):
    w = t.softmax(z.abs(), dim=-1)
    return t.complex(w, t.zeros_like(w))


def _unary_rows():
    for row in UNARY:
        name, fn, tfn = row[:3]
        low, high = row[3] if len(row) > 3 else (-1.5, 1.5)
        yield pytest.param(fn, tfn, low, high, id=name)


def _unary_input(rng, low, high):
    x = _z(rng, (3, 4), -1.5, 1.5)
    return (rng.uniform(low, high, (3, 4)) + 1j * x.imag).astype(np.complex128)


@pytest.mark.parametrize("fn, tfn, low, high", list(_unary_rows()))
def test_unary_gradcheck_complex(fn, tfn, low, high, rng):
    x = ndiv.tensor(_unary_input(rng, low, high), requires_grad=True)
    gradcheck(fn, [x])


@pytest.mark.parametrize("fn, tfn, low, high", list(_unary_rows()))
def test_unary_matches_torch_complex(fn, tfn, low, high, rng):
    torch = pytest.importorskip("torch")
    x0 = _unary_input(rng, low, high)
    x, xt = ndiv.tensor(x0, requires_grad=True), torch.tensor(x0, requires_grad=True)
    y, yt = fn(x), tfn(torch, xt)
    np.testing.assert_allclose(y.numpy(), yt.detach().resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
    v = _z(rng, y.shape) if y.dtype.kind == "c" else rng.standard_normal(y.shape)
    y.backward(v)
    yt.backward(torch.tensor(v))
    np.testing.assert_allclose(x.grad, xt.grad.resolve_conj().numpy(), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name, fn, tfn, shapes", BINARY, ids=[r[0] for r in BINARY])
def test_binary_complex(name, fn, tfn, shapes, rng):
    xs0 = [_z(rng, s, 0.3, 1.5) for s in shapes]
    xs = [ndiv.tensor(a, requires_grad=True) for a in xs0]
    gradcheck(fn, xs)
    torch = pytest.importorskip("torch")
    for x in xs:
        x.grad = None
    xts = [torch.tensor(a, requires_grad=True) for a in xs0]
    y, yt = fn(*xs), tfn(torch, *xts)
    np.testing.assert_allclose(y.numpy(), yt.detach().resolve_conj().numpy(), rtol=1e-10, atol=1e-12)
    v = _z(rng, y.shape)
    y.backward(v)
    yt.backward(torch.tensor(v))
    for x, xt in zip(xs, xts):
        np.testing.assert_allclose(x.grad, xt.grad.resolve_conj().numpy(), rtol=1e-9, atol=1e-12)


def test_real_input_of_complex_op_gets_the_real_part(rng):
    """x real, c complex: dL/dx = Re(g conj(c)), with no ComplexWarning (torch's rule)."""
    x0, c0 = rng.standard_normal((3, 4)), _z(rng, (3, 4))
    x = ndiv.tensor(x0, requires_grad=True)
    y = x * ndiv.tensor(c0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (y * y.conj()).real.sum().backward()
    assert x.grad.dtype == np.float64
    np.testing.assert_allclose(x.grad, 2 * x0 * np.abs(c0) ** 2)
    torch = pytest.importorskip("torch")
    xt = torch.tensor(x0, requires_grad=True)
    yt = xt * torch.tensor(c0)
    (yt * yt.conj()).real.sum().backward()
    np.testing.assert_allclose(x.grad, xt.grad.numpy())


def test_complex_construction_and_parts(rng):
    re, im = (ndiv.tensor(rng.standard_normal(3).astype(np.float32), requires_grad=True) for _ in range(2))
    re64, im64 = (ndiv.tensor(t.data.astype(np.float64), requires_grad=True) for t in (re, im))
    gradcheck(lambda a, b: (ndiv.complex(a, b) ** 2).exp(), [re64, im64])
    z = ndiv.complex(re, im)                         # float32 parts -> complex64 (torch.complex)
    assert z.dtype == np.complex64
    np.testing.assert_array_equal(z.real.numpy(), re.numpy())
    np.testing.assert_array_equal(z.imag.numpy(), im.numpy())
    assert z.real.dtype == z.imag.dtype == z.abs().dtype == z.angle().dtype == np.float32
    assert ndiv.tensor([1 + 2j]).dtype == np.complex64   # Python complex -> complex64, as torch
    assert (ndiv.tensor([1.0]) * 1j).dtype == np.complex64
    assert (z * (1 + 1j)).dtype == (z + 2.5).dtype == (z * ndiv.tensor([2.0])).dtype == np.complex64
    assert ndiv.complex(re.reshape(3, 1), im).shape == (3, 3)   # broadcasts
    np.testing.assert_allclose(ndiv.angle(z).numpy(), np.angle(z.numpy()), rtol=1e-6)
    np.testing.assert_array_equal(ndiv.conj(z).numpy(), z.numpy().conj())
    np.testing.assert_array_equal(ndiv.real(z).numpy(), re.numpy())
    np.testing.assert_array_equal(ndiv.imag(z).numpy(), im.numpy())


@pytest.mark.parametrize("name", ["exp", "log", "tanh", "sigmoid", "sqrt", "sin", "cos", "abs", "angle"])
def test_complex64_stays_single_precision(name, rng):
    x = ndiv.tensor(_z(rng, (2, 3), 0.3, 1.0, np.complex64), requires_grad=True)
    y = getattr(x, name)()
    assert y.dtype == (np.float32 if name in ("abs", "angle") else np.complex64)
    (y.abs() if y.dtype.kind == "c" else y).sum().backward()
    assert x.grad.dtype == np.complex64


def test_sigmoid_complex_does_not_overflow():
    x = ndiv.tensor(np.array([-800 + 0.3j, 800 - 0.2j, 0.5 + 0.5j]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = x.sigmoid().numpy()
    np.testing.assert_allclose(y, 1 / (1 + np.exp(-np.array([-50 + 0.3j, 50 - 0.2j, 0.5 + 0.5j]))), atol=1e-15)


def test_abs_and_angle_at_zero_have_zero_gradient():
    z = ndiv.tensor(np.array([0j, 3 + 4j]), requires_grad=True)
    (z.abs().sum() + z.angle().sum()).backward()
    assert z.grad[0] == 0
    np.testing.assert_allclose(z.grad[1], (3 + 4j) / 5 + 1j * (3 + 4j) / 25)


@pytest.mark.parametrize("call, op", [
    (lambda z: z.relu(), "relu"), (lambda z: z.clip(-1, 1), "clip"),
    (lambda z: ndiv.maximum(z, z), "maximum"), (lambda z: ndiv.minimum(z, z), "minimum"),
])
def test_ordered_ops_refuse_complex(call, op):
    z = ndiv.tensor(np.array([1 + 1j, -1 - 2j]))
    with pytest.raises(TypeError, match=rf"{op}: complex input \(dtype complex128\) has no order"):
        call(z)


def test_construction_errors():
    with pytest.raises(TypeError, match="imag: needs a complex tensor, got dtype float32"):
        ndiv.tensor([1.0]).imag
    with pytest.raises(TypeError, match="complex: real must be a floating-point tensor, got dtype int64"):
        ndiv.complex(ndiv.tensor([1]), ndiv.tensor([1]))
    with pytest.raises(TypeError, match="same dtype, got float32 and float64"):
        ndiv.complex(ndiv.tensor([1.0]), ndiv.tensor(np.array([1.0])))


def test_gradcheck_refuses_complex64():
    x = ndiv.tensor(np.ones(2, np.complex64), requires_grad=True)
    with pytest.raises(ValueError, match="complex64.*complex128"):
        gradcheck(lambda t: t.exp(), [x])


def test_gradcheck_catches_a_wrong_complex_backward():
    """A backward that forgets the conj() passes on real inputs and must fail on complex ones."""
    from ndiv.autograd.function import Function

    class BadExp(Function):
        def forward(self, x):
            self.y = np.exp(x)
            return self.y

        def backward(self, gy):
            return gy * self.y

    gradcheck(lambda t: BadExp.apply(t), [ndiv.tensor(np.array([0.3, -0.2]), requires_grad=True)])
    with pytest.raises(AssertionError, match="imag|gradient"):
        gradcheck(lambda t: BadExp.apply(t), [ndiv.tensor(np.array([0.3 + 0.5j, -0.2 + 1j]), requires_grad=True)])


# -- random draws and init ---------------------------------------------------------------------
def test_rand_and_init_draw_both_parts():
    ndiv.manual_seed(0)
    z = ndiv.rand(4000, dtype=np.complex64)              # FEDformer: scale * torch.rand(..., cfloat)
    assert z.dtype == np.complex64
    for part in (z.real.numpy(), z.imag.numpy()):
        assert 0 <= part.min() and part.max() < 1 and abs(part.mean() - 0.5) < 0.03
    w = ndiv.randn(4000, dtype=np.complex128).numpy()
    assert abs(np.mean(np.abs(w) ** 2) - 1) < 0.1 and abs(w.real.var() - 0.5) < 0.05
    p = nn.Parameter(np.zeros((2000,), np.complex64))
    nn.init.uniform_(p, -1.0, 2.0)
    assert p.dtype == np.complex64 and -1 <= p.data.imag.min() and p.data.imag.max() < 2
    assert abs(p.data.real.mean() - 0.5) < 0.1 and abs(p.data.imag.mean() - 0.5) < 0.1
    nn.init.normal_(p, 3.0, 2.0)                         # torch: each part N(mean, std^2 / 2)
    assert abs(p.data.imag.mean() - 3) < 0.15 and abs(p.data.real.std() - 2 / np.sqrt(2)) < 0.15
    nn.init.xavier_uniform_(q := nn.Parameter(np.zeros((30, 40), np.complex64)))
    assert np.abs(q.data.imag).max() > 0


# -- parameters, modules, state dicts ----------------------------------------------------------
class _Spectral(nn.Module):
    """FEDformer's pattern: a complex weight and a real bias."""

    def __init__(self):
        super().__init__()
        self.weights1 = nn.Parameter(0.1 * ndiv.rand(3, 4, 5, dtype=np.complex64))
        self.bias = nn.Parameter(np.zeros(4, np.float32))

    def forward(self, x):                                  # x [B, 3, L] real
        xf = ndiv.fft.rfft(x)[..., :5]                     # [B, 3, 5]
        out = ndiv.einsum("bix,iox->box", xf, self.weights1)   # [B, 4, 5]
        return ndiv.fft.irfft(out.tanh(), n=x.shape[-1]) + self.bias.reshape(1, 4, 1)


def test_complex_parameter_trains_end_to_end(rng):
    m = _Spectral()
    assert m.weights1.requires_grad and m.weights1.dtype == np.complex64
    x = ndiv.tensor(rng.standard_normal((2, 3, 16)).astype(np.float32))
    loss = (m(x) ** 2).mean()
    loss.backward()
    assert m.weights1.grad.dtype == np.complex64 and np.abs(m.weights1.grad.imag).max() > 0
    opt = ndiv.optim.Adam(m.parameters(), lr=1e-2)
    for _ in range(5):
        opt.zero_grad()
        loss2 = (m(x) ** 2).mean()
        loss2.backward()
        opt.step()
    assert m.weights1.dtype == np.complex64 and float(loss2.item()) < float(loss.item())


def test_module_dtype_casts_match_torch():
    """double()/float()/half() leave complex parameters alone (torch); to(complex128) casts the
    floating and the complex ones; to(float64) never drops an imaginary part."""
    m = _Spectral()
    w = m.weights1.data.copy()
    m.double()
    assert m.weights1.dtype == np.complex64 and m.bias.dtype == np.float64
    m.to(np.float64)
    m.to(dtype="float32")
    assert m.weights1.dtype == np.complex64 and m.bias.dtype == np.float32
    np.testing.assert_array_equal(m.weights1.data, w)
    m.to(np.complex128)
    assert m.weights1.dtype == np.complex128 and m.bias.dtype == np.complex128
    with pytest.raises(TypeError, match="floating point or complex dtypes, got int64"):
        m.to(np.int64)


def test_module_dtype_casts_torch_reference():
    torch = pytest.importorskip("torch")
    t = torch.nn.Module()
    t.w = torch.nn.Parameter(torch.rand(2, dtype=torch.cfloat))
    t.b = torch.nn.Parameter(torch.rand(2))
    t.double()
    assert t.w.dtype == torch.complex64 and t.b.dtype == torch.float64
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t.to(torch.complex128)
    assert t.w.dtype == torch.complex128 and t.b.dtype == torch.complex128


def test_complex_state_dict_round_trips_through_safetensors(tmp_path):
    m = _Spectral()
    ndiv.save(m.state_dict(), tmp_path / "m.safetensors")
    m2 = _Spectral()
    m2.load_state_dict(ndiv.load(tmp_path / "m.safetensors", expected=m2.state_dict()))
    assert m2.weights1.dtype == np.complex64
    np.testing.assert_array_equal(m2.weights1.data, m.weights1.data)


def test_complex128_round_trips_through_ndiv_save(tmp_path):
    """safetensors has no complex128: ndiv stores it as float64 [..., 2] and says so in the header."""
    sd = {"w": np.array([[1 + 2j, 3 - 4j]]), "x": np.ones(2, np.float32), "s": np.array(1.5 - 2.5j)}
    ndiv.save(sd, tmp_path / "c.safetensors", metadata={"note": "hi"})
    back = ndiv.load(tmp_path / "c.safetensors", expected=sd)
    for k in sd:
        assert back[k].dtype == sd[k].dtype
        np.testing.assert_array_equal(back[k], sd[k])
    assert ndiv.serialization.load_metadata(tmp_path / "c.safetensors") == {"note": "hi"}


def test_complex64_safetensors_interoperate_with_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st = pytest.importorskip("safetensors.torch")
    w = torch.rand(3, 4, 2, dtype=torch.cfloat)
    st.save_file({"weights1": w}, str(tmp_path / "t.safetensors"))
    got = ndiv.load(tmp_path / "t.safetensors")["weights1"]
    assert got.dtype == np.complex64
    np.testing.assert_array_equal(got, w.numpy())
    m = _Spectral()
    ndiv.save(m.state_dict(), tmp_path / "n.safetensors")
    back = st.load_file(str(tmp_path / "n.safetensors"))
    assert back["weights1"].dtype == torch.complex64
    np.testing.assert_array_equal(back["weights1"].numpy(), m.weights1.data)


@pytest.mark.parametrize("op", ["var", "prod"])
def test_complex_var_and_prod_match_torch(op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    z = (rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4))).astype(np.complex128)
    x = ndiv.tensor(z, requires_grad=True)
    t = torch.tensor(z, requires_grad=True)
    y, ty = getattr(x, op)(axis=1), getattr(t, op)(dim=1)
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-12)
    g = rng.standard_normal(y.shape) + (1j * rng.standard_normal(y.shape) if y.dtype.kind == "c" else 0)
    y.backward(g.astype(y.dtype))
    ty.backward(torch.tensor(g.astype(y.dtype)))
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-10)

"""bfloat16 rounding (Numba vs NumPy reference vs torch) and MKL's bf16 GEMM against the
reference product of the rounded factors, every layout, NaN and inf included."""
import numpy as np
import pytest

from ndiv.kernels.cpu import bf16 as cpu
from ndiv.kernels.reference import bf16 as ref

needs_mkl = pytest.mark.skipif(not cpu.mkl_status()[0], reason="oneMKL (pip install 'ndiv[bf16]') not installed")


def _bits(u32):
    return np.array(u32, np.uint32).view(np.float32)


def special_values():
    """Ties (odd and even), the largest floats (round to inf), subnormals, signed zeros, inf, NaNs
    whose payload lies only in the low 16 bits (truncation alone would make them inf)."""
    return np.concatenate([
        _bits([0x3F808000, 0x3F818000, 0x3F80_8001, 0x3F80_7FFF, 0x7F7FFFFF, 0xFF7FFFFF, 0x00000001, 0x807F0000,
               0x7F800001, 0xFF800001, 0x7FC00000, 0x7F800000, 0xFF800000]),
        np.array([0.0, -0.0, 1.0, -1.5, 3.4e38, 1e-40, np.pi], np.float32)])


def test_rounding_matches_reference_on_random_and_special_values():
    rng = np.random.default_rng(0)
    x = np.concatenate([(rng.standard_normal(10_000) * 10.0 ** rng.uniform(-30, 30, 10_000)).astype(np.float32),
                        special_values()]).astype(np.float32)
    assert (cpu.to_bf16(x) == ref.to_bf16(x)).all()
    m = x[:9_000].reshape(90, 100)
    assert (cpu.to_bf16(m.T) == ref.to_bf16(m.T)).all() and cpu.to_bf16(m.T).flags.c_contiguous


def test_rounding_is_to_nearest_even_and_keeps_nan_and_inf():
    r = ref.from_bf16(cpu.to_bf16(special_values()))
    assert r[0] == 1.0 and r[1] == _bits([0x3F820000])[0]        # ties: to the even neighbour
    assert r[2] == _bits([0x3F810000])[0] and r[3] == 1.0
    assert np.isinf(r[4]) and r[4] > 0 and np.isinf(r[5]) and r[5] < 0   # largest floats overflow as IEEE
    assert np.isnan(r[8:11]).all() and (r[11], r[12]) == (np.inf, -np.inf)
    assert np.signbit(r[14]) and r[14] == 0


def test_rounding_matches_torch_bfloat16():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x = np.concatenate([(rng.standard_normal(5000) * 10.0 ** rng.uniform(-30, 30, 5000)).astype(np.float32),
                        special_values()]).astype(np.float32)
    got = ref.from_bf16(cpu.to_bf16(x))
    want = torch.from_numpy(x).bfloat16().float().numpy()
    np.testing.assert_array_equal(got, want)      # NaNs compare equal in assert_array_equal


@needs_mkl
@pytest.mark.parametrize("layout", ["c", "f", "sliced", "prepared", "prepared_T"])
def test_gemm_matches_reference_product_of_rounded_factors(layout):
    rng = np.random.default_rng(2)
    a = rng.standard_normal((37, 53)).astype(np.float32)
    b = rng.standard_normal((53, 29)).astype(np.float32)
    want = ref.gemm_bf16(a, b)
    if layout == "c":
        got = cpu.gemm_bf16(a, b)
    elif layout == "f":
        got = cpu.gemm_bf16(np.asfortranarray(a), np.asfortranarray(b))
    elif layout == "sliced":
        big = np.zeros((74, 60), np.float32)
        big[::2, 1:54] = a
        got = cpu.gemm_bf16(big[::2, 1:54], b)
    elif layout == "prepared":
        got = cpu.gemm_bf16(cpu.prepare(a), cpu.prepare(b))
    else:
        got = cpu.gemm_bf16(cpu.prepare(a.T.copy()).T, cpu.prepare(b.T.copy()).T)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)   # MKL accumulates in float32
    assert got.dtype == np.float32 and got.shape == (37, 29)


@needs_mkl
def test_gemm_propagates_nan_and_inf_as_the_reference():
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 8)).astype(np.float32)
    b = np.abs(rng.standard_normal((8, 5))).astype(np.float32)
    a[0, 2], a[1, 3], a[2, 4] = np.nan, np.inf, -np.inf
    b[5, 1] = _bits([0x7F800001])[0]                      # a NaN that truncation would make inf
    with np.errstate(invalid="ignore"):                   # inf - inf in the reference
        got, want = cpu.gemm_bf16(a, b), ref.gemm_bf16(a, b)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    finite = np.isfinite(want)
    assert (got[~finite & ~np.isnan(want)] == want[~finite & ~np.isnan(want)]).all()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-5, atol=1e-5)
    assert np.isnan(got[:, 1]).all()


@needs_mkl
def test_gemm_empty_and_misaligned():
    assert cpu.gemm_bf16(np.ones((0, 3), np.float32), np.ones((3, 4), np.float32)).shape == (0, 4)
    np.testing.assert_array_equal(cpu.gemm_bf16(np.ones((2, 0), np.float32), np.ones((0, 4), np.float32)), 0)
    with pytest.raises(ValueError, match="not aligned"):
        cpu.gemm_bf16(np.ones((2, 3), np.float32), np.ones((4, 4), np.float32))


def test_missing_mkl_gives_the_install_command(monkeypatch):
    monkeypatch.setattr(cpu, "_mkl", "oneMKL (libmkl_rt) was not found")
    assert cpu.mkl_status() == (False, "oneMKL (libmkl_rt) was not found")
    with pytest.raises(RuntimeError, match=r"ndiv\[bf16\]"):
        cpu.gemm_bf16(np.ones((2, 2), np.float32), np.ones((2, 2), np.float32))


def _rnn_args(kind, rng, T, B, H):
    G = {"lstm": 4, "gru": 3, "rnn": 1}[kind]
    xw = rng.standard_normal((T, B, G * H)).astype(np.float32)
    h0 = rng.standard_normal((B, H)).astype(np.float32)
    w = (rng.standard_normal((G * H, H)) / np.sqrt(H)).astype(np.float32)
    if kind == "lstm":
        return (xw, h0, rng.standard_normal((B, H)).astype(np.float32), w)
    if kind == "gru":
        return (xw, h0, w, rng.standard_normal(G * H).astype(np.float32))
    return (xw, h0, w, False)


def _rnn_bwd_args(kind, rng, fwd_args, out, T, B, H):
    g = lambda *s: rng.standard_normal(s).astype(np.float32)  # noqa: E731
    if kind == "lstm":
        y, c, gates = out
        xw, h0, c0, w = fwd_args
        return (g(T, B, H), g(B, H), g(B, H), h0, c0, w, y, c, gates)
    if kind == "gru":
        y, gates = out
        xw, h0, w, b = fwd_args
        return (g(T, B, H), g(B, H), h0, w, y, gates)
    xw, h0, w, relu = fwd_args
    return (g(T, B, H), g(B, H), h0, w, out, relu)


@needs_mkl
@pytest.mark.parametrize("kind", ["lstm", "gru", "rnn"])
@pytest.mark.parametrize("T", [1, 5])
def test_recurrent_kernels_with_bf16_products_match_the_reference(kind, T):
    """The Numba kernels with bf16=True against the NumPy twins with bf16=True (every recurrent
    product with rounded factors). One step is exact to float32 accumulation; over several steps
    a state that rounds to the other bf16 neighbour on one side moves both results by ~0.4%."""
    from ndiv.kernels import cpu as kcpu, reference as kref
    rng = np.random.default_rng(4)
    B, H = 6, 16
    args = _rnn_args(kind, rng, T, B, H)
    got_f = getattr(kcpu, f"{kind}_seq_fwd")(*args, bf16=True)
    want_f = getattr(kref, f"{kind}_seq_fwd")(*args, bf16=True)
    plain = getattr(kcpu, f"{kind}_seq_fwd")(*args)
    bargs = _rnn_bwd_args(kind, rng, args, want_f, T, B, H)
    got_b = getattr(kcpu, f"{kind}_seq_bwd")(*bargs, bf16=True)
    want_b = getattr(kref, f"{kind}_seq_bwd")(*bargs, bf16=True)
    tol = dict(rtol=2e-4, atol=2e-4) if T == 1 else dict(rtol=0, atol=3e-2)
    for got, want in zip(*(o if isinstance(o, tuple) else (o,) for o in (got_f, want_f))):
        np.testing.assert_allclose(got, want, **tol)
    for got, want in zip(got_b, want_b):
        np.testing.assert_allclose(got, want, rtol=tol["rtol"], atol=tol["atol"] * max(1.0, np.abs(want).max()))
    # bf16 changes the result (the flag is used) by about bf16's rounding, not more
    y_plain = plain[0] if isinstance(plain, tuple) else plain
    y_bf = got_f[0] if isinstance(got_f, tuple) else got_f
    assert 0 < np.abs(y_plain - y_bf).max() < 5e-2

"""The float32 erf of the CPU kernels (kernels/cpu/_math.py) against math.erf, and the GELU
kernel that uses it against the reference twin, with NaN/inf and the float64 gradcheck."""
from __future__ import annotations

import math

import numba
import numpy as np
import pytest

import ndiv
from ndiv.kernels import cpu, reference
from ndiv.kernels.cpu._math import fast_erf


@numba.njit(cache=False)
def _erf_all(x):
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        out[i] = fast_erf(x[i])
    return out


def _ulps(got, x):
    exact = np.array([math.erf(v) for v in x.astype(np.float64)])
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    return np.abs(got.astype(np.float64) - exact) / ulp


def test_erf_float32_within_float32_rounding_on_a_dense_grid():
    x = np.concatenate([np.linspace(-6, 6, 200_001, dtype=np.float32),                 # both pieces, the seam at 1
                        np.float32(1.0) + np.arange(-50, 50, dtype=np.float32) * np.float32(6e-8),
                        np.geomspace(1e-30, 1, 2000).astype(np.float32),                 # tiny: erf(x) ~ 2x/sqrt(pi)
                        -np.geomspace(1e-30, 1, 2000).astype(np.float32),
                        np.array([3.9, 3.95, 4.0, 10.0, 1e30, -1e30, 0.0, -0.0], np.float32)])  # tails: +-1
    got = _erf_all(x)
    assert got.dtype == np.float32
    u = _ulps(got, x)
    assert u.max() <= 2.0, f"erf float32: {u.max():.2f} ulp at x={x[u.argmax()]!r}"
    assert np.all(np.abs(got) <= 1) and np.array_equal(np.sign(got), np.sign(x))   # odd, bounded


def test_erf_nonfinite_and_float64_is_libm():
    got = _erf_all(np.array([np.nan, np.inf, -np.inf], np.float32))
    assert np.isnan(got[0]) and got[1] == 1 and got[2] == -1
    x = np.linspace(-5, 5, 1001)
    np.testing.assert_array_equal(_erf_all(x), [math.erf(v) for v in x])   # float64: math.erf itself


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_gelu_kernel_matches_reference(dtype, rtol):
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(5000) * 3).astype(dtype)
    gy = rng.standard_normal(5000).astype(dtype)
    y, gx = cpu.gelu_fwd(x, False), cpu.gelu_bwd(gy, x, False)
    assert y.dtype == gx.dtype == dtype
    # absolute floor: 1 + erf cancels in the left tail (as in torch's float32 GELU)
    np.testing.assert_allclose(y, reference.gelu_fwd(x, False), rtol=rtol, atol=10 * np.finfo(dtype).eps)
    np.testing.assert_allclose(gx, reference.gelu_bwd(gy, x, False), rtol=rtol, atol=10 * np.finfo(dtype).eps)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernel_nonfinite(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, 1.0], dtype)
    gy = np.ones_like(x)
    for got, want in ((cpu.gelu_fwd(x, False), reference.gelu_fwd(x, False)),
                      (cpu.gelu_bwd(gy, x, False), reference.gelu_bwd(gy, x, False))):
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], rtol=1e-6)


def test_gelu_gradcheck_float64():
    x = ndiv.tensor(np.random.default_rng(1).standard_normal((3, 7)) * 2, dtype="float64", requires_grad=True)
    ndiv.autograd.gradcheck(lambda t: ndiv.nn.functional.gelu(t), [x])

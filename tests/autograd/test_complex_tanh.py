"""Tanh of complex arrays from real ops (elementwise._complex_tanh) against NumPy's libm-based
np.tanh: within a few ulp on a dense grid, near the poles and past the large-|Re z| switch, and
the same nan/inf; the Tensor op's gradient still passes gradcheck."""
import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops.elementwise import _complex_tanh


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_matches_numpy_within_a_few_ulp(dtype):
    rng = np.random.default_rng(0)
    a, b = np.meshgrid(np.linspace(-30, 30, 401), np.linspace(-10, 10, 401))
    near_poles = rng.standard_normal(2000) * 1e-3 + 1j * (np.pi / 2 + rng.standard_normal(2000) * 1e-4)
    z = np.concatenate([(a + 1j * b).ravel(), near_poles, [8.9 + 1j, 9.1 - 2j, 21.9 + 3j, 22.1 - 1j, 1e-30, -0.0]])
    z = z.astype(dtype)
    got, want = _complex_tanh(z), np.tanh(z)
    assert got.dtype == dtype
    eps = np.finfo(z.real.dtype).eps
    err = np.abs(got - want) / np.maximum(np.abs(want), np.finfo(z.real.dtype).tiny)
    assert err.max() < 8 * eps, f"{err.max() / eps:.1f} eps at {z[err.argmax()]}"


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_nonfinite_like_numpy(dtype):
    z = np.array([np.nan, np.inf, -np.inf, 1j * np.inf, complex(np.nan, np.nan), complex(30, np.inf),
                  complex(np.nan, 1.0), complex(2.0, np.nan)], dtype)
    with np.errstate(all="ignore"):
        want = np.tanh(z)
    got = _complex_tanh(z)
    np.testing.assert_array_equal(np.isnan(got.real), np.isnan(want.real))
    np.testing.assert_array_equal(np.isnan(got.imag), np.isnan(want.imag))
    fin = ~np.isnan(want)
    np.testing.assert_array_equal(got[fin], want[fin])


def test_tensor_tanh_on_complex_gradcheck():
    rng = np.random.default_rng(1)
    z = ndiv.tensor(rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)), requires_grad=True)
    assert ndiv.autograd.gradcheck(lambda t: t.tanh(), [z])

"""Dropout's counter-based kernels: the Numba kernel against its NumPy twin (bit-identical masks
and outputs), keep-probability statistics, NaN/inf, the float64 gradcheck, and the compact mask."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops import nn_ops
from ndiv.kernels import cpu, reference
from ndiv.nn import functional as F


@pytest.mark.parametrize("shape", [(0,), (1,), (7,), (8,), (9,), (3, 5, 7), (1000,)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_cpu_matches_reference_bit_for_bit(shape, dtype, p):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(dtype)
    gy = rng.standard_normal(shape).astype(dtype)
    seed = int(rng.integers(0, 2 ** 63))
    y, mask = cpu.dropout_fwd(x, p, seed)
    y_ref, mask_ref = reference.dropout_fwd(x, p, seed)
    assert mask.dtype == np.uint8 and mask.shape == (-(-x.size // 8),)
    np.testing.assert_array_equal(mask, mask_ref)
    assert y.dtype == dtype and y.shape == shape
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cpu.dropout_bwd(gy, mask, p), reference.dropout_bwd(gy, mask_ref, p))
    keep = np.unpackbits(mask, count=x.size, bitorder="little").astype(bool).reshape(shape)
    np.testing.assert_array_equal(y, np.where(keep, x * dtype(1 / (1 - p)), 0))


def test_non_contiguous_input_is_read_in_c_order():
    x = np.arange(24, dtype=np.float32).reshape(4, 6).T
    y, mask = cpu.dropout_fwd(x, 0.5, 11)
    y_ref, mask_ref = reference.dropout_fwd(np.ascontiguousarray(x), 0.5, 11)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(mask, mask_ref)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_probability_and_independence(p):
    n = 200_000
    _, mask = cpu.dropout_fwd(np.ones(n, np.float32), p, 1234)
    keep = np.unpackbits(mask, count=n, bitorder="little").astype(float)
    sd = np.sqrt(p * (1 - p) / n)
    assert abs(keep.mean() - (1 - p)) < 5 * sd
    corr = np.corrcoef(keep[:-1], keep[1:])[0, 1]     # neighbours (consecutive counters) uncorrelated
    assert abs(corr) < 5 / np.sqrt(n)
    _, other = cpu.dropout_fwd(np.ones(n, np.float32), p, 1235)
    other = np.unpackbits(other, count=n, bitorder="little").astype(float)
    assert abs(np.corrcoef(keep, other)[0, 1]) < 5 / np.sqrt(n)    # nearby seeds: unrelated masks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_nan_and_inf_propagate(dtype):
    x = np.array([np.nan, np.inf, -np.inf, 1.0] * 8, dtype)
    y, mask = cpu.dropout_fwd(x, 0.5, 7)
    y_ref, _ = reference.dropout_fwd(x, 0.5, 7)
    np.testing.assert_array_equal(y, y_ref)
    keep = np.unpackbits(mask, count=x.size, bitorder="little").astype(bool)
    assert 0 < keep.sum() < x.size
    assert np.all(np.isnan(y[~keep & ~np.isfinite(x)]))     # dropped inf and nan: x * 0 is nan (torch too)
    np.testing.assert_array_equal(y[keep & np.isinf(x)], 2 * x[keep & np.isinf(x)])
    gy = x[::-1].copy()
    np.testing.assert_array_equal(cpu.dropout_bwd(gy, mask, 0.5), reference.dropout_bwd(gy, mask, 0.5))


def test_gradcheck_float64_with_a_fixed_seed():
    x = ndiv.tensor(np.random.default_rng(2).standard_normal((4, 9)), dtype="float64", requires_grad=True)
    ndiv.autograd.gradcheck(lambda t: nn_ops.Dropout.apply(t, p=0.3, seed=99), [x])


def test_functional_dropout_is_seeded_and_saves_a_bit_packed_mask():
    x = ndiv.ones(50, 40, requires_grad=True)
    ndiv.manual_seed(5)
    y1 = F.dropout(x, 0.25)
    ndiv.manual_seed(5)
    y2 = F.dropout(x, 0.25)
    y3 = F.dropout(x, 0.25)
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    assert not np.array_equal(y2.numpy(), y3.numpy())       # the next call draws a new seed
    node = y1.grad_fn
    assert type(node) is nn_ops.Dropout
    assert node.mask.dtype == np.uint8 and node.mask.size == 50 * 40 // 8
    assert not [v for v in vars(node).values() if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad, y1.numpy())       # the backward uses the same mask

"""RollSum (Autoformer's time-delay aggregation with batch delays) against the stack of rolls and
batched matmul it replaces: same values and gradients, nan and inf included; float64 gradcheck."""
import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops.nn_ops import RollSum


def _composed(v, w, shifts):
    b, L = v.shape[:2]
    flat = v.reshape(b, L, -1)
    patterns = ndiv.stack([flat.roll(-int(s), 1) for s in shifts], axis=1)           # [B, k, L, F]
    out = w.unsqueeze(1) @ patterns.reshape(b, len(shifts), -1)
    return out.reshape(*v.shape)


def _inputs(rng, dtype, shape=(3, 7, 2, 4), k=4, nonfinite=False):
    v = rng.standard_normal(shape).astype(dtype)
    w = rng.random((shape[0], k)).astype(dtype)
    if nonfinite:
        v[0, 2, 1, 3], v[1, 0, 0, 0], v[2, 6, 1, 1] = np.nan, np.inf, -np.inf
    return ndiv.tensor(v, requires_grad=True), ndiv.tensor(w, requires_grad=True)


@pytest.mark.parametrize("shifts", [(0, 1, 3, 6), (2, 2, 9, -1), (5,)])
@pytest.mark.parametrize("nonfinite", [False, True])
def test_matches_stacked_rolls(shifts, nonfinite):
    rng = np.random.default_rng(0)
    results = []
    for fn in (lambda v, w: RollSum.apply(v, w, shifts=shifts), lambda v, w: _composed(v, w, shifts)):
        v, w = _inputs(np.random.default_rng(1), "float64", k=len(shifts), nonfinite=nonfinite)
        out = fn(v, w)
        (out * ndiv.tensor(rng.standard_normal(out.shape))).sum().backward()
        results.append([out.numpy(), np.asarray(v.grad), np.asarray(w.grad)])
        rng = np.random.default_rng(0)
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12, equal_nan=True)
    if nonfinite:
        assert np.isnan(results[0][0]).any()


def test_gradcheck_float64():
    v, w = _inputs(np.random.default_rng(2), "float64", shape=(2, 5, 3), k=3)
    assert ndiv.autograd.gradcheck(lambda a, b: RollSum.apply(a, b, shifts=(1, 4, 0)), [v, w])


def test_float32_stays_float32():
    v, w = _inputs(np.random.default_rng(3), "float32")
    out = RollSum.apply(v, w, shifts=(1, 2, 3, 4))
    out.sum().backward()
    assert out.dtype == np.float32 and v.grad.dtype == np.float32 and w.grad.dtype == np.float32


def test_blocks_of_the_batch_give_the_same_result(monkeypatch):
    """One row per block (the smallest) against one block for the whole batch."""
    results = []
    for block in (1, 1 << 30):
        monkeypatch.setattr(RollSum, "BLOCK_BYTES", block)
        v, w = _inputs(np.random.default_rng(4), "float64", shape=(5, 6, 3), k=3)
        out = RollSum.apply(v, w, shifts=(1, 5, 2))
        (out * ndiv.tensor(np.random.default_rng(5).standard_normal(out.shape))).sum().backward()
        results.append([out.numpy(), np.asarray(v.grad), np.asarray(w.grad)])
    for got, want in zip(*results):
        np.testing.assert_array_equal(got, want)

"""clip_grad_norm_ and clip_grad_value_ against torch.nn.utils."""
import math

import numpy as np
import pytest

from ndiv.optim import clip_grad_norm_, clip_grad_value_

SHAPES = [(4, 3), (7,), (), (2, 0)]  # 0-d and empty gradients included


def _grads(seed=0, scale=1.0, dtype=np.float64):
    r = np.random.default_rng(seed)
    return [(scale * r.normal(size=s)).astype(dtype) for s in SHAPES]


def _pair(make_param, grads):
    """ndiv params and torch params holding the same gradients (the last param has none)."""
    torch = pytest.importorskip("torch")
    ps, ts = [], []
    for g in grads + [None]:
        shape = g.shape if g is not None else (3,)
        p = make_param(np.zeros(shape, dtype=grads[0].dtype))
        t = torch.zeros(shape, dtype=torch.from_numpy(np.zeros(1, grads[0].dtype)).dtype, requires_grad=True)
        p.grad = None if g is None else np.array(g)
        t.grad = None if g is None else torch.tensor(g)
        ps.append(p)
        ts.append(t)
    return ps, ts


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, 0.5, math.inf, -math.inf, 0.0])
@pytest.mark.parametrize("max_norm", [0.5, 1e6])  # clips, and leaves alone
def test_clip_grad_norm_matches_torch(make_param, norm_type, max_norm):
    torch = pytest.importorskip("torch")
    grads = _grads()
    if math.isinf(norm_type):  # torch cannot take the inf norm of an empty gradient
        grads = grads[:-1]
    ps, ts = _pair(make_param, grads)
    total = clip_grad_norm_(ps, max_norm, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, max_norm, norm_type=norm_type)
    assert isinstance(total, float)
    np.testing.assert_allclose(total, ttotal.item(), rtol=1e-12)
    for p, t in zip(ps, ts):
        if t.grad is None:
            assert p.grad is None
        else:
            np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_clip_grad_norm_float32_and_single_parameter(make_param):
    torch = pytest.importorskip("torch")
    ps, ts = _pair(make_param, _grads(1, scale=10.0, dtype=np.float32))
    total = clip_grad_norm_(ps[0], 1.0)  # one parameter, not in a list
    ttotal = torch.nn.utils.clip_grad_norm_(ts[0], 1.0)
    np.testing.assert_allclose(total, ttotal.item(), rtol=1e-5)
    assert ps[0].grad.dtype == np.float32
    np.testing.assert_allclose(ps[0].grad, ts[0].grad.numpy(), rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(ps[0].grad), 1.0, rtol=1e-5)


def test_clip_grad_norm_nonfinite(make_param):
    p = make_param(np.zeros(3))
    p.grad = np.array([1.0, np.inf, 0.0])
    with pytest.raises(RuntimeError, match="The total norm of order 2.0 for gradients from `parameters` is non-finite"):
        clip_grad_norm_([p], 1.0, error_if_nonfinite=True)
    with np.errstate(invalid="ignore"):  # inf * 0 = nan, as in torch
        assert math.isinf(clip_grad_norm_([p], 1.0))  # and scales by it, as torch
    assert clip_grad_norm_([], 1.0) == 0.0


@pytest.mark.parametrize("clip_value", [0.3, 5.0])
def test_clip_grad_value_matches_torch(make_param, clip_value):
    torch = pytest.importorskip("torch")
    ps, ts = _pair(make_param, _grads(2))
    grad_ids = [id(p.grad) for p in ps]
    clip_grad_value_(ps, clip_value)
    torch.nn.utils.clip_grad_value_(ts, clip_value)
    assert [id(p.grad) for p in ps] == grad_ids  # in place
    for p, t in zip(ps, ts):
        if t.grad is not None:
            np.testing.assert_array_equal(p.grad, t.grad.numpy())

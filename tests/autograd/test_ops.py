"""Every differentiable op of the contract: float64 gradcheck on random shapes, and torch equality."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import array_shapes, mutually_broadcastable_shapes

import ndiv
from ndiv.autograd.ops.elementwise import Tanh

from .opspecs import BINARY, FIXED, NEW, OPS, REDUCE, UNARY

SETTINGS = settings(max_examples=12, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


def _tensor(arr, dtype, noncontig):
    if noncontig and arr.ndim >= 2:
        arr = np.ascontiguousarray(arr.T).T  # same values, transposed (non-contiguous) layout
        assert not arr.flags.c_contiguous or arr.size <= 1 or 1 in arr.shape
    return ndiv.tensor(arr.astype(dtype), requires_grad=True)


def _inputs(op, rng, shapes, dtype="float64", noncontig=False):
    return [_tensor(op.draw(rng, s, np.float64), dtype, noncontig) for s in shapes]


def _check(op, shapes, rng, noncontig, **params):
    xs = _inputs(op, rng, shapes, noncontig=noncontig)
    ndiv.autograd.gradcheck(lambda *a: op.fn(*a, **params), xs)


@pytest.mark.parametrize("op", UNARY, ids=str)
@SETTINGS
@given(shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4), noncontig=st.booleans(), seed=st.integers(0, 9))
def test_unary_gradcheck(op, shape, noncontig, seed):
    _check(op, [shape], np.random.default_rng(seed), noncontig)


@pytest.mark.parametrize("op", BINARY, ids=str)
@SETTINGS
@given(shapes=mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3, min_side=0, max_side=3), noncontig=st.booleans(), seed=st.integers(0, 9))
def test_binary_gradcheck(op, shapes, noncontig, seed):
    _check(op, list(shapes.input_shapes), np.random.default_rng(seed), noncontig)


@st.composite
def shape_and_axis(draw):
    shape = draw(array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4))
    axis = draw(st.one_of(st.none(), st.integers(-len(shape), len(shape) - 1),
                          st.lists(st.integers(0, len(shape) - 1), min_size=1, max_size=len(shape), unique=True).map(tuple)))
    return shape, axis


@pytest.mark.parametrize("op", REDUCE, ids=str)
@SETTINGS
@given(sa=shape_and_axis(), keepdims=st.booleans(), noncontig=st.booleans(), seed=st.integers(0, 9))
def test_reduce_gradcheck(op, sa, keepdims, noncontig, seed):
    shape, axis = sa
    if op.name in ("var", "std"):  # n - 1 > 0 needed for a finite unbiased variance
        n = int(np.prod([shape[a] for a in ((axis,) if isinstance(axis, int) else axis or range(len(shape)))]))
        if n < 2:
            return
    if op.name == "prod" and isinstance(axis, tuple):
        axis = axis[0]
    _check(op, [shape], np.random.default_rng(seed), noncontig, axis=axis, keepdims=keepdims)


@pytest.mark.parametrize("op", FIXED + NEW, ids=str)
def test_fixed_gradcheck(op):
    rng = np.random.default_rng(0)
    for shapes in op.shapes:
        for noncontig in (False, True):
            _check(op, shapes, rng, noncontig)


def _torch_cases(op, rng):
    if op.kind == "unary":
        return [([s], {}) for s in [(), (3,), (2, 3), (2, 0, 3)]]
    if op.kind == "binary":
        return [([(3, 1), (1, 4)], {}), ([(5,), ()], {}), ([(2, 3, 4), (3, 1)], {})]
    if op.kind == "reduce":
        cases = [([(3, 4)], dict(axis=1, keepdims=False)), ([(2, 3, 4)], dict(axis=-1, keepdims=True))]
        if op.name not in ("prod",):
            cases.append(([(2, 3, 4)], dict(axis=(0, 2), keepdims=False)))
        if op.name not in ("var", "std", "var_pop"):
            cases.append(([(3, 4)], dict(axis=None, keepdims=False)))
        return cases
    return [(list(s), {}) for s in op.shapes]


@pytest.mark.parametrize("op", OPS, ids=str)
def test_matches_torch_float64(op):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    for shapes, params in _torch_cases(op, rng):
        arrays = [op.draw(rng, s, np.float64) for s in shapes]
        xs = [ndiv.tensor(a, requires_grad=True) for a in arrays]
        ts = [torch.tensor(a, requires_grad=True) for a in arrays]
        y = op.fn(*xs, **params)
        ty = op.torch_fn(torch, *ts, **params)
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-10, atol=1e-12, err_msg=f"{op} forward {shapes} {params}")
        v = rng.standard_normal(y.shape)
        if y.size:
            (y * v).sum().backward()
            (ty * torch.tensor(v)).sum().backward()
        for i, (x, t) in enumerate(zip(xs, ts)):
            g = np.zeros(x.shape) if x.grad is None else x.grad
            tg = np.zeros(x.shape) if t.grad is None else t.grad.numpy()
            np.testing.assert_allclose(g, tg, rtol=1e-9, atol=1e-12, err_msg=f"{op} grad of input {i} {shapes} {params}")


def test_every_contract_method_has_a_row():
    """The contract's methods and functions all appear in the registry (by name)."""
    names = {op.name.split("_")[0] for op in OPS}
    for m in ["sum", "mean", "var", "max", "min", "exp", "log", "sqrt", "abs", "tanh", "sigmoid", "relu", "reshape",
              "transpose", "permute", "swapaxes", "unsqueeze", "expand", "flatten", "clip", "pow", "matmul", "cat",
              "stack", "where", "maximum", "minimum", "einsum", "cumsum", "gather", "topk", "rfft", "getitem", "squeeze"]:
        assert m in names, m


def test_gradcheck_catches_a_wrong_backward():
    class BadTanh(Tanh):
        def backward(self, gy):
            return 1.01 * super().backward(gy)  # 1 %: above the default rtol of 1e-3

    x = ndiv.randn(3, dtype="float64", requires_grad=True)
    with pytest.raises(AssertionError, match="BadTanh"):
        ndiv.autograd.gradcheck(BadTanh.apply, [x])
    ndiv.autograd.gradcheck(Tanh.apply, [x])


def test_gradcheck_projection_path_for_large_inputs():
    x = ndiv.randn(70, 70, dtype="float64", requires_grad=True)
    assert ndiv.autograd.gradcheck(lambda t: (t * t).tanh(), [x], max_elements=100)

    class BadExp(ndiv.autograd.Function):
        def forward(self, x):
            y = np.exp(x)
            self.save_for_backward(y)
            return y

        def backward(self, gy):
            (y,) = self.saved
            return gy * y * 1.01

    with pytest.raises(AssertionError, match="directional"):
        ndiv.autograd.gradcheck(BadExp.apply, [x], max_elements=100)


def test_gradcheck_requires_float64():
    with pytest.raises(ValueError, match="float64"):
        ndiv.autograd.gradcheck(lambda t: t * 2, [ndiv.randn(3, requires_grad=True)])

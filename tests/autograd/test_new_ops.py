"""The ops of issue 12 part 6 by name: NaN/inf inputs, ties, errors, torch parity of indices, and
the random draws with their injection hook. Gradcheck and torch equality on ordinary inputs run
from the registry (opspecs.NEW, via test_ops.py)."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
import ndiv.nn.functional as F

NAN, INF = float("nan"), float("inf")


def _torch():
    return pytest.importorskip("torch")


def _both(values, dtype="float64"):
    """The same values as an ndiv and a torch tensor, both requiring grad."""
    torch = _torch()
    a = np.asarray(values, dtype=dtype)
    return ndiv.tensor(a, requires_grad=True), torch.tensor(a, requires_grad=True)


# -- logsigmoid, nan_to_num --------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_logsigmoid_is_stable_for_large_inputs_and_matches_torch(dtype):
    torch = _torch()
    x, t = _both([-1e4, -100.0, -20.0, -1.0, 0.0, 1.0, 20.0, 100.0, 1e4], dtype)
    y, ty = F.logsigmoid(x), torch.nn.functional.logsigmoid(t)
    assert y.dtype == np.dtype(dtype) and np.isfinite(y.numpy()).all()
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=1e-40)  # subnormals differ
    y.sum().backward()
    ty.sum().backward()
    np.testing.assert_allclose(x.grad, t.grad.numpy(), rtol=1e-6, atol=1e-30)
    m = ndiv.nn.LogSigmoid()
    np.testing.assert_allclose(m(x).numpy(), y.numpy())


def test_nan_to_num_replaces_and_blocks_the_gradient_where_it_replaced():
    torch = _torch()
    vals = [1.0, NAN, INF, -INF, -2.0]
    for kwargs in ({}, dict(nan=0.5, posinf=9.0, neginf=-9.0)):
        for dtype in ("float32", "float64"):
            x, t = _both(vals, dtype)
            y, ty = x.nan_to_num(**kwargs), torch.nan_to_num(t, **kwargs)
            np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
            w = np.linspace(0.1, 0.5, 5)  # below 1: the replaced extremes times w stay finite
            (y * ndiv.tensor(w.astype(dtype))).sum().backward()
            (ty * torch.tensor(w, dtype=ty.dtype)).sum().backward()
            np.testing.assert_array_equal(x.grad, t.grad.numpy())
    assert ndiv.nan_to_num(ndiv.tensor([1, 2])).numpy().tolist() == [1, 2]  # integers pass through


# -- median ------------------------------------------------------------------------------------
def test_median_all_is_the_lower_median_and_ties_share_the_gradient():
    torch = _torch()
    for vals in ([3.0, 1.0, 3.0, 1.0, 2.0, 1.0], [4.0, 1.0, 3.0, 2.0], [3.0, NAN, 1.0, NAN]):
        x, t = _both(vals)
        y, ty = x.median(), t.median()
        np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
        y.backward()
        ty.backward()
        np.testing.assert_allclose(x.grad, t.grad.numpy())
    assert np.isnan(ndiv.tensor(np.zeros(0)).median().item())


def test_median_dim_returns_values_and_indices_like_torch_with_nan():
    torch = _torch()
    vals = [[3.0, NAN, 1.0, NAN], [2.0, 5.0, 1.0, 4.0], [0.5, -1.0, INF, 7.0]]
    x, t = _both(vals)
    r, tr = x.median(dim=1), t.median(dim=1)
    assert r.values is r[0] and r.indices is r[1]
    np.testing.assert_array_equal(r.values.numpy(), tr.values.detach().numpy())
    np.testing.assert_array_equal(r.indices.numpy(), tr.indices.numpy())
    assert r.indices.dtype == np.int64
    r.values.sum().backward()
    tr.values.sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    k = ndiv.median(x, -1, keepdim=True)
    assert k.values.shape == (3, 1) and k.indices.shape == (3, 1)
    z = ndiv.tensor(2.5).median(0)
    assert z.values.shape == () and z.indices.item() == 0


# -- sort --------------------------------------------------------------------------------------
@pytest.mark.parametrize("descending", [False, True])
def test_sort_puts_nan_where_torch_does_and_keeps_ties_in_order(descending):
    torch = _torch()
    x, t = _both([[1.0, NAN, 3.0, NAN, -INF, 3.0, 1.0], [2.0, 2.0, 0.0, 2.0, 5.0, -1.0, 2.0]])
    r, tr = x.sort(dim=1, descending=descending), t.sort(dim=1, descending=descending, stable=True)
    np.testing.assert_array_equal(r.values.numpy(), tr.values.detach().numpy())
    np.testing.assert_array_equal(r.indices.numpy(), tr.indices.numpy())
    np.testing.assert_array_equal(ndiv.argsort(x, 1, descending).numpy(), tr.indices.numpy())
    w = np.arange(14.0).reshape(2, 7) / 14
    (r.values.nan_to_num() * ndiv.tensor(w)).sum().backward()
    (tr.values.nan_to_num() * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())


def test_sort_integers_descending_without_overflow_and_0d():
    torch = _torch()
    a = np.array([0, np.iinfo(np.int64).min, 5, -3, 5, np.iinfo(np.int64).max], dtype=np.int64)
    r, tr = ndiv.tensor(a).sort(descending=True), torch.tensor(a).sort(descending=True, stable=True)
    np.testing.assert_array_equal(r.values.numpy(), tr.values.numpy())
    np.testing.assert_array_equal(r.indices.numpy(), tr.indices.numpy())
    s = ndiv.tensor(1.5).sort()
    assert s.values.shape == () and s.indices.item() == 0


# -- index_put and scatter -----------------------------------------------------------------------
def test_index_put_leaves_x_unchanged_and_zeroes_overwritten_gradient():
    x = ndiv.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    v = ndiv.tensor([[10.0, 11.0]], dtype="float64", requires_grad=True)
    y = x.index_put((ndiv.tensor([2, 0]),), v)
    assert y.numpy().tolist() == [[10, 11], [2, 3], [10, 11]]
    assert x.numpy().tolist() == [[0, 1], [2, 3], [4, 5]]  # functional: x is not written
    (y * ndiv.tensor(np.arange(1.0, 7.0).reshape(3, 2))).sum().backward()
    assert x.grad.tolist() == [[0, 0], [3, 4], [0, 0]]
    assert v.grad.tolist() == [[1 + 5, 2 + 6]]  # values broadcast over both rows: summed back


def test_index_put_accumulate_sums_repeated_indices_like_torch():
    torch = _torch()
    x, t = _both(np.zeros((2, 3)))
    vx, vt = _both([1.0, 2.0, 3.0, 4.0])
    rows, cols = np.array([0, 1, 0, 0]), np.array([2, 0, 2, -1])
    y = ndiv.index_put(x, (rows, cols), vx, accumulate=True)
    ty = torch.index_put(t, (torch.tensor(rows), torch.tensor(cols)), vt, accumulate=True)
    np.testing.assert_array_equal(y.numpy(), ty.detach().numpy())
    w = np.arange(6.0).reshape(2, 3)
    (y * ndiv.tensor(w)).sum().backward()
    (ty * torch.tensor(w)).sum().backward()
    np.testing.assert_array_equal(x.grad, t.grad.numpy())
    np.testing.assert_array_equal(vx.grad, vt.grad.numpy())


def test_index_put_accepts_python_values_and_none_for_a_whole_axis():
    x = ndiv.zeros(2, 3, dtype="float64")
    assert ndiv.index_put(x, (None, ndiv.tensor([1])), 7.0).numpy().tolist() == [[0, 7, 0], [0, 7, 0]]


@pytest.mark.parametrize("indices, values, error, match", [
    ((np.array([3]),), 1.0, IndexError, r"index_put: index 3 is out of bounds for dimension 0 with size 3"),
    ((np.array([0]), np.array([-5])), 1.0, IndexError, r"index -5 is out of bounds for dimension 1 with size 4"),
    ((np.array([0, 1]), np.array([0, 1, 2])), 1.0, ValueError, r"do not broadcast together"),
    ((np.array([0, 1]),), np.ones(3), ValueError, r"values of shape \(3,\) do not broadcast to the indexed shape \(2, 4\)"),
    ((np.array([0]), np.array([0]), np.array([0])), 1.0, ValueError, r"3 indices for a tensor of shape \(3, 4\)"),
    ((np.array([0.5]),), 1.0, TypeError, r"indices must be integer"),
    (np.array([0]), 1.0, TypeError, r"indices must be a tuple"),
    ((np.array([True, False]),), 1.0, ValueError, r"bool mask of shape \(2,\)"),
])
def test_index_put_errors(indices, values, error, match):
    x = ndiv.zeros(3, 4, dtype="float64")
    with pytest.raises(error, match=match):
        ndiv.index_put(x, indices, values)


def test_index_put_needs_matching_dtypes():
    with pytest.raises(TypeError, match="values have dtype float32, the tensor has float64"):
        ndiv.index_put(ndiv.zeros(3, dtype="float64"), (np.array([0]),), ndiv.ones(1))


def test_setitem_on_a_graph_tensor_points_to_index_put():
    x = ndiv.zeros(3, requires_grad=True)
    with pytest.raises(RuntimeError, match="index_put"):
        x[0] = 1.0


def test_scatter_reads_only_the_index_shaped_corner_of_a_larger_src():
    torch = _torch()
    idx = np.array([[0, 2], [1, 4], [3, 0]])
    src = np.arange(12.0).reshape(3, 4)
    y = ndiv.scatter(ndiv.zeros(3, 5, dtype="float64"), 1, idx, ndiv.tensor(src))
    ty = torch.scatter(torch.zeros(3, 5, dtype=torch.float64), 1, torch.tensor(idx), torch.tensor(src))
    np.testing.assert_array_equal(y.numpy(), ty.numpy())
    s = ndiv.tensor(src, requires_grad=True)
    ndiv.autograd.gradcheck(lambda a, b: a.scatter(1, idx, b), [ndiv.randn(3, 5, dtype="float64", requires_grad=True), s])
    v = ndiv.zeros(2, 2).scatter(0, np.array([[1, 0]]), value=3.0)
    assert v.numpy().tolist() == [[0, 3], [3, 0]]


@pytest.mark.parametrize("dim, index, src_shape, error, match", [
    (2, [[0]], (1, 1), ValueError, r"scatter: dim=2 is out of range for a tensor of shape \(3, 4\)"),
    (0, [0, 1], (2,), ValueError, r"as many dimensions as the input \(2\)"),
    (0, [[0, 1, 2]], (1, 2), ValueError, r"must not exceed src's \(1, 2\)"),
    (0, [[3]], (1, 1), IndexError, r"index 3 is out of bounds for dimension 0 with size 3"),
    (1, [[-1]], (1, 1), IndexError, r"index -1 is out of bounds for dimension 1 with size 4"),
])
def test_scatter_errors(dim, index, src_shape, error, match):
    with pytest.raises(error, match=match):
        ndiv.scatter(ndiv.zeros(3, 4), dim, np.array(index), ndiv.ones(*src_shape))


# -- fft ---------------------------------------------------------------------------------------
def test_fft_dtypes_and_real_gradient_for_real_input():
    torch = _torch()
    a = np.random.default_rng(0).standard_normal((3, 8)).astype(np.float32)
    x = ndiv.tensor(a, requires_grad=True)
    y = ndiv.fft.fft(x)
    assert y.dtype == np.complex64
    np.testing.assert_allclose(y.numpy(), torch.fft.fft(torch.tensor(a)).numpy(), rtol=1e-5, atol=1e-5)
    (y.abs() ** 2).sum().backward()
    assert x.grad.dtype == np.float32
    np.testing.assert_allclose(x.grad, 2 * 8 * a, rtol=1e-4)  # Parseval: sum |fft x|^2 = n sum x^2
    z = ndiv.fft.ifft(ndiv.fft.fft(ndiv.tensor(a.astype(np.float64))))
    np.testing.assert_allclose(z.real.numpy(), a, atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(dim=2), ValueError, r"fft: dim=2 is out of range for a tensor of shape \(3, 8\)"),
    (dict(n=0), ValueError, r"n must be a positive integer"),
    (dict(norm="none"), ValueError, r"norm must be 'backward', 'ortho' or 'forward'"),
])
def test_fft_errors(kwargs, error, match):
    with pytest.raises(error, match=match):
        ndiv.fft.fft(ndiv.zeros(3, 8), **kwargs)
    with pytest.raises(TypeError, match="floating-point or complex"):
        ndiv.fft.ifft(ndiv.tensor([1, 2, 3]))


# -- tril, triu, diag, diff ----------------------------------------------------------------------
def test_triangles_diag_and_diff_errors():
    with pytest.raises(ValueError, match=r"tril: input must have at least 2 dimensions"):
        ndiv.ones(3).tril()
    with pytest.raises(ValueError, match=r"triu: input must have at least 2 dimensions"):
        ndiv.triu(ndiv.ones(3))
    with pytest.raises(ValueError, match=r"diag: input must be 1-D or 2-D, got shape \(2, 2, 2\)"):
        ndiv.diag(ndiv.ones(2, 2, 2))
    with pytest.raises(ValueError, match=r"diff: prepend has shape \(2, 2\)"):
        ndiv.diff(ndiv.ones(3, 4), dim=1, prepend=ndiv.ones(2, 2))
    with pytest.raises(ValueError, match=r"diff: append has shape \(3,\)"):
        ndiv.diff(ndiv.ones(3, 4), append=ndiv.ones(3))
    with pytest.raises(ValueError, match=r"n \(the order\) must be a non-negative integer"):
        ndiv.ones(3).diff(n=-1)
    with pytest.raises(ValueError, match=r"diff: dim=1 is out of range"):
        ndiv.ones(3).diff(dim=1)
    with pytest.raises(ValueError, match=r"median: dim 1 of the input of shape \(2, 0\) is empty"):
        ndiv.zeros(2, 0).median(1)
    with pytest.raises(ValueError, match=r"sort: dim=-3 is out of range"):
        ndiv.zeros(2, 2).sort(-3)


def test_diff_edge_cases_match_torch():
    torch = _torch()
    a = np.array([[1.0, 4.0, INF, 16.0], [0.0, NAN, 2.0, 2.0]])
    for n in (0, 1, 3, 5):
        np.testing.assert_array_equal(ndiv.tensor(a).diff(n).numpy(), torch.tensor(a).diff(n).numpy())
    b = np.array([True, False, False, True])
    np.testing.assert_array_equal(ndiv.tensor(b).diff().numpy(), torch.tensor(b).diff().numpy())
    assert ndiv.diag(ndiv.ones(2, 3), 5).shape == (0,)


# -- random draws and injection ------------------------------------------------------------------
def test_existing_seeded_draws_are_unchanged():
    ndiv.manual_seed(123)
    r, n = ndiv.rand(2, 3), ndiv.randn(4)
    rng = np.random.default_rng(123)
    np.testing.assert_array_equal(r.numpy(), rng.random((2, 3)).astype(np.float32))
    np.testing.assert_array_equal(n.numpy(), rng.standard_normal(4).astype(np.float32))


def test_randint_forms_range_and_seed():
    ndiv.manual_seed(0)
    a = ndiv.randint(5, (200,))
    b = ndiv.randint(-3, 4, size=(2, 100))
    assert a.dtype == np.int64 and a.shape == (200,) and set(a.numpy().tolist()) == set(range(5))
    assert b.shape == (2, 100) and b.numpy().min() == -3 and b.numpy().max() == 3
    ndiv.manual_seed(0)
    np.testing.assert_array_equal(ndiv.randint(5, (200,)).numpy(), a.numpy())
    with pytest.raises(ValueError, match="high must be greater than low"):
        ndiv.randint(3, 3, (2,))
    with pytest.raises(TypeError, match="missing the size"):
        ndiv.randint(0, 3)


def test_multinomial_without_replacement_draws_distinct_nonzero_categories():
    ndiv.manual_seed(1)
    p = ndiv.tensor([[0.1, 0.0, 0.5, 0.4], [1.0, 1.0, 0.0, 2.0]])
    for _ in range(20):
        s = ndiv.multinomial(p, 3).numpy()
        assert s.shape == (2, 3) and s.dtype == np.int64
        assert all(len(set(r)) == 3 for r in s) and 1 not in s[0] and 2 not in s[1]
    w = p.multinomial(4000, replacement=True).numpy()
    freq = np.bincount(w[1], minlength=4) / 4000
    np.testing.assert_allclose(freq, [0.25, 0.25, 0.0, 0.5], atol=0.04)
    assert ndiv.multinomial(ndiv.tensor([0.0, 3.0]), 2, replacement=True).numpy().tolist() == [1, 1]


@pytest.mark.parametrize("probs, n, kw, match", [
    ([[[1.0]]], 1, {}, r"1-D \[C\] or 2-D \[B, C\]"),
    ([1.0, 1.0], 0, {}, r"num_samples must be a positive integer"),
    ([1.0, -1.0], 1, {}, r"finite and non-negative"),
    ([1.0, NAN], 1, {}, r"finite and non-negative"),
    ([0.0, 0.0], 1, {}, r"positive sum"),
    ([1.0, 0.0, 1.0], 3, {}, r"cannot draw num_samples=3 distinct categories"),
])
def test_multinomial_errors(probs, n, kw, match):
    with pytest.raises(ValueError, match=match):
        ndiv.multinomial(ndiv.tensor(probs), n, **kw)


def test_inject_serves_arrays_in_order_without_touching_the_generator():
    torch = _torch()
    torch.manual_seed(0)
    idx = torch.randint(7, (5, 2))  # Informer's ProbAttention: torch.randint(L_K, (L_Q, sample_k))
    ndiv.manual_seed(5)
    with ndiv.random.inject(randint=[idx, np.array([1, 2])], multinomial=[np.array([[2, 0]])], rand=[np.full((2,), 0.25)]):
        assert ndiv.randint(7, (5, 2)).numpy().tolist() == idx.tolist()
        assert ndiv.randint(0, 3, (2,)).numpy().tolist() == [1, 2]
        assert ndiv.multinomial(ndiv.tensor([[1.0, 0.0, 1.0]]), 2).numpy().tolist() == [[2, 0]]
        r = ndiv.rand(2, dtype="float64")
        assert r.dtype == np.float64 and r.numpy().tolist() == [0.25, 0.25]
    after = ndiv.randint(100, (3,)).numpy()
    ndiv.manual_seed(5)
    np.testing.assert_array_equal(ndiv.randint(100, (3,)).numpy(), after)


def test_inject_checks_each_array_and_the_count():
    with pytest.raises(ValueError, match=r"injected randint array has shape \(3,\), the call .* draws shape \(2,\)"):
        with ndiv.random.inject(randint=[np.arange(3)]):
            ndiv.randint(5, (2,))
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        with ndiv.random.inject(randint=[np.array([5, 0])]):
            ndiv.randint(5, (2,))
    with pytest.raises(TypeError, match="must hold integers"):
        with ndiv.random.inject(randint=[np.array([1.0, 0.0])]):
            ndiv.randint(5, (2,))
    with pytest.raises(ValueError, match="repeats a category, but replacement=False"):
        with ndiv.random.inject(multinomial=[np.array([0, 0])]):
            ndiv.multinomial(ndiv.tensor([1.0, 1.0]), 2)
    with pytest.raises(ValueError, match="category of zero weight"):
        with ndiv.random.inject(multinomial=[np.array([1])]):
            ndiv.multinomial(ndiv.tensor([1.0, 0.0]), 1)
    with pytest.raises(RuntimeError, match="no injected array left"):
        with ndiv.random.inject(randint=[np.array([1])]):
            ndiv.randint(5, (1,))
            ndiv.randint(5, (1,))
    with pytest.raises(RuntimeError, match=r"left unused at the end of the block: \{'multinomial': 1\}"):
        with ndiv.random.inject(multinomial=[np.array([0])]):
            pass
    with pytest.raises(KeyError):  # an error inside the block is not masked by the unused-array check
        with ndiv.random.inject(randint=[np.array([1])]):
            raise KeyError("inside")
    ndiv.randint(5, (1,))  # the block is closed: draws come from the generator again


def test_inject_blocks_nest():
    with ndiv.random.inject(randint=[np.array([1])]):
        with ndiv.random.inject(randint=[np.array([2])]):
            assert ndiv.randint(5, (1,)).item() == 2
        assert ndiv.randint(5, (1,)).item() == 1


# -- elu, glu, sigmoid: one op each, nan and inf as torch --------------------------------------
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elu_glu_sigmoid_nan_inf_and_extremes_match_torch(dtype):
    torch = pytest.importorskip("torch")
    vals = np.array([np.nan, np.inf, -np.inf, -200.0, -90.0, -20.0, -1e-3, 0.0, 1e-3, 20.0, 90.0, 200.0], dtype)
    for name, f, tf in (("elu", lambda x: F.elu(x, alpha=0.7), lambda x: torch.nn.functional.elu(x, alpha=0.7)),
                        ("sigmoid", lambda x: x.sigmoid(), torch.sigmoid)):
        x = ndiv.tensor(vals, requires_grad=True)
        y = f(x)
        y.backward(ndiv.tensor(np.ones_like(vals)))
        tx = torch.tensor(vals, requires_grad=True)
        ty = tf(tx)
        ty.backward(torch.ones_like(tx))
        np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6, atol=0, err_msg=name)
        grad, want = np.asarray(x.grad), tx.grad.numpy()
        if name == "elu":
            # a nan input: nan, as torch's vectorized loop gives; its scalar tail (all of these 12
            # elements) passes the gradient on instead, so torch's result depends on the size
            assert np.isnan(grad[0])
            grad, want = grad[1:], want[1:]
        np.testing.assert_allclose(grad, want, rtol=1e-5, atol=1e-30, err_msg=name)
    x = np.concatenate([vals, vals[::-1]]).astype(dtype)
    t = ndiv.tensor(x, requires_grad=True)
    y = F.glu(t)
    y.backward(ndiv.tensor(np.ones(len(vals), dtype)))
    tt = torch.tensor(x, requires_grad=True)
    ty = torch.nn.functional.glu(tt)
    ty.backward(torch.ones(len(vals), dtype=tt.dtype))
    np.testing.assert_allclose(y.numpy(), ty.detach().numpy(), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(t.grad), tt.grad.numpy(), rtol=1e-5, atol=1e-30)


def test_sigmoid_stays_in_float32_and_is_exact_at_the_limits():
    x = ndiv.tensor(np.array([-1e4, -100.0, 0.0, 100.0, 1e4], np.float32))
    y = x.sigmoid().numpy()
    assert y.dtype == np.float32 and y[0] == 0 and y[2] == 0.5 and y[-1] == 1

"""The tape: iterative backward, graph freeing, hooks, no_grad, dtypes, errors, the memory pool."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.memory import pool


def test_default_dtype_is_float32_and_float64_is_kept():
    assert ndiv.tensor([1.0, 2.0]).dtype == np.float32
    assert ndiv.randn(2).dtype == np.float32
    assert ndiv.tensor(np.zeros(2)).dtype == np.float64
    assert ndiv.tensor([1, 2]).dtype.kind == "i"
    x = ndiv.randn(3, dtype="float64", requires_grad=True)
    (x * 2).sum().backward()
    assert x.grad.dtype == np.float64


def test_grad_dtype_follows_the_input_not_the_other_operand():
    x = ndiv.randn(3, requires_grad=True)  # float32
    (x * np.ones(3, np.float64)).sum().backward()
    assert x.grad.dtype == np.float32


def test_integer_and_bool_tensors_carry_no_gradient():
    with pytest.raises(TypeError, match="floating-point"):
        ndiv.tensor([1, 2, 3], requires_grad=True)
    with pytest.raises(TypeError, match="floating-point"):
        ndiv.tensor([True, False]).requires_grad_()
    x = ndiv.randn(3, requires_grad=True)
    mask = x > 0
    assert mask.dtype == np.bool_ and not mask.requires_grad


def test_long_chain_has_no_recursion_limit():
    """A 500-step recurrence (and a 20000-op chain) backpropagate without recursion."""
    rng = np.random.default_rng(0)
    w = ndiv.tensor(rng.standard_normal((8, 8)) * 0.3, requires_grad=True)
    h = ndiv.zeros(1, 8, dtype="float64")
    for t in range(500):
        h = (h @ w + float(np.sin(t))).tanh()
    h.sum().backward()
    assert w.grad.shape == (8, 8) and np.isfinite(w.grad).all()
    x = ndiv.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(20000):
        y = y * 1.0
    y.backward()
    assert x.grad == 1.0


def test_broadcast_gradients_are_reduced_to_each_input_shape():
    a = ndiv.randn(3, 1, requires_grad=True)
    b = ndiv.randn(4, requires_grad=True)
    c = ndiv.randn(2, 3, 4, requires_grad=True)
    (a * b + c).sum().backward()
    assert a.grad.shape == (3, 1) and b.grad.shape == (4,) and c.grad.shape == (2, 3, 4)
    np.testing.assert_allclose(a.grad[:, 0], 2 * b.data.sum() * np.ones(3), rtol=1e-5)


def test_gradients_accumulate_and_do_not_alias():
    x = ndiv.randn(3, requires_grad=True)
    y = ndiv.randn(3, requires_grad=True)
    (x + y).sum().backward()
    assert x.grad is not y.grad  # optimizers scale .grad in place
    x.grad *= 0
    assert (y.grad == 1).all()
    (x + x).sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.ones(3))


def test_backward_twice_needs_retain_graph():
    x = ndiv.randn(3, requires_grad=True)
    y = (x * x).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad, 4 * x.data, rtol=1e-6)
    with pytest.raises(RuntimeError, match="second time.*retain_graph=True"):
        y.backward()


def test_backward_on_non_scalar_needs_a_gradient():
    x = ndiv.randn(3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"one-element tensor, got shape \(3,\).*grad="):
        (x * 2).backward()
    (x * 2).backward(np.ones(3))
    with pytest.raises(ValueError, match=r"grad has shape \(2,\), expected .*\(3,\)"):
        (x * 2).backward(np.ones(2))


def test_backward_without_requires_grad():
    with pytest.raises(RuntimeError, match="does not require grad"):
        ndiv.randn(3).sum().backward()


def test_no_grad_and_detach():
    x = ndiv.randn(3, requires_grad=True)
    with ndiv.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None
    z = (x * 2).detach()
    assert not z.requires_grad and np.shares_memory(z.data, (z * 1).data) is False

    @ndiv.no_grad()
    def f(t):
        return t * 3
    assert not f(x).requires_grad
    assert ndiv.is_grad_enabled()


def test_hooks_see_and_replace_gradients():
    x = ndiv.randn(3, requires_grad=True)
    seen = []
    h = x * 2
    handle = h.register_hook(lambda g: seen.append(g.copy()) or g * 10)
    x.register_hook(lambda g: seen.append(g.copy()))
    h.sum().backward()
    np.testing.assert_allclose(seen[0], np.ones(3))
    np.testing.assert_allclose(seen[1], 20 * np.ones(3))
    np.testing.assert_allclose(x.grad, 20 * np.ones(3))
    handle.remove()


def test_retain_grad_on_intermediate():
    x = ndiv.randn(3, requires_grad=True)
    h = x * 3
    h.retain_grad()
    (h * h).sum().backward()
    np.testing.assert_allclose(h.grad, 2 * h.data, rtol=1e-6)


def test_multi_output_function_with_unused_output():
    class Split(ndiv.Function):
        def forward(self, x):
            return x * 2, x * 3

        def backward(self, ga, gb):
            return 2 * ga + 3 * gb

    x = ndiv.randn(4, dtype="float64", requires_grad=True)
    a, b = Split.apply(x)
    a.sum().backward()
    np.testing.assert_allclose(x.grad, 2 * np.ones(4))
    ndiv.autograd.gradcheck(lambda t: Split.apply(t)[1] * Split.apply(t)[0], [x])


# -- error messages --------------------------------------------------------------------------
def test_matmul_shape_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"matmul: shapes \(3, 4\) and \(5, 2\)"):
        ndiv.randn(3, 4) @ ndiv.randn(5, 2)


def test_broadcast_error_names_both_shapes():
    with pytest.raises(ValueError, match=r"add: shapes \(3,\) and \(4,\) do not broadcast"):
        ndiv.randn(3) + ndiv.randn(4)
    with pytest.raises(ValueError, match=r"mul: shapes \(2, 3\) and \(4,\)"):
        ndiv.randn(2, 3) * ndiv.randn(4)


def test_reshape_and_axis_errors():
    with pytest.raises(ValueError, match=r"cannot reshape a tensor of shape \(2, 3\)"):
        ndiv.randn(2, 3).reshape(4, 2)
    with pytest.raises(ValueError, match="axis 3 is out of range"):
        ndiv.randn(2, 3).sum(axis=3)


def test_cuda_request_without_cupy_is_one_clear_error():
    try:
        import cupy  # noqa: F401
        pytest.skip("CuPy is installed")
    except ImportError:
        pass
    with pytest.raises(RuntimeError, match=r"cuda.*install ndiv\[cuda12\]"):
        ndiv.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match="install"):
        ndiv.randn(2).to("cuda")
    with pytest.raises(ValueError, match="device must be"):
        ndiv.tensor([1.0], device="tpu")


def test_mixing_devices_names_both(monkeypatch):
    class FakeCuda(np.ndarray):
        __module__ = "cupy"

    a = ndiv.randn(3)
    b = ndiv.randn(3)
    b.data = b.data.view(FakeCuda)
    with pytest.raises(RuntimeError, match="same device, got cpu and cuda"):
        a + b


def test_import_does_not_pull_numba_compile_or_cupy():
    import subprocess
    import sys
    code = "import sys, ndiv; print('cupy' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


# -- memory pool -------------------------------------------------------------------------------
def _train(steps=6, seed=0):
    rng = np.random.default_rng(seed)
    w1 = ndiv.tensor(rng.standard_normal((24, 256), dtype=np.float32) * 0.1, requires_grad=True)
    w2 = ndiv.tensor(rng.standard_normal((256, 256), dtype=np.float32) * 0.1, requires_grad=True)
    w3 = ndiv.tensor(rng.standard_normal((256, 12), dtype=np.float32) * 0.1, requires_grad=True)
    X = ndiv.tensor(rng.standard_normal((128, 24), dtype=np.float32))
    Y = ndiv.tensor(rng.standard_normal((128, 12), dtype=np.float32))
    losses = []
    for _ in range(steps):
        for w in (w1, w2, w3):
            w.grad = None
        h = (X @ w1).relu()
        h = (h @ w2).relu() + h * 0.5
        loss = ((h @ w3 - Y) ** 2).mean()
        loss.backward()
        for w in (w1, w2, w3):
            w.data -= 0.05 * w.grad
        losses.append(loss.item())
    return losses, w1.data.copy()


def test_pool_gives_identical_training_and_reuses_buffers():
    ref_losses, ref_w = _train()
    pool.enable()
    try:
        pool.reset_stats()
        losses, w = _train()
        stats = pool.stats()
    finally:
        pool.disable()
    assert losses == ref_losses
    np.testing.assert_array_equal(w, ref_w)
    assert stats["reuses"] > stats["allocations"] > 0
    assert stats["bytes_reused"] > 0 and stats["peak_bytes"] >= stats["bytes_held"] > 0


def test_pool_never_hands_out_a_buffer_still_in_use():
    pool.enable()
    try:
        a = pool.empty((256, 256), np.float32)
        view = a[:10]
        b = pool.empty((256, 256), np.float32)
        assert b is not a  # a is still referenced
        del a
        c = pool.empty((256, 256), np.float32)
        assert not np.shares_memory(c, view)  # the view keeps its base alive
        del view, c
        d = pool.empty((256, 256), np.float32)
        assert d is not b
    finally:
        pool.disable()


def test_repr_is_balanced():
    import ndiv
    assert repr(ndiv.tensor([1.0, 2.0])) == "tensor([1., 2.], dtype=float32)"
    assert repr(ndiv.tensor([1.0], requires_grad=True)) == "tensor([1.], dtype=float32, requires_grad=True)"
    assert repr(ndiv.tensor([1, 2])) == "tensor([1, 2])"


@pytest.mark.parametrize("use_pool", [False, True])
def test_many_consumers_accumulate_in_place_without_touching_their_inputs(use_pool):
    """An intermediate read by four ops gets the sum of their four gradients; from the third
    on they are added into the sweep's own sum in place, never into an array an op returned
    (Add's backward hands the same gy to both of its inputs, and the hook's view must stay)."""
    rng = np.random.default_rng(0)
    x = ndiv.tensor(rng.standard_normal((3, 4)), requires_grad=True)
    w = rng.standard_normal((4, 4))
    seen = []
    was = pool.enabled
    pool.enable(use_pool)
    try:
        for _ in range(2):                                   # the second pass reuses pool buffers
            x.grad = None
            h = x * 2.0
            h.register_hook(lambda g: seen.append(g.copy()))
            y = h + h                                        # the same gy for both inputs
            loss = (y.sum() + (h * h).sum() + (h @ ndiv.tensor(w)).sum() + h.exp().sum())
            loss.backward()
            hv = 2.0 * x.data
            want_h = 2.0 + 2 * hv + w.sum(axis=1) + np.exp(hv)
            np.testing.assert_allclose(seen[-1], want_h, rtol=1e-12)
            np.testing.assert_allclose(x.grad, 2.0 * want_h, rtol=1e-12)
    finally:
        pool.enable(was)

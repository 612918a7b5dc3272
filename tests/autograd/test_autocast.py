"""ndiv.autocast: inside it the float32 products of Linear, the fused Linear + ReLU and `@` with
a 2-d operand use bfloat16 factors (forward and backward, exactly the reference product of the
rounded factors); everything else, float64 and other threads stay as without it. Models take it
as precision='bf16-mixed'."""
import threading
import warnings

import numpy as np
import pytest

import ndiv
import ndiv.nn.functional as F
from ndiv.autograd.ops.fused import linear_act
from ndiv.kernels.cpu import bf16
from ndiv.kernels.reference.bf16 import gemm_bf16 as ref_gemm

needs_mkl = pytest.mark.skipif(not bf16.mkl_status()[0], reason="oneMKL (pip install 'ndiv[bf16]') not installed")
TOL = dict(rtol=2e-5, atol=2e-5)


def _arrays(seed=0, n=40, i=24, o=16, dtype=np.float32):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, i)).astype(dtype), rng.standard_normal((o, i)).astype(dtype),
            rng.standard_normal(o).astype(dtype), rng.standard_normal((n, o)).astype(dtype))


@needs_mkl
@pytest.mark.parametrize("op", ["linear", "linear_relu", "matmul"])
def test_products_inside_autocast_are_the_reference_bf16_products(op):
    x, w, b, gy = _arrays()
    xt, wt, bt = (ndiv.tensor(a, requires_grad=True) for a in (x, w, b))
    with ndiv.autocast("cpu", dtype="bfloat16"):
        if op == "linear":
            y = F.linear(xt.reshape(4, 10, 24), wt, bt).reshape(40, 16)
        elif op == "linear_relu":
            y = linear_act(xt, wt, bt, "relu")
        else:
            y = xt.reshape(4, 10, 24) @ wt.T                  # [4, 10, 24] @ [24, 16]: one 2-d product
            y = y.reshape(40, 16) + bt
        (y * ndiv.tensor(gy)).sum().backward()
    pre = ref_gemm(x, w.T) + b
    g = gy * (pre > 0) if op == "linear_relu" else gy
    np.testing.assert_allclose(y.numpy(), np.maximum(pre, 0) if op == "linear_relu" else pre, **TOL)
    np.testing.assert_allclose(xt.grad, ref_gemm(g, w), **TOL)
    np.testing.assert_allclose(wt.grad, ref_gemm(g.T, x), **TOL)
    np.testing.assert_allclose(bt.grad, g.sum(0), **TOL)
    # and close to the float32 products (8 mantissa bits: ~0.4% of the largest terms)
    np.testing.assert_allclose(wt.grad, g.T @ x, rtol=0, atol=2e-2 * np.abs(g.T @ x).max())


@needs_mkl
def test_autocast_leaves_float64_other_threads_and_outside_alone():
    x, w, b, _ = _arrays(dtype=np.float64)
    with ndiv.autocast():
        assert ndiv.is_autocast_enabled()
        y64 = F.linear(ndiv.tensor(x), ndiv.tensor(w), ndiv.tensor(b)).numpy()
        seen = []
        t = threading.Thread(target=lambda: seen.append(ndiv.is_autocast_enabled()))
        t.start(), t.join()
        with ndiv.autocast(enabled=False):
            assert not ndiv.is_autocast_enabled()
            x32 = x.astype(np.float32)
            y32 = F.linear(ndiv.tensor(x32), ndiv.tensor(w.astype(np.float32))).numpy()
        # float64 gradcheck inside autocast: the float64 arithmetic is unchanged
        xt = ndiv.tensor(x[:5, :6], dtype=ndiv.float64, requires_grad=True)
        wt = ndiv.tensor(w[:3, :6], dtype=ndiv.float64, requires_grad=True)
        assert ndiv.gradcheck(lambda a, c: F.linear(a, c), (xt, wt))
    assert seen == [False] and not ndiv.is_autocast_enabled()
    np.testing.assert_allclose(y64, x @ w.T + b, rtol=1e-12)
    np.testing.assert_allclose(y32, x32 @ w.astype(np.float32).T, rtol=1e-5, atol=1e-5)


@needs_mkl
def test_nan_and_inf_propagate_through_bf16_linear():
    x, w, b, _ = _arrays()
    x[3, 5], x[7, 2] = np.nan, np.inf
    with ndiv.autocast():
        y = F.linear(ndiv.tensor(x), ndiv.tensor(w), ndiv.tensor(b)).numpy()
    assert np.isnan(y[3]).all() and not np.isfinite(y[7]).any()
    assert np.isfinite(np.delete(y, [3, 7], axis=0)).all()


def test_autocast_arguments_are_checked():
    with pytest.raises(ValueError, match="CPU only"):
        ndiv.autocast("cuda")
    with pytest.raises(ValueError, match="bfloat16"):
        ndiv.autocast("cpu", dtype="float16")


def test_autocast_without_mkl_says_what_to_install(monkeypatch):
    monkeypatch.setattr(bf16, "_mkl", "oneMKL was not found")
    with pytest.raises(RuntimeError, match=r"pip install \"ndiv\[bf16\]\""):
        ndiv.autocast()
    from ndiv import Forecaster
    from ndiv.datasets import load_air_passengers
    from ndiv.models import MLP
    fc = Forecaster([MLP(h=12, input_size=24, max_steps=1, precision="bf16-mixed")], freq="MS")
    with pytest.raises(RuntimeError, match=r"ndiv\[bf16\]"):
        fc.fit(load_air_passengers())


@needs_mkl
def test_model_with_bf16_mixed_trains_through_bf16_gemms(monkeypatch):
    from ndiv import Forecaster
    from ndiv.datasets import load_air_passengers
    from ndiv.models import MLP
    calls = []
    real = bf16.gemm_bf16
    monkeypatch.setattr(bf16, "gemm_bf16", lambda a, b: calls.append(1) or real(a, b))
    df = load_air_passengers()
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # precision='bf16-mixed' is understood: no "ignored" warning
        m32 = MLP(h=12, input_size=24, max_steps=30, random_seed=1)
        m16 = MLP(h=12, input_size=24, max_steps=30, random_seed=1, precision="bf16-mixed")
    Forecaster([m32], freq="MS").fit(df)
    assert not calls
    fc = Forecaster([m16], freq="MS")
    fc.fit(df)
    n_train = len(calls)
    assert n_train == 30 * 8                  # 3 Linear layers forward, 3 weight and 2 input gradients a step
    p = fc.predict()
    assert len(calls) == n_train              # predict runs in float32
    loss16 = [v for _, v in m16.train_trajectories]
    loss32 = [v for _, v in m32.train_trajectories]
    assert np.isfinite(loss16).all() and np.mean(loss16[-5:]) < 0.5 * loss16[0]
    assert abs(loss16[0] - loss32[0]) < 0.01 * loss32[0]   # the same start, products to bf16 rounding
    y = p["MLP"] if isinstance(p, dict) else p["MLP"].to_numpy()
    assert np.isfinite(np.asarray(y)).all()


@needs_mkl
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_recurrent_layers_inside_autocast_use_bf16_products(cell, monkeypatch):
    """nn.LSTM/GRU/RNN inside autocast: the input projection (I >= MIN_K) and the recurrent
    products (H >= MIN_K) run with bf16 factors, forward and backward; the result stays within
    bf16 rounding of float32."""
    calls = []
    real = bf16.gemm_bf16
    monkeypatch.setattr(bf16, "gemm_bf16", lambda a, b, out=None: calls.append(1) or real(a, b, out=out))
    rng = np.random.default_rng(5)
    ndiv.manual_seed(0)
    layer = getattr(ndiv.nn, cell)(input_size=16, hidden_size=32, num_layers=1, batch_first=True)
    x = rng.standard_normal((4, 7, 16)).astype(np.float32)

    def run():
        for p in layer.parameters():
            p.grad = None
        xt = ndiv.tensor(x, requires_grad=True)
        out = layer(xt)[0]
        (out * out).sum().backward()
        return out.numpy(), xt.grad, [p.grad.copy() for p in layer.parameters()]
    y32, gx32, gp32 = run()
    assert not calls
    with ndiv.autocast():
        y16, gx16, gp16 = run()
    assert len(calls) >= 7 + 7 + 2            # forward steps, backward steps, the projection's products
    np.testing.assert_allclose(y16, y32, atol=3e-2)
    np.testing.assert_allclose(gx16, gx32, atol=5e-2 * np.abs(gx32).max())
    for a, b in zip(gp16, gp32):
        np.testing.assert_allclose(a, b, atol=5e-2 * np.abs(b).max())


@needs_mkl
def test_bf16_mixed_model_saves_and_loads_with_its_precision(tmp_path):
    from ndiv import Forecaster
    from ndiv.datasets import load_air_passengers
    from ndiv.models import NHITS
    fc = Forecaster([NHITS(h=12, input_size=24, max_steps=5, precision="bf16-mixed")], freq="MS")
    fc.fit(load_air_passengers())
    fc.save(str(tmp_path / "fc"))
    loaded = Forecaster.load(str(tmp_path / "fc"))
    assert loaded.models[0].bf16_mixed and loaded.models[0].hparams.get("precision") == "bf16-mixed"
    a, b = fc.predict(), loaded.predict()
    np.testing.assert_array_equal(np.asarray(a["NHITS"]), np.asarray(b["NHITS"]))


@needs_mkl
def test_products_with_a_small_inner_size_stay_float32():
    from ndiv.autograd import amp
    x, w, b, _ = _arrays(i=amp.MIN_K - 1)
    with ndiv.autocast():
        y = F.linear(ndiv.tensor(x), ndiv.tensor(w), ndiv.tensor(b)).numpy()
        z = (ndiv.tensor(x) @ ndiv.tensor(w.T.copy())).numpy()
    np.testing.assert_allclose(y, x @ w.T + b, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(z, x @ w.T, rtol=1e-6, atol=1e-6)

"""ndiv.kernels.cuda on a GPU: every kernel against reference/ (test_kernels.CASES and larger
shapes), with poisoned outputs; float16/bfloat16 attention to 1e-2; float64 gradcheck through the
autograd wiring on the GPU; the nn parity layers on 'cuda' against the same layers on the CPU
(which tests/nn/test_torch_parity.py holds to torch). Skips where CuPy or a GPU is missing.
"""
import math

import numpy as np
import pytest

cp = pytest.importorskip("cupy")
try:
    if cp.cuda.runtime.getDeviceCount() < 1:
        raise RuntimeError("no device")
except Exception as e:  # CuPy without a driver or a GPU
    pytest.skip(f"no CUDA GPU: {e}", allow_module_level=True)

import ndiv  # noqa: E402
from ndiv.kernels import cuda, reference  # noqa: E402

from .test_fused import CASES as FUSED_CASES  # noqa: E402
from .test_fused import call  # noqa: E402
from .test_kernels import CASES, TOL, attn_case, conv_case, gru_case, lstm_case  # noqa: E402


@pytest.fixture
def poisoned(monkeypatch):
    """Every float array that cupy.empty/empty_like hands out starts as NaN: an element a kernel
    forgets to write then fails the comparison instead of passing by luck."""
    empty, empty_like = cp.empty, cp.empty_like

    def fill(a):
        if a.dtype.kind == "f":
            a.fill(np.nan)
        return a
    monkeypatch.setattr(cp, "empty", lambda *a, **k: fill(empty(*a, **k)))
    monkeypatch.setattr(cp, "empty_like", lambda *a, **k: fill(empty_like(*a, **k)))


def to_gpu(args):
    return tuple(cp.asarray(a) if isinstance(a, np.ndarray) else a for a in args)


def assert_close_gpu(got, want, dt, what, tol=None):
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        assert isinstance(g, cp.ndarray), f"{what}[{i}]: {type(g)} is not a cupy array"
        g = cp.asnumpy(g)
        assert g.shape == w.shape, f"{what}[{i}]: shape {g.shape} != {w.shape}"
        assert g.dtype == np.dtype(dt), f"{what}[{i}]: dtype {g.dtype}, expected {dt}"
        np.testing.assert_allclose(g, w, **(tol or TOL[dt]), err_msg=f"{what}[{i}]")


def check_case(name, fwd_args, make_bwd_args, dt, tol=None):
    want = getattr(reference, f"{name}_fwd")(*fwd_args)
    got = getattr(cuda, f"{name}_fwd")(*to_gpu(fwd_args))
    assert_close_gpu(got, want, dt, f"{name}_fwd", tol)
    bwd_args = make_bwd_args(want)                # both twins' backward see the same saved arrays
    assert_close_gpu(getattr(cuda, f"{name}_bwd")(*to_gpu(bwd_args)), getattr(reference, f"{name}_bwd")(*bwd_args),
                     dt, f"{name}_bwd", tol)


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_cuda_matches_reference(case, dt, poisoned):
    name, fwd_args, make_bwd_args = CASES[case](np.random.default_rng(hash(case) % 2**32), dt)
    check_case(name, fwd_args, make_bwd_args, dt)


# shapes that cross the launch geometry: several blocks and partial tiles, every head-dim class
LARGE = {
    "lstm_B70_H130": lambda r, dt: lstm_case(r, dt, 6, 70, 130),
    "gru_B70_H130": lambda r, dt: gru_case(r, dt, 6, 70, 130),
    "conv_wide": lambda r, dt: conv_case(r, dt, 4, 17, 33, 300, 3, 8, 0, 4),
    **{f"attn_D{D}_{'causal' if c else 'full'}_{m}": (lambda r, dt, D=D, c=c, m=m: attn_case(r, dt, 2, 3, 131, 97 if not c else 131, D, c, m))
       for D in (1, 16, 33, 64, 100, 256) for c in (False, True) for m in ("none", "bool", "float")
       if not (D in (1, 33, 100) and m == "float")},
}


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("case", list(LARGE))
def test_cuda_matches_reference_large(case, dt, poisoned):
    name, fwd_args, make_bwd_args = LARGE[case](np.random.default_rng(7), dt)
    check_case(name, fwd_args, make_bwd_args, dt)


def test_cuda_softmax_layer_norm_long_rows(poisoned):
    rng = np.random.default_rng(3)
    for D in (1, 31, 1000, 5000):
        for name in ("softmax", "log_softmax"):
            x = (3 * rng.standard_normal((37, D))).astype("float32")
            check_case(name, (x,), lambda y, x=x: (rng.standard_normal(x.shape).astype("float32"), y), "float32")
        x = (2 + 3 * rng.standard_normal((300, D))).astype("float32")
        w, b = rng.standard_normal(D).astype("float32"), rng.standard_normal(D).astype("float32")
        check_case("layer_norm", (x, w, b, 1e-5),
                   lambda o, x=x, w=w: (rng.standard_normal(x.shape).astype("float32"), x, w, o[1], o[2]), "float32",
                   tol=dict(rtol=1e-4, atol=1e-4))     # a column sum over 300 rows
        r = rng.standard_normal(x.shape).astype("float32")
        check_case("add_layer_norm", (x, r, w, b, 1e-5),
                   lambda o, x=x, w=w: (rng.standard_normal(x.shape).astype("float32"), o[1], w, o[2], o[3]), "float32",
                   tol=dict(rtol=1e-4, atol=1e-4))


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
@pytest.mark.parametrize("causal,mask", [(False, "none"), (True, "none"), (False, "bool"), (True, "float")])
@pytest.mark.parametrize("D", [16, 64, 128])
def test_cuda_attention_half_precision(half, causal, mask, D, poisoned):
    """float16/bfloat16 in, float32 accumulation: against the float32 reference on the rounded inputs."""
    if half == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        hdt = np.dtype(ml_dtypes.bfloat16)
        try:
            cp.asarray(np.zeros(1, hdt))
        except Exception as e:
            pytest.skip(f"this CuPy holds no bfloat16 arrays: {e}")
    else:
        hdt = np.dtype(np.float16)
    _, (q, k, v, bias, scale, causal), _ = attn_case(np.random.default_rng(D), "float32", 2, 2, 150, 150, D, causal, mask)
    q, k, v, bias = (a.astype(hdt) for a in (q, k, v, bias))
    f32 = [a.astype(np.float32) for a in (q, k, v, bias)]
    out_ref, lse_ref = reference.flash_attn_fwd(*f32, scale, causal)
    out, lse = cuda.flash_attn_fwd(*to_gpu((q, k, v, bias)), scale, causal)
    assert out.dtype == hdt and lse.dtype == np.float32
    tol = dict(rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(cp.asnumpy(out).astype(np.float32), out_ref, **tol)
    np.testing.assert_allclose(cp.asnumpy(lse), lse_ref, **tol)
    gout = np.random.default_rng(1).standard_normal(q.shape).astype(hdt)
    want = reference.flash_attn_bwd(gout.astype(np.float32), *f32, scale, causal, out_ref, lse_ref)
    got = cuda.flash_attn_bwd(*to_gpu((gout, q, k, v, bias)), scale, causal, out, lse)
    for g, w, n in zip(got, want, "qkv"):
        assert g.dtype == hdt
        g = cp.asnumpy(g).astype(np.float32)
        np.testing.assert_allclose(g, w, rtol=1e-2, atol=1e-2 * max(1.0, float(np.abs(w).max())), err_msg=f"g{n}")


def test_cuda_attention_fully_masked_row_gives_zero(poisoned):
    rng = np.random.default_rng(1)
    q, k, v = (cp.asarray(rng.standard_normal((1, 1, 3, 2))) for _ in range(3))
    bias = cp.zeros((1, 1, 3, 3))
    bias[0, 0, 1] = -cp.inf
    out, lse = cuda.flash_attn_fwd(q, k, v, bias, 1.0, False)
    assert bool(cp.all(out[0, 0, 1] == 0)) and float(lse[0, 0, 1]) == -np.inf
    assert all(bool(cp.isfinite(g).all()) for g in cuda.flash_attn_bwd(cp.ones_like(out), q, k, v, bias, 1.0, False, out, lse))


def _on_cuda(inputs):
    return [ndiv.tensor(x.data, requires_grad=x.requires_grad, device="cuda") for x in inputs]


@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_gradcheck_on_the_gpu(name):
    fn, _, make, kwargs, _ = FUSED_CASES[name]
    inputs = _on_cuda(make(np.random.default_rng(0), "float64"))
    out = call(name, fn, inputs, kwargs)
    for o in out if isinstance(out, tuple) else (out,):
        assert o.device == "cuda", f"{name}: output left the GPU"
    assert ndiv.autograd.gradcheck(lambda *xs: call(name, fn, xs, kwargs), inputs)


@pytest.mark.parametrize("name", list(FUSED_CASES))
def test_fused_ops_on_the_gpu_equal_the_cpu(name):
    from .test_fused import outputs_and_grads
    fn, _, make, kwargs, _ = FUSED_CASES[name]
    cpu_in = make(np.random.default_rng(0), "float32")
    gpu_in = _on_cuda(cpu_in)
    cpu_out, cpu_g = outputs_and_grads(name, fn, cpu_in, kwargs)
    gpu_out, gpu_g = outputs_and_grads(name, fn, gpu_in, kwargs)
    for a, b in zip(cpu_out + cpu_g, gpu_out + gpu_g):
        if a is None:
            assert b is None
            continue
        assert isinstance(b, cp.ndarray)
        np.testing.assert_allclose(cp.asnumpy(b), a, rtol=1e-4, atol=1e-5)


def _nn_cases():
    try:
        from tests.nn.test_torch_parity import FUNCTIONAL, LAYERS
    except BaseException:  # torch missing: the module skips at import
        return []
    return LAYERS + FUNCTIONAL


@pytest.mark.parametrize("case", _nn_cases(), ids=str)
def test_nn_parity_on_cuda(case):
    """Each nn parity layer on 'cuda' equals the same layer on the CPU (held to torch elsewhere):
    outputs, input gradients and parameter gradients, float32."""
    from tests.nn.nn_parity import _flatten
    dtype = "float32"
    rng = np.random.default_rng(0)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in case.inputs(rng)]
    results = []
    for dev in ("cpu", "cuda"):
        nmod = None
        if case.build is not None:
            ndiv.manual_seed(0)
            nmod = case.build(ndiv.nn).to(dtype=dtype)
            if results:
                nmod.load_state_dict({k: cp.asnumpy(v) if isinstance(v, cp.ndarray) else v
                                      for k, v in results[0][2].items()})
            nmod = nmod.to(dev)
            nmod.train(case.train)
        ins = [ndiv.tensor(np.array(a, copy=True), requires_grad=a.dtype.kind == "f", device=dev) for a in arrays]
        outs = _flatten(case.fwd(ndiv.nn.functional, nmod, *ins))
        loss = 0
        w_rng = np.random.default_rng(1)
        for o in outs:
            if o.requires_grad:
                loss = loss + (o * ndiv.tensor(w_rng.standard_normal(o.shape).astype(dtype), device=dev)).sum()
        if not isinstance(loss, int):
            loss.backward()
        params = dict(nmod.named_parameters()) if nmod is not None else {}
        state = nmod.state_dict() if nmod is not None else {}
        results.append(([o.numpy() for o in outs], [x.grad for x in ins], state,
                        {k: p.grad for k, p in params.items()}))
    (co, cg, _, cpg), (go, gg, _, gpg) = results
    host = lambda a: None if a is None else (cp.asnumpy(a) if isinstance(a, cp.ndarray) else np.asarray(a))  # noqa: E731
    for i, (a, b) in enumerate(zip(co, go)):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5, err_msg=f"{case}: output {i}")
    for i, (a, b) in enumerate(zip(cg, gg)):
        assert (a is None) == (b is None), f"{case}: grad of input {i}"
        if a is not None:
            assert isinstance(b, cp.ndarray), f"{case}: grad of input {i} is not on the GPU"
            np.testing.assert_allclose(host(b), a, rtol=1e-4, atol=1e-5, err_msg=f"{case}: grad of input {i}")
    for k, a in cpg.items():
        b = gpg[k]
        assert (a is None) == (b is None), f"{case}: grad of {k}"
        if a is not None:
            np.testing.assert_allclose(host(b), a, rtol=1e-4, atol=1e-5, err_msg=f"{case}: grad of {k}")


def test_kernels_compile_once_per_process():
    from ndiv.kernels.cuda import _compile
    x = cp.asarray(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    cuda.softmax_fwd(x)
    n = len(_compile._MODULES)
    cuda.softmax_fwd(x)
    cuda.softmax_bwd(x, x)
    assert len(_compile._MODULES) == n


def test_train_step_keeps_parameters_and_optimizer_state_on_the_gpu():
    ndiv.manual_seed(0)
    model = ndiv.nn.Sequential(ndiv.nn.Linear(8, 16), ndiv.nn.GELU(), ndiv.nn.Linear(16, 1)).to("cuda")
    opt = ndiv.optim.Adam(model.parameters(), lr=1e-2)
    x = ndiv.randn(32, 8, device="cuda")
    y = ndiv.randn(32, 1, device="cuda")
    losses = []
    for _ in range(20):
        loss = ((model(x) - y) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert all(isinstance(p.data, cp.ndarray) for p in model.parameters())
    assert all(isinstance(v, cp.ndarray) for s in opt.state.values() for v in s.values() if hasattr(v, "shape"))
    assert losses[-1] < losses[0] and math.isfinite(losses[-1])

"""The fused Functions of ndiv.autograd.ops.fused: float64 gradcheck through the tape, equality
with the composed oracles (tests/kernels/composed.py) and with PyTorch, proof that the kernel
ran, and error messages."""
import math

import numpy as np
import pytest

import ndiv
from ndiv.autograd.ops import fused
from ndiv.kernels import cpu

from . import composed


def T(rng, *shape, dtype="float64", scale=1.0, grad=True):
    return ndiv.tensor((scale * rng.standard_normal(shape)).astype(dtype), requires_grad=grad)


def lstm_inputs(rng, dt="float64", Tn=4, B=2, I=3, H=5, bias=True):
    k = 1 / math.sqrt(H)
    out = [T(rng, Tn, B, I, dtype=dt), T(rng, B, H, dtype=dt), T(rng, B, H, dtype=dt),
           T(rng, 4 * H, I, dtype=dt, scale=k), T(rng, 4 * H, H, dtype=dt, scale=k)]
    return out + ([T(rng, 4 * H, dtype=dt, scale=k), T(rng, 4 * H, dtype=dt, scale=k)] if bias else [])


def rnn_inputs(rng, dt="float64", Tn=4, B=2, I=3, H=5, bias=True):
    k = 1 / math.sqrt(H)
    out = [T(rng, Tn, B, I, dtype=dt), T(rng, B, H, dtype=dt), T(rng, H, I, dtype=dt, scale=k), T(rng, H, H, dtype=dt, scale=k)]
    return out + ([T(rng, H, dtype=dt, scale=k), T(rng, H, dtype=dt, scale=k)] if bias else [])


def gru_inputs(rng, dt="float64", Tn=4, B=2, I=3, H=5, bias=True):
    k = 1 / math.sqrt(H)
    out = [T(rng, Tn, B, I, dtype=dt), T(rng, B, H, dtype=dt),
           T(rng, 3 * H, I, dtype=dt, scale=k), T(rng, 3 * H, H, dtype=dt, scale=k)]
    return out + ([T(rng, 3 * H, dtype=dt, scale=k), T(rng, 3 * H, dtype=dt, scale=k)] if bias else [])


def attn_inputs(rng, dt="float64", B=2, H=2, Lq=5, Lk=6, D=3):
    return [T(rng, B, H, Lq, D, dtype=dt), T(rng, B, H, Lk, D, dtype=dt), T(rng, B, H, Lk, D, dtype=dt)]


def keep_mask(rng, Lq, Lk):
    m = rng.random((Lq, Lk)) > 0.4
    m[:, 0] = True
    return m


# name -> (fused fn, composed fn, make inputs(rng, dtype) -> list, keyword args, torch fn or None)
def _torch_lstm(t, x, h0, c0, w_ih, w_hh, b_ih, b_hh):
    y, h_n, c_n = t._VF.lstm(x, (h0[None], c0[None]), [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, False)
    return y, h_n[0], c_n[0]


def _torch_rnn(mode):
    def fn(t, x, h0, w_ih, w_hh, b_ih, b_hh):
        y, h_n = getattr(t._VF, mode)(x, h0[None], [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, False)
        return y, h_n[0]
    return fn


def _torch_gru(t, x, h0, w_ih, w_hh, b_ih, b_hh):
    y, h_n = t._VF.gru(x, h0[None], [w_ih, w_hh, b_ih, b_hh], True, 1, 0.0, False, False, False)
    return y, h_n[0]


CASES = {
    "lstm": (fused.lstm_seq, composed.lstm_seq, lambda r, dt: lstm_inputs(r, dt), {}, _torch_lstm),
    "lstm_nobias_T1": (fused.lstm_seq, composed.lstm_seq, lambda r, dt: lstm_inputs(r, dt, Tn=1, bias=False), {}, None),
    "small_attn": (fused.small_attention, composed.small_attention,
                   lambda r, dt: [T(r, 3, 4, 5, 2, dtype=dt), T(r, 3, 4, 2, 5, dtype=dt), T(r, 3, 4, 5, 3, dtype=dt),
                                  T(r, 3, 4, 5, 5, dtype=dt)], dict(scale=0.7),
                   lambda t, q, k, v, prev: (lambda s: (t.softmax(s, -1) @ v, t.softmax(s, -1), s))((q @ k) * 0.7 + prev)),
    "small_attn_no_prev": (fused.small_attention, composed.small_attention,
                           lambda r, dt: [T(r, 2, 3, 4, 3, dtype=dt), T(r, 2, 3, 3, 4, dtype=dt),
                                          T(r, 2, 3, 4, 2, dtype=dt)], {}, None),
    "batch_norm": (lambda *a, **k: fused.batch_norm_train(*a, **k)[0], composed.batch_norm_train,
                   lambda r, dt: [T(r, 4, 3, 5, dtype=dt), T(r, 3, dtype=dt), T(r, 3, dtype=dt)], {},
                   lambda t, x, w, b: t.nn.functional.batch_norm(x, None, None, w, b, training=True)),
    "batch_norm_2d_noaffine": (lambda *a, **k: fused.batch_norm_train(*a, **k)[0], composed.batch_norm_train,
                               lambda r, dt: [T(r, 6, 4, dtype=dt)], dict(eps=1e-3),
                               lambda t, x: t.nn.functional.batch_norm(x, None, None, training=True, eps=1e-3)),
    "linear_relu": (fused.linear_act, composed.linear_act,
                    lambda r, dt: [T(r, 2, 3, 4, dtype=dt), T(r, 5, 4, dtype=dt), T(r, 5, dtype=dt)], {},
                    lambda t, x, w, b: t.relu(t.nn.functional.linear(x, w, b))),
    "linear_identity": (fused.linear_act, composed.linear_act,
                        lambda r, dt: [T(r, 6, 4, dtype=dt), T(r, 3, 4, dtype=dt), T(r, 3, dtype=dt)],
                        dict(activation="identity"), lambda t, x, w, b: t.nn.functional.linear(x, w, b)),
    "rnn_tanh": (fused.rnn_seq, composed.rnn_seq, lambda r, dt: rnn_inputs(r, dt), {}, _torch_rnn("rnn_tanh")),
    "rnn_relu": (fused.rnn_seq, composed.rnn_seq, lambda r, dt: rnn_inputs(r, dt), dict(nonlinearity="relu"),
                 _torch_rnn("rnn_relu")),
    "rnn_nobias_T1": (fused.rnn_seq, composed.rnn_seq, lambda r, dt: rnn_inputs(r, dt, Tn=1, bias=False), {}, None),
    "gru": (fused.gru_seq, composed.gru_seq, lambda r, dt: gru_inputs(r, dt), {}, _torch_gru),
    "gru_nobias": (fused.gru_seq, composed.gru_seq, lambda r, dt: gru_inputs(r, dt, bias=False), {}, None),
    "conv_causal": (fused.conv1d_dilated, composed.conv1d_dilated,
                    lambda r, dt: [T(r, 2, 3, 9, dtype=dt), T(r, 4, 3, 2, dtype=dt), T(r, 4, dtype=dt)],
                    dict(padding=(4, 0), dilation=4),
                    lambda t, x, w, b: t.nn.functional.conv1d(t.nn.functional.pad(x, (4, 0)), w, b, dilation=4)),
    "conv_k3_same": (fused.conv1d_dilated, composed.conv1d_dilated,
                     lambda r, dt: [T(r, 1, 2, 7, dtype=dt), T(r, 3, 2, 3, dtype=dt)], dict(padding=2, dilation=2),
                     lambda t, x, w: t.nn.functional.conv1d(x, w, padding=2, dilation=2)),
    "conv2d": (fused.conv2d, composed.conv2d,
               lambda r, dt: [T(r, 2, 3, 4, 5, dtype=dt), T(r, 4, 3, 3, 3, dtype=dt), T(r, 4, dtype=dt)],
               dict(padding=(1, 1, 1, 1)),
               lambda t, x, w, b: t.nn.functional.conv2d(x, w, b, padding=1)),
    "conv2d_11x11_asym": (fused.conv2d, composed.conv2d,
                          lambda r, dt: [T(r, 2, 2, 2, 6, dtype=dt), T(r, 3, 2, 11, 11, dtype=dt)],
                          dict(padding=(5, 4, 6, 5)),
                          lambda t, x, w: t.nn.functional.conv2d(t.nn.functional.pad(x, (6, 5, 5, 4)), w)),
    "attn": (fused.flash_attention, composed.attention, lambda r, dt: attn_inputs(r, dt), {},
             lambda t, q, k, v: t.nn.functional.scaled_dot_product_attention(q, k, v)),
    "attn_causal": (fused.flash_attention, composed.attention, lambda r, dt: attn_inputs(r, dt, Lk=5),
                    dict(is_causal=True),
                    lambda t, q, k, v: t.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)),
    "attn_bool_mask": (fused.flash_attention, composed.attention, lambda r, dt: attn_inputs(r, dt),
                       dict(attn_mask=keep_mask(np.random.default_rng(5), 5, 6), scale=0.3),
                       lambda t, q, k, v: t.nn.functional.scaled_dot_product_attention(
                           q, k, v, attn_mask=t.from_numpy(keep_mask(np.random.default_rng(5), 5, 6)), scale=0.3)),
    "attn_float_mask": (fused.flash_attention, composed.attention, lambda r, dt: attn_inputs(r, dt),
                        dict(attn_mask=np.linspace(-1, 1, 2 * 6).reshape(2, 1, 1, 6)),
                        lambda t, q, k, v: t.nn.functional.scaled_dot_product_attention(
                            q, k, v, attn_mask=t.linspace(-1, 1, 12, dtype=q.dtype).reshape(2, 1, 1, 6))),
    "softmax": (fused.softmax, composed.softmax, lambda r, dt: [T(r, 3, 4, 5, dtype=dt)], dict(axis=1),
                lambda t, x: t.softmax(x, dim=1)),
    "log_softmax": (fused.log_softmax, composed.log_softmax, lambda r, dt: [T(r, 4, 6, dtype=dt)], {},
                    lambda t, x: t.log_softmax(x, dim=-1)),
    "layer_norm": (fused.layer_norm, composed.layer_norm,
                   lambda r, dt: [T(r, 3, 4, 6, dtype=dt), T(r, 6, dtype=dt), T(r, 6, dtype=dt)], {},
                   lambda t, x, w, b: t.nn.functional.layer_norm(x, (6,), w, b)),
    "layer_norm_2d_noaffine": (fused.layer_norm, composed.layer_norm, lambda r, dt: [T(r, 3, 2, 4, dtype=dt)], {},
                               lambda t, x: t.nn.functional.layer_norm(x, (2, 4))),
    # add_layer_norm(x, residual, normalized_shape, weight, bias)
    "add_layer_norm": (lambda x, r, *wb: fused.add_layer_norm(x, r, (6,), *wb),
                       lambda x, r, *wb: composed.add_layer_norm(x, r, (6,), *wb),
                       lambda r, dt: [T(r, 3, 4, 6, dtype=dt, scale=2), T(r, 3, 4, 6, dtype=dt), T(r, 6, dtype=dt),
                                      T(r, 6, dtype=dt)], {},
                       lambda t, x, r, w, b: t.nn.functional.layer_norm(x + r, (6,), w, b)),
    "add_layer_norm_weight_only_eps": (lambda x, r, w: fused.add_layer_norm(x, r, 5, w, eps=1e-3),
                                       lambda x, r, w: composed.add_layer_norm(x, r, (5,), w, eps=1e-3),
                                       lambda r, dt: [T(r, 7, 5, dtype=dt), T(r, 7, 5, dtype=dt), T(r, 5, dtype=dt)],
                                       {},
                                       lambda t, x, r, w: t.nn.functional.layer_norm(x + r, (5,), w, eps=1e-3)),
    "add_layer_norm_2d_noaffine": (lambda x, r: fused.add_layer_norm(x, r, (2, 4)),
                                   lambda x, r: composed.add_layer_norm(x, r, (2, 4)),
                                   lambda r, dt: [T(r, 3, 2, 4, dtype=dt), T(r, 3, 2, 4, dtype=dt)], {},
                                   lambda t, x, r: t.nn.functional.layer_norm(x + r, (2, 4))),
    "gelu": (fused.gelu, composed.gelu, lambda r, dt: [T(r, 3, 7, dtype=dt, scale=2)], {},
             lambda t, x: t.nn.functional.gelu(x)),
    "gelu_tanh": (fused.gelu, composed.gelu, lambda r, dt: [T(r, 3, 7, dtype=dt, scale=2)], dict(approximate="tanh"),
                  lambda t, x: t.nn.functional.gelu(x, approximate="tanh")),
    "glu": (fused.glu, composed.glu, lambda r, dt: [T(r, 3, 4, 8, dtype=dt, scale=2)], {},
            lambda t, x: t.nn.functional.glu(x)),
    "glu_axis1": (fused.glu, composed.glu, lambda r, dt: [T(r, 3, 4, 5, dtype=dt, scale=2)], dict(axis=1),
                  lambda t, x: t.nn.functional.glu(x, 1)),
    "glu_axis0": (fused.glu, composed.glu, lambda r, dt: [T(r, 6, 5, dtype=dt, scale=2)], dict(axis=-2),
                  lambda t, x: t.nn.functional.glu(x, -2)),
    "elu": (fused.elu, composed.elu, lambda r, dt: [T(r, 3, 7, dtype=dt, scale=2)], {},
            lambda t, x: t.nn.functional.elu(x)),
    "elu_alpha": (fused.elu, composed.elu, lambda r, dt: [T(r, 2, 9, dtype=dt, scale=2)], dict(alpha=0.4),
                  lambda t, x: t.nn.functional.elu(x, 0.4)),
}
NORMALIZED = {"layer_norm": (6,), "layer_norm_2d_noaffine": (2, 4)}


def call(name, fn, inputs, kwargs):
    if name in NORMALIZED:                 # layer_norm(x, normalized_shape, weight, bias)
        return fn(inputs[0], NORMALIZED[name], *inputs[1:], **kwargs)
    return fn(*inputs, **kwargs)


def outputs_and_grads(name, fn, inputs, kwargs, seed=3):
    """Outputs and the gradients of sum(out * fixed random weights) w.r.t. every input."""
    out = call(name, fn, inputs, kwargs)
    outs = out if isinstance(out, tuple) else (out,)
    rng = np.random.default_rng(seed)
    loss = None
    for o in outs:
        term = (o * ndiv.tensor(rng.standard_normal(o.shape).astype(o.dtype))).sum()
        loss = term if loss is None else loss + term
    loss.backward()
    return [o.data for o in outs], [x.grad for x in inputs]


@pytest.mark.parametrize("name", list(CASES))
def test_gradcheck_float64(name):
    fn, _, make, kwargs, _ = CASES[name]
    inputs = make(np.random.default_rng(0), "float64")
    assert ndiv.autograd.gradcheck(lambda *xs: call(name, fn, xs, kwargs), inputs)


@pytest.mark.parametrize("name", list(CASES))
def test_fused_matches_composed(name):
    fn, ref, make, kwargs, _ = CASES[name]
    got = outputs_and_grads(name, fn, make(np.random.default_rng(1), "float64"), kwargs)
    want = outputs_and_grads(name, ref, make(np.random.default_rng(1), "float64"), kwargs)
    for g, w in zip(got[0] + got[1], want[0] + want[1]):
        np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-10)


@pytest.mark.parametrize("name", [n for n, c in CASES.items() if c[4] is not None])
def test_matches_torch_float32(name):
    torch = pytest.importorskip("torch")
    fn, _, make, kwargs, torch_fn = CASES[name]
    inputs = make(np.random.default_rng(2), "float32")
    got_out, got_grads = outputs_and_grads(name, fn, inputs, kwargs)
    tin = [torch.tensor(x.data, requires_grad=True) for x in inputs]
    tout = torch_fn(torch, *tin)
    tout = tout if isinstance(tout, tuple) else (tout,)
    rng = np.random.default_rng(3)
    sum(((o * torch.tensor(rng.standard_normal(o.shape).astype("float32"))).sum() for o in tout)).backward()
    for g, w in zip(got_out + got_grads, [o.detach().numpy() for o in tout] + [t.grad.numpy() for t in tin]):
        np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5)


@pytest.mark.parametrize("name", ["small_attn", "batch_norm", "linear_relu", "rnn_tanh", "rnn_relu", "lstm", "gru", "conv_causal", "conv2d", "attn", "softmax", "log_softmax", "layer_norm",
                                  "add_layer_norm", "gelu", "glu", "elu"])
def test_the_fused_kernel_ran(name, monkeypatch):
    fn, _, make, kwargs, _ = CASES[name]
    kernel = {"small_attn": "small_attn", "batch_norm": "batch_norm", "linear_relu": "linear_act", "rnn_tanh": "rnn_seq", "rnn_relu": "rnn_seq", "lstm": "lstm_seq", "gru": "gru_seq", "conv_causal": "conv1d_dilated", "attn": "flash_attn"}.get(name, name)
    calls = []
    for direction in ("fwd", "bwd"):
        real = getattr(cpu, f"{kernel}_{direction}")
        monkeypatch.setattr(cpu, f"{kernel}_{direction}",
                            lambda *a, _real=real, _d=direction, **k: calls.append(_d) or _real(*a, **k))
    outputs_and_grads(name, fn, make(np.random.default_rng(0), "float64"), kwargs)
    assert calls == ["fwd", "bwd"]


def test_attention_memory_is_linear_in_length():
    """L = 2048, d = 64, float32: the score matrix alone would be 16 MiB; the kernel stays ~4x below."""
    import tracemalloc
    rng = np.random.default_rng(0)
    q, k, v = (T(rng, 1, 1, 2048, 64, dtype="float32") for _ in range(3))
    # compile forward AND backward outside the measurement: on a cold Numba cache the compiler's
    # own allocations would otherwise count in the peak
    fused.flash_attention(q, k, v, is_causal=True).sum().backward()
    for t in (q, k, v):
        t.grad = None
    tracemalloc.start()
    out = fused.flash_attention(q, k, v, is_causal=True)
    out.sum().backward()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 4 * 2**20, f"peak {peak / 2**20:.1f} MiB"


@pytest.mark.parametrize("call_, match", [
    (lambda: fused.lstm_seq(ndiv.zeros(4, 2, 3), ndiv.zeros(2, 5), ndiv.zeros(2, 5), ndiv.zeros(20, 2), ndiv.zeros(20, 5)),
     r"w_ih \[4H, 3\]"),
    (lambda: fused.gru_seq(ndiv.zeros(2, 3), ndiv.zeros(3, 4), ndiv.zeros(12, 3), ndiv.zeros(12, 4)), r"\[T, B, I\]"),
    (lambda: fused.linear_act(ndiv.zeros(2, 3), ndiv.zeros(4, 3), ndiv.zeros(4), "gelu"), "'relu' or 'identity'"),
    (lambda: fused.small_attention(ndiv.zeros(2, 3, 4, 5), ndiv.zeros(2, 3, 4, 5), ndiv.zeros(2, 3, 4, 5)),
     r"expected k \[N, H, D, L\]"),
    (lambda: fused.linear_act(ndiv.zeros(2, 3), ndiv.zeros(4, 3), ndiv.zeros(3)), r"bias \(3,\) must be \[out_features\]"),
    (lambda: fused.rnn_seq(ndiv.zeros(2, 3, 4), ndiv.zeros(3, 5), ndiv.zeros(5, 4), ndiv.zeros(5, 5), nonlinearity="gelu"),
     "'tanh' or 'relu'"),
    (lambda: fused.rnn_seq(ndiv.zeros(2, 3, 4), ndiv.zeros(3, 5), ndiv.zeros(5, 4), ndiv.zeros(5, 5), ndiv.zeros(5)),
     "both b_ih and b_hh"),
    (lambda: fused.conv1d_dilated(ndiv.zeros(1, 2, 3), ndiv.zeros(1, 2, 3), dilation=2), "shorter than the dilated kernel"),
    (lambda: fused.conv2d(ndiv.zeros(1, 2, 3, 3), ndiv.zeros(1, 2, 5, 3), padding=(0, 1, 0, 0)), "smaller than the kernel"),
    (lambda: fused.conv2d(ndiv.zeros(1, 2, 3, 3), ndiv.zeros(1, 3, 3, 3)), r"weight \[O, C, KH, KW\]"),
    (lambda: fused.flash_attention(*attn_inputs(np.random.default_rng(0)), attn_mask=np.ones((3, 6), bool)),
     "does not broadcast"),
    (lambda: fused.layer_norm(ndiv.zeros(2, 3), (4,)), "does not end with normalized_shape"),
    (lambda: fused.gelu(ndiv.zeros(2), approximate="fast"), "'none' or 'tanh'"),
    (lambda: fused.glu(ndiv.zeros(2, 3)), "glu: dim -1 of size 3 must be even"),
    (lambda: fused.add_layer_norm(ndiv.zeros(2, 3), ndiv.zeros(1, 3), (3,)),
     r"add_layer_norm: x \(2, 3\) and residual \(1, 3\) must have the same shape"),
    (lambda: ndiv.nn.functional.add_layer_norm(ndiv.zeros(2, 3), ndiv.zeros(3), 3),
     r"x \(2, 3\) and residual \(3,\) must have the same shape \(no broadcasting"),
    (lambda: fused.add_layer_norm(ndiv.zeros(2, 3), ndiv.zeros(2, 3), (4,)), "does not end with normalized_shape"),
    (lambda: fused.add_layer_norm(ndiv.zeros(2, 3), ndiv.zeros(2, 3), 3, None, ndiv.zeros(3)), "bias without a weight"),
])
def test_errors_name_the_argument(call_, match):
    with pytest.raises(ValueError, match=match):
        call_()


# -- nan and inf: the fused Functions against the composed oracles and torch -----------------------
def _poke(inputs, i, index, value):
    """inputs with inputs[i].data[index] = value (a fresh leaf, so the tape starts clean)."""
    data = inputs[i].data.copy()
    data[index] = value
    inputs[i] = ndiv.tensor(data, requires_grad=True)
    return inputs


def _nonfinite_rows(dt, D=6):
    """[6, D]: a row with a nan, a +inf, a -inf; all -inf; all +inf; and a finite row."""
    rows = np.tile(np.linspace(-1, 2, D), (6, 1))
    rows[0, 1], rows[1, 2], rows[2, 0], rows[3], rows[4] = np.nan, np.inf, -np.inf, -np.inf, np.inf
    return rows.astype(dt)


def _softmax_nonfinite(r, dt):            # CASES["softmax"] runs along axis 1
    x = T(r, 3, 6, 5, dtype=dt).data
    x[0, :, :5] = _nonfinite_rows(dt)[:5].T
    return [ndiv.tensor(x, requires_grad=True)]


def _last_axis_nonfinite(r, dt, *shape):
    x = T(r, *shape, dtype=dt).data
    x.reshape(-1, shape[-1])[:6] = _nonfinite_rows(dt, shape[-1])
    return [ndiv.tensor(x, requires_grad=True)]


NONFINITE = {  # name -> (CASES row whose fused fn, composed fn, kwargs and torch fn are used, inputs)
    "softmax_nonfinite": ("softmax", _softmax_nonfinite),
    "log_softmax_nonfinite": ("log_softmax", lambda r, dt: _last_axis_nonfinite(r, dt, 7, 6)),
    "layer_norm_nonfinite": ("layer_norm", lambda r, dt: _last_axis_nonfinite(r, dt, 3, 4, 6)
                             + [T(r, 6, dtype=dt), T(r, 6, dtype=dt)]),
    "add_layer_norm_nonfinite_x": ("add_layer_norm", lambda r, dt: _last_axis_nonfinite(r, dt, 3, 4, 6)
                                   + [T(r, 3, 4, 6, dtype=dt), T(r, 6, dtype=dt), T(r, 6, dtype=dt)]),
    "add_layer_norm_nonfinite_r": ("add_layer_norm", lambda r, dt: [T(r, 3, 4, 6, dtype=dt)]
                                   + _last_axis_nonfinite(r, dt, 3, 4, 6) + [T(r, 6, dtype=dt), T(r, 6, dtype=dt)]),
    "add_layer_norm_inf_minus_inf": ("add_layer_norm", lambda r, dt: _poke(
        _poke(CASES["add_layer_norm"][2](r, dt), 0, (1, 2, 3), np.inf), 1, (1, 2, 3), -np.inf)),
    "gelu_nonfinite": ("gelu", lambda r, dt: _poke([T(r, 3, 7, dtype=dt)], 0, (0, slice(0, 3)), [np.nan, np.inf, -np.inf])),
    "gelu_tanh_nonfinite": ("gelu_tanh", lambda r, dt: _poke([T(r, 3, 7, dtype=dt)], 0, (1, slice(2, 5)),
                                                             [-np.inf, np.nan, np.inf])),
    "glu_nonfinite": ("glu", lambda r, dt: _poke(_poke([T(r, 3, 8, dtype=dt)], 0, (0, slice(0, 3)), [np.nan, np.inf, -np.inf]),
                                                 0, (1, slice(4, 8)), [np.nan, np.inf, -np.inf, -200.0])),
    "elu_nonfinite": ("elu", lambda r, dt: _poke([T(r, 3, 7, dtype=dt)], 0, (0, slice(0, 5)), [np.nan, np.inf, -np.inf, 0.0, -90.0])),
    "conv2d_nan_x": ("conv2d", lambda r, dt: _poke(CASES["conv2d"][2](r, dt), 0, (1, 2, 0, 3), np.nan)),
    "conv2d_inf_w_corner": ("conv2d", lambda r, dt: _poke(CASES["conv2d"][2](r, dt), 1, (2, 0, 0, 0), np.inf)),
    "conv2d_nan_bias": ("conv2d", lambda r, dt: _poke(CASES["conv2d"][2](r, dt), 2, 3, np.nan)),
    "attn_nan_q": ("attn", lambda r, dt: _poke(attn_inputs(r, dt), 0, (0, 1, 2, 0), np.nan)),
    "attn_causal_nan_k_future": ("attn_causal", lambda r, dt: _poke(attn_inputs(r, dt, Lk=5), 1, (1, 0, 4, 2), np.nan)),
    "attn_causal_inf_q": ("attn_causal", lambda r, dt: _poke(attn_inputs(r, dt, Lk=5), 0, (0, 0, 1, 1), np.inf)),
    "attn_bool_mask_inf_v_masked": ("attn_bool_mask", lambda r, dt: _poke(attn_inputs(r, dt), 2, (0, 1, 3, 0), np.inf)),
    "attn_float_mask_-inf_k": ("attn_float_mask", lambda r, dt: _poke(attn_inputs(r, dt), 1, (1, 1, 0, 1), -np.inf)),
}


def _assert_same(got, want, what, **tol):
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_allclose(g, w, equal_nan=True, err_msg=f"{what}[{i}]", **tol)


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("name", list(NONFINITE))
def test_fused_matches_composed_on_nonfinite(name, dt):
    """nan and inf reach the same outputs and gradients, in the same places, on both routes."""
    case, make = NONFINITE[name]
    fn, ref, _, kwargs, _ = CASES[case]
    with np.errstate(all="ignore"):
        got = outputs_and_grads(case, fn, make(np.random.default_rng(1), dt), kwargs)
        want = outputs_and_grads(case, ref, make(np.random.default_rng(1), dt), kwargs)
    tol = dict(rtol=1e-9, atol=1e-10) if dt == "float64" else dict(rtol=1e-4, atol=1e-5)
    _assert_same(got[0] + got[1], want[0] + want[1], name, **tol)
    assert any(np.isnan(a).any() for a in got[0]), f"{name}: no nan reached the output"


@pytest.mark.parametrize("name", list(NONFINITE))
def test_fused_matches_torch_on_nonfinite(name):
    """float64 against torch (attention: its math backend, the composed formula)."""
    torch = pytest.importorskip("torch")
    from torch.nn.attention import SDPBackend, sdpa_kernel
    case, make = NONFINITE[name]
    fn, _, _, kwargs, torch_fn = CASES[case]
    inputs = make(np.random.default_rng(2), "float64")
    with np.errstate(all="ignore"):
        got_out, got_grads = outputs_and_grads(case, fn, inputs, kwargs)
    tin = [torch.tensor(x.data, requires_grad=True) for x in inputs]
    with sdpa_kernel(SDPBackend.MATH):
        tout = torch_fn(torch, *tin)
    rng = np.random.default_rng(3)
    ((tout * torch.tensor(rng.standard_normal(tout.shape))).sum()).backward()
    _assert_same(got_out + got_grads, [tout.detach().numpy()] + [t.grad.numpy() for t in tin], name,
                 rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", [n for n in NONFINITE if n.startswith("attn")])
def test_functional_sdpa_routes_agree_on_nonfinite(name, monkeypatch):
    """F.scaled_dot_product_attention's flash route and its composed route (taken below
    FLASH_MIN_SCORES) give the same nan and inf."""
    F = ndiv.nn.functional
    case, make = NONFINITE[name]
    kwargs = CASES[case][3]
    monkeypatch.setattr(F, "FLASH_MIN_SCORES", 0)
    with np.errstate(all="ignore"):
        got = outputs_and_grads(case, F.scaled_dot_product_attention, make(np.random.default_rng(4), "float64"), kwargs)
        want = outputs_and_grads(case, F._sdpa_composed, make(np.random.default_rng(4), "float64"), kwargs)
    _assert_same(got[0] + got[1], want[0] + want[1], name, rtol=1e-9, atol=1e-10)


def test_sequential_runs_linear_relu_fused_with_the_modules_results(monkeypatch):
    """Sequential(Linear, ReLU, Linear): the first pair runs as one fused node, with the outputs
    and gradients of the modules called one by one; a hook on the ReLU turns the fusion off."""
    ndiv.manual_seed(0)
    net = ndiv.nn.Sequential(ndiv.nn.Linear(4, 6), ndiv.nn.ReLU(), ndiv.nn.Linear(6, 2)).double()
    x = ndiv.tensor(np.random.default_rng(0).standard_normal((5, 3, 4)), requires_grad=True)
    calls = []
    real = cpu.linear_act_fwd
    monkeypatch.setattr(cpu, "linear_act_fwd", lambda *a: calls.append(1) or real(*a))
    got = net(x)
    got.sum().backward()
    got_grads = [x.grad] + [p.grad.copy() for p in net.parameters()]
    assert calls == [1]
    x.grad = None
    for p in net.parameters():
        p.grad = None
    want = x
    for m in net:
        want = m(want)
    want.sum().backward()
    np.testing.assert_allclose(got.data, want.data, rtol=1e-12)
    for g, w in zip(got_grads, [x.grad] + [p.grad for p in net.parameters()]):
        np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-14)
    seen = []
    net[1].register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(x)
    assert calls == [1] and seen == [(5, 3, 6)]

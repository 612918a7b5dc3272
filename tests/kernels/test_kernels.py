"""Every ndiv.kernels.cpu kernel against its ndiv.kernels.reference twin (same name, same args).

A case builds the arguments of a forward kernel and of its backward from shapes; each case runs
in float64 (to 1e-10) and float32 (to 1e-5), on ordinary and edge sizes (length 1, T = 0, ...),
and on rows holding nan, +inf and -inf (compared with equal_nan: a nan must stay a nan, in the
same places), whose reference results are themselves held to torch's.
"""
import math

import numpy as np
import pytest

from ndiv.kernels import cpu, reference

TOL = {"float64": dict(rtol=1e-10, atol=1e-10), "float32": dict(rtol=1e-5, atol=1e-5)}


def lstm_case(rng, dt, T, B, H):
    xw = rng.standard_normal((T, B, 4 * H)).astype(dt)
    h0, c0 = (rng.standard_normal((B, H)).astype(dt) for _ in range(2))
    w = (rng.standard_normal((4 * H, H)) / math.sqrt(H)).astype(dt)
    fwd_args = (xw, h0, c0, w)

    def bwd_args(fwd_out):
        y, c, gates = fwd_out
        gy, gh, gc = rng.standard_normal((T, B, H)).astype(dt), *(rng.standard_normal((B, H)).astype(dt) for _ in range(2))
        return (gy, gh, gc, h0, c0, w, y, c, gates)
    return "lstm_seq", fwd_args, bwd_args


def gru_case(rng, dt, T, B, H):
    xw = rng.standard_normal((T, B, 3 * H)).astype(dt)
    h0 = rng.standard_normal((B, H)).astype(dt)
    w = (rng.standard_normal((3 * H, H)) / math.sqrt(H)).astype(dt)
    b = rng.standard_normal(3 * H).astype(dt)

    def bwd_args(fwd_out):
        y, gates = fwd_out
        return (rng.standard_normal((T, B, H)).astype(dt), rng.standard_normal((B, H)).astype(dt), h0, w, y, gates)
    return "gru_seq", (xw, h0, w, b), bwd_args


def rnn_case(rng, dt, T, B, H, relu, poke=None):
    """poke: (index into xw, value) written before the kernels run (nan/inf through the recurrence)."""
    xw = rng.standard_normal((T, B, H)).astype(dt)
    if poke:
        xw[poke[0]] = poke[1]
    h0 = rng.standard_normal((B, H)).astype(dt)
    w = (rng.standard_normal((H, H)) / math.sqrt(H)).astype(dt)

    def bwd_args(y):
        return (rng.standard_normal((T, B, H)).astype(dt), rng.standard_normal((B, H)).astype(dt), h0, w, y, relu)
    return "rnn_seq", (xw, h0, w, relu), bwd_args


def small_attn_case(rng, dt, N, H, L, D, E, with_prev=True, poke=None, grads="all"):
    """poke: (array 'q', 'k', 'v', 'prev' or 'gout', index, value); grads: which of the outputs'
    gradients reach the backward ('all': out, weights and scores; 'out': out only)."""
    arrs = dict(q=rng.standard_normal((N, H, L, D)), k=rng.standard_normal((N, H, D, L)),
                v=rng.standard_normal((N, H, L, E)),
                prev=rng.standard_normal((N, H, L, L)) if with_prev else np.empty(0),
                gout=rng.standard_normal((N, H, L, E)))
    arrs = {n: a.astype(dt) for n, a in arrs.items()}
    if poke:
        arrs[poke[0]][poke[1]] = poke[2]
    gp = rng.standard_normal((N, H, L, L)).astype(dt) if grads == "all" else np.empty(0, dt)
    gs = rng.standard_normal((N, H, L, L)).astype(dt) if grads == "all" else np.empty(0, dt)
    scale = 0.35

    def bwd_args(fwd_out):
        return (arrs["gout"], gp, gs, arrs["q"], arrs["k"], arrs["v"], fwd_out[1], scale)
    return "small_attn", (arrs["q"], arrs["k"], arrs["v"], arrs["prev"], scale), bwd_args


def batch_norm_case(rng, dt, B, C, S, poke=None, scale=1.0, channels_last=False):
    """poke: (array 'x' or 'gy', index, value) written before the kernels run; channels_last: x is
    a transposed [B, S, C] array (as PatchTST's BatchNorm1d sees it)."""
    x = (scale * rng.standard_normal((B, C, S)) + 3.0).astype(dt)
    if channels_last:
        x = np.ascontiguousarray(x.transpose(0, 2, 1)).transpose(0, 2, 1)
    w, b = rng.standard_normal(C).astype(dt), rng.standard_normal(C).astype(dt)
    gy = rng.standard_normal((B, C, S)).astype(dt)
    if poke:
        dict(x=x, gy=gy)[poke[0]][poke[1]] = poke[2]

    def bwd_args(fwd_out):
        _, mean, invstd = fwd_out
        return (gy, x, mean, invstd, w)
    return "batch_norm", (x, w, b, 1e-5), bwd_args


def linear_act_case(rng, dt, N, D, activation, poke=None):
    """poke: (array 'y0', 'b' or 'gy', index, value) written before the kernels run."""
    y0, b = rng.standard_normal((N, D)).astype(dt), rng.standard_normal(D).astype(dt)
    gy = rng.standard_normal((N, D)).astype(dt)
    if poke:
        dict(y0=y0, b=b, gy=gy)[poke[0]][poke[1]] = poke[2]

    def bwd_args(y):
        return (gy, y, activation)
    # the cpu kernel writes into y0: each twin gets its own copy
    return "linear_act", _FreshCopies(y0, b, activation), bwd_args


class _FreshCopies(tuple):
    """Forward arguments whose arrays are copied at each unpacking (kernels that work in place)."""
    def __new__(cls, *args):
        return super().__new__(cls, args)

    def __iter__(self):
        return (a.copy() if isinstance(a, np.ndarray) else a for a in tuple.__iter__(self))


def conv_case(rng, dt, B, Cin, Cout, L, K, pl, pr, d, poke=None, scale=1.0):
    """poke: (array name 'x', 'w' or 'gy', index, value) written before the kernels run; scale
    multiplies x (long sums stay within float32's tolerance)."""
    x = (scale * rng.standard_normal((B, Cin, L))).astype(dt)
    w = rng.standard_normal((Cout, Cin, K)).astype(dt)
    if poke and poke[0] in "xw":
        dict(x=x, w=w)[poke[0]][poke[1]] = poke[2]

    def bwd_args(fwd_out):
        gy = rng.standard_normal(fwd_out.shape).astype(dt)
        if poke and poke[0] == "gy":
            gy[poke[1]] = poke[2]
        return (gy, x, w, pl, pr, d)
    return "conv1d_dilated", (x, w, pl, pr, d), bwd_args


def conv2d_case(rng, dt, B, C, O, H, W, KH, KW, pads, bias=True, poke=None):
    """poke: (array name 'x', 'w' or 'gy', index, value) written before the kernels run."""
    x = rng.standard_normal((B, C, H, W)).astype(dt)
    w = rng.standard_normal((O, C, KH, KW)).astype(dt)
    b = rng.standard_normal(O).astype(dt) if bias else None
    if poke and poke[0] in "xw":
        dict(x=x, w=w)[poke[0]][poke[1]] = poke[2]

    def bwd_args(fwd_out):
        gy = rng.standard_normal(fwd_out.shape).astype(dt)
        if poke and poke[0] == "gy":
            gy[poke[1]] = poke[2]
        return (gy, x, w, *pads)
    return "conv2d", (x, w, b, *pads), bwd_args


def attn_case(rng, dt, B, H, Lq, Lk, D, causal, mask):
    q = rng.standard_normal((B, H, Lq, D)).astype(dt)
    k, v = (rng.standard_normal((B, H, Lk, D)).astype(dt) for _ in range(2))
    if mask == "none":
        bias = np.zeros((1, 1, 0, 0), dt)
    elif mask == "bool":          # [Lq, Lk] broadcast over B and H, keeping key 0 so no row is empty
        keep = rng.random((Lq, Lk)) > 0.3
        keep[:, 0] = True
        bias = np.where(keep, 0.0, -np.inf).astype(dt)[None, None]
    else:                         # additive float mask per batch row, broadcast over heads
        bias = rng.standard_normal((B, 1, Lq, Lk)).astype(dt)
    scale = 1 / math.sqrt(D)

    def bwd_args(fwd_out):
        out, lse = fwd_out
        return (rng.standard_normal(out.shape).astype(dt), q, k, v, bias, scale, causal, out, lse)
    return "flash_attn", (q, k, v, bias, scale, causal), bwd_args


def rows_case(name, rng, dt, N, D):
    x = (3 * rng.standard_normal((N, D))).astype(dt)

    def bwd_args(y):
        return (rng.standard_normal((N, D)).astype(dt), y)
    return name, (x,), bwd_args


def layer_norm_case(rng, dt, N, D):
    x = (2 + 3 * rng.standard_normal((N, D))).astype(dt)
    w, b = rng.standard_normal(D).astype(dt), rng.standard_normal(D).astype(dt)

    def bwd_args(fwd_out):
        _, mean, rstd = fwd_out
        return (rng.standard_normal((N, D)).astype(dt), x, w, mean, rstd)
    return "layer_norm", (x, w, b, 1e-5), bwd_args


def add_layer_norm_case(rng, dt, N, D, *pokes):
    """pokes: (array 'x' or 'r', index, value), each written before the kernels run."""
    x = (2 + 3 * rng.standard_normal((N, D))).astype(dt)
    r = rng.standard_normal((N, D)).astype(dt)
    w, b = rng.standard_normal(D).astype(dt), rng.standard_normal(D).astype(dt)
    for name, index, value in pokes:
        dict(x=x, r=r)[name][index] = value

    def bwd_args(fwd_out):
        _, s, mean, rstd = fwd_out
        return (rng.standard_normal((N, D)).astype(dt), s, w, mean, rstd)
    return "add_layer_norm", (x, r, w, b, 1e-5), bwd_args


def gelu_case(rng, dt, shape, approximate):
    x = (2 * rng.standard_normal(shape)).astype(dt)
    return "gelu", (x, approximate), lambda y: (rng.standard_normal(shape).astype(dt), x, approximate)


def glu_case(rng, dt, N, n, scale=3):
    x = (scale * rng.standard_normal((N, 2 * n))).astype(dt)
    return "glu", (x,), lambda y: (rng.standard_normal((N, n)).astype(dt), x)


def elu_case(rng, dt, shape, alpha=1.0):
    x = (2 * rng.standard_normal(shape)).astype(dt)
    x.reshape(-1)[:3] = np.array([-1e-6, 1e-3, -0.49], dt)[:x.size]   # expm1's small-x polynomial
    return "elu", (x, alpha), lambda y: (rng.standard_normal(shape).astype(dt), x, alpha)


NAN, INF = np.nan, np.inf
NONFINITE_ROWS = [[1, NAN, 2, 0.5], [1, INF, 2, 0.5], [1, -INF, 2, 0.5], [-INF] * 4, [INF] * 4, [NAN] * 4,
                  [0.3, -1, 2, 1], [-INF, 3, -INF, -INF]]


def nonfinite_rows_case(name, rng, dt):
    """Rows with a nan, a +inf, a -inf, all -inf, all +inf, all nan, none, and one finite entry
    (add_layer_norm: in x, plus a finite r)."""
    x = np.array(NONFINITE_ROWS, dt)
    if name == "add_layer_norm":
        r = rng.standard_normal(x.shape).astype(dt)
        w, b = rng.standard_normal(4).astype(dt), rng.standard_normal(4).astype(dt)
        return name, (x, r, w, b, 1e-5), lambda o: (rng.standard_normal(x.shape).astype(dt), o[1], w, o[2], o[3])
    if name == "layer_norm":
        w, b = rng.standard_normal(4).astype(dt), rng.standard_normal(4).astype(dt)
        return name, (x, w, b, 1e-5), lambda o: (rng.standard_normal(x.shape).astype(dt), x, w, o[1], o[2])
    return name, (x,), lambda y: (rng.standard_normal(x.shape).astype(dt), y)


def gelu_nonfinite_case(rng, dt, approximate):
    x = np.array([NAN, INF, -INF, 0.0, -0.0, 1.5, -30.0, 30.0], dt)
    return "gelu", (x, approximate), lambda y: (rng.standard_normal(x.shape).astype(dt), x, approximate)


def glu_nonfinite_case(rng, dt):
    """nan, +inf and -inf in a (the first half) and in b, and b far out in both tails."""
    a = np.array([NAN, INF, -INF, 1.0, 2.0, 1.0, 0.0, INF, -0.5], dt)
    b = np.array([0.3, 0.3, 0.3, NAN, INF, -INF, 200.0, -200.0, -30.0], dt)
    x = np.stack([np.concatenate([a, b]), np.concatenate([b, a])])
    return "glu", (x,), lambda y: (rng.standard_normal((2, 9)).astype(dt), x)


def elu_nonfinite_case(rng, dt, alpha):
    """32 elements: torch's vectorized loop (a nan input's gradient is nan there, gy in its tail)."""
    x = np.concatenate([[NAN, INF, -INF, 0.0, -0.0, 1.5, -30.0, 100.0, -100.0], rng.standard_normal(23)]).astype(dt)
    return "elu", (x, alpha), lambda y: (rng.standard_normal(x.shape).astype(dt), x, alpha)


def attn_nonfinite_case(rng, dt, L, where, value, pos, mask):
    """One value poked into q, k, v or gout at row pos (column 1) of head 0; mask 'none', 'causal',
    'bool' (key 2 masked for every query), or 'dead' (also every key of query 1 masked)."""
    causal = mask == "causal"
    name, (q, k, v, _, scale, _), _ = attn_case(rng, dt, 1, 2, L, L, 3, causal, "none")
    bias = np.zeros((1, 1, 0, 0), dt)
    if mask in ("bool", "dead"):
        keep = np.ones((L, L), bool)
        keep[:, 2] = False
        if mask == "dead":
            keep[1] = False
        bias = np.where(keep, 0.0, -INF).astype(dt)[None, None]
    gout = rng.standard_normal(q.shape).astype(dt)
    dict(q=q, k=k, v=v, gout=gout)[where][0, 0, pos, 1] = value

    def bwd_args(fwd_out):
        return (gout, q, k, v, bias, scale, causal, *fwd_out)
    return name, (q, k, v, bias, scale, causal), bwd_args


NONFINITE_CASES = {
    **{f"{n}_nonfinite": (lambda r, dt, n=n: nonfinite_rows_case(n, r, dt))
       for n in ("softmax", "log_softmax", "layer_norm", "add_layer_norm")},
    # the sum of a finite x and a nan or inf r, and inf + -inf = nan
    "add_layer_norm_nan_r": lambda r, dt: add_layer_norm_case(r, dt, 3, 7, ("r", (1, 4), NAN)),
    "add_layer_norm_inf_r": lambda r, dt: add_layer_norm_case(r, dt, 3, 7, ("r", (2, 0), INF)),
    "add_layer_norm_-inf_r": lambda r, dt: add_layer_norm_case(r, dt, 3, 7, ("r", (0, 6), -INF)),
    "add_layer_norm_inf_plus_-inf": lambda r, dt: add_layer_norm_case(r, dt, 3, 7, ("x", (1, 2), INF),
                                                                      ("r", (1, 2), -INF)),
    "gelu_erf_nonfinite": lambda r, dt: gelu_nonfinite_case(r, dt, False),
    "gelu_tanh_nonfinite": lambda r, dt: gelu_nonfinite_case(r, dt, True),
    "glu_nonfinite": glu_nonfinite_case,
    "elu_nonfinite": lambda r, dt: elu_nonfinite_case(r, dt, 1.0),
    "elu_alpha_nonfinite": lambda r, dt: elu_nonfinite_case(r, dt, 0.7),
    "attn_dead_row": lambda r, dt: attn_nonfinite_case(r, dt, 5, "q", 0.5, 0, "dead"),
    # a nan or inf entering one step's pre-activation travels through the recurrence (and back)
    "rnn_tanh_nan": lambda r, dt: rnn_case(r, dt, 4, 2, 3, False, ((1, 0, 2), NAN)),
    "rnn_tanh_inf": lambda r, dt: rnn_case(r, dt, 4, 2, 3, False, ((2, 1, 0), INF)),
    "rnn_relu_nan": lambda r, dt: rnn_case(r, dt, 4, 2, 3, True, ((1, 1, 1), NAN)),
    "rnn_relu_-inf": lambda r, dt: rnn_case(r, dt, 4, 2, 3, True, ((3, 0, 2), -INF)),
    "small_attn_nan_q": lambda r, dt: small_attn_case(r, dt, 2, 2, 4, 3, 2, poke=("q", (1, 0, 2, 1), NAN)),
    "small_attn_inf_prev": lambda r, dt: small_attn_case(r, dt, 2, 2, 4, 3, 2, poke=("prev", (0, 1, 3, 0), INF)),
    "small_attn_-inf_prev": lambda r, dt: small_attn_case(r, dt, 2, 2, 4, 3, 2, poke=("prev", (0, 1, 1, 2), -INF)),
    "small_attn_nan_v": lambda r, dt: small_attn_case(r, dt, 2, 2, 4, 3, 2, poke=("v", (1, 1, 2, 0), NAN)),
    "small_attn_inf_gout": lambda r, dt: small_attn_case(r, dt, 2, 2, 4, 3, 2, poke=("gout", (0, 0, 1, 1), INF)),
    "batch_norm_nan_x": lambda r, dt: batch_norm_case(r, dt, 3, 2, 4, ("x", (1, 0, 2), NAN)),
    "batch_norm_inf_x": lambda r, dt: batch_norm_case(r, dt, 3, 2, 4, ("x", (2, 1, 0), INF)),
    "batch_norm_nan_gy": lambda r, dt: batch_norm_case(r, dt, 3, 2, 4, ("gy", (0, 1, 3), NAN)),
    "batch_norm_inf_x_long_S": lambda r, dt: batch_norm_case(r, dt, 2, 2, 20, ("x", (1, 1, 7), -INF)),
    "linear_relu_nan_y0": lambda r, dt: linear_act_case(r, dt, 4, 5, "relu", ("y0", (1, 2), NAN)),
    "linear_relu_-inf_b": lambda r, dt: linear_act_case(r, dt, 4, 5, "relu", ("b", 3, -INF)),
    "linear_relu_+inf_y0": lambda r, dt: linear_act_case(r, dt, 4, 5, "relu", ("y0", (0, 0), INF)),
    "linear_relu_nan_gy": lambda r, dt: linear_act_case(r, dt, 4, 5, "relu", ("gy", (2, 1), NAN)),
    "linear_identity_inf_gy": lambda r, dt: linear_act_case(r, dt, 4, 5, "identity", ("gy", (2, 1), INF)),
    "rnn_relu_+inf_last": lambda r, dt: rnn_case(r, dt, 4, 2, 3, True, ((3, 1, 0), INF)),
}
for _w in ("q", "k", "v", "gout"):
    for _v, _vn in ((NAN, "nan"), (INF, "+inf"), (-INF, "-inf")):
        for _m in ("none", "causal", "bool", "dead"):
            NONFINITE_CASES[f"attn_{_w}_{_vn}_{_m}"] = (
                lambda r, dt, w=_w, v=_v, m=_m: attn_nonfinite_case(r, dt, 5, w, v, 2, m))
    # a nan right of the diagonal (q: row 5, before it), in the key tiles that the causal kernel
    # skips when everything is finite
    NONFINITE_CASES[f"attn_{_w}_nan_causal_tiles"] = (
        lambda r, dt, w=_w: attn_nonfinite_case(r, dt, 300, w, NAN, 5 if w == "q" else 250, "causal"))

CASES = {
    "lstm": lambda r, dt: lstm_case(r, dt, 5, 3, 4),
    "lstm_T1_B1": lambda r, dt: lstm_case(r, dt, 1, 1, 1),
    "lstm_T0": lambda r, dt: lstm_case(r, dt, 0, 2, 3),
    "lstm_H17": lambda r, dt: lstm_case(r, dt, 7, 2, 17),
    "small_attn": lambda r, dt: small_attn_case(r, dt, 3, 4, 5, 3, 2),
    "small_attn_no_prev_out_grad_only": lambda r, dt: small_attn_case(r, dt, 2, 3, 4, 2, 3, False, grads="out"),
    "small_attn_L1": lambda r, dt: small_attn_case(r, dt, 2, 1, 1, 4, 4),
    "batch_norm": lambda r, dt: batch_norm_case(r, dt, 5, 3, 4),
    "batch_norm_S1": lambda r, dt: batch_norm_case(r, dt, 7, 6, 1),
    "batch_norm_long_S": lambda r, dt: batch_norm_case(r, dt, 3, 4, 40),
    "batch_norm_channels_last": lambda r, dt: batch_norm_case(r, dt, 5, 8, 3, channels_last=True),
    "batch_norm_channels_last_long_S": lambda r, dt: batch_norm_case(r, dt, 2, 3, 33, channels_last=True),
    "batch_norm_B1_C1": lambda r, dt: batch_norm_case(r, dt, 1, 1, 3),
    "batch_norm_tiny_var": lambda r, dt: batch_norm_case(r, dt, 4, 2, 3, scale=1e-4),
    "linear_relu": lambda r, dt: linear_act_case(r, dt, 7, 9, "relu"),
    "linear_identity": lambda r, dt: linear_act_case(r, dt, 3, 5, "identity"),
    "linear_relu_N0": lambda r, dt: linear_act_case(r, dt, 0, 4, "relu"),
    "linear_relu_D1": lambda r, dt: linear_act_case(r, dt, 5, 1, "relu"),
    "rnn_tanh": lambda r, dt: rnn_case(r, dt, 5, 3, 4, False),
    "rnn_relu": lambda r, dt: rnn_case(r, dt, 5, 3, 4, True),
    "rnn_T1_B1": lambda r, dt: rnn_case(r, dt, 1, 1, 1, False),
    "rnn_T0": lambda r, dt: rnn_case(r, dt, 0, 2, 3, True),
    "rnn_H17_relu": lambda r, dt: rnn_case(r, dt, 7, 2, 17, True),
    "gru": lambda r, dt: gru_case(r, dt, 5, 3, 4),
    "gru_T1_B1": lambda r, dt: gru_case(r, dt, 1, 1, 1),
    "gru_T0": lambda r, dt: gru_case(r, dt, 0, 2, 3),
    "gru_H17": lambda r, dt: gru_case(r, dt, 7, 2, 17),
    "conv_causal_k2_d4": lambda r, dt: conv_case(r, dt, 2, 3, 5, 11, 2, 4, 0, 4),
    "conv_k3_sym": lambda r, dt: conv_case(r, dt, 1, 2, 3, 9, 3, 1, 1, 1),
    "conv_k1": lambda r, dt: conv_case(r, dt, 2, 4, 2, 6, 1, 0, 0, 1),
    "conv_L1_wide_pad": lambda r, dt: conv_case(r, dt, 1, 1, 1, 1, 3, 5, 2, 2),
    "conv_no_pad_k5_d2": lambda r, dt: conv_case(r, dt, 3, 2, 4, 13, 5, 0, 0, 2),
    # the parallel chunks of the shift-and-add passes (y, then gx, of more than 2**17 elements;
    # short sums, so that float32 rounding stays within the tolerance)
    "conv_parallel_out": lambda r, dt: conv_case(r, dt, 1, 1, 64, 2100, 2, 8, 0, 8, scale=0.1),
    "conv_parallel_in": lambda r, dt: conv_case(r, dt, 2, 256, 1, 300, 2, 8, 0, 8, scale=0.1),
    "conv_nan_x": lambda r, dt: conv_case(r, dt, 2, 3, 4, 10, 2, 2, 0, 2, poke=("x", (1, 2, 4), NAN)),
    # x's last 2 steps meet tap 0 of no real output (causal, d 2): an inf there must not turn
    # tap 0's weight gradient into nan (0 * inf) through the dropped columns
    "conv_inf_x_last_causal": lambda r, dt: conv_case(r, dt, 2, 3, 4, 10, 2, 2, 0, 2, poke=("x", (0, 1, 9), INF)),
    "conv_-inf_x_sym": lambda r, dt: conv_case(r, dt, 2, 2, 3, 9, 3, 1, 1, 1, poke=("x", (1, 0, 0), -INF)),
    # an inf weight meets the zero padding: 0 * inf = nan, as in the reference
    "conv_inf_w": lambda r, dt: conv_case(r, dt, 2, 3, 4, 10, 2, 2, 0, 2, poke=("w", (1, 2, 0), INF)),
    "conv_nan_gy": lambda r, dt: conv_case(r, dt, 2, 3, 4, 10, 2, 2, 0, 2, poke=("gy", (1, 3, 0), NAN)),
    "conv_inf_gy_last": lambda r, dt: conv_case(r, dt, 2, 3, 4, 10, 2, 2, 0, 2, poke=("gy", (0, 0, 9), INF)),
    "conv2d_k3_same": lambda r, dt: conv2d_case(r, dt, 2, 3, 4, 5, 6, 3, 3, (1, 1, 1, 1)),
    "conv2d_11x11_on_3x12": lambda r, dt: conv2d_case(r, dt, 2, 2, 3, 3, 12, 11, 11, (5, 5, 5, 5)),
    "conv2d_asym_pad_nobias": lambda r, dt: conv2d_case(r, dt, 2, 1, 2, 1, 1, 3, 5, (0, 2, 4, 0), bias=False),
    "conv2d_1x1_valid": lambda r, dt: conv2d_case(r, dt, 3, 4, 2, 7, 2, 1, 1, (0, 0, 0, 0)),
    "conv2d_nan_x": lambda r, dt: conv2d_case(r, dt, 2, 2, 2, 4, 3, 3, 3, (1, 1, 1, 1), poke=("x", (1, 0, 2, 1), NAN)),
    "conv2d_inf_x": lambda r, dt: conv2d_case(r, dt, 1, 2, 2, 4, 3, 3, 3, (1, 1, 1, 1), poke=("x", (0, 1, 0, 0), -INF)),
    # an inf in a tap that meets only padding: 0 * inf = nan, as in the reference (no cropping then)
    "conv2d_inf_w_dead_tap": lambda r, dt: conv2d_case(r, dt, 1, 2, 2, 2, 3, 11, 11, (5, 5, 5, 5), poke=("w", (0, 1, 0, 0), INF)),
    "conv2d_nan_gy": lambda r, dt: conv2d_case(r, dt, 1, 2, 2, 2, 3, 11, 11, (5, 5, 5, 5), poke=("gy", (0, 1, 1, 2), NAN)),
    "attn": lambda r, dt: attn_case(r, dt, 2, 3, 7, 7, 4, False, "none"),
    "attn_causal_tiles": lambda r, dt: attn_case(r, dt, 1, 2, 300, 300, 8, True, "none"),
    "attn_tiles_bool": lambda r, dt: attn_case(r, dt, 1, 1, 200, 260, 5, False, "bool"),
    "attn_float_mask_causal": lambda r, dt: attn_case(r, dt, 2, 2, 9, 13, 3, True, "float"),
    "attn_L1": lambda r, dt: attn_case(r, dt, 1, 1, 1, 1, 1, False, "none"),
    "softmax": lambda r, dt: rows_case("softmax", r, dt, 6, 9),
    "softmax_D1": lambda r, dt: rows_case("softmax", r, dt, 3, 1),
    "softmax_N0": lambda r, dt: rows_case("softmax", r, dt, 0, 4),
    "log_softmax": lambda r, dt: rows_case("log_softmax", r, dt, 6, 9),
    "log_softmax_D1": lambda r, dt: rows_case("log_softmax", r, dt, 3, 1),
    "layer_norm": lambda r, dt: layer_norm_case(r, dt, 5, 8),
    "layer_norm_D1": lambda r, dt: layer_norm_case(r, dt, 3, 1),
    "layer_norm_N0": lambda r, dt: layer_norm_case(r, dt, 0, 3),
    **{f"add_layer_norm_N{N}_D{D}": (lambda r, dt, N=N, D=D: add_layer_norm_case(r, dt, N, D))
       for N, D in ((1, 1), (5, 1), (1, 7), (6, 7), (1, 64), (300, 64), (3, 512), (300, 512))},
    "add_layer_norm_N0": lambda r, dt: add_layer_norm_case(r, dt, 0, 3),
    "gelu_erf": lambda r, dt: gelu_case(r, dt, (4, 5), False),
    "gelu_tanh": lambda r, dt: gelu_case(r, dt, (3, 2, 7), True),
    "gelu_empty": lambda r, dt: gelu_case(r, dt, (0,), True),
    "glu": lambda r, dt: glu_case(r, dt, 5, 3),
    "glu_n1": lambda r, dt: glu_case(r, dt, 3, 1),
    "glu_N0": lambda r, dt: glu_case(r, dt, 0, 4),
    "glu_wide": lambda r, dt: glu_case(r, dt, 300, 128, scale=8),
    "elu": lambda r, dt: elu_case(r, dt, (4, 5)),
    "elu_alpha": lambda r, dt: elu_case(r, dt, (3, 2, 7), alpha=0.3),
    "elu_empty": lambda r, dt: elu_case(r, dt, (0,)),
    "elu_large": lambda r, dt: elu_case(r, dt, (70_000,), alpha=1.7),
    **NONFINITE_CASES,
}


# outputs that are float64 whatever the input dtype: batch norm's statistics (mean, invstd)
FLOAT64_OUTPUTS = {("batch_norm_fwd", 1), ("batch_norm_fwd", 2)}


def assert_close_tree(got, want, dt, what):
    got, want = (got, want) if isinstance(want, tuple) else ((got,), (want,))
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        g, w = np.asarray(g), np.asarray(w)
        assert g.shape == w.shape, f"{what}[{i}]: shape {g.shape} != {w.shape}"
        expected = "float64" if (what, i) in FLOAT64_OUTPUTS else dt
        assert g.dtype == np.dtype(expected), f"{what}[{i}]: dtype {g.dtype}, expected {expected}"
        np.testing.assert_allclose(g, w, **TOL[dt], equal_nan=True, err_msg=f"{what}[{i}]")


@pytest.mark.parametrize("dt", ["float64", "float32"])
@pytest.mark.parametrize("case", list(CASES))
def test_cpu_matches_reference(case, dt):
    name, fwd_args, make_bwd_args = CASES[case](np.random.default_rng(hash(case) % 2**32), dt)
    want = getattr(reference, f"{name}_fwd")(*fwd_args)
    got = getattr(cpu, f"{name}_fwd")(*fwd_args)
    assert_close_tree(got, want, dt, f"{name}_fwd")
    bwd_args = make_bwd_args(want)          # the backward of both twins sees the same saved arrays
    assert_close_tree(getattr(cpu, f"{name}_bwd")(*bwd_args), getattr(reference, f"{name}_bwd")(*bwd_args),
                      dt, f"{name}_bwd")


def test_every_reference_kernel_has_a_cpu_twin():
    assert all(callable(getattr(cpu, name)) for name in reference.KERNELS)


def test_attention_fully_masked_row_gives_zero_not_nan():
    rng = np.random.default_rng(1)
    q, k, v = (rng.standard_normal((1, 1, 3, 2)) for _ in range(3))
    bias = np.zeros((1, 1, 3, 3))
    bias[0, 0, 1] = -np.inf
    out, lse = cpu.flash_attn_fwd(q, k, v, bias, 1.0, False)
    assert np.all(out[0, 0, 1] == 0) and lse[0, 0, 1] == -np.inf
    grads = cpu.flash_attn_bwd(np.ones_like(out), q, k, v, bias, 1.0, False, out, lse)
    assert all(np.isfinite(g).all() for g in grads)


def torch_twin(t, name, fwd_args, bwd_args):
    """torch's results for a reference kernel's arguments: (forward outputs, gradients), where the
    gradients are those of sum(forward output * bwd_args[0]). Attention runs torch's math backend
    (the composed formula; torch's fused CPU kernel drops a nan from its row max)."""
    T = lambda a: t.tensor(a, requires_grad=True)  # noqa: E731
    gy = t.tensor(bwd_args[0])
    if name in ("softmax", "log_softmax"):
        x = T(fwd_args[0])
        y = (t.softmax if name == "softmax" else t.log_softmax)(x, -1)
        y.backward(gy)
        return [y], [x.grad]
    if name == "layer_norm":
        x, w, b = (T(a) for a in fwd_args[:3])
        y = t.nn.functional.layer_norm(x, (x.shape[1],), w, b, fwd_args[3])
        y.backward(gy)     # (torch's saved mean is nan, ours inf, for a row with an inf: not compared)
        return [y], [x.grad, w.grad, b.grad]
    if name == "add_layer_norm":           # one gradient for x and r: ours is x's (r's is the same)
        x, r, w, b = (T(a) for a in fwd_args[:4])
        s = x + r
        y = t.nn.functional.layer_norm(s, (x.shape[1],), w, b, fwd_args[4])
        y.backward(gy)
        t.testing.assert_close(x.grad, r.grad, rtol=0, atol=0, equal_nan=True)
        return [y, s], [x.grad, w.grad, b.grad]
    if name == "gelu":
        x = T(fwd_args[0])
        y = t.nn.functional.gelu(x, approximate="tanh" if fwd_args[1] else "none")
        y.backward(gy)
        return [y], [x.grad]
    if name == "glu":
        x = T(fwd_args[0])
        y = t.nn.functional.glu(x, -1)
        y.backward(gy)
        return [y], [x.grad]
    if name == "elu":
        x = T(fwd_args[0])
        y = t.nn.functional.elu(x, fwd_args[1])
        y.backward(gy)
        return [y], [x.grad]
    if name == "small_attn":
        q, k, v = (T(a) for a in fwd_args[:3])
        prev, scale = fwd_args[3], fwd_args[4]
        sc = (q @ k) * scale
        if prev.size:
            prev = T(prev)
            sc = sc + prev
        p = t.softmax(sc, -1)
        out = p @ v
        gout, gp, gs = bwd_args[:3]
        loss = (out * gy).sum()
        if gp.size:
            loss = loss + (p * t.tensor(gp)).sum() + (sc * t.tensor(gs)).sum()
        loss.backward()
        g_prev = prev.grad if isinstance(prev, t.Tensor) else None
        grads = [q.grad, k.grad, v.grad]
        return [out, p, sc], grads + ([g_prev] if g_prev is not None else [])
    if name == "batch_norm":
        x, w, b = (T(a) for a in fwd_args[:3])
        y = t.nn.functional.batch_norm(x, None, None, w, b, training=True, eps=fwd_args[3])
        y.backward(gy)
        return [y], [x.grad, w.grad, b.grad]
    if name == "linear_act":
        y0, b = (T(a) for a in fwd_args[:2])
        y = y0 + b
        y = t.relu(y) if fwd_args[2] == "relu" else y
        y.backward(gy)
        return [y], [y0.grad, b.grad]
    if name == "rnn_seq":
        xw, h0, w = (T(a) for a in fwd_args[:3])
        act = t.relu if fwd_args[3] else t.tanh
        h, ys = h0, []
        for i in range(xw.shape[0]):
            h = act(xw[i] + h @ w.T)
            ys.append(h)
        y = t.stack(ys)
        ((y * gy).sum() + (h * t.tensor(bwd_args[1])).sum()).backward()
        return [y], [xw.grad, h0.grad, w.grad]
    from torch.nn.attention import SDPBackend, sdpa_kernel
    q, k, v = (T(a) for a in fwd_args[:3])
    bias, scale, causal = fwd_args[3:]
    with sdpa_kernel(SDPBackend.MATH):
        out = t.nn.functional.scaled_dot_product_attention(
            q, k, v, attn_mask=t.tensor(bias) if bias.size else None, is_causal=causal, scale=scale)
    out.backward(gy)
    return [out], [q.grad, k.grad, v.grad]


# An infinite gout: the kernels' delta = rowsum(gout * out) (FlashAttention-2) is +-inf where
# torch's rowsum(dP * P) adds infinities of both signs (nan); both are non-finite, not compared.
@pytest.mark.parametrize("case", [c for c in NONFINITE_CASES if not (c.startswith("attn_gout") and "inf" in c)])
def test_reference_matches_torch_on_nonfinite(case):
    """The reference twins propagate nan and inf as torch does (float64; in float32 torch's own
    vectorized and scalar GELU disagree on gelu(+inf))."""
    torch = pytest.importorskip("torch")
    name, fwd_args, make_bwd_args = CASES[case](np.random.default_rng(hash(case) % 2**32), "float64")
    want = getattr(reference, f"{name}_fwd")(*fwd_args)
    bwd_args = make_bwd_args(want)
    t_fwd, t_grads = torch_twin(torch, name, fwd_args, bwd_args)
    want = want if isinstance(want, tuple) else (want,)
    grads = getattr(reference, f"{name}_bwd")(*bwd_args)
    grads = grads if isinstance(grads, tuple) else (grads,)
    for what, got, expected in [("fwd", want, t_fwd), ("bwd", grads, t_grads)]:
        for i, (g, w) in enumerate(zip(got, expected)):
            np.testing.assert_allclose(g, w.detach().numpy(), rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=f"{name}_{what}[{i}]")


def test_softmax_of_a_row_with_a_nan_is_nan():
    for dt in ("float32", "float64"):
        y = cpu.softmax_fwd(np.array([[1.0, NAN, 2.0], [1.0, 2.0, 3.0]], dt))
        assert np.isnan(y[0]).all() and np.isfinite(y[1]).all(), dt


ROW_CASES = [c for c in CASES if c.split("_")[0] in ("softmax", "log", "layer", "add", "gelu", "glu", "elu")]


@pytest.mark.parametrize("case", ROW_CASES)
def test_parallel_twin_matches_reference(case, monkeypatch):
    """Small inputs run the serial twin of a row kernel; with the threshold at 0 the same cases
    run the parallel kernel (prange over chunks), which must agree too. Two chunks whatever
    NUMBA_NUM_THREADS is: with one thread the parallel kernel still runs, its chunks in turn."""
    import ndiv.kernels.cpu.norm as norm
    monkeypatch.setattr(norm, "_chunks", lambda n, size: max(1, min(n, 2)))
    calls = []
    for name in ("_softmax_fwd", "_softmax_bwd", "_layer_norm_fwd", "_layer_norm_bwd", "_add_layer_norm_fwd", "_gelu", "_glu",
                 "_elu"):
        twins = getattr(norm, name)
        monkeypatch.setattr(twins, "parallel", (lambda k: lambda *a: calls.append(a[-1]) or k(*a))(twins.parallel))
    test_cpu_matches_reference(case, "float64")
    if not any(k in case for k in ("N0", "N1_", "empty")):           # one row: one chunk, the serial twin
        assert calls, "the parallel kernel did not run"

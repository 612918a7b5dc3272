"""nn_ops primitives against central differences, dropout statistics, and error messages."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
import ndiv.nn as nn
import ndiv.nn.functional as F
from ndiv.autograd import gradcheck
from ndiv.autograd.ops import nn_ops


def t64(rng, *shape):
    return ndiv.tensor(rng.standard_normal(shape), requires_grad=True)


GRADCHECKS = {
    "linear": (lambda x, w, b: F.linear(x, w, b), [(2, 3, 4), (5, 4), (5,)]),
    "conv1d-groups-stride": (lambda x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2),
                             [(2, 4, 9), (6, 2, 3), (6,)]),
    "conv1d-same": (lambda x, w: F.conv1d(x, w, padding="same"), [(1, 2, 7), (3, 2, 4)]),
    "conv2d": (lambda x, w, b: F.conv2d(x, w, b, stride=(2, 1), padding=1), [(2, 2, 5, 4), (3, 2, 3, 2), (3,)]),
    "max_pool1d": (lambda x: F.max_pool1d(x, 3, 2, padding=1, ceil_mode=True), [(2, 3, 8)]),
    "avg_pool1d": (lambda x: F.avg_pool1d(x, 3, 2, padding=1, ceil_mode=True, count_include_pad=False), [(2, 3, 8)]),
    "embedding": (lambda w: F.embedding(np.array([[0, 2], [2, 4]]), w, padding_idx=1), [(5, 3)]),
    "interpolate": (lambda x: F.interpolate(x, size=7, mode="linear"), [(2, 3, 4)]),
    "pad-circular": (lambda x: F.pad(x, (2, 1), mode="circular"), [(2, 3, 4)]),
    "sdpa-causal": (lambda q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True), [(2, 4, 3)] * 3),
    "layer_norm": (lambda x, w, b: F.layer_norm(x, (4,), w, b), [(3, 4), (4,), (4,)]),
    "add_layer_norm": (lambda x, r, w, b: F.add_layer_norm(x, r, (4,), w, b), [(2, 3, 4), (2, 3, 4), (4,), (4,)]),
    "batch_norm-train": (lambda x, w, b: F.batch_norm(x, None, None, w, b, training=True), [(4, 3, 2), (3,), (3,)]),
    "gelu": (lambda x: F.gelu(x), [(3, 4)]),
    "split": (lambda x: nn_ops.Split.apply(x, sizes=(1, 3, 2), axis=1), [(2, 6, 3)]),
    "unbind": (lambda x: nn_ops.Unbind.apply(x)[::2], [(3, 2, 2)]),
    "lstm-recurrence-reverse": (lambda x, h, c, wi, wh, bi, bh: nn.rnn.recurrence_composed(
        "LSTM", x, h, c, wi, wh, bi, bh, reverse=True), [(3, 2, 2), (2, 3), (2, 3), (12, 2), (12, 3), (12,), (12,)]),
}


@pytest.mark.parametrize("name", sorted(GRADCHECKS))
def test_gradcheck(name):
    fn, shapes = GRADCHECKS[name]
    rng = np.random.default_rng(0)
    assert gradcheck(fn, [t64(rng, *s) for s in shapes])


def test_gradcheck_catches_a_wrong_conv_backward():
    class BadConv(nn_ops.ConvNd):
        def backward(self, gy):
            gx, gw, gb = super().backward(gy)
            return gx, gw * 1.01, gb

    rng = np.random.default_rng(0)
    fn = lambda x, w: BadConv.apply(x, w, stride=(1,), padding=((0, 0),), dilation=(1,), groups=1)  # noqa: E731
    with pytest.raises(AssertionError):
        gradcheck(fn, [t64(rng, 1, 2, 5), t64(rng, 2, 2, 3)])


def test_dropout_is_seeded_scaled_and_off_in_eval():
    x = ndiv.ones(200, 50, requires_grad=True)
    ndiv.manual_seed(3)
    y1 = F.dropout(x, 0.3)
    ndiv.manual_seed(3)
    y2 = F.dropout(x, 0.3)
    np.testing.assert_array_equal(y1.numpy(), y2.numpy())
    vals = np.unique(y1.numpy())
    np.testing.assert_allclose(vals, [0.0, 1 / 0.7], rtol=1e-6)
    assert abs((y1.numpy() == 0).mean() - 0.3) < 0.02
    y1.sum().backward()
    np.testing.assert_array_equal(x.grad, y1.numpy())  # the gradient uses the same mask
    d = nn.Dropout(0.5).eval()
    assert d(x) is x
    with pytest.raises(ValueError, match="between 0 and 1, but got 1.5"):
        nn.Dropout(1.5)


def test_lstm_dropout_between_layers_only_in_training():
    ndiv.manual_seed(0)
    m = nn.LSTM(3, 4, num_layers=2, dropout=0.5)
    x = ndiv.randn(5, 2, 3)
    a = m(x)[0].numpy()
    m.eval()
    b, c = m(x)[0].numpy(), m(x)[0].numpy()
    np.testing.assert_array_equal(b, c)
    assert not np.allclose(a, b)


def test_init_distributions_follow_torch_defaults():
    ndiv.manual_seed(0)
    lin = nn.Linear(50, 400)
    bound = 1 / np.sqrt(50)  # kaiming_uniform(a=sqrt(5)) gives U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    w = lin.weight.numpy()
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.98 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 0.01 * bound
    assert np.abs(lin.bias.numpy()).max() <= bound
    conv = nn.Conv1d(4, 8, 5)
    assert np.abs(conv.weight.numpy()).max() <= 1 / np.sqrt(20)
    lstm = nn.LSTM(3, 16)
    assert all(np.abs(p.numpy()).max() <= 0.25 for p in lstm.parameters())
    emb = nn.Embedding(1000, 20, padding_idx=0)
    assert abs(emb.weight.numpy()[1:].std() - 1) < 0.03 and not emb.weight.numpy()[0].any()
    mha = nn.MultiheadAttention(16, 2)
    a = np.sqrt(6 / (16 + 48))
    assert np.abs(mha.in_proj_weight.numpy()).max() <= a and not mha.in_proj_bias.numpy().any()


def test_init_functions():
    torch = pytest.importorskip("torch")
    for nl, p in (("relu", None), ("tanh", None), ("leaky_relu", 0.2), ("selu", None), ("linear", None)):
        assert nn.init.calculate_gain(nl, p) == pytest.approx(torch.nn.init.calculate_gain(nl, p))
    ndiv.manual_seed(1)
    w = nn.Parameter(np.empty((6, 10), np.float64))
    nn.init.orthogonal_(w, gain=2.0)
    np.testing.assert_allclose(w.numpy() @ w.numpy().T, 4 * np.eye(6), atol=1e-10)
    big = nn.Parameter(np.empty((200, 100), np.float64))
    nn.init.trunc_normal_(big, mean=0.5, std=1.0, a=-1.0, b=1.5)
    assert big.numpy().min() >= -1.0 and big.numpy().max() <= 1.5
    nn.init.kaiming_normal_(big, mode="fan_out", nonlinearity="relu")
    assert abs(big.numpy().std() - np.sqrt(2 / 200)) < 0.005
    nn.init.xavier_normal_(big)
    assert abs(big.numpy().std() - np.sqrt(2 / 300)) < 0.005
    ndiv.manual_seed(5)
    a = nn.Linear(3, 3).weight.numpy().copy()
    ndiv.manual_seed(5)
    np.testing.assert_array_equal(nn.Linear(3, 3).weight.numpy(), a)
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        nn.init.xavier_uniform_(nn.Parameter(np.zeros(3)))
    with pytest.raises(ValueError, match="Unsupported nonlinearity"):
        nn.init.calculate_gain("swish")


ERRORS = [
    (lambda: nn.Linear(4, 3)(ndiv.randn(2, 5)), ValueError, r"input of shape \(2, 5\) must end in in_features=4"),
    (lambda: nn.Conv1d(3, 4, 3, groups=2), ValueError, r"divisible by groups \(2\)"),
    (lambda: nn.Conv1d(2, 4, 3)(ndiv.randn(1, 3, 8)), ValueError, "input has 3 channels"),
    (lambda: nn.Conv1d(2, 4, 3, stride=2, padding="same"), ValueError, "not supported for strided"),
    (lambda: nn.Conv1d(2, 4, 3, padding_mode="mirror"), ValueError, "padding_mode must be one of"),
    (lambda: F.conv1d(ndiv.randn(1, 2, 2), ndiv.randn(3, 2, 5)), ValueError, "smaller than the dilated kernel"),
    (lambda: nn.MultiheadAttention(10, 3), ValueError, r"embed_dim \(10\) must be divisible by num_heads \(3\)"),
    (lambda: nn.LSTM(3, 4)(ndiv.randn(5, 2, 6)), ValueError, "Expected 3, got 6"),
    (lambda: nn.GRU(3, 4)(ndiv.randn(5, 2, 3), ndiv.randn(2, 2, 4)), ValueError, r"expected hx of shape \(1, 2, 4\)"),
    (lambda: nn.LSTM(3, 4)(ndiv.randn(5, 2, 3), ndiv.randn(1, 2, 4)), TypeError, r"tuple \(h0, c0\)"),
    (lambda: nn.RNN(3, 4, nonlinearity="sigmoid"), ValueError, "'tanh' or 'relu'"),
    (lambda: nn.GRU(3, 4)(ndiv.randn(0, 2, 3)), ValueError, "sequence is empty"),
    (lambda: nn.LayerNorm(5)(ndiv.randn(2, 4)), ValueError, "does not end in normalized_shape"),
    (lambda: nn.LayerNorm(4).add_forward(ndiv.randn(2, 4), ndiv.randn(1, 4)), ValueError,
     r"x \(2, 4\) and residual \(1, 4\) must have the same shape"),
    (lambda: F.add_layer_norm(ndiv.randn(2, 4), ndiv.randn(2, 4), 5), ValueError, "does not end in normalized_shape"),
    (lambda: nn.BatchNorm1d(3)(ndiv.randn(1, 3)), ValueError, "more than 1 value per channel"),
    (lambda: nn.BatchNorm2d(3)(ndiv.randn(2, 3, 4)), ValueError, "expected 4D input"),
    (lambda: F.mse_loss(ndiv.randn(3), ndiv.randn(4)), ValueError, r"input shape \(3,\) and target shape \(4,\)"),
    (lambda: F.l1_loss(ndiv.randn(3), ndiv.randn(3), reduction="avg"), ValueError, "reduction must be"),
    (lambda: F.embedding(np.array([5]), ndiv.randn(5, 2)), IndexError, "num_embeddings=5"),
    (lambda: F.embedding(np.array([0.5]), ndiv.randn(5, 2)), TypeError, "integer indices"),
    (lambda: F.interpolate(ndiv.randn(1, 2, 4), size=3, mode="area"), NotImplementedError, "not supported"),
    (lambda: F.interpolate(ndiv.randn(1, 2, 4)), ValueError, "exactly one of size and scale_factor"),
    (lambda: F.max_pool1d(ndiv.randn(1, 2, 8), 2, padding=2), ValueError, "at most half"),
    (lambda: F.gelu(ndiv.randn(2), approximate="fast"), ValueError, "'none' or 'tanh'"),
    (lambda: nn.Softmax()(ndiv.randn(2, 3)), ValueError, "give dim explicitly"),
    (lambda: nn.TransformerEncoderLayer(8, 2, activation="swish"), ValueError, "relu/gelu"),
]


@pytest.mark.parametrize("i", range(len(ERRORS)))
def test_error_messages(i):
    fn, exc, pattern = ERRORS[i]
    with pytest.raises(exc, match=pattern):
        fn()


def test_fully_masked_attention_row_gives_zeros_not_nan():
    q = ndiv.randn(1, 2, 4, requires_grad=True)
    mask = np.array([[False, False], [True, False]])  # row 0 may attend to nothing
    out = F.scaled_dot_product_attention(q, q, q, attn_mask=mask)
    assert np.isfinite(out.numpy()).all() and not out.numpy()[0, 0].any()
    out.sum().backward()
    assert np.isfinite(q.grad).all()


@pytest.mark.parametrize("cls", [nn.LayerNorm, nn.RMSNorm])
def test_norm_add_forward_is_the_norm_of_the_sum(cls, monkeypatch):
    """norm.add_forward(a, b) gives norm(a + b) and its gradients; LayerNorm runs the fused
    kernel (RMSNorm, with no fused kernel, adds then normalizes); a hook on the module sees the sum."""
    from ndiv.kernels import cpu
    calls = []
    real = cpu.add_layer_norm_fwd
    monkeypatch.setattr(cpu, "add_layer_norm_fwd", lambda *a: calls.append(1) or real(*a))
    ndiv.manual_seed(0)
    norm = cls(6).double()
    norm.weight.data[:] = np.linspace(0.5, 2, 6)
    arrays = np.random.default_rng(0).standard_normal((2, 3, 4, 6))
    results = []
    for fused in (True, False):
        a, b = (ndiv.tensor(v, requires_grad=True) for v in arrays)
        y = norm.add_forward(a, b) if fused else norm(a + b)
        (y * ndiv.tensor(np.arange(72.0).reshape(3, 4, 6))).sum().backward()
        results.append([y.numpy(), a.grad, b.grad, norm.weight.grad.copy()])
        norm.weight.grad = None
    for got, want in zip(*results):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    assert calls == ([1] if cls is nn.LayerNorm else [])
    seen = []
    norm.register_forward_hook(lambda m, args, out: seen.append(args[0]))
    a, b = ndiv.randn(2, 6).double(), ndiv.randn(2, 6).double()
    np.testing.assert_allclose(norm.add_forward(a, b).numpy(), norm(a + b).numpy(), rtol=1e-12)
    np.testing.assert_array_equal(seen[0].numpy(), (a + b).numpy())


def _max_pool_reference(x, k, s, p, d, out):
    """Window by window: the max, and the first tap holding it (the first NaN when there is one)."""
    xpad = np.full(x.shape[:-1] + ((out - 1) * s + d * (k - 1) + 1 + p,), -np.inf)
    xpad[..., p:p + x.shape[-1]] = x
    y, arg = np.empty(x.shape[:-1] + (out,)), np.empty(x.shape[:-1] + (out,), int)
    for idx in np.ndindex(x.shape[:-1]):
        for i in range(out):
            taps = [xpad[idx + (i * s + j * d,)] for j in range(k)]
            nans = [j for j, v in enumerate(taps) if np.isnan(v)]
            arg[idx + (i,)] = nans[0] if nans else int(np.argmax(taps))
            y[idx + (i,)] = taps[arg[idx + (i,)]]
    return y, arg, xpad


@pytest.mark.parametrize("special", ["ties", "nan", "inf", "nan-and-inf"])
@pytest.mark.parametrize("k,s,p,d,ceil", [(2, 2, 0, 1, True), (3, 2, 1, 2, False), (5, 5, 0, 1, True)])
def test_max_pool1d_ties_nan_inf_match_the_window_reference(special, k, s, p, d, ceil):
    """The pass-per-tap max pool against a window-by-window reference: values, and the gradient
    routed to the first maximal tap (the first NaN), with ties, NaN and +-inf in x."""
    rng = np.random.default_rng(1)
    x = rng.integers(-2, 3, size=(2, 3, 13)).astype(np.float64)      # small integers: many ties
    if "nan" in special:
        x[0, 1, [2, 3, 7]] = np.nan
    if "inf" in special:
        x[1, 0, [1, 4]] = np.inf
        x[1, 2, 5] = -np.inf
    out = nn_ops.pool_out_size(13, k, s, p, d, ceil)
    want, arg, xpad = _max_pool_reference(x, k, s, p, d, out)
    xt = ndiv.tensor(x, requires_grad=True)
    y = F.max_pool1d(xt, k, s, padding=p, dilation=d, ceil_mode=ceil)
    np.testing.assert_array_equal(y.numpy(), want)
    gy = rng.standard_normal(want.shape)
    y.backward(ndiv.tensor(gy))
    gpad = np.zeros_like(xpad)
    for idx in np.ndindex(want.shape):
        gpad[idx[:-1] + (idx[-1] * s + arg[idx] * d,)] += gy[idx]
    np.testing.assert_allclose(xt.grad, gpad[..., p:p + 13], rtol=1e-12, atol=1e-12)   # sums in another order

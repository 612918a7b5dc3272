"""Every layer and functional against PyTorch: outputs and gradients of inputs and parameters,
in float64 (rtol 1e-8) and float32 (rtol 1e-5), with torch's state_dict loaded into ndiv."""
from __future__ import annotations

import numpy as np
import pytest

from tests.nn.nn_parity import Case, run_case

torch = pytest.importorskip("torch")


def randn(*shape):
    return lambda rng: [rng.standard_normal(shape)]


def causal_bool(L, S):  # True = masked out (MultiheadAttention's convention)
    return np.triu(np.ones((L, S), dtype=bool), 1)


def kpm(B, S):  # True = padding; no row entirely padded
    m = np.zeros((B, S), dtype=bool)
    m[0, -2:] = True
    m[1, -1] = True
    return m


LAYERS = [
    Case("Linear", lambda nn: nn.Linear(5, 3), randn(4, 5)),
    Case("Linear-3d-nobias", lambda nn: nn.Linear(5, 3, bias=False), randn(2, 4, 5)),
    Case("Bilinear", lambda nn: nn.Bilinear(3, 4, 2), lambda r: [r.standard_normal((5, 3)), r.standard_normal((5, 4))]),
    Case("Conv1d", lambda nn: nn.Conv1d(3, 4, 3), randn(2, 3, 9)),
    Case("Conv1d-stride-pad-dil", lambda nn: nn.Conv1d(3, 4, 3, stride=2, padding=2, dilation=2), randn(2, 3, 11)),
    Case("Conv1d-groups", lambda nn: nn.Conv1d(4, 6, 2, groups=2, bias=False), randn(2, 4, 7)),
    Case("Conv1d-depthwise", lambda nn: nn.Conv1d(3, 3, 3, groups=3, padding=1), randn(2, 3, 6)),
    Case("Conv1d-same-even", lambda nn: nn.Conv1d(2, 3, 4, padding="same", dilation=2), randn(2, 2, 10)),
    Case("Conv1d-circular", lambda nn: nn.Conv1d(2, 3, 3, padding=1, padding_mode="circular"), randn(2, 2, 8)),
    Case("Conv1d-replicate", lambda nn: nn.Conv1d(2, 3, 3, padding=2, padding_mode="replicate"), randn(2, 2, 8)),
    Case("Conv1d-reflect", lambda nn: nn.Conv1d(2, 3, 3, padding=1, padding_mode="reflect"), randn(2, 2, 8)),
    Case("Conv1d-unbatched", lambda nn: nn.Conv1d(2, 3, 3), randn(2, 8)),
    Case("Conv2d", lambda nn: nn.Conv2d(3, 4, (3, 2), stride=(2, 1), padding=1, dilation=(1, 2)), randn(2, 3, 7, 6)),
    Case("Conv2d-groups-same", lambda nn: nn.Conv2d(4, 4, 3, padding="same", groups=2), randn(2, 4, 5, 5)),
    Case("Conv2d-fused-pad", lambda nn: nn.Conv2d(3, 4, (3, 5), padding=(1, 2)), randn(2, 3, 4, 6)),
    Case("Conv2d-fused-same-even", lambda nn: nn.Conv2d(2, 3, (2, 4), padding="same", bias=False), randn(2, 2, 3, 5)),
    Case("Conv2d-fused-11x11-short-grid", lambda nn: nn.Conv2d(2, 3, 11, padding=5), randn(2, 2, 2, 7)),
    Case("LayerNorm", lambda nn: nn.LayerNorm(6), randn(3, 4, 6)),
    Case("LayerNorm-2d-shape", lambda nn: nn.LayerNorm((3, 6), eps=1e-3), randn(2, 3, 6)),
    Case("LayerNorm-noaffine", lambda nn: nn.LayerNorm(6, elementwise_affine=False), randn(5, 6)),
    Case("BatchNorm1d-train-2d", lambda nn: nn.BatchNorm1d(4), randn(6, 4), train=True),
    Case("BatchNorm1d-train-3d", lambda nn: nn.BatchNorm1d(4, momentum=None), randn(3, 4, 5), train=True),
    Case("BatchNorm1d-eval", lambda nn: nn.BatchNorm1d(4), randn(3, 4, 5)),
    Case("BatchNorm1d-noaffine", lambda nn: nn.BatchNorm1d(4, affine=False, track_running_stats=False), randn(6, 4)),
    Case("BatchNorm2d-train", lambda nn: nn.BatchNorm2d(3), randn(2, 3, 4, 4), train=True),
    Case("Dropout-eval", lambda nn: nn.Dropout(0.5), randn(4, 5)),
    Case("Embedding", lambda nn: nn.Embedding(10, 4, padding_idx=1),
         lambda r: [np.array([[1, 2, 3], [3, 1, 9]], dtype=np.int64)], fwd=lambda F, m, i: m(i) * 1.0),
    Case("Identity", lambda nn: nn.Sequential(nn.Identity(), nn.Linear(3, 2)), randn(4, 3)),
    # recurrent
    Case("RNN-tanh", lambda nn: nn.RNN(3, 5), randn(6, 2, 3)),
    Case("RNN-relu-2layer-bf", lambda nn: nn.RNN(3, 5, num_layers=2, nonlinearity="relu", batch_first=True), randn(2, 6, 3)),
    Case("RNN-bidir-h0", lambda nn: nn.RNN(3, 4, bidirectional=True), lambda r: [r.standard_normal((5, 2, 3)), r.standard_normal((2, 2, 4))]),
    Case("LSTM", lambda nn: nn.LSTM(3, 5), randn(6, 2, 3)),
    Case("LSTM-2layer-bidir-h0c0", lambda nn: nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True),
         lambda r: [r.standard_normal((2, 5, 3)), r.standard_normal((4, 2, 4)), r.standard_normal((4, 2, 4))],
         fwd=lambda F, m, x, h, c: m(x, (h, c))),
    Case("LSTM-nobias-unbatched", lambda nn: nn.LSTM(3, 4, bias=False), randn(5, 3)),
    Case("GRU", lambda nn: nn.GRU(3, 5), randn(6, 2, 3)),
    Case("GRU-2layer-bidir-h0", lambda nn: nn.GRU(3, 4, num_layers=2, bidirectional=True),
         lambda r: [r.standard_normal((5, 2, 3)), r.standard_normal((4, 2, 4))]),
    Case("LSTMCell", lambda nn: nn.LSTMCell(3, 4), lambda r: [r.standard_normal((2, 3)), r.standard_normal((2, 4)), r.standard_normal((2, 4))],
         fwd=lambda F, m, x, h, c: m(x, (h, c))),
    Case("GRUCell", lambda nn: nn.GRUCell(3, 4), lambda r: [r.standard_normal((2, 3)), r.standard_normal((2, 4))]),
    # attention
    Case("MHA-self", lambda nn: nn.MultiheadAttention(8, 2), randn(5, 3, 8), fwd=lambda F, m, x: m(x, x, x)),
    Case("MHA-masks-bool", lambda nn: nn.MultiheadAttention(8, 2, batch_first=True),
         lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 5, 8)), causal_bool(4, 5), kpm(2, 5)],
         fwd=lambda F, m, q, kv, am, kp: m(q, kv, kv, attn_mask=am, key_padding_mask=kp, average_attn_weights=False)),
    Case("MHA-float-mask-noweights", lambda nn: nn.MultiheadAttention(8, 4, bias=False),
         lambda r: [r.standard_normal((4, 2, 8)), r.standard_normal((4, 4))],
         fwd=lambda F, m, x, am: m(x, x, x, attn_mask=am.detach(), need_weights=False)[0]),
    Case("MHA-3d-mask-kvdim", lambda nn: nn.MultiheadAttention(8, 2, kdim=3, vdim=5, batch_first=True),
         lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 6, 3)), r.standard_normal((2, 6, 5)),
                    r.random((4, 4, 6)) < 0.3],
         fwd=lambda F, m, q, k, v, am: m(q, k, v, attn_mask=am)),
    Case("MHA-bias-kv", lambda nn: nn.MultiheadAttention(8, 2, add_bias_kv=True),
         lambda r: [r.standard_normal((4, 2, 8)), kpm(2, 4)], fwd=lambda F, m, x, kp: m(x, x, x, key_padding_mask=kp)),
    Case("MHA-unbatched", lambda nn: nn.MultiheadAttention(8, 2), randn(4, 8), fwd=lambda F, m, x: m(x, x, x)),
    # activations
    Case("ReLU", lambda nn: nn.ReLU(), randn(4, 5)),
    Case("GELU", lambda nn: nn.GELU(), randn(4, 5)),
    Case("GELU-tanh", lambda nn: nn.GELU(approximate="tanh"), randn(4, 5)),
    Case("ELU", lambda nn: nn.ELU(alpha=0.7), lambda r: [r.standard_normal((4, 5)) * 3]),
    Case("SELU", lambda nn: nn.SELU(), randn(4, 5)),
    Case("SiLU", lambda nn: nn.SiLU(), randn(4, 5)),
    Case("LeakyReLU", lambda nn: nn.LeakyReLU(0.2), randn(4, 5)),
    Case("PReLU", lambda nn: nn.PReLU(3, init=0.1), randn(2, 3, 4)),
    Case("PReLU-single", lambda nn: nn.PReLU(), randn(5, 4)),
    Case("Tanh", lambda nn: nn.Tanh(), randn(4, 5)),
    Case("Sigmoid", lambda nn: nn.Sigmoid(), randn(4, 5)),
    Case("Softplus", lambda nn: nn.Softplus(beta=2.0, threshold=5.0), lambda r: [r.standard_normal((4, 5)) * 4]),
    Case("Softplus-large", lambda nn: nn.Softplus(), lambda r: [np.array([-800.0, -3.0, 0.5, 19.0, 25.0, 900.0])]),
    Case("Softmax", lambda nn: nn.Softmax(dim=1), randn(3, 4, 2)),
    Case("LogSoftmax", lambda nn: nn.LogSoftmax(dim=-1), randn(3, 5)),
    Case("Flatten", lambda nn: nn.Sequential(nn.Flatten(), nn.Linear(6, 2)), randn(4, 2, 3)),
    Case("GroupNorm", lambda nn: nn.GroupNorm(2, 4), randn(3, 4, 5)),
    Case("RMSNorm", lambda nn: nn.RMSNorm(5, eps=1e-6), randn(3, 4, 5)),
    Case("GLU", lambda nn: nn.GLU(dim=1), randn(3, 4, 5)),
    Case("CELU", lambda nn: nn.CELU(alpha=0.5), lambda r: [r.standard_normal((4, 5)) * 3]),
    Case("Hardtanh", lambda nn: nn.Hardtanh(-0.5, 0.7), randn(4, 5)),
    Case("Softsign", lambda nn: nn.Softsign(), randn(4, 5)),
    Case("ReLU6", lambda nn: nn.ReLU6(), lambda r: [r.standard_normal((4, 5)) * 5]),
    Case("Unflatten", lambda nn: nn.Sequential(nn.Linear(3, 6), nn.Unflatten(1, (2, 3))), randn(4, 3)),
    Case("RNNCell-relu", lambda nn: nn.RNNCell(3, 4, nonlinearity="relu"), randn(2, 3)),
    Case("AdaptiveAvgPool1d", lambda nn: nn.AdaptiveAvgPool1d(4), randn(2, 3, 10)),
    Case("ReplicationPad1d", lambda nn: nn.ReplicationPad1d((2, 3)), randn(2, 3, 5)),
    Case("ConstantPad1d", lambda nn: nn.ConstantPad1d((0, 2), 1.5), randn(2, 3, 5)),
    Case("Upsample", lambda nn: nn.Upsample(scale_factor=2, mode="linear"), randn(2, 3, 5)),
    Case("MaxPool1d-ceil", lambda nn: nn.MaxPool1d(3, stride=2, ceil_mode=True), randn(2, 3, 8)),
    Case("AvgPool1d-ceil", lambda nn: nn.AvgPool1d(3, stride=2, ceil_mode=True), randn(2, 3, 8)),
]


def _enc(norm_first, activation, batch_first):
    return lambda nn: nn.TransformerEncoderLayer(8, 2, dim_feedforward=16, dropout=0.0, activation=activation,
                                                 batch_first=batch_first, norm_first=norm_first)


def _dec(norm_first, activation="relu"):
    return lambda nn: nn.TransformerDecoderLayer(8, 2, dim_feedforward=16, dropout=0.1, activation=activation,
                                                 batch_first=True, norm_first=norm_first)


LAYERS += [
    Case("EncoderLayer-post", _enc(False, "relu", False), randn(5, 2, 8)),
    Case("EncoderLayer-pre-gelu-bf-masks", _enc(True, "gelu", True),
         lambda r: [r.standard_normal((2, 5, 8)), causal_bool(5, 5), kpm(2, 5)],
         fwd=lambda F, m, x, am, kp: m(x, src_mask=am, src_key_padding_mask=kp)),
    Case("EncoderLayer-train-dropout0", _enc(False, "gelu", True), randn(2, 5, 8), train=True),
    Case("DecoderLayer-post", _dec(False), lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 6, 8))]),
    Case("DecoderLayer-pre-masks", _dec(True, "gelu"),
         lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 6, 8)), causal_bool(4, 4), kpm(2, 6)],
         fwd=lambda F, m, t, mem, tm, mk: m(t, mem, tgt_mask=tm, memory_key_padding_mask=mk)),
    Case("TransformerEncoder-2", lambda nn: nn.TransformerEncoder(_enc(True, "relu", True)(nn), 2, norm=nn.LayerNorm(8),
                                                                  enable_nested_tensor=False), randn(2, 5, 8)),
]

FUNCTIONAL = [
    Case("F.softmax", None, randn(3, 4, 5), fwd=lambda F, m, x: F.softmax(x, dim=1)),
    Case("F.log_softmax", None, randn(3, 4, 5), fwd=lambda F, m, x: F.log_softmax(x, dim=-1)),
    Case("F.layer_norm", None, lambda r: [r.standard_normal((3, 4, 5)), r.standard_normal((4, 5)), r.standard_normal((4, 5))],
         fwd=lambda F, m, x, w, b: F.layer_norm(x, (4, 5), w, b, eps=1e-4)),
    Case("F.batch_norm-eval", None,
         lambda r: [r.standard_normal((3, 4, 5)), r.standard_normal(4), r.random(4) + 0.5, r.standard_normal(4), r.standard_normal(4)],
         fwd=lambda F, m, x, rm, rv, w, b: F.batch_norm(x, rm.detach(), rv.detach(), w, b, training=False)),
    Case("F.linear", None, lambda r: [r.standard_normal((2, 3, 4)), r.standard_normal((5, 4)), r.standard_normal(5)],
         fwd=lambda F, m, x, w, b: F.linear(x, w, b)),
    Case("F.conv1d", None, lambda r: [r.standard_normal((2, 4, 9)), r.standard_normal((6, 2, 3)), r.standard_normal(6)],
         fwd=lambda F, m, x, w, b: F.conv1d(x, w, b, stride=2, padding=1, dilation=2, groups=2)),
    Case("F.conv2d", None, lambda r: [r.standard_normal((2, 2, 6, 5)), r.standard_normal((3, 2, 2, 3))],
         fwd=lambda F, m, x, w: F.conv2d(x, w, None, stride=(1, 2), padding=(1, 0))),
    Case("F.max_pool1d", None, randn(2, 3, 10), fwd=lambda F, m, x: F.max_pool1d(x, 3, 2, padding=1, dilation=2)),
    Case("F.max_pool1d-nhits", None, randn(4, 1, 12), fwd=lambda F, m, x: F.max_pool1d(x, 5, 5, ceil_mode=True)),
    Case("F.avg_pool1d", None, randn(2, 3, 10),
         fwd=lambda F, m, x: F.avg_pool1d(x, 4, 3, padding=2, ceil_mode=True, count_include_pad=False)),
    Case("F.avg_pool1d-incl", None, randn(2, 3, 10), fwd=lambda F, m, x: F.avg_pool1d(x, 3, 1, padding=1)),
    Case("F.interpolate-linear", None, randn(2, 3, 5), fwd=lambda F, m, x: F.interpolate(x, size=12, mode="linear")),
    Case("F.interpolate-linear-ac", None, randn(2, 3, 5),
         fwd=lambda F, m, x: F.interpolate(x, size=9, mode="linear", align_corners=True)),
    Case("F.interpolate-linear-down-sf", None, randn(2, 3, 9),
         fwd=lambda F, m, x: F.interpolate(x, scale_factor=0.6, mode="linear")),
    Case("F.interpolate-nearest", None, randn(2, 3, 5), fwd=lambda F, m, x: F.interpolate(x, size=13, mode="nearest")),
    Case("F.interpolate-nearest-sf", None, randn(2, 3, 7), fwd=lambda F, m, x: F.interpolate(x, scale_factor=2.5)),
    Case("F.interpolate-bilinear", None, randn(1, 2, 3, 4),
         fwd=lambda F, m, x: F.interpolate(x, size=(5, 7), mode="bilinear")),
    Case("F.interpolate-bicubic-nhits", None, randn(3, 1, 1, 5),
         fwd=lambda F, m, x: F.interpolate(x, size=8, mode="bicubic")),
    Case("F.interpolate-bicubic-ac-down", None, randn(1, 2, 6, 7),
         fwd=lambda F, m, x: F.interpolate(x, size=(4, 3), mode="bicubic", align_corners=True)),
    Case("F.sdpa", None, lambda r: [r.standard_normal((2, 3, 4, 8)), r.standard_normal((2, 3, 6, 8)), r.standard_normal((2, 3, 6, 5))],
         fwd=lambda F, m, q, k, v: F.scaled_dot_product_attention(q, k, v, scale=0.3)),
    Case("F.sdpa-causal", None, lambda r: [r.standard_normal((2, 5, 8)), r.standard_normal((2, 5, 8)), r.standard_normal((2, 5, 8))],
         fwd=lambda F, m, q, k, v: F.scaled_dot_product_attention(q, k, v, is_causal=True)),
    Case("F.sdpa-bool-mask", None,
         lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 6, 8)), r.standard_normal((2, 6, 8)), ~causal_bool(4, 6)],
         fwd=lambda F, m, q, k, v, am: F.scaled_dot_product_attention(q, k, v, attn_mask=am)),
    Case("F.sdpa-float-mask", None,
         lambda r: [r.standard_normal((2, 4, 8)), r.standard_normal((2, 6, 8)), r.standard_normal((2, 6, 8)), r.standard_normal((4, 6))],
         fwd=lambda F, m, q, k, v, am: F.scaled_dot_product_attention(q, k, v, attn_mask=am.detach())),
    Case("F.embedding", None, lambda r: [np.array([0, 3, 3, 2]), r.standard_normal((5, 3))],
         fwd=lambda F, m, i, w: F.embedding(i, w, padding_idx=3)),
    Case("F.pad-reflect", None, randn(2, 3, 6), fwd=lambda F, m, x: F.pad(x, (2, 3), mode="reflect")),
    Case("F.pad-constant-2d", None, randn(2, 3, 4), fwd=lambda F, m, x: F.pad(x, (1, 2, 0, 1), value=0.5)),
]
FUNCTIONAL += [
    Case("F.normalize", None, randn(3, 4), fwd=lambda F, m, x: F.normalize(x, dim=1)),
    Case("F.normalize-p1", None, randn(3, 4), fwd=lambda F, m, x: F.normalize(x, p=1.0, dim=0)),
    Case("F.silu", None, randn(3, 4), fwd=lambda F, m, x: F.silu(x)),
    Case("F.softmin", None, randn(3, 4), fwd=lambda F, m, x: F.softmin(x, dim=0)),
    Case("F.smooth_l1_loss", None, lambda r: [r.standard_normal((4, 3)) * 2, r.standard_normal((4, 3))],
         fwd=lambda F, m, a, b: F.smooth_l1_loss(a, b, beta=0.5)),
    Case("F.bce_with_logits", None, lambda r: [r.standard_normal((4, 3)) * 3, r.random((4, 3))],
         fwd=lambda F, m, a, b: F.binary_cross_entropy_with_logits(a, b)),
    Case("F.cross_entropy", None, lambda r: [r.standard_normal((4, 5)), np.array([0, 4, 2, 2])],
         fwd=lambda F, m, a, t: F.cross_entropy(a, t)),
]
for red in ("mean", "sum", "none"):
    FUNCTIONAL += [
        Case(f"F.mse_loss-{red}", None, lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3))],
             fwd=lambda F, m, a, b, red=red: F.mse_loss(a, b.detach(), reduction=red)),
        Case(f"F.l1_loss-{red}", None, lambda r: [r.standard_normal((4, 3)), r.standard_normal((4, 3))],
             fwd=lambda F, m, a, b, red=red: F.l1_loss(a, b, reduction=red)),
        Case(f"F.huber_loss-{red}", None, lambda r: [r.standard_normal((4, 3)) * 2, r.standard_normal((4, 3))],
             fwd=lambda F, m, a, b, red=red: F.huber_loss(a, b, reduction=red, delta=0.7)),
    ]
for name in ("gelu", "elu", "selu", "leaky_relu", "softplus", "relu", "sigmoid", "tanh"):
    FUNCTIONAL.append(Case(f"F.{name}", None, lambda r: [r.standard_normal((3, 7)) * 2],
                           fwd=lambda F, m, x, name=name: getattr(F, name)(x)))


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("case", LAYERS + FUNCTIONAL, ids=str)
def test_matches_torch(case, dtype):
    run_case(case, dtype)


def test_batchnorm_running_stats_match_torch():
    """Running mean/var and num_batches_tracked after a few training steps, then eval outputs."""
    import ndiv
    import ndiv.nn as nnd

    rng = np.random.default_rng(1)
    for momentum in (0.1, None):
        t, n = torch.nn.BatchNorm1d(3, momentum=momentum).double(), nnd.BatchNorm1d(3, momentum=momentum).double()
        for _ in range(3):
            x = rng.standard_normal((5, 3, 4)) * 2 + 1
            t(torch.from_numpy(x))
            n(ndiv.tensor(x))
        for k, v in t.state_dict().items():
            np.testing.assert_allclose(n.state_dict()[k], v.numpy(), rtol=1e-12, err_msg=k)
        t.eval()
        n.eval()
        x = rng.standard_normal((2, 3, 4))
        np.testing.assert_allclose(n(ndiv.tensor(x)).numpy(), t(torch.from_numpy(x)).detach().numpy(), rtol=1e-12)

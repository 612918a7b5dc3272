"""The shared blocks of NeuralForecast's transformer family (ndiv/models/common/): each block
loads the state_dict of NF's block strictly (persistent buffers included) and gives NF's output
and input gradient on the same input; float64 gradchecks of the composed blocks; the moved
blocks (RevIN, MovingAvg, SeriesDecomp) keep PatchTST's and DLinear's behaviour.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv import nn
from ndiv.models.common import _embeddings as E
from ndiv.models.common import _normalization as N

from . import nf_reference as nf_ref


def _nf_modules():
    nf_ref.nf_models()
    import neuralforecast.common._modules as m
    return m


def _load(nd_block, nf_block):
    sd = {k: v.detach().numpy() for k, v in nf_block.state_dict().items()}
    assert sorted(nd_block.state_dict()) == sorted(sd)
    nd_block.load_state_dict(sd, strict=True)


def _compare(nd_block, nf_block, *inputs, rtol=1e-5, atol=1e-6, grad=True, train=False):
    """Same output (and, with grad, the same gradient of sum(out * w) for the float inputs)."""
    import torch
    nd_block.train(train)
    nf_block.train(train)
    rng = np.random.default_rng(0)
    t_in = [None if x is None else torch.tensor(x, requires_grad=grad and x.dtype.kind == "f") for x in inputs]
    n_in = [None if x is None else ndiv.tensor(x, requires_grad=grad and x.dtype.kind == "f") for x in inputs]
    ref, got = nf_block(*t_in), nd_block(*n_in)
    ref, got = (ref[0], got[0]) if isinstance(ref, tuple) else (ref, got)
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        w = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
        (ref * torch.tensor(w)).sum().backward()
        (got * ndiv.tensor(w)).sum().backward()
        for t, n in zip(t_in, n_in):
            if t is not None and t.requires_grad:
                np.testing.assert_allclose(n.grad, t.grad.numpy(), rtol=10 * rtol, atol=10 * atol)
        nd_grads = dict(nd_block.named_parameters())
        for k, p in nf_block.named_parameters():
            if p.grad is not None:
                np.testing.assert_allclose(nd_grads[k].grad, p.grad.numpy(), rtol=10 * rtol, atol=10 * atol, err_msg=k)
    return got


def _x(*shape, seed=1):
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- embeddings -------------------------------------------------------------------------------------------

def test_positional_embedding_is_a_persistent_buffer_equal_to_nfs():
    m = _nf_modules()
    nd, ref = E.PositionalEmbedding(6), m.PositionalEmbedding(6)
    assert list(nd.state_dict()) == ["pe"] and nd.state_dict()["pe"].shape == (1, 5000, 6)
    assert not list(nd.parameters())
    np.testing.assert_allclose(nd.state_dict()["pe"], ref.pe.numpy(), rtol=1e-5, atol=2e-6)
    _load(nd, ref)
    out = nd(ndiv.tensor(_x(2, 7, 6)))
    np.testing.assert_array_equal(out.numpy(), ref.pe[:, :7].numpy())
    nd.double()
    assert nd.pe.dtype == np.float64                                     # buffers follow to(dtype)


def test_strict_load_wants_the_buffer_and_leaves_out_non_persistent_ones():
    nd = E.PositionalEmbedding(4, max_len=10)
    with pytest.raises(RuntimeError, match='Missing key.*"pe"'):
        nd.load_state_dict({}, strict=True)
    with pytest.raises(RuntimeError, match="size mismatch for pe"):
        nd.load_state_dict({"pe": np.zeros((1, 9, 4), np.float32)})
    holder = nn.Module()
    holder.register_buffer("scratch", ndiv.zeros(3), persistent=False)
    holder.register_buffer("kept", ndiv.ones(2))
    assert list(holder.state_dict()) == ["kept"] and len(list(holder.buffers())) == 2
    holder.load_state_dict({"kept": np.full(2, 5.0, np.float32)}, strict=True)
    np.testing.assert_array_equal(holder.kept.numpy(), [5.0, 5.0])


@pytest.mark.parametrize("c_in", [1, 3])
def test_token_embedding_is_nfs_circular_conv(c_in):
    m = _nf_modules()
    nd, ref = E.TokenEmbedding(c_in, 8), m.TokenEmbedding(c_in, 8)
    assert nd.tokenConv.bias is None
    w = nd.tokenConv.weight.numpy()                        # kaiming normal, fan_in, leaky_relu: std sqrt(2 / (3 c_in))
    assert abs(w.std() / np.sqrt(2.0 / (3 * c_in)) - 1) < 0.5
    _load(nd, ref)
    _compare(nd, ref, _x(2, 5, c_in))


def test_time_feature_fixed_and_temporal_embeddings_match_nf():
    torch = pytest.importorskip("torch")
    m = _nf_modules()
    nd, ref = E.TimeFeatureEmbedding(3, 5), m.TimeFeatureEmbedding(3, 5)
    _load(nd, ref)
    _compare(nd, ref, _x(2, 4, 3))
    fixed, fixed_ref = E.FixedEmbedding(24, 6), m.FixedEmbedding(24, 6)
    np.testing.assert_allclose(fixed.emb.weight.numpy(), fixed_ref.emb.weight.detach().numpy(), rtol=1e-5, atol=2e-6)
    assert not fixed.emb.weight.requires_grad
    codes = np.stack([np.random.default_rng(2).integers(0, n, (2, 5)) for n in (13, 32, 7, 24, 4)], -1)
    for embed_type, freq in (("fixed", "h"), ("learned", "t")):
        nd, ref = E.TemporalEmbedding(6, embed_type, freq), m.TemporalEmbedding(6, embed_type, freq)
        _load(nd, ref)
        with torch.no_grad():
            want = ref(torch.tensor(codes.astype(np.float32))).numpy()
        np.testing.assert_allclose(nd(codes.astype(np.float32)).numpy(), want, rtol=1e-5, atol=1e-6)
    assert "minute_embed.weight" in nd.state_dict()


@pytest.mark.parametrize("exog,pos", [(0, True), (2, True), (2, False)])
def test_data_embedding_matches_nf(exog, pos):
    m = _nf_modules()
    nd = E.DataEmbedding(1, exog, 8, pos_embedding=pos, dropout=0.1)
    ref = m.DataEmbedding(1, exog, 8, pos_embedding=pos, dropout=0.1)
    assert (nd.position_embedding is None) == (not pos) and (nd.temporal_embedding is None) == (exog == 0)
    _load(nd, ref)
    inputs = (_x(3, 6, 1), _x(3, 6, exog, seed=2)) if exog else (_x(3, 6, 1),)
    _compare(nd, ref, *inputs)


def test_data_embedding_inverted_matches_nf():
    m = _nf_modules()
    nd, ref = E.DataEmbedding_inverted(6, 4), m.DataEmbedding_inverted(6, 4)
    _load(nd, ref)
    _compare(nd, ref, _x(2, 6, 3), _x(2, 6, 2, seed=3))
    with ndiv.no_grad():
        assert nd(ndiv.tensor(_x(2, 6, 3)), None).shape == (2, 3, 4)


# -- normalisation and decomposition ---------------------------------------------------------------------

@pytest.mark.parametrize("kernel_size,length", [(5, 9), (25, 12), (4, 9), (1, 3)])
def test_moving_avg_and_series_decomp_match_nf(kernel_size, length):
    m = _nf_modules()
    nd, ref = N.MovingAvg(kernel_size), m.MovingAvg(kernel_size, stride=1)
    if kernel_size % 2:
        nd, ref = N.SeriesDecomp(kernel_size), m.SeriesDecomp(kernel_size)
    else:
        with pytest.raises(ValueError, match="kernel_size must be odd, got 4"):
            N.SeriesDecomp(kernel_size)
    for c in (1, 3):
        got = _compare(nd, ref, _x(2, length, c))
        assert got.shape == (2, length if kernel_size % 2 else length - 1, c)


def test_moving_avg_rejects_a_stride_and_a_too_long_window():
    with pytest.raises(ValueError, match="only stride=1"):
        N.MovingAvg(3, stride=2)
    with pytest.raises(ValueError, match="kernel_size 4 is longer"):
        N.MovingAvg(4)(ndiv.tensor(_x(1, 1, 1)))


def test_moving_avg_gradcheck_float64():
    x = ndiv.tensor(np.random.default_rng(3).standard_normal((2, 7, 3)), requires_grad=True)
    assert ndiv.autograd.gradcheck(lambda x: N.SeriesDecomp(5)(x)[0] * 1.5 + N.SeriesDecomp(5)(x)[1], [x])


@pytest.mark.parametrize("affine,subtract_last", [(False, False), (True, False), (True, True)])
def test_revin_matches_nf(affine, subtract_last):
    torch = pytest.importorskip("torch")
    m = _nf_modules()
    nd, ref = N.RevIN(3, affine=affine, subtract_last=subtract_last), m.RevIN(3, affine=affine,
                                                                                subtract_last=subtract_last)
    if affine:
        with torch.no_grad():
            ref.affine_weight.uniform_(0.5, 1.5)
            ref.affine_bias.uniform_(-1, 1)
    _load(nd, ref)
    x, y = _x(2, 8, 3), _x(2, 4, 3, seed=5)
    with torch.no_grad():
        want_norm = ref(torch.tensor(x), "norm").numpy()
        want_denorm = ref(torch.tensor(y), "denorm").numpy()
    got_norm, stats = nd(ndiv.tensor(x), "norm")
    np.testing.assert_allclose(got_norm.numpy(), want_norm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nd(ndiv.tensor(y), "denorm", stats).numpy(), want_denorm, rtol=1e-5, atol=1e-5)


def test_revin_multivariate_matches_nf_and_rejects_a_bad_mode():
    torch = pytest.importorskip("torch")
    m = _nf_modules()
    nd, ref = N.RevINMultivariate(3, affine=True), m.RevINMultivariate(3, affine=True)
    assert nd.affine_weight.shape == (1, 1, 3)
    with torch.no_grad():
        ref.affine_weight.uniform_(0.5, 1.5)
        ref.affine_bias.uniform_(-1, 1)
    _load(nd, ref)
    x, y = _x(2, 8, 3), _x(2, 4, 3, seed=5)
    with torch.no_grad():
        want_norm = ref(torch.tensor(x), "norm").numpy()
        want_denorm = ref(torch.tensor(y), "denorm").numpy()
    got_norm, stats = nd(ndiv.tensor(x), "norm")
    np.testing.assert_allclose(got_norm.numpy(), want_norm, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(nd(ndiv.tensor(y), "denorm", stats).numpy(), want_denorm, rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="mode must be 'norm' or 'denorm'"):
        nd(ndiv.tensor(x), "scale")


def test_patchtst_and_dlinear_use_the_shared_blocks():
    from ndiv.models import DLinear, PatchTST
    assert isinstance(DLinear(h=2, input_size=6, moving_avg_window=3).decomp, N.SeriesDecomp)
    model = PatchTST(h=2, input_size=8, patch_len=4, stride=2, hidden_size=4, n_heads=1, linear_hidden_size=4,
                     encoder_layers=1)
    assert any(isinstance(mod, N.RevIN) for mod in model.modules())


# -- attention and the encoder/decoder stacks -------------------------------------------------------------

def _attention_pair(m, mask_flag=False, output_attention=False, hidden=8, heads=2):
    from ndiv.models.common import _attention as A
    nd = A.AttentionLayer(A.FullAttention(mask_flag, attention_dropout=0.0, output_attention=output_attention),
                          hidden, heads)
    ref = m.AttentionLayer(m.FullAttention(mask_flag, attention_dropout=0.0, output_attention=output_attention),
                           hidden, heads)
    return nd, ref


@pytest.mark.parametrize("mask_flag,output_attention", [(False, False), (True, False), (False, True), (True, True)])
def test_attention_layer_matches_nf(mask_flag, output_attention):
    """With output_attention=False NF passes no mask, so mask_flag changes nothing (not causal);
    with output_attention=True a missing mask under mask_flag is the causal one."""
    torch = pytest.importorskip("torch")
    m = _nf_modules()
    nd, ref = _attention_pair(m, mask_flag, output_attention)
    _load(nd, ref)
    q, kv = _x(2, 5, 8), _x(2, 5, 8, seed=2)
    got = _compare(nd, ref, q, kv, kv, None)
    with torch.no_grad():
        _, want_attn = ref(torch.tensor(q), torch.tensor(kv), torch.tensor(kv), None)
        _, got_attn = nd(ndiv.tensor(q), ndiv.tensor(kv), ndiv.tensor(kv), None)
    assert (got_attn is None) == (want_attn is None)
    if want_attn is not None:
        np.testing.assert_allclose(got_attn.numpy(), want_attn.numpy(), rtol=1e-5, atol=1e-6)
    # causal only on the explicit path: a change to the last step moves the first step's output iff not causal
    q2 = q.copy()
    kv2 = kv.copy()
    kv2[:, -1] += 1.0
    with ndiv.no_grad():
        moved = nd(ndiv.tensor(q2), ndiv.tensor(kv2), ndiv.tensor(kv2), None)[0].numpy()
    assert np.allclose(moved[:, 0], got.numpy()[:, 0]) == (mask_flag and output_attention)


def test_full_attention_runs_the_fused_kernel_on_long_windows(monkeypatch):
    """Above F's flash threshold (64 x 64 scores) FullAttention is ndiv's fused attention, and still NF's."""
    from ndiv.nn import functional as Fn
    m = _nf_modules()
    calls = []
    real = Fn._fused

    def spy():
        calls.append(1)
        return real()
    monkeypatch.setattr(Fn, "_fused", spy)
    nd, ref = _attention_pair(m, hidden=8, heads=2)
    _load(nd, ref)
    _compare(nd, ref, _x(2, 70, 8), _x(2, 66, 8, seed=2), _x(2, 66, 8, seed=2), None, rtol=1e-4, atol=1e-5)
    assert calls


def test_attention_layer_gradcheck_float64():
    from ndiv.models.common import _attention as A
    for output_attention in (False, True):
        layer = A.AttentionLayer(A.FullAttention(True, attention_dropout=0.0, output_attention=output_attention),
                                 4, 2).double()
        rng = np.random.default_rng(4)
        q = ndiv.tensor(rng.standard_normal((2, 3, 4)), requires_grad=True)
        kv = ndiv.tensor(rng.standard_normal((2, 4, 4)), requires_grad=True)
        params = [p for p in layer.parameters()]
        assert ndiv.autograd.gradcheck(lambda q, kv, *_: layer(q, kv, kv, None)[0], [q, kv, *params], max_elements=24)


@pytest.mark.parametrize("train", [False, True])
def test_conv_layer_matches_informers(train):
    nf_ref.nf_models()
    from neuralforecast.models.informer import ConvLayer as NFConvLayer

    from ndiv.models.common._attention import ConvLayer
    nd, ref = ConvLayer(6), NFConvLayer(6)
    _load(nd, ref)
    for length in (7, 8):
        got = _compare(nd, ref, _x(3, length, 6), train=train, rtol=1e-4, atol=1e-5)
        assert got.shape == (3, (length + 1) // 2 + 1, 6)
    if train:   # BatchNorm's running statistics follow NF's
        for k, v in ref.state_dict().items():
            np.testing.assert_allclose(np.asarray(nd.state_dict()[k]), v.numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


def _encoder_pair(m, distil, activation):
    from ndiv.models.common import _attention as A
    from neuralforecast.models.informer import ConvLayer as NFConvLayer

    def build(mod, conv):
        layers = [mod.TransEncoderLayer(mod.AttentionLayer(mod.FullAttention(False, attention_dropout=0.0), 8, 2), 8,
                                        6, dropout=0.0, activation=activation) for _ in range(2)]
        return mod.TransEncoder(layers, [conv(8)] if distil else None, norm_layer=_ln(mod, 8))
    return build(A, A.ConvLayer), build(m, NFConvLayer)


def _ln(mod, d):
    import torch
    return nn.LayerNorm(d) if mod.__name__.startswith("ndiv") else torch.nn.LayerNorm(d)


@pytest.mark.parametrize("distil,activation", [(False, "gelu"), (True, "relu")])
def test_trans_encoder_matches_nf(distil, activation):
    m = _nf_modules()
    nd, ref = _encoder_pair(m, distil, activation)
    _load(nd, ref)
    got = _compare(nd, ref, _x(2, 7, 8), rtol=1e-4, atol=1e-5)
    assert got.shape == ((2, 5, 8) if distil else (2, 7, 8))


def test_trans_decoder_matches_nf():
    torch = pytest.importorskip("torch")
    from ndiv.models.common import _attention as A
    m = _nf_modules()

    def build(mod):
        layers = [mod.TransDecoderLayer(mod.AttentionLayer(mod.FullAttention(True, attention_dropout=0.0), 8, 2),
                                        mod.AttentionLayer(mod.FullAttention(False, attention_dropout=0.0), 8, 2),
                                        8, None, dropout=0.0, activation="gelu") for _ in range(2)]
        proj = nn.Linear(8, 3) if mod is A else torch.nn.Linear(8, 3)
        return mod.TransDecoder(layers, norm_layer=_ln(mod, 8), projection=proj)
    nd, ref = build(A), build(m)
    assert nd.layers[0].conv1.weight.shape == (32, 8, 1)                  # conv_hidden_size None: 4 * hidden
    _load(nd, ref)
    got = _compare(nd, ref, _x(2, 6, 8), _x(2, 4, 8, seed=2), rtol=1e-4, atol=1e-5)
    assert got.shape == (2, 6, 3)

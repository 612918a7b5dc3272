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
    t_in = [torch.tensor(x, requires_grad=grad and x.dtype.kind == "f") for x in inputs]
    n_in = [ndiv.tensor(x, requires_grad=grad and x.dtype.kind == "f") for x in inputs]
    ref, got = nf_block(*t_in), nd_block(*n_in)
    ref, got = (ref[0], got[0]) if isinstance(ref, tuple) else (ref, got)
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), rtol=rtol, atol=atol)
    if grad:
        w = rng.standard_normal(tuple(ref.shape)).astype(np.float32)
        (ref * torch.tensor(w)).sum().backward()
        (got * ndiv.tensor(w)).sum().backward()
        for t, n in zip(t_in, n_in):
            if t.requires_grad:
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
    import torch
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
    import torch
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
    import torch
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

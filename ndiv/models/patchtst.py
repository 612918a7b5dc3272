"""PatchTST: a channel-independent Transformer over patches of the input window (NeuralForecast's PatchTST).

The module tree, names and shapes are NeuralForecast 3.x's (model.backbone.encoder.layers.{i}.
self_attn.W_Q, ..., model.head.linear), so a NeuralForecast PatchTST checkpoint loads with
strict=True and gives the same forecast.

Attention: without residual attention (res_attention=False) the heads run through
F.scaled_dot_product_attention (the fused flash-attention kernel). NeuralForecast's default,
res_attention=True (RealFormer), adds each layer's pre-softmax scores to the next layer's, and a
flash kernel never materialises those scores: that path is composed (q @ k, fused softmax, @ v).
"""
from __future__ import annotations

import math

import numpy as np

from ndiv import nn
from ndiv.autograd.ops import fused
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._normalization import RevIN
from ndiv.nn import functional as F
from ndiv.random import get_rng

# residual attention over at most this many patches runs in one fused kernel call; above it the
# composed batched products win (fwd+bwd, 1024 x 16 heads of 8, 1 thread: L=3 7.6 vs 14.7 ms,
# L=6 32 vs 18 ms, L=12 104 vs 37 ms: the kernel's loops are scalar over the strided views)
SMALL_ATTN_MAX_L = 4


class Transpose(nn.Module):
    """Swap two dims (NF wraps BatchNorm1d in two of these to normalise [B, L, D] per channel D)."""

    def __init__(self, *dims):
        super().__init__()
        self.dims = dims

    def forward(self, x):
        return x.swapaxes(*self.dims)


def _coord_pe(q_len: int, hidden_size: int | None, exponential: bool) -> np.ndarray:
    """NF's lin1d/exp1d (hidden_size None) and lin2d/exp2d encodings, normalised to std 0.1."""
    t = np.linspace(0, 1, q_len, dtype=np.float32).reshape(-1, 1)
    if hidden_size is None:
        cpe = 2 * t ** (0.5 if exponential else 1) - 1
    else:  # search the exponent that centres the grid, as NF does
        d = np.linspace(0, 1, hidden_size, dtype=np.float32).reshape(1, -1)
        x = 0.5 if exponential else 1
        for _ in range(100):
            cpe = 2 * (t ** x) * (d ** x) - 1
            if abs(cpe.mean()) <= 1e-3:
                break
            x += 0.001 if cpe.mean() > 1e-3 else -0.001
    cpe = cpe - cpe.mean()
    return cpe / (cpe.std(ddof=1) * 10)


def _sincos_pe(q_len: int, hidden_size: int) -> np.ndarray:
    pe = np.zeros((q_len, hidden_size), np.float32)
    position = np.arange(q_len, dtype=np.float32)[:, None]
    div_term = np.exp(np.arange(0, hidden_size, 2, dtype=np.float32) * -(math.log(10000.0) / hidden_size))
    pe[:, 0::2] = np.sin(position * div_term)
    pe[:, 1::2] = np.cos(position * div_term[: hidden_size // 2])
    pe = pe - pe.mean()
    return pe / (pe.std(ddof=1) * 10)


def positional_encoding(pe, learn_pe: bool, q_len: int, hidden_size: int) -> nn.Parameter:
    """W_pos [q_len, hidden_size] (or [q_len, 1]) for NF's pe names; learnt when learn_pe."""
    rng = get_rng()
    uniform = lambda shape, a, b: rng.uniform(a, b, shape).astype(np.float32)  # noqa: E731
    makers = {
        None: lambda: uniform((q_len, hidden_size), -0.02, 0.02),
        "zero": lambda: uniform((q_len, 1), -0.02, 0.02),
        "zeros": lambda: uniform((q_len, hidden_size), -0.02, 0.02),
        "normal": lambda: rng.normal(0.0, 0.1, (q_len, 1)).astype(np.float32),
        "gauss": lambda: rng.normal(0.0, 0.1, (q_len, 1)).astype(np.float32),
        "uniform": lambda: uniform((q_len, 1), 0.0, 0.1),
        "lin1d": lambda: _coord_pe(q_len, None, False),
        "exp1d": lambda: _coord_pe(q_len, None, True),
        "lin2d": lambda: _coord_pe(q_len, hidden_size, False),
        "exp2d": lambda: _coord_pe(q_len, hidden_size, True),
        "sincos": lambda: _sincos_pe(q_len, hidden_size),
    }
    if pe not in makers:
        raise ValueError(f"PatchTST: pe={pe!r} is not a positional encoding; use one of {list(makers)}")
    return nn.Parameter(makers[pe]().astype(np.float32), requires_grad=learn_pe and pe is not None)


def get_activation_fn(activation) -> nn.Module:
    if callable(activation):
        return activation()
    if isinstance(activation, str) and activation.lower() in ("relu", "gelu"):
        return nn.ReLU() if activation.lower() == "relu" else nn.GELU()
    raise ValueError(f"PatchTST: activation={activation!r} is not available; use 'relu', 'gelu' or a callable")


class _ScaledDotProductAttention(nn.Module):
    """softmax(q k * scale [+ prev]) v per head. q [N, H, L, d_k], k [N, H, d_k, L], v [N, H, L, d_v].

    res_attention: also returns the pre-softmax scores [N, H, L, L] for the next layer; up to
    SMALL_ATTN_MAX_L patches (and without lsa or attention dropout in training) all heads run in
    one fused kernel call (fused.small_attention), otherwise as composed ops. Without it,
    F.scaled_dot_product_attention (fused flash attention), which scales by d_k ** -0.5 as NF's
    does. `scale` is a Parameter, learnt only with lsa (NF keeps it frozen).
    """

    def __init__(self, hidden_size: int, n_heads: int, attn_dropout: float = 0.0, res_attention: bool = False,
                 lsa: bool = False):
        super().__init__()
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.res_attention, self.lsa = res_attention, lsa
        self.scale = nn.Parameter(np.array((hidden_size // n_heads) ** -0.5, np.float32), requires_grad=lsa)

    def forward(self, q, k, v, prev=None):
        if not self.res_attention:
            p = self.attn_dropout.p if self.training else 0.0
            return F.scaled_dot_product_attention(q, k.swapaxes(-1, -2), v, dropout_p=p), None, None
        if not self.lsa and (self.attn_dropout.p == 0 or not self.training) and q.shape[2] <= SMALL_ATTN_MAX_L:
            return fused.small_attention(q, k, v, prev, scale=float(self.scale.data))
        scores = (q @ k) * self.scale                       # [N, H, L, L]
        if prev is not None:
            scores = scores + prev
        weights = self.attn_dropout(F.softmax(scores, -1))
        return weights @ v, weights, scores


class _MultiheadAttention(nn.Module):
    """Self-attention with NF's projections W_Q, W_K, W_V and to_out. x [N, L, D] -> [N, L, D]."""

    def __init__(self, hidden_size: int, n_heads: int, d_k=None, d_v=None, res_attention: bool = False,
                 attn_dropout: float = 0.0, proj_dropout: float = 0.0, qkv_bias: bool = True, lsa: bool = False):
        super().__init__()
        d_k = hidden_size // n_heads if d_k is None else d_k
        d_v = hidden_size // n_heads if d_v is None else d_v
        self.n_heads, self.d_k, self.d_v = n_heads, d_k, d_v
        self.W_Q = nn.Linear(hidden_size, d_k * n_heads, bias=qkv_bias)
        self.W_K = nn.Linear(hidden_size, d_k * n_heads, bias=qkv_bias)
        self.W_V = nn.Linear(hidden_size, d_v * n_heads, bias=qkv_bias)
        self.res_attention = res_attention
        self.sdp_attn = _ScaledDotProductAttention(hidden_size, n_heads, attn_dropout, res_attention, lsa)
        self.to_out = nn.Sequential(nn.Linear(n_heads * d_v, hidden_size), nn.Dropout(proj_dropout))

    def forward(self, x, prev=None):
        """x [N, L, D], prev [N, H, L, L] or None -> (out [N, L, D], weights, scores)."""
        n, L, d = x.shape
        x = x.reshape(n * L, d)  # the projections as one 2-d GEMM each: rows are tokens
        q = self.W_Q(x).reshape(n, L, self.n_heads, self.d_k).permute(0, 2, 1, 3)   # [N, H, L, d_k]
        k = self.W_K(x).reshape(n, L, self.n_heads, self.d_k).permute(0, 2, 3, 1)   # [N, H, d_k, L]
        v = self.W_V(x).reshape(n, L, self.n_heads, self.d_v).permute(0, 2, 1, 3)   # [N, H, L, d_v]
        out, weights, scores = self.sdp_attn(q, k, v, prev)
        out = out.permute(0, 2, 1, 3).reshape(n * L, self.n_heads * self.d_v)       # [N * L, H * d_v]
        return self.to_out(out).reshape(n, L, -1), weights, scores


class _TokenBatchNorm(nn.Sequential):
    """NF's Sequential(Transpose(1, 2), BatchNorm1d(D), Transpose(1, 2)) on [N, L, D]: statistics
    per channel D over all N * L tokens. Same modules and names; it runs BatchNorm1d on the tokens
    as rows [N * L, D], which is the same arithmetic without the two transposed copies."""

    def __init__(self, hidden_size: int):
        super().__init__(Transpose(1, 2), nn.BatchNorm1d(hidden_size), Transpose(1, 2))

    def forward(self, x):
        return self[1](x.reshape(-1, x.shape[-1])).reshape(x.shape)


def _norm(norm: str, hidden_size: int) -> nn.Module:
    return _TokenBatchNorm(hidden_size) if "batch" in norm.lower() else nn.LayerNorm(hidden_size)


class TSTEncoderLayer(nn.Module):
    """Post-norm (or pre-norm) Transformer layer: attention, Add & Norm, feed-forward, Add & Norm."""

    def __init__(self, hidden_size: int, n_heads: int, d_k=None, d_v=None, linear_hidden_size: int = 256,
                 norm: str = "BatchNorm", attn_dropout: float = 0.0, dropout: float = 0.0, bias: bool = True,
                 activation="gelu", res_attention: bool = False, pre_norm: bool = False):
        super().__init__()
        if hidden_size % n_heads:
            raise ValueError(f"PatchTST: hidden_size ({hidden_size}) must be divisible by n_heads ({n_heads})")
        self.pre_norm = pre_norm
        self.self_attn = _MultiheadAttention(hidden_size, n_heads, d_k, d_v, attn_dropout=attn_dropout,
                                             proj_dropout=dropout, res_attention=res_attention)
        self.dropout_attn = nn.Dropout(dropout)
        self.norm_attn = _norm(norm, hidden_size)
        self.ff = nn.Sequential(nn.Linear(hidden_size, linear_hidden_size, bias=bias), get_activation_fn(activation),
                                nn.Dropout(dropout), nn.Linear(linear_hidden_size, hidden_size, bias=bias))
        self.dropout_ffn = nn.Dropout(dropout)
        self.norm_ffn = _norm(norm, hidden_size)

    def forward(self, src, prev=None):
        """src [N, L, D], prev scores [N, H, L, L] or None -> (src [N, L, D], scores or None)."""
        if self.pre_norm:
            src = self.norm_attn(src)
        src2, _, scores = self.self_attn(src, prev)
        src = src + self.dropout_attn(src2)
        if not self.pre_norm:
            src = self.norm_attn(src)
        if self.pre_norm:
            src = self.norm_ffn(src)
        src = src + self.dropout_ffn(self.ff(src.reshape(-1, src.shape[-1])).reshape(src.shape))
        if not self.pre_norm:
            src = self.norm_ffn(src)
        return src, scores


class TSTEncoder(nn.Module):
    """n_layers TSTEncoderLayers; with res_attention each layer's scores feed the next."""

    def __init__(self, hidden_size: int, n_heads: int, d_k=None, d_v=None, linear_hidden_size=None,
                 norm: str = "BatchNorm", attn_dropout: float = 0.0, dropout: float = 0.0, activation="gelu",
                 res_attention: bool = False, n_layers: int = 1, pre_norm: bool = False):
        super().__init__()
        self.layers = nn.ModuleList([
            TSTEncoderLayer(hidden_size, n_heads, d_k, d_v, linear_hidden_size, norm, attn_dropout, dropout,
                            activation=activation, res_attention=res_attention, pre_norm=pre_norm)
            for _ in range(n_layers)])
        self.res_attention = res_attention

    def forward(self, src):
        scores = None
        for layer in self.layers:
            src, scores = layer(src, scores if self.res_attention else None)
        return src


class TSTiEncoder(nn.Module):
    """Channel-independent encoder: patches [B, C, patch_len, P] -> W_P + W_pos -> encoder
    -> [B, C, hidden_size, P]."""

    def __init__(self, c_in: int, patch_num: int, patch_len: int, n_layers: int = 3, hidden_size: int = 128,
                 n_heads: int = 16, d_k=None, d_v=None, linear_hidden_size: int = 256, norm: str = "BatchNorm",
                 attn_dropout: float = 0.0, dropout: float = 0.0, act="gelu", res_attention: bool = True,
                 pre_norm: bool = False, pe="zeros", learn_pe: bool = True):
        super().__init__()
        self.patch_num, self.patch_len = patch_num, patch_len
        self.W_P = nn.Linear(patch_len, hidden_size)                     # patch -> token (Eq. 1)
        self.W_pos = positional_encoding(pe, learn_pe, patch_num, hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.encoder = TSTEncoder(hidden_size, n_heads, d_k, d_v, linear_hidden_size, norm, attn_dropout,
                                  dropout, act, res_attention, n_layers, pre_norm)

    def forward(self, x):
        b, c = x.shape[0], x.shape[1]
        p = x.shape[3]
        x = self.W_P(x.swapaxes(2, 3).reshape(b * c * p, self.patch_len))   # [B * C * P, D]
        u = self.dropout(x.reshape(b * c, p, -1) + self.W_pos)              # [B * C, P, D]
        z = self.encoder(u)                                              # [B * C, P, D]
        return z.reshape(b, c, z.shape[1], z.shape[2]).swapaxes(2, 3)    # [B, C, D, P]


class Flatten_Head(nn.Module):
    """[B, C, D, P] -> flatten (D-major) -> Linear(D * P, h * c_out) -> [B, C, h * c_out]."""

    def __init__(self, n_vars: int, nf: int, h: int, c_out: int, head_dropout: float = 0.0):
        super().__init__()
        self.flatten = nn.Flatten(start_dim=-2)
        self.linear = nn.Linear(nf, h * c_out)
        self.dropout = nn.Dropout(head_dropout)

    def forward(self, x):
        return self.dropout(self.linear(self.flatten(x)))


class PatchTST_backbone(nn.Module):
    """RevIN -> replicate-pad the end by `stride` -> patches -> TSTiEncoder -> Flatten_Head -> RevIN^-1.
    z [B, C, L] -> [B, C, h * c_out]."""

    def __init__(self, c_in: int, c_out: int, input_size: int, h: int, patch_len: int, stride: int,
                 n_layers: int = 3, hidden_size: int = 128, n_heads: int = 16, d_k=None, d_v=None,
                 linear_hidden_size: int = 256, norm: str = "BatchNorm", attn_dropout: float = 0.0,
                 dropout: float = 0.0, act="gelu", res_attention: bool = True, pre_norm: bool = False, pe="zeros",
                 learn_pe: bool = True, head_dropout: float = 0.0, padding_patch="end", revin: bool = True,
                 affine: bool = True, subtract_last: bool = False):
        super().__init__()
        self.revin = revin
        if revin:
            self.revin_layer = RevIN(c_in, affine=affine, subtract_last=subtract_last)
        self.patch_len, self.stride, self.padding_patch = patch_len, stride, padding_patch
        patch_num = (input_size - patch_len) // stride + 1
        if padding_patch == "end":
            self.padding_patch_layer = nn.ReplicationPad1d((0, stride))
            patch_num += 1
        self.backbone = TSTiEncoder(c_in, patch_num, patch_len, n_layers, hidden_size, n_heads, d_k, d_v,
                                    linear_hidden_size, norm, attn_dropout, dropout, act, res_attention, pre_norm,
                                    pe, learn_pe)
        self.head_nf = hidden_size * patch_num
        self.n_vars, self.c_out = c_in, c_out
        self.head = Flatten_Head(c_in, self.head_nf, h, c_out, head_dropout)

    def forward(self, z):
        if self.revin:
            z, stats = self.revin_layer(z.swapaxes(1, 2), "norm")
            z = z.swapaxes(1, 2)
        if self.padding_patch == "end":
            z = self.padding_patch_layer(z)                              # [B, C, L + stride]
        z = F.unfold1d(z, self.patch_len, self.stride).swapaxes(2, 3)    # [B, C, patch_len, P]
        z = self.head(self.backbone(z))                                  # [B, C, h * c_out]
        if self.revin:
            z = self.revin_layer(z.swapaxes(1, 2), "denorm", stats).swapaxes(1, 2)
        return z


class PatchTST(BaseModel):
    """PatchTST: the window cut into patches (tokens), a Transformer encoder per series, a linear head.

    Args: h (int) horizon; input_size (int) window length L; encoder_layers (int); n_heads (int);
        hidden_size (int) token width D (a multiple of n_heads); linear_hidden_size (int) feed-forward
        width; dropout (float) residual and feed-forward dropout; fc_dropout (float) kept for NF's
        signature (its pretrain head is never built); head_dropout (float); attn_dropout (float);
        patch_len (int) patch length (NF uses min(patch_len, input_size + stride)); stride (int);
        revin, revin_affine, revin_subtract_last (bool) reversible instance normalisation;
        activation ('gelu', 'relu' or a Module class); res_attention (bool) add each layer's
        pre-softmax scores to the next's; batch_normalization (bool) pre-norm layers (the norm is
        BatchNorm either way, as in NF); learn_pos_embed (bool);
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.
    Shapes: insample_y [B, L, 1] -> patches [B, 1, patch_len, P], P = (L - patch_len) // stride + 2
        -> tokens [B, P, hidden_size] -> forecast [B, h, n_out].

    >>> model = PatchTST(h=12, input_size=24, max_steps=100)
    References: Nie et al. (2023), "A Time Series is Worth 64 Words: Long-term Forecasting with Transformers".
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = False
    MULTIVARIATE = RECURRENT = False
    # NeuralForecast's defaults for this model (checked against NF by the tests)
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(encoder_layers=POSITIVE_INT, n_heads=POSITIVE_INT, hidden_size=POSITIVE_INT,
                        linear_hidden_size=POSITIVE_INT, patch_len=POSITIVE_INT, stride=POSITIVE_INT)

    def __init__(self, h, input_size, encoder_layers: int = 3, n_heads: int = 16, hidden_size: int = 128,
                 linear_hidden_size: int = 256, dropout: float = 0.2, fc_dropout: float = 0.2,
                 head_dropout: float = 0.0, attn_dropout: float = 0.0, patch_len: int = 16, stride: int = 8,
                 revin: bool = True, revin_affine: bool = False, revin_subtract_last: bool = True,
                 activation="gelu", res_attention: bool = True, batch_normalization: bool = False,
                 learn_pos_embed: bool = True, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        if hidden_size % n_heads:
            raise ValueError(f"PatchTST: hidden_size ({hidden_size}) must be divisible by n_heads ({n_heads})")
        patch_len = min(input_size + stride, patch_len)  # NF's documented rule: at least one patch
        self.model = PatchTST_backbone(
            c_in=1, c_out=self.loss.outputsize_multiplier, input_size=input_size, h=h, patch_len=patch_len,
            stride=stride, n_layers=encoder_layers, hidden_size=hidden_size, n_heads=n_heads,
            linear_hidden_size=linear_hidden_size, norm="BatchNorm", attn_dropout=attn_dropout, dropout=dropout,
            act=activation, res_attention=res_attention, pre_norm=batch_normalization, pe="zeros",
            learn_pe=learn_pos_embed, head_dropout=head_dropout, padding_patch="end", revin=revin,
            affine=revin_affine, subtract_last=revin_subtract_last)

    def forward(self, windows_batch):
        """insample_y [B, L, 1] -> [B, h, n_out]."""
        x = windows_batch["insample_y"].swapaxes(1, 2)                   # [B, 1, L]
        x = self.model(x)                                                # [B, 1, h * n_out]
        return x.reshape(x.shape[0], self.h, -1)

"""The blocks NeuralForecast's models share (its common/_modules.py), with its module names,
so that an NF state_dict loads unchanged: MLP (the decoder of RNN, LSTM, GRU, TCN, ...),
Chomp1d, CausalConv1d and TemporalConvolutionEncoder (TCN's dilated causal encoder); and the
input assembly the models share: `encoder_input` (per step, RNN family, TCN, BiTCN) and
`dense_input` (flattened, MLP and NBEATSx); and the categorical embeddings of the shared base
(`cat_embeddings`, `embed_stream`, `resolve_cat_emb_dim`).
"""
from __future__ import annotations

import math
import warnings

import numpy as np

import ndiv
from ndiv import nn
from ndiv.autograd.ops import fused

# NeuralForecast's ACTIVATIONS, in its order; the ones ndiv.nn lacks are rejected when used.
ACTIVATIONS = ["ReLU", "Softplus", "Tanh", "SELU", "LeakyReLU", "PReLU", "Sigmoid", "GELU", "ELU", "SiLU",
               "Mish", "GLU", "Softsign", "Hardshrink", "Softshrink", "Threshold", "RReLU", "CELU",
               "LogSigmoid", "Hardtanh", "Hardswish", "Identity"]


def activation_module(name: str, what: str = "activation") -> nn.Module:
    """A new activation module from its torch.nn name, e.g. 'ReLU' -> nn.ReLU()."""
    cls = getattr(nn, name, None) if name in ACTIVATIONS else None
    if cls is None:
        have = [a for a in ACTIVATIONS if hasattr(nn, a)]
        raise ValueError(f"{what}={name!r} is not supported; use one of {have}")
    return cls()


def resolve_decoder_activation(activation: str | None, ignored_because: str | None, default: str = "ReLU") -> str:
    """decoder_activation as NF resolves it: None -> default; checked even when the decoder will
    not use it, with a warning saying why it is ignored (`ignored_because`)."""
    if activation is None:
        return default
    activation_module(activation, "decoder_activation")
    if ignored_because is not None:
        warnings.warn(f"decoder_activation is ignored when {ignored_because}.")
    return activation


CAT_EMB_DIM_STRATEGIES = ("fastai", "sqrt", "half")


def resolve_cat_emb_dim(strategy, cardinality: int) -> int:
    """NF's `_resolve_cat_emb_dim`: the embedding width of a categorical column with
    `cardinality` categories. strategy: an int (that width), 'fastai' min(50, ceil(1.6 K^0.56)),
    'sqrt' min(50, ceil(sqrt K)) or 'half' min(50, (K + 1) // 2)."""
    if isinstance(strategy, (int, np.integer)) and not isinstance(strategy, bool):
        return int(strategy)
    if strategy == "fastai":
        return min(50, int(math.ceil(1.6 * cardinality ** 0.56)))
    if strategy == "sqrt":
        return min(50, int(math.ceil(cardinality ** 0.5)))
    if strategy == "half":
        return min(50, (cardinality + 1) // 2)
    raise ValueError(f"cat_emb_dim must be 'fastai', 'sqrt', 'half' or a positive int, got {strategy!r}")


def cat_embeddings(cat_exog_list, cardinalities: dict, strategy) -> nn.ModuleList:
    """NF's `_build_cat_embeddings`: one nn.Embedding(K + 1, dim) per column (row 0 is the
    slot of a category not seen in training), as a ModuleList (NF's hist_/futr_/stat_cat_embeddings)."""
    return nn.ModuleList([nn.Embedding(cardinalities[c] + 1, resolve_cat_emb_dim(strategy, cardinalities[c]))
                          for c in cat_exog_list])


def embed_stream(x, exog_list, cat_exog_list, embeddings, device: str = "cpu"):
    """NF's `_embed_stream` on a raw exogenous block x [..., len(exog_list)] (NumPy float, the
    categorical columns holding codes): -> Tensor [..., n_continuous + sum(emb dims)], the
    continuous columns first (in exog_list order), then each categorical column's embedding (in
    cat_exog_list order). Code 0 (a category not seen in training) gets the mean of the
    embedding's rows 1..K, as NF's `_lookup_embedding`. Without categorical columns: x as a Tensor."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if not cat_exog_list:
        return ndiv.tensor(x, device=device)
    cont = [i for i, c in enumerate(exog_list) if c not in cat_exog_list]
    pieces = [ndiv.tensor(np.ascontiguousarray(x[..., cont]), device=device)] if cont else []
    for emb, col in zip(embeddings, cat_exog_list):
        idx = x[..., exog_list.index(col)].astype(np.int64)
        out = emb(idx)
        is_oov = idx == 0
        if is_oov.any():
            oov = emb.weight[1:].mean(axis=0)
            out = ndiv.where(ndiv.tensor(is_oov[..., None], device=device), oov, out)
        pieces.append(out)
    return ndiv.cat(pieces, axis=-1) if len(pieces) > 1 else pieces[0]


def encoder_input(windows_batch: dict, hist_exog_size: int, stat_exog_size: int, futr_exog_size: int):
    """The per-step encoder input of NF's RNN-family and TCN models: insample_y [B, L, 1] with
    hist_exog [B, L, X], stat_exog [B, S] repeated over time and futr_exog's first L steps,
    concatenated -> [B, L, 1 + X + S + F]."""
    y = windows_batch["insample_y"]
    b, L = y.shape[:2]
    parts = [y]
    if hist_exog_size:
        parts.append(windows_batch["hist_exog"])
    if stat_exog_size:
        parts.append(windows_batch["stat_exog"].unsqueeze(1).expand(b, L, stat_exog_size))
    if futr_exog_size:
        parts.append(windows_batch["futr_exog"][:, :L])
    return ndiv.cat(parts, axis=2) if len(parts) > 1 else y


def dense_input_size(input_size: int, h: int, hist_exog_size: int, futr_exog_size: int, stat_exog_size: int) -> int:
    """The width of `dense_input`'s output: L + X * L + F * (L + h) + S."""
    return input_size * (1 + hist_exog_size) + futr_exog_size * (input_size + h) + stat_exog_size


def dense_input(insample_y, windows_batch: dict, hist_exog_size: int, futr_exog_size: int, stat_exog_size: int):
    """The flattened input of NF's dense models (MLP, the NBEATSx blocks):
    [y_{t-L..t} | hist exog X_{t-L..t} | futr exog F_{t-L..t+h} | static S], each exogenous block
    flattened time-major, the ones of size 0 left out.

    insample_y [B, L] (NBEATSx passes its reversed residuals); windows_batch: hist_exog
    [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S] -> [B, dense_input_size(...)].
    """
    b = insample_y.shape[0]
    parts = [insample_y]
    for key, size in (("hist_exog", hist_exog_size), ("futr_exog", futr_exog_size), ("stat_exog", stat_exog_size)):
        if size > 0:
            parts.append(windows_batch[key].reshape(b, -1))
    return ndiv.cat(parts, axis=1) if len(parts) > 1 else insample_y


class MLP(nn.Module):
    """[..., in_features] -> [..., out_features].

    num_layers=1: one Linear. Otherwise Linear, act, Dropout, then (num_layers - 2) x
    (Linear, act, Dropout), then Linear; all in `layers` (a Sequential: NF's names layers.0, .3, ...).
    """

    def __init__(self, in_features: int, out_features: int, activation: str, hidden_size: int, num_layers: int,
                 dropout: float):
        super().__init__()
        if num_layers == 1:
            self.layers = nn.Sequential(nn.Linear(in_features, out_features))
            return
        if hidden_size <= 0:
            raise ValueError(f"MLP: hidden_size must be positive when num_layers >= 2, got {hidden_size}")
        # one activation module shared by every hidden layer, as in NF (a PReLU's weight is shared too)
        self.activation = activation_module(activation)
        layers = [nn.Linear(in_features, hidden_size), self.activation, nn.Dropout(dropout)]
        for _ in range(num_layers - 2):
            layers += [nn.Linear(hidden_size, hidden_size), self.activation, nn.Dropout(dropout)]
        layers.append(nn.Linear(hidden_size, out_features))
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class Chomp1d(nn.Module):
    """[N, C, T] -> [N, C, T - horizon]: drops the right padding of a causal convolution."""

    def __init__(self, horizon: int):
        super().__init__()
        self.horizon = horizon

    def forward(self, x):
        return x[:, :, : -self.horizon] if self.horizon else x   # NF's x[..., :-0] would be empty


class CausalConv1d(nn.Module):
    """[N, C_in, T] -> activation(conv1d) [N, C_out, T], where output t sees inputs t, t - d, ...,
    t - (k - 1) d only: padded by `padding` = (k - 1) d on both sides, the right part chomped.

    `conv` also sits in `causalconv` (conv, chomp, activation), so NF's state_dict names both
    `conv.weight` and `causalconv.0.weight`: one Parameter under two names. forward gives
    causalconv's result without computing the outputs that chomp drops: the fused dilated
    kernel pads the left side only.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, padding: int, dilation: int,
                 activation: str, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv1d(in_channels, out_channels, kernel_size, stride=stride, padding=padding,
                              dilation=dilation)
        self.chomp = Chomp1d(padding)
        self.activation = activation_module(activation, "encoder_activation")
        self.causalconv = nn.Sequential(self.conv, self.chomp, self.activation)
        self.padding = padding

    def forward(self, x):
        conv = self.conv
        if conv.stride != (1,):
            return self.causalconv(x)
        y = fused.conv1d_dilated(x, conv.weight, conv.bias, padding=(self.padding, 0), dilation=conv.dilation[0])
        return self.activation(y)


class TemporalConvolutionEncoder(nn.Module):
    """[N, T, C_in] -> [N, T, C_out]: one CausalConv1d per dilation (kernel_size each), in `tcn`."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilations, activation: str = "ReLU"):
        super().__init__()
        layers = []
        for dilation in dilations:
            layers.append(CausalConv1d(in_channels, out_channels, kernel_size, padding=(kernel_size - 1) * dilation,
                                       dilation=dilation, activation=activation))
            in_channels = out_channels
        self.tcn = nn.Sequential(*layers)

    def forward(self, x):
        return self.tcn(x.swapaxes(1, 2)).swapaxes(1, 2)

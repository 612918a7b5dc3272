"""FEDformer: Autoformer's decomposition encoder-decoder with attention in the frequency domain,
on a fixed subset of Fourier modes and complex64 weights (NeuralForecast's FEDformer, version
'Fourier'; the shared blocks are in models/common/_autoformer.py)."""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import NON_NEGATIVE_INT, POSITIVE_INT, POSITIVE_ODD_INT, PROBABILITY, Rule
from ndiv.models.base import BaseModel
from ndiv.models.common._autoformer import (AutoCorrelationLayer, Decoder, DecoderLayer, Encoder, EncoderLayer,
                                            LayerNorm, decoder_label_len, decomposition_forward)
from ndiv.models.common._embeddings import DataEmbedding
from ndiv.models.common._normalization import SeriesDecomp
from ndiv.random import get_rng


def get_frequency_modes(seq_len: int, modes: int = 64, mode_select_method: str = "random",
                        rng: np.random.RandomState | None = None) -> list:
    """The sorted rfft bins a Fourier block keeps: min(modes, seq_len // 2) of 0 .. seq_len//2 - 1,
    drawn by rng.shuffle ('random', NF's np.random.shuffle of the range) or the lowest ones."""
    modes = min(modes, seq_len // 2)
    if mode_select_method == "random":
        index = list(range(0, seq_len // 2))
        (rng if rng is not None else np.random).shuffle(index)
        index = index[:modes]
    else:
        index = list(range(0, modes))
    return sorted(index)


def _complex_weights(in_channels: int, out_channels: int, n_modes: int) -> nn.Parameter:
    """NF's scale * torch.rand(8, in/8, out/8, M, dtype=cfloat): real and imaginary parts each
    uniform in [0, scale), scale = 1 / (in * out); drawn from ndiv's generator."""
    shape = (8, in_channels // 8, out_channels // 8, n_modes)
    rng, scale = get_rng(), 1.0 / (in_channels * out_channels)
    w = scale * (rng.random(shape) + 1j * rng.random(shape))
    return nn.Parameter(w.astype(np.complex64))


def _mix_modes(x, weights):
    """NF's einsum('bhim,hiom->bhom'): x [B, H, I, M] complex, weights [H, I, O, M] ->
    [B, H, O, M], one batched complex GEMM per (head, mode)."""
    out = x.permute(1, 3, 0, 2) @ weights.permute(0, 3, 1, 2)        # [H, M, B, I] @ [H, M, I, O]
    return out.permute(2, 0, 3, 1)                                   # [B, H, O, M]


def _take_modes(x_ft, index: list):
    """x_ft [..., F] -> x_ft[..., index] [..., M]; a run of consecutive bins (every bin, or the
    lowest modes) as a slice, whose backward is a copy rather than a scatter-add."""
    if index and index == list(range(index[0], index[0] + len(index))):
        return x_ft[..., index[0]:index[0] + len(index)]
    return x_ft[..., index]


def _place_modes(x, positions, n_bins: int):
    """x [B, H, E, M] complex -> a spectrum [B, H, E, n_bins], zero except bins `positions`
    (NF writes into a zero spectrum)."""
    zeros = ndiv.zeros(*x.shape[:-1], n_bins, dtype=x.dtype, device=x.device)
    return ndiv.index_put(zeros, (None, None, None, ndiv.tensor(np.asarray(positions, np.int64))), x)


class FourierBlock(nn.Module):
    """Frequency-enhanced block (self attention): q [B, L, H, E] -> ([B, H, E, L], None).

    rfft over time, the kept modes `index` mixed across channels per head by weights1
    [8, in/8, out/8, M] (complex64), written to the first M bins (NF's placement, not back at
    `index`), irfft to length L. The output stays [B, H, E, L]; AutoCorrelationLayer reads it as
    [B, L, H*E] in memory order, as NF's `.view` does.
    """

    def __init__(self, in_channels: int, out_channels: int, seq_len: int, modes: int = 0,
                 mode_select_method: str = "random", rng: np.random.RandomState | None = None):
        super().__init__()
        self.index = get_frequency_modes(seq_len, modes=modes, mode_select_method=mode_select_method, rng=rng)
        self.scale = 1 / (in_channels * out_channels)
        self.weights1 = _complex_weights(in_channels, out_channels, len(self.index))

    def forward(self, q, k, v, mask=None):
        L = q.shape[1]
        x_ft = ndiv.fft.rfft(q.permute(0, 2, 3, 1), dim=-1)                     # [B, H, E, L//2+1]
        out = _mix_modes(_take_modes(x_ft, self.index), self.weights1)                   # [B, H, O, M]
        out_ft = _place_modes(out, range(len(self.index)), L // 2 + 1)
        return ndiv.fft.irfft(out_ft, n=L, dim=-1), None


class FourierCrossAttention(nn.Module):
    """Frequency-enhanced cross attention: q [B, L, H, E], k [B, S, H, E] -> ([B, H, E, L], None).

    On the kept modes of q (index_q) and k (index_kv): scores = tanh(q_ft^T k_ft) (complex tanh)
    [B, H, Mq, Mk], out = (k_ft scores^T) mixed by weights1, written back at bins index_q of a
    zero spectrum, divided by in * out channels, irfft to length L. v is unused (as in NF).
    """

    def __init__(self, in_channels: int, out_channels: int, seq_len_q: int, seq_len_kv: int, modes: int = 64,
                 mode_select_method: str = "random", activation: str = "tanh", policy: int = 0,
                 rng: np.random.RandomState | None = None):
        super().__init__()
        if activation != "tanh":
            raise ValueError(f"FourierCrossAttention: activation must be 'tanh' (FEDformer's), got {activation!r}")
        self.activation, self.in_channels, self.out_channels = activation, in_channels, out_channels
        self.index_q = get_frequency_modes(seq_len_q, modes=modes, mode_select_method=mode_select_method, rng=rng)
        self.index_kv = get_frequency_modes(seq_len_kv, modes=modes, mode_select_method=mode_select_method, rng=rng)
        self.scale = 1 / (in_channels * out_channels)
        self.weights1 = _complex_weights(in_channels, out_channels, len(self.index_q))

    def forward(self, q, k, v, mask=None):
        L = q.shape[1]
        xq_ft = _take_modes(ndiv.fft.rfft(q.permute(0, 2, 3, 1), dim=-1), self.index_q)     # [B, H, E, Mq]
        xk_ft = _take_modes(ndiv.fft.rfft(k.permute(0, 2, 3, 1), dim=-1), self.index_kv)    # [B, H, E, Mk]
        xqk_ft = (xq_ft.transpose(-1, -2) @ xk_ft).tanh()                            # [B, H, Mq, Mk]
        xqkv_ft = xk_ft @ xqk_ft.transpose(-1, -2)                                   # [B, H, E, Mq]
        xqkvw = _mix_modes(xqkv_ft, self.weights1) / self.in_channels / self.out_channels
        out_ft = _place_modes(xqkvw, self.index_q, L // 2 + 1)
        return ndiv.fft.irfft(out_ft, n=L, dim=-1), None


class FEDformer(BaseModel):
    """FEDformer: Autoformer's decomposition architecture with Fourier-enhanced blocks.

    Args: h (int) horizon; input_size (int) window length L; decoder_input_size_multiplier
        (float in (0, 1)) the decoder's look-back label_len = ceil(L * multiplier); version
        ('Fourier', the only one NF has); modes (int) Fourier modes kept per block (at most
        seq_len // 2); mode_select ('random': drawn once at construction from random_seed, as
        NF's np.random after seeding; anything else: the lowest modes); hidden_size (a multiple
        of 8); dropout; n_head (must be 8, as NF); conv_hidden_size; activation ('relu' or
        'gelu'); encoder_layers; decoder_layers; MovingAvg_window (odd); futr_exog_list;
        **kwargs: the shared options, see BaseModel.

    One FourierBlock serves every encoder layer (and one self and one cross block every decoder
    layer), as in NF: its weights1 is one tensor under each layer's state_dict key, and the
    optimizer sees it once.

    References: Zhou et al. (2022), "FEDformer: Frequency Enhanced Decomposed Transformer for
    Long-term Series Forecasting".

    >>> model = FEDformer(h=12, input_size=24, max_steps=200)
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = MULTIVARIATE = RECURRENT = False
    EXOGENOUS_CAT = True
    DEFAULTS = dict(max_steps=5000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="identity")
    OPTION_RULES = dict(modes=POSITIVE_INT, hidden_size=POSITIVE_INT, dropout=PROBABILITY,
                        conv_hidden_size=POSITIVE_INT, encoder_layers=NON_NEGATIVE_INT,
                        decoder_layers=NON_NEGATIVE_INT, MovingAvg_window=POSITIVE_ODD_INT,
                        version=Rule(lambda v: v == "Fourier", "'Fourier' (the only version NF implements)"),
                        n_head=Rule(lambda v: v == 8, "8 (NF's Fourier blocks split the channels into 8 heads)"),
                        activation=Rule(lambda v: v in ("relu", "gelu"), "'relu' or 'gelu'"))

    def __init__(self, h, input_size, decoder_input_size_multiplier: float = 0.5, version: str = "Fourier",
                 modes: int = 64, mode_select: str = "random", hidden_size: int = 128, dropout: float = 0.05,
                 n_head: int = 8, conv_hidden_size: int = 32, activation: str = "gelu", encoder_layers: int = 2,
                 decoder_layers: int = 1, MovingAvg_window: int = 25, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        name = type(self).__name__
        self.label_len = decoder_label_len(name, input_size, decoder_input_size_multiplier)
        if hidden_size % 8:
            raise ValueError(f"{name}: hidden_size must be a multiple of 8 (n_head=8 heads, and each head's "
                             f"channels split in 8 for the Fourier weights), got {hidden_size}")
        dec_seq_len = input_size // 2 + self.h      # NF sizes the decoder's blocks for this length
        self.c_out = self.loss.outputsize_multiplier
        self.output_attention = False
        self.enc_in = self.dec_in = 1
        self.decomp = SeriesDecomp(MovingAvg_window)
        self.enc_embedding = DataEmbedding(c_in=self.enc_in, exog_input_size=self.futr_exog_size,
                                           hidden_size=hidden_size, pos_embedding=False, dropout=dropout)
        self.dec_embedding = DataEmbedding(c_in=self.dec_in, exog_input_size=self.futr_exog_size,
                                           hidden_size=hidden_size, pos_embedding=False, dropout=dropout)
        # NF draws the modes with np.random right after seeding it with random_seed, in this order
        rng = np.random.RandomState(self.random_seed)
        encoder_self_att = FourierBlock(hidden_size, hidden_size, seq_len=input_size, modes=modes,
                                        mode_select_method=mode_select, rng=rng)
        decoder_self_att = FourierBlock(hidden_size, hidden_size, seq_len=dec_seq_len, modes=modes,
                                        mode_select_method=mode_select, rng=rng)
        decoder_cross_att = FourierCrossAttention(hidden_size, hidden_size, seq_len_q=dec_seq_len,
                                                  seq_len_kv=input_size, modes=modes,
                                                  mode_select_method=mode_select, rng=rng)
        dec_bins = (self.label_len + self.h) // 2 + 1
        top = max(decoder_self_att.index + decoder_cross_att.index_q + [len(decoder_self_att.index) - 1])
        if top >= dec_bins:
            raise ValueError(f"{name}: the decoder's label_len + h = {self.label_len + self.h} steps have {dec_bins} "
                             f"Fourier bins, but its blocks use modes up to {top} (drawn "
                             f"from input_size // 2 + h = {dec_seq_len}); raise decoder_input_size_multiplier or "
                             f"lower modes")
        layer_kw = dict(hidden_size=hidden_size, conv_hidden_size=conv_hidden_size, MovingAvg=MovingAvg_window,
                        dropout=dropout, activation=activation)
        self.encoder = Encoder([EncoderLayer(AutoCorrelationLayer(encoder_self_att, hidden_size, n_head), **layer_kw)
                                for _ in range(encoder_layers)], norm_layer=LayerNorm(hidden_size))
        self.decoder = Decoder([DecoderLayer(AutoCorrelationLayer(decoder_self_att, hidden_size, n_head),
                                             AutoCorrelationLayer(decoder_cross_att, hidden_size, n_head),
                                             c_out=self.c_out, **layer_kw)
                                for _ in range(decoder_layers)],
                               norm_layer=LayerNorm(hidden_size), projection=nn.Linear(hidden_size, self.c_out))

    def forward(self, windows_batch):
        """insample_y [B, L, 1], futr_exog [B, L + h, F] -> forecast [B, h, c_out]."""
        return decomposition_forward(self, windows_batch)

"""TimesNet: the series folded into 2-D by its dominant periods, an Inception block over each fold
(NeuralForecast's TimesNet)."""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._embeddings import DataEmbedding
from ndiv.models.common._inception import Inception_Block_V1
from ndiv.nn import functional as F


def FFT_for_Period(x, k: int = 2):  # noqa: N802 - NeuralForecast's name
    """x [B, T, C] -> (periods: int array [k], weights [B, k]).

    The k frequencies (bin 0 excluded) with the largest amplitude of rfft over time, averaged
    over the batch and the channels, chosen once for the whole batch (a batch-dependent choice,
    as in NF); periods = T // frequency; weights: each window's channel-mean amplitude at those
    frequencies (differentiable in x)."""
    amplitude = ndiv.fft.rfft(x, dim=1).abs()                     # [B, T//2 + 1, C]
    spectrum = amplitude.detach().mean(axis=0).mean(axis=-1)      # no gradient: it picks indices
    spectrum.data[0] = 0
    top = np.asarray(ndiv.topk(spectrum, k)[1].numpy())           # on the host, as NF's .cpu()
    return x.shape[1] // top, amplitude.mean(axis=-1)[:, top]


class TimesBlock(nn.Module):
    """x [B, T, N] (T = input_size + h) -> [B, T, N]: for each of the k periods p, x zero-padded
    to a multiple of p, folded to [B, N, T'/p, p], through conv (Inception, GELU, Inception),
    unfolded and cropped to T; the k results weighted by the softmax of their amplitudes, plus x."""

    def __init__(self, input_size: int, h: int, k: int, hidden_size: int, conv_hidden_size: int, num_kernels: int):
        super().__init__()
        self.input_size, self.h, self.k = input_size, h, k
        self.conv = nn.Sequential(
            Inception_Block_V1(hidden_size, conv_hidden_size, num_kernels=num_kernels),
            nn.GELU(),
            Inception_Block_V1(conv_hidden_size, hidden_size, num_kernels=num_kernels),
        )

    def forward(self, x):
        B, T, N = x.shape
        periods, period_weight = FFT_for_Period(x, self.k)
        first, second = self.conv[0].merged(), self.conv[2].merged()   # once for the k folds
        res = []
        for period in periods:
            period = int(period)
            length = -(-T // period) * period
            out = x if length == T else ndiv.cat([x, ndiv.zeros(B, length - T, N, dtype=x.dtype, device=x.device)], 1)
            out = out.reshape(B, length // period, period, N).permute(0, 3, 1, 2)      # [B, N, rows, period]
            out = self.conv[2](self.conv[1](self.conv[0](out, merged=first)), merged=second)
            res.append(out.permute(0, 2, 3, 1).reshape(B, -1, N)[:, :T])
        res = ndiv.stack(res, -1)                                                       # [B, T, N, k]
        weight = F.softmax(period_weight, dim=1)                                        # [B, k]
        return (res * weight[:, None, None, :]).sum(axis=-1) + x


class TimesNet(BaseModel):
    """TimesNet: [y | futr exog marks] -> `enc_embedding` (DataEmbedding with positions) [B, L,
    hidden] -> `predict_linear` over time (L -> L + h) -> encoder_layers x (TimesBlock, then the
    shared `layer_norm`) -> `projection` [B, L + h, n_out] -> the last h steps [B, h, n_out].

    Args: h (int) horizon; input_size (int) window length L; hidden_size (int) embedding width;
        dropout (float) of the embedding, in [0, 1); conv_hidden_size (int) channels inside the
        Inception blocks; top_k (int) periods per block, at most (L + h) // 2; num_kernels (int)
        Conv2d per Inception block (kernel sizes 1, 3, ..., 2 num_kernels - 1); encoder_layers
        (int) TimesBlocks; **kwargs: the shared options (loss, max_steps, learning_rate,
        futr_exog_list, ...), see BaseModel.
    Exogenous: futr (its first L steps, as time marks of the embedding) and categorical. The
    periods are chosen per batch from the batch-mean spectrum, as in NF: a window's forecast
    depends on the windows batched with it (inference_windows_batch_size).
    References: Wu et al. (2023), "TimesNet: Temporal 2D-Variation Modeling for General Time
    Series Analysis".

    >>> model = TimesNet(h=12, input_size=24, hidden_size=16, conv_hidden_size=16, max_steps=50)
    """
    EXOGENOUS_FUTR = True
    EXOGENOUS_HIST = EXOGENOUS_STAT = False
    EXOGENOUS_CAT = True
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-4, num_lr_decays=-1, windows_batch_size=64,
                    inference_windows_batch_size=256, scaler_type="standard")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, conv_hidden_size=POSITIVE_INT, top_k=POSITIVE_INT,
                        num_kernels=POSITIVE_INT, encoder_layers=POSITIVE_INT, dropout=PROBABILITY)

    def __init__(self, h, input_size, hidden_size=64, dropout=0.1, conv_hidden_size=64, top_k=5, num_kernels=6,
                 encoder_layers=2, **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        if isinstance(top_k, int) and top_k > (input_size + h) // 2:
            raise ValueError(f"TimesNet: top_k must be at most (input_size + h) // 2 = {(input_size + h) // 2} "
                             f"(the number of non-zero frequencies of a window of {input_size + h} steps), "
                             f"got {top_k}")
        self.hidden_size, self.dropout, self.conv_hidden_size = hidden_size, dropout, conv_hidden_size
        self.top_k, self.num_kernels, self.encoder_layers = top_k, num_kernels, encoder_layers
        self.c_out = self.loss.outputsize_multiplier
        self.model = nn.ModuleList([TimesBlock(input_size=input_size, h=h, k=top_k, hidden_size=hidden_size,
                                               conv_hidden_size=conv_hidden_size, num_kernels=num_kernels)
                                    for _ in range(encoder_layers)])
        self.enc_embedding = DataEmbedding(c_in=1, exog_input_size=self.futr_exog_size, hidden_size=hidden_size,
                                           pos_embedding=True, dropout=dropout)
        self.layer_norm = nn.LayerNorm(hidden_size)
        self.predict_linear = nn.Linear(input_size, h + input_size)
        self.projection = nn.Linear(hidden_size, self.c_out, bias=True)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], futr_exog [B, L + h, F] or None -> forecast [B, h, n_out]."""
        futr = windows_batch["futr_exog"]
        x_mark = futr[:, :self.input_size] if self.futr_exog_size > 0 else None
        out = self.enc_embedding(windows_batch["insample_y"], x_mark)                    # [B, L, hidden]
        out = self.predict_linear(out.permute(0, 2, 1)).permute(0, 2, 1)                # [B, L + h, hidden]
        for block in self.model:
            out = self.layer_norm(block(out))
        return self.projection(out)[:, -self.h:]

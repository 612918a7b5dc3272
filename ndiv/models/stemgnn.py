"""StemGNN: spectral temporal graph network (NeuralForecast's StemGNN).

The graph is learnt from the batch (a GRU over the series, self-graph attention, the mean over
the batch): a forecast depends on the other windows of its batch, as in NeuralForecast.
"""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT, PROBABILITY, Rule, is_number
from ndiv.models.base import BaseModel
from ndiv.nn import init

# torch.fft.fft over a length-4 axis and torch.fft.irfft(n=4) back, as constant matrices:
# fft: real = _C @ x, imag = -_S @ x; irfft reads bins 0..2 only (the imaginary parts of bins 0
# and 2 are ignored, as pocketfft's c2r does): x = _IR @ real + _II @ imag.
_T = np.arange(4)
_C = np.cos(2 * np.pi * np.outer(_T, _T) / 4).round(12)
_S = np.sin(2 * np.pi * np.outer(_T, _T) / 4).round(12)
_IR = np.stack([np.full(4, 0.25), 0.5 * np.cos(np.pi * _T / 2), 0.25 * np.cos(np.pi * _T), np.zeros(4)], 1).round(12)
_II = np.stack([np.zeros(4), -0.5 * np.sin(np.pi * _T / 2), np.zeros(4), np.zeros(4)], 1).round(12)


class GLU(nn.Module):
    """linear_left(x) * sigmoid(linear_right(x))."""

    def __init__(self, input_channel, output_channel):
        super().__init__()
        self.linear_left = nn.Linear(input_channel, output_channel)
        self.linear_right = nn.Linear(input_channel, output_channel)

    def forward(self, x):
        return self.linear_left(x) * self.linear_right(x).sigmoid()


class StockBlockLayer(nn.Module):
    """One StemGNN block: graph Fourier (the 4 Chebyshev orders), a length-4 DFT, spectral GLUs,
    the inverse DFT, a graph convolution, the forecast (and for the first block the backcast).
    x [B, N, L], mul_L [4, N, N] -> forecast [B, N, L], backcast [B, N, L] or None."""

    def __init__(self, time_step, unit, multi_layer, stack_cnt=0):
        super().__init__()
        self.time_step, self.unit, self.stack_cnt, self.multi = time_step, unit, stack_cnt, multi_layer
        tm = time_step * multi_layer
        self.weight = nn.Parameter(np.empty((1, 4, 1, tm, tm), np.float32))
        init.xavier_normal_(self.weight)
        self.forecast = nn.Linear(tm, tm)
        self.forecast_result = nn.Linear(tm, time_step)
        if stack_cnt == 0:
            self.backcast = nn.Linear(tm, time_step)
        self.backcast_short_cut = nn.Linear(time_step, time_step)
        self.output_channel = 4 * multi_layer
        width = time_step * self.output_channel
        self.GLUs = nn.ModuleList([GLU(time_step * 4 if i < 2 else width, width) for i in range(6)])

    def spe_seq_cell(self, x):
        """x [B, 4, N, L] -> the spectral GLUs between a DFT and its inverse over the 4 orders
        -> [B, 4, N, L * multi]."""
        b, _, n, _ = x.shape
        c, s = (ndiv.tensor(a.astype(x.dtype), device=x.device) for a in (_C, _S))
        real = ndiv.einsum("kt,btnl->bnkl", c, x).reshape(b, n, -1)
        img = -ndiv.einsum("kt,btnl->bnkl", s, x).reshape(b, n, -1)
        for i in range(3):
            real, img = self.GLUs[2 * i](real), self.GLUs[2 * i + 1](img)
        ir, ii = (ndiv.tensor(a.astype(x.dtype), device=x.device) for a in (_IR, _II))
        return (ndiv.einsum("tk,bnkl->btnl", ir, real.reshape(b, n, 4, -1))
                + ndiv.einsum("tk,bnkl->btnl", ii, img.reshape(b, n, 4, -1)))

    def forward(self, x, mul_L):
        gfted = ndiv.einsum("knm,bml->bknl", mul_L, x)                               # [B, 4, N, L]
        igfted = ndiv.einsum("bknl,klm->bnm", self.spe_seq_cell(gfted), self.weight[0, :, 0])   # [B, N, Lm]
        forecast = self.forecast_result(self.forecast(igfted).sigmoid())
        backcast = None
        if self.stack_cnt == 0:
            backcast = (self.backcast(igfted) - self.backcast_short_cut(x)).sigmoid()
        return forecast, backcast


class StemGNN(BaseModel):
    """StemGNN: a latent-correlation layer (GRU over the series, self-graph attention, its batch
    mean as the graph, the normalised Laplacian and its Chebyshev polynomials), two spectral
    blocks, then Linear-LeakyReLU-Linear to h * n_out per series.

    Args: h (int) horizon; input_size (int) window length L; n_series (int) number of series N;
        n_stacks (int, 2 only, as NF); multi_layer (int) spectral width multiplier; dropout_rate
        (float) on the attention; leaky_rate (float) the attention's LeakyReLU slope; **kwargs:
        the shared options (see BaseModel).
    References: Cao et al. (2020), "Spectral Temporal Graph Neural Network for Multivariate
        Time-series Forecasting".
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = False
    MULTIVARIATE, RECURRENT = True, False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=32,
                    inference_windows_batch_size=32, scaler_type="robust")
    OPTION_RULES = dict(multi_layer=POSITIVE_INT, dropout_rate=PROBABILITY,
                        leaky_rate=Rule(lambda v: is_number(v) and v >= 0, "a number >= 0"))

    def __init__(self, h, input_size, n_series=None, n_stacks=2, multi_layer=5, dropout_rate=0.5, leaky_rate=0.2,
                 **kwargs):
        super().__init__(h=h, input_size=input_size, n_series=n_series, **kwargs)
        if n_stacks != 2:
            raise ValueError(f"StemGNN: n_stacks must be 2 (NeuralForecast's StemGNN supports only 2), got {n_stacks!r}")
        n = self.n_series
        self.unit, self.stack_cnt, self.alpha = n, n_stacks, leaky_rate
        self.time_step, self.horizon, self.multi_layer = input_size, h, multi_layer
        self.weight_key = nn.Parameter(np.zeros((n, 1), np.float32))
        init.xavier_uniform_(self.weight_key, gain=1.414)
        self.weight_query = nn.Parameter(np.zeros((n, 1), np.float32))
        init.xavier_uniform_(self.weight_query, gain=1.414)
        self.GRU = nn.GRU(input_size, n)
        self.stock_block = nn.ModuleList([StockBlockLayer(input_size, n, multi_layer, stack_cnt=i)
                                          for i in range(n_stacks)])
        self.fc = nn.Sequential(nn.Linear(input_size, input_size), nn.LeakyReLU(),
                                nn.Linear(input_size, h * self.loss.outputsize_multiplier))
        self.leakyrelu = nn.LeakyReLU(leaky_rate)
        self.dropout = nn.Dropout(dropout_rate)

    def self_graph_attention(self, x):
        """x [B, N, N] (GRU states, series-major) -> attention [B, N, N]: softmax over j of
        LeakyReLU(key_i + query_j), the keys and queries read along the series axis as NF does."""
        key = ndiv.einsum("bsi,s->bi", x, self.weight_key[:, 0])
        query = ndiv.einsum("bsi,s->bi", x, self.weight_query[:, 0])
        data = self.leakyrelu(key.unsqueeze(2) + query.unsqueeze(1))
        return self.dropout(nn.functional.softmax(data, dim=2))

    def latent_correlation_layer(self, x):
        """x [B, L, N] -> the Chebyshev polynomials mul_L [4, N, N] of the normalised Laplacian of
        the batch-mean graph (NF's first order is zeros, not the identity) and the graph [N, N]."""
        states, _ = self.GRU(x.permute(2, 0, 1))                      # the series as a sequence: [N, B, N]
        attention = self.self_graph_attention(states.permute(1, 0, 2)).mean(axis=0)
        degree = attention.sum(axis=1)
        attention = 0.5 * (attention + attention.transpose(1, 0))
        d_hat = ndiv.diag(1.0 / (degree.sqrt() + 1e-7))
        laplacian = d_hat @ ((ndiv.diag(degree) - attention) @ d_hat)
        zeros = laplacian * 0.0
        third = 2.0 * (laplacian @ laplacian) - zeros
        fourth = 2.0 * (laplacian @ third) - laplacian
        return ndiv.stack([zeros, laplacian, third, fourth], axis=0), attention

    def forward(self, windows_batch):
        """insample_y [B, L, N] -> [B, h, N * n_out] (the graph is the batch's)."""
        x = windows_batch["insample_y"]
        b = x.shape[0]
        mul_L, _ = self.latent_correlation_layer(x)
        X = x.permute(0, 2, 1)                                         # [B, N, L]
        result = []
        for block in self.stock_block:
            forecast, X = block(X, mul_L)
            result.append(forecast)
        out = self.fc(result[0] + result[1])                           # [B, N, h * n_out]
        return out.permute(0, 2, 1).reshape(b, self.h, -1)

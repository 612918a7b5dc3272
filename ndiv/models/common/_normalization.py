"""Normalisation and decomposition blocks of NeuralForecast's common/_modules.py, under NF's names:

    RevIN              reversible instance normalisation over time, affine [C] (PatchTST, TimeLLM)
    RevINMultivariate  the same on batch statistics, affine [1, 1, N] (TSMixer, RMoK)
    MovingAvg          centred moving average with edge repetition, [B, L, C] -> [B, L', C]
    SeriesDecomp       x -> (x - trend, trend), trend the moving average (DLinear, Autoformer, FEDformer)

NF keeps the statistics of a normalisation on the layer between 'norm' and 'denorm'; here they
travel with the call (returned by 'norm', passed back to 'denorm'), so concurrent forecasts on
one model do not mix.
"""
from __future__ import annotations

import numpy as np

from ndiv import device, nn


class RevIN(nn.Module):
    """Reversible instance normalisation over time (NeuralForecast's RevIN), x [B, L, C].

    mode='norm' returns (normalised x, stats): each window's last value (subtract_last) or mean,
    and its std; mode='denorm' maps a forecast [B, h, C] back with those stats, passed back in.
    The std and the mean are constants for the gradient; the last value is not (as in NF).
    """

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False, subtract_last: bool = False):
        super().__init__()
        self.num_features, self.eps, self.affine, self.subtract_last = num_features, eps, affine, subtract_last
        if affine:
            self.affine_weight = nn.Parameter(np.ones(num_features, np.float32))
            self.affine_bias = nn.Parameter(np.zeros(num_features, np.float32))

    def forward(self, x, mode: str, stats=None):
        if mode == "norm":
            center = x[:, -1:, :] if self.subtract_last else x.mean(axis=1, keepdims=True).detach()
            stdev = (x.var(axis=1, keepdims=True, unbiased=False) + self.eps).sqrt().detach()
            x = (x - center) / stdev
            return (x * self.affine_weight + self.affine_bias if self.affine else x), (center, stdev)
        if mode == "denorm":
            center, stdev = stats
            if self.affine:
                x = (x - self.affine_bias) / (self.affine_weight + self.eps * self.eps)
            return x * stdev + center
        raise ValueError(f"RevIN: mode must be 'norm' or 'denorm', got {mode!r}")


class RevINMultivariate(nn.Module):
    """RevIN for multivariate models (NF's RevINMultivariate), x [B, L, N]: each window and series
    normalised by its mean and std over time (constants for the gradient); affine_weight and
    affine_bias are [1, 1, N]. 'norm' returns (x, (mean, std)); 'denorm' takes them back and,
    unlike RevIN, divides by the affine weight without an eps (as NF)."""

    def __init__(self, num_features: int, eps: float = 1e-5, affine: bool = False, subtract_last: bool = False,
                 non_norm: bool = False):
        super().__init__()
        self.num_features, self.eps, self.affine = num_features, eps, affine
        if affine:
            self.affine_weight = nn.Parameter(np.ones((1, 1, num_features), np.float32))
            self.affine_bias = nn.Parameter(np.zeros((1, 1, num_features), np.float32))

    def forward(self, x, mode: str, stats=None):
        if mode == "norm":
            mean = x.mean(axis=1, keepdims=True).detach()
            std = (x.var(axis=1, keepdims=True, unbiased=False) + self.eps).sqrt().detach()
            x = (x - mean) / std
            return (x * self.affine_weight + self.affine_bias if self.affine else x), (mean, std)
        if mode == "denorm":
            mean, std = stats
            if self.affine:
                x = (x - self.affine_bias) / self.affine_weight
            return x * std + mean
        raise ValueError(f"RevINMultivariate: mode must be 'norm' or 'denorm', got {mode!r}")


class MovingAvg(nn.Module):
    """The moving average of window kernel_size over time, the ends padded by repeating the first
    and last values (kernel_size - 1) // 2 times: x [B, L, C] -> [B, L', C] (NF's layout), or
    x [B, L] -> [B, L'] (NF's DLinear's); L' = L for an odd kernel_size (L - 1 for an even one),
    stride 1.

    NeuralForecast pads and runs AvgPool1d; the same map is linear in x, so it is one product
    with A [L, L'] built once per length (the padding folds into A's first and last rows).
    """

    def __init__(self, kernel_size: int, stride: int = 1):
        super().__init__()
        if stride != 1:
            raise ValueError(f"MovingAvg: only stride=1 is supported (the trend has the input's length), got {stride}")
        self.kernel_size = kernel_size
        self._cache: dict = {}

    def matrix(self, length: int, dtype, dev: str = "cpu"):
        """A [length, L'] in dtype on dev: column t averages x[clip(t - half + j)], j < kernel_size."""
        key = (length, np.dtype(dtype).str, dev)
        if key not in self._cache:
            half = (self.kernel_size - 1) // 2
            n_out = length + 2 * half - self.kernel_size + 1
            if n_out < 1:
                raise ValueError(f"MovingAvg: kernel_size {self.kernel_size} is longer than the padded input "
                                 f"({length} + {2 * half})")
            a = np.zeros((length, n_out))
            cols = np.arange(n_out)
            for j in range(self.kernel_size):
                np.add.at(a, (np.clip(cols - half + j, 0, length - 1), cols), 1.0 / self.kernel_size)
            self._cache[key] = device.to_device(a.astype(dtype), dev)
        return self._cache[key]

    def forward(self, x):
        if x.ndim not in (2, 3):
            raise ValueError(f"MovingAvg: x must be [B, L, C] or [B, L], got shape {tuple(x.shape)}")
        b, length = x.shape[:2]
        a = self.matrix(length, x.dtype, x.device)
        if x.ndim == 2:
            return x @ a
        if x.shape[2] == 1:                                               # [B, L] @ A: no transposes
            return (x.reshape(b, length) @ a).reshape(b, -1, 1)
        return (x.swapaxes(1, 2) @ a).swapaxes(1, 2)


class SeriesDecomp(nn.Module):
    """x [B, L, C] (or [B, L]) -> (remainder, trend), each shaped as x, the trend a MovingAvg(kernel_size).
    kernel_size must be odd (an even one gives a trend one step short, which NF fails on later)."""

    def __init__(self, kernel_size: int):
        super().__init__()
        if kernel_size % 2 == 0:
            raise ValueError(f"SeriesDecomp: the moving-average kernel_size must be odd, got {kernel_size}")
        self.MovingAvg = MovingAvg(kernel_size, stride=1)

    def forward(self, x):
        moving_mean = self.MovingAvg(x)
        return x - moving_mean, moving_mean

"""TimesNet's Inception_Block_V1 (NeuralForecast's models/timesnet.py), under NF's names.

The block averages num_kernels Conv2d of kernel sizes 1, 3, ..., 2 n - 1, each padded to keep
the grid's size. A convolution is linear in its kernel, so that average is ONE convolution with
the average of the kernels zero-padded to (2 n - 1)^2: 121 taps per channel pair instead of
1 + 9 + ... + 121 = 286 for n = 6, one im2col and one GEMM instead of six. Exact up to float
rounding; the tape routes the merged kernel's gradient back to each of the six weights (the
centre crop of it, divided by n), so parameters, state_dict and optimizer see NF's six convs.
"""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.nn import functional as F
from ndiv.nn import init


class Inception_Block_V1(nn.Module):  # noqa: N801 - NeuralForecast's name
    """x [B, in_channels, H, W] -> mean_i kernels[i](x) [B, out_channels, H, W].

    kernels: ModuleList of num_kernels Conv2d(in_channels, out_channels, 2 i + 1, padding=i),
    initialised as NF (kaiming_normal_, fan_out, relu; zero bias) when init_weight.

    >>> Inception_Block_V1(4, 8, num_kernels=3)(ndiv.randn(2, 4, 3, 5)).shape
    (2, 8, 3, 5)
    """

    def __init__(self, in_channels: int, out_channels: int, num_kernels: int = 6, init_weight: bool = True):
        super().__init__()
        self.in_channels, self.out_channels, self.num_kernels = in_channels, out_channels, num_kernels
        self.kernels = nn.ModuleList([nn.Conv2d(in_channels, out_channels, kernel_size=2 * i + 1, padding=i)
                                      for i in range(num_kernels)])
        if init_weight:
            for conv in self.kernels:
                init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
                init.constant_(conv.bias, 0.0)

    def merged(self):
        """(weight [out, in, K, K], bias [out]), K = 2 num_kernels - 1: the mean of the kernels,
        each zero-padded to K x K around its centre; differentiable in every kernel's weights."""
        n = self.num_kernels
        weight = None
        for i, conv in enumerate(self.kernels):
            p = n - 1 - i
            w = ndiv.pad(conv.weight, ((0, 0), (0, 0), (p, p), (p, p))) if p else conv.weight
            weight = w if weight is None else weight + w
        bias = ndiv.stack([conv.bias for conv in self.kernels]).mean(axis=0)
        return weight * (1.0 / n), bias

    def forward(self, x, merged=None):
        """x [B, C_in, H, W] -> [B, C_out, H, W]; `merged` reuses a `merged()` result (TimesBlock
        runs the same block on top_k grids per step and merges its kernels once)."""
        weight, bias = merged if merged is not None else self.merged()
        return F.conv2d(x, weight, bias, padding=self.num_kernels - 1)

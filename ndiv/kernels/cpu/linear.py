"""The epilogue of a Linear layer (Numba), twin of reference/linear.py: the bias add and the
activation in one pass over the GEMM's output, and in the backward the activation's mask and the
bias gradient in one pass (float64 column accumulators; the row loop vectorizes over columns)."""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit


def linear_act_fwd(y0, b, activation):
    """y0 [N, out] (overwritten: the result is y0 itself when contiguous); b [out] -> act(y0 + b)."""
    y = np.ascontiguousarray(y0)
    _bias_act(y, np.ascontiguousarray(b, dtype=y.dtype), activation == "relu")
    return y


@njit()
def _bias_act(y, b, relu):
    n, d = y.shape
    for i in range(n):
        row = y[i]
        if relu:
            for j in range(d):
                v = row[j] + b[j]
                row[j] = 0 if v <= 0 else v                # a nan stays a nan, as torch.relu
        else:
            for j in range(d):
                row[j] += b[j]


def linear_act_bwd(gy, y, activation):
    """gy, y [N, out] -> g [N, out], gb [out] (see reference/linear.py)."""
    gy = np.ascontiguousarray(gy)
    y = np.ascontiguousarray(y, dtype=gy.dtype)
    g = np.empty_like(gy)
    acc = np.zeros(gy.shape[1], np.float64)
    _mask_and_sum(gy, y, g, acc, activation == "relu")
    return g, acc.astype(gy.dtype)


@njit()
def _mask_and_sum(gy, y, g, acc, relu):
    n, d = gy.shape
    for i in range(n):
        gr, yr, out = gy[i], y[i], g[i]
        if relu:
            for j in range(d):
                out[j] = 0 if yr[j] <= 0 else gr[j]        # torch's threshold_backward
        else:
            for j in range(d):
                out[j] = gr[j]
        for j in range(d):
            acc[j] += out[j]

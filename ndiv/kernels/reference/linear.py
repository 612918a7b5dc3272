"""The epilogue of a Linear layer, bias add and activation, and its backward (plain NumPy).

The matrix product itself stays in BLAS; these kernels take its output y0 = x @ W^T [N, out].
activation: 'relu' or 'identity'.
"""
from __future__ import annotations

import numpy as np


def linear_act_fwd(y0, b, activation):
    """y0 [N, out]; b [out] -> y = act(y0 + b) [N, out] (relu keeps a nan, as torch.relu)."""
    y = y0 + b
    return np.maximum(y, 0) if activation == "relu" else y


def linear_act_bwd(gy, y, activation):
    """gy, y [N, out] (y from forward) -> g [N, out] (the gradient of y0 = x @ W^T), gb [out].

    relu' is torch's threshold_backward on the output: 0 where y <= 0, else 1 (a nan output
    passes the gradient on). gb = g summed over the rows (float64 accumulation)."""
    g = np.where(y <= 0, np.zeros((), gy.dtype), gy) if activation == "relu" else gy.copy()
    return g, g.sum(axis=0, dtype=np.float64).astype(gy.dtype)

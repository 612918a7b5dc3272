"""Statistics of a training step, for ndiv.viz.GradientRecorder (Numba), twin of reference/stats.py.

One pass reads the gradient, the weights and the previous weights and writes the weights over the
previous ones: 4 memory streams instead of the 8 that np.linalg.norm, np.subtract and a copy take,
with float64 accumulators (a float32 square that overflows stays finite).
"""
from __future__ import annotations

import numpy as np

from ndiv.kernels.config import njit


def grad_update_stats(g, w, last):
    """g, w, last: same size, any shape (last is overwritten with w) -> (|g|^2, |w - last|^2, |last|^2)."""
    g = np.ascontiguousarray(g).reshape(-1)
    w = np.ascontiguousarray(w).reshape(-1)
    if not last.flags.c_contiguous:
        raise ValueError("grad_update_stats: `last` must be a C-contiguous array (it is written in place)")
    flat = last.reshape(-1)
    if not (g.size == w.size == flat.size):
        raise ValueError(f"grad_update_stats: sizes differ (g {g.size}, w {w.size}, last {flat.size})")
    gg, dd, ll = _stats(g, w, flat)
    return float(gg), float(dd), float(ll)


@njit()
def _stats(g, w, last):
    gg = 0.0
    dd = 0.0
    ll = 0.0
    for i in range(g.shape[0]):
        a = np.float64(g[i])
        gg += a * a
    for i in range(w.shape[0]):
        v = np.float64(w[i])
        p = np.float64(last[i])
        d = v - p
        dd += d * d
        ll += p * p
        last[i] = w[i]
    return gg, dd, ll

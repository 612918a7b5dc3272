"""Statistics of a training step, for ndiv.viz.GradientRecorder (CuPy), twin of reference/stats.py.

Composed CuPy reductions in float64 (the recorder reads three scalars per parameter and step; a
custom kernel would save two passes over the weights, not worth a RawKernel here).
"""
from __future__ import annotations


def grad_update_stats(g, w, last):
    """g, w, last: same size, any shape (last is overwritten with w) -> (|g|^2, |w - last|^2, |last|^2)."""
    import cupy as cp

    g64, w64, last64 = (cp.asarray(a, dtype=cp.float64).ravel() for a in (g, w, last))
    d = w64 - last64
    out = float(g64 @ g64), float(d @ d), float(last64 @ last64)
    last[...] = w.reshape(last.shape)
    return out

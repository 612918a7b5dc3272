"""Statistics of a training step, for ndiv.viz.GradientRecorder (plain NumPy, the reference)."""
from __future__ import annotations

import numpy as np


def grad_update_stats(g, w, last):
    """One parameter's step statistics in one call: g the gradient, w the weights now, last the
    weights at the previous call (any shape, all the same size; `last` is overwritten with w).

    -> (|g|^2, |w - last|^2, |last|^2) as Python floats, summed in float64 (no float32 overflow;
    a NaN or inf entry gives nan or inf).
    """
    if not (np.size(g) == np.size(w) == np.size(last)):
        raise ValueError(f"grad_update_stats: sizes differ (g {np.size(g)}, w {np.size(w)}, last {np.size(last)})")
    g64 = np.asarray(g, dtype=np.float64).ravel()
    w64 = np.asarray(w, dtype=np.float64).ravel()
    last64 = np.asarray(last, dtype=np.float64).ravel()
    with np.errstate(over="ignore", invalid="ignore"):
        d = w64 - last64
        out = float(g64 @ g64), float(d @ d), float(last64 @ last64)
    last[...] = np.asarray(w).reshape(last.shape)
    return out

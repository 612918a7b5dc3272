"""Temporal scalers: NeuralForecast's TemporalNorm, per window, on raw arrays.

Statistics (`*_statistics(x, mask, dim, eps) -> (shift, scale)`) are computed with NumPy on raw
arrays over the time axis `dim`, counting only entries where `mask` is 1 (the insample part of a
window: the base zeroes the mask over the last h steps, so the forecast never leaks into its own
scaling). They carry no gradient, exactly as in NeuralForecast where the windows are data.

`scale(kind, x, shift, scale)` and `inverse_scale(kind, z, shift, scale)` use ordinary arithmetic
(`-`, `/`, `*`, `+`), so they work on NumPy arrays and on ndiv Tensors; 'invariant' uses
arcsinh/sinh (np.arcsinh on arrays, exp/log/sqrt on Tensors).

Epsilons and formulas are NeuralForecast's (common/_scalers.py), including its choices:
the median is the lower middle value for an even count (torch.nanmedian), a zero spread becomes
1 before `+ eps`, robust scaling falls back to 0.6745 * std when the MAD is 0, and an all-masked
window gets shift 0.

    >>> import numpy as np
    >>> x = np.array([[[1.0], [2.0], [3.0], [10.0]]])          # [B=1, T=4, C=1]
    >>> mask = np.array([[[1.0], [1.0], [1.0], [0.0]]])        # the last step is the horizon
    >>> shift, sc = std_statistics(x, mask, dim=1)
    >>> shift.ravel(), np.round(sc.ravel(), 6)
    (array([2.]), array([0.816498]))
    >>> np.round(scale("standard", x, shift, sc).ravel(), 4)
    array([-1.2247,  0.    ,  1.2247,  9.7979])
"""
from __future__ import annotations

import numpy as np

from ndiv.device import array_module
from ndiv.nn.module import Module
from ndiv.nn.parameter import Parameter

SCALER_TYPES = (None, "identity", "standard", "robust", "minmax", "minmax1", "invariant", "revin")
_MAD_TO_STD = 0.6744897501960817   # Phi^-1(3/4): the MAD of a standard normal


def _f64(x):
    return np.asarray(x, dtype=np.float64)


def masked_mean(x, mask, dim=-1, keepdim=True):
    """Mean of x along dim over entries with mask 1; 0 where no entry is available."""
    x, m = np.broadcast_arrays(_f64(x), _f64(mask) > 0)
    count = m.sum(axis=dim, keepdims=keepdim)
    total = np.where(m, x, 0.0).sum(axis=dim, keepdims=keepdim)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = total / count
    return np.where(count > 0, out, 0.0)


def masked_median(x, mask, dim=-1, keepdim=True):
    """Median along dim over entries with mask 1 (the lower middle value for an even count, as
    torch.nanmedian); 0 where no entry is available."""
    x, m = np.broadcast_arrays(_f64(x), _f64(mask) > 0)
    xs = np.sort(np.where(m, x, np.inf), axis=dim)           # masked entries sort to the end
    count = m.sum(axis=dim, keepdims=True)
    k = np.maximum((count - 1) // 2, 0)
    med = np.take_along_axis(xs, k, axis=dim)
    med = np.where(count > 0, med, 0.0)
    return med if keepdim else np.squeeze(med, axis=dim)


def _masked_std(x, mask, dim, mean):
    return np.sqrt(masked_mean((_f64(x) - mean) ** 2, mask, dim))


def identity_statistics(x, mask, dim=-1, eps=1e-6):
    shape = list(np.shape(x))
    shape[dim] = 1
    return np.zeros(shape, dtype=x.dtype), np.ones(shape, dtype=x.dtype)


def std_statistics(x, mask, dim=-1, eps=1e-6):
    """shift = mean, scale = std (population) + eps, a zero std replaced by 1."""
    mean = masked_mean(x, mask, dim)
    std = _masked_std(x, mask, dim, mean)
    std = np.where(std == 0, 1.0, std) + eps
    return mean.astype(x.dtype), std.astype(x.dtype)


def robust_statistics(x, mask, dim=-1, eps=1e-6):
    """shift = median, scale = median |x - median| + eps (0.6745 std where that is 0, then 1)."""
    median = masked_median(x, mask, dim)
    mad = masked_median(np.abs(_f64(x) - median), mask, dim)
    mean = masked_mean(x, mask, dim)
    mad_aux = _masked_std(x, mask, dim, mean) * _MAD_TO_STD
    mad = mad * (mad > 0) + mad_aux * (mad == 0)
    mad = np.where(mad == 0, 1.0, mad) + eps
    return median.astype(x.dtype), mad.astype(x.dtype)


invariant_statistics = robust_statistics


def minmax_statistics(x, mask, dim=-1, eps=1e-6):
    """shift = min, scale = max - min + eps (a zero range replaced by 1)."""
    x64, m = np.broadcast_arrays(_f64(x), _f64(mask) > 0)
    x_max = np.nan_to_num(np.where(m, x64, -np.inf), nan=-np.inf).max(axis=dim, keepdims=True)
    x_min = np.nan_to_num(np.where(m, x64, np.inf), nan=np.inf).min(axis=dim, keepdims=True)
    x_max, x_min = x_max.astype(x.dtype), x_min.astype(x.dtype)   # NF casts before the range
    with np.errstate(invalid="ignore"):
        x_range = x_max - x_min
    x_range = np.where(x_range == 0, np.ones((), x.dtype), x_range) + np.asarray(eps, x.dtype)
    return x_min, x_range


minmax1_statistics = minmax_statistics

STATISTICS = {None: identity_statistics, "identity": identity_statistics, "standard": std_statistics,
              "revin": std_statistics, "robust": robust_statistics, "minmax": minmax_statistics,
              "minmax1": minmax1_statistics, "invariant": invariant_statistics}


def _is_tensor(z) -> bool:
    return hasattr(z, "requires_grad")


def _arcsinh(z):
    if not _is_tensor(z):
        return array_module(z).arcsinh(z)
    import ndiv
    # log(u + sqrt(u^2 + 1)) on u = |z| avoids cancellation for z << 0; |z| is taken by `where`
    # rather than abs() so that the derivative at z = 0 is 1 (abs'(0) is 0 by convention)
    pos = z >= 0
    u = ndiv.where(pos, z, -z)
    a = (u + (u * u + 1.0).sqrt()).log()
    return ndiv.where(pos, a, -a)


def _sinh(z):
    if not _is_tensor(z):
        return array_module(z).sinh(z)
    return (z.exp() - (-z).exp()) * 0.5


def scale(kind, x, shift, scale_):
    """z = scaled x for scaler `kind` with statistics (shift, scale)."""
    if kind in (None, "identity"):
        return x
    if kind in ("standard", "revin", "robust", "minmax"):
        return (x - shift) / scale_
    if kind == "minmax1":
        return ((x - shift) / scale_) * 2 - 1
    if kind == "invariant":
        return _arcsinh((x - shift) / scale_)
    raise ValueError(f"scaler_type={kind!r}; expected one of {SCALER_TYPES}")


def inverse_scale(kind, z, shift, scale_):
    """x = z mapped back to the data's scale: the inverse of `scale`."""
    if kind in (None, "identity"):
        return z
    if kind in ("standard", "revin", "robust", "minmax"):
        return z * scale_ + shift
    if kind == "minmax1":
        return ((z + 1) / 2) * scale_ + shift
    if kind == "invariant":
        return _sinh(z) * scale_ + shift
    raise ValueError(f"scaler_type={kind!r}; expected one of {SCALER_TYPES}")


class TemporalNorm(Module):
    """NeuralForecast's TemporalNorm: per-window statistics over the time axis `dim`.

    Args:
        scaler_type: one of None, 'identity', 'standard', 'robust', 'minmax', 'minmax1',
            'invariant', 'revin'.
        dim: the time axis (the base uses dim=1 on windows [B, L + h, C, N]).
        eps: added to every scale.
        num_features: channels C scaled together (y and the non-categorical temporal
            exogenous columns); needed for 'revin'.

    `transform_stats(x, mask)` returns the scaled x with the statistics x_shift, x_scale
    [B, 1, C, N] that undo it; `transform(x, mask)` keeps them in `x_shift` and `x_scale`. With 'revin' they include the learnable affine terms, as in
    NeuralForecast: the data are scaled with the plain standard statistics, and
    `x_shift = stats_shift + revin_bias`, `x_scale = stats_scale * (relu(revin_weight) + eps)`,
    so the affine terms learn through the inverse scaling (and DistributionLoss.scale_decouple).

    It is an `ndiv.nn.Module`, so a model base that holds it as `self.scaler` gets
    NeuralForecast's state_dict keys for the revin parameters: `scaler.revin_bias` (zeros) and
    `scaler.revin_weight` (ones), Parameters of shape [1, 1, C, 1] for dim=1 ([1, C, 1, 1] for
    dim=-1); the other scaler types have no parameters. Statistics are NumPy arrays (no
    gradient); only the revin terms carry one.

        >>> norm = TemporalNorm("robust", dim=1)
        >>> x = np.arange(8.0, dtype=np.float32).reshape(1, 4, 2, 1)
        >>> m = np.ones((1, 4, 1, 1), np.float32)
        >>> z = norm.transform(x, m)
        >>> np.allclose(norm.inverse_transform(z), x)
        True
    """

    def __init__(self, scaler_type="robust", dim=-1, eps=1e-6, num_features=None):
        if scaler_type not in STATISTICS:
            raise ValueError(f"scaler_type={scaler_type!r} is not a temporal scaler; expected one of "
                             f"{list(STATISTICS)}")
        if scaler_type == "revin" and num_features is None:
            raise ValueError("scaler_type='revin' needs num_features (1 + number of temporal exogenous "
                             "features) for its learnable affine parameters")
        super().__init__()
        self.scaler_type, self.dim, self.eps = scaler_type, dim, eps
        self.compute_statistics = STATISTICS[scaler_type]
        self.x_shift = self.x_scale = None
        if scaler_type == "revin":
            shape = (1, 1, num_features, 1) if dim == 1 else (1, num_features, 1, 1)
            self.revin_bias = Parameter(np.zeros(shape, dtype=np.float32))
            self.revin_weight = Parameter(np.ones(shape, dtype=np.float32))

    def forward(self, x):
        raise RuntimeError("TemporalNorm is used through transform / inverse_transform, not called")

    def statistics(self, x, mask):
        """(shift, scale) raw arrays, keepdim along `dim`."""
        return self.compute_statistics(np.asarray(x), np.asarray(mask), dim=self.dim, eps=self.eps)

    def transform(self, x, mask):
        """Scale x [.., T, ..] with statistics over `dim` where mask is 1; remembers them in
        x_shift / x_scale (NeuralForecast's API). The model base uses `transform_stats`, which
        remembers nothing, so that concurrent predictions never read each other's statistics."""
        z, self.x_shift, self.x_scale = self.transform_stats(x, mask)
        return z

    def transform_stats(self, x, mask):
        """(z, x_shift, x_scale): x scaled with statistics over `dim` where mask is 1, and the
        statistics that undo it ([.., 1, ..]; with 'revin' they include the affine terms, as
        Tensors). Stores nothing on the scaler."""
        x_shift, x_scale = self.statistics(x, mask)
        z = scale(self.scaler_type, x, x_shift, x_scale)
        if self.scaler_type == "revin":
            x_shift, x_scale = self.revin_affine(x_shift, x_scale)
        return z, x_shift, x_scale

    def revin_affine(self, x_shift, x_scale):
        """(shift + revin_bias, scale * (relu(revin_weight) + eps)) as Tensors that carry the
        gradient to the revin parameters (arrays if they were replaced by arrays)."""
        w = self.revin_weight
        relu_w = w.relu() if _is_tensor(w) else np.maximum(w, 0)
        return self.revin_bias + x_shift, (relu_w + self.eps) * x_scale

    def inverse_transform(self, z, x_shift=None, x_scale=None):
        """Undo `transform` with the remembered (or given) statistics."""
        x_shift = self.x_shift if x_shift is None else x_shift
        x_scale = self.x_scale if x_scale is None else x_scale
        return inverse_scale(self.scaler_type, z, x_shift, x_scale)

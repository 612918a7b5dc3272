"""Point and quantile losses: NeuralForecast's, on ndiv Tensors.

Every loss is called as `loss(y=..., y_hat=..., mask=..., y_insample=...)` (use keywords:
NeuralForecast's own argument order differs between classes) and returns a 0-d Tensor that is
differentiable in `y_hat`. Shapes: y, mask [B, h, N] (N = 1 for univariate models), y_hat
[B, h, N] (MQLoss: [B, h, N, Q]); y and mask may be NumPy arrays or Tensors; mask defaults to
ones. The reduction is NeuralForecast's masked weighted mean

    sum(loss * w) / sum(w),  w = mask * horizon_weight,  entries with w = 0 contribute 0 (even NaN),
    and 0 when sum(w) = 0.

Attributes the model base reads: `outputsize_multiplier` (outputs per target value),
`output_names` (suffixes of the forecast columns: '' for a point forecast, '-median', '-lo-90',
...), `is_distribution_output` (False here), `domain_map(y_hat)` (MQLoss reshapes
[B, h, N * Q] -> [B, h, N, Q]; the others return y_hat).

    >>> import numpy as np, ndiv
    >>> y = np.array([[[1.0], [2.0], [4.0]]])                      # [B=1, h=3, N=1]
    >>> y_hat = ndiv.tensor([[[1.0], [3.0], [2.0]]], requires_grad=True)
    >>> MAE()(y=y, y_hat=y_hat).item()
    1.0
    >>> MQLoss(level=[80, 90]).output_names
    ['-median', '-lo-90', '-lo-80', '-hi-80', '-hi-90']
"""
from __future__ import annotations

import warnings

import numpy as np

import ndiv
from ndiv.autograd.tensor import Tensor


# ----------------------------------------------------------------------------- helpers
def as_tensor(x, like: Tensor) -> Tensor:
    """y, mask or y_insample as a constant Tensor of y_hat's dtype and device (a Tensor stays)."""
    if isinstance(x, Tensor):
        return x
    data = np.asarray(x) if not hasattr(x, "__cuda_array_interface__") else x
    return ndiv.tensor(data.astype(like.dtype, copy=False), device=like.device)


def _raw(x):
    return x.data if isinstance(x, Tensor) else np.asarray(x)


def _divide_no_nan(a, b):
    """a / b, and 0 where b == 0 (a non-finite a elsewhere propagates)."""
    zero = _raw(b) == 0
    if not isinstance(a, Tensor) and not isinstance(b, Tensor):
        return np.where(zero, 0.0, a / np.where(zero, 1.0, b))
    safe = ndiv.where(zero, 1.0, b) if isinstance(b, Tensor) else np.where(zero, 1.0, b)
    return ndiv.where(zero, 0.0, a / safe)


def weighted_mean(losses: Tensor, weights) -> Tensor:
    """NeuralForecast's `_weighted_mean`: sum(losses * w) / sum(w) over entries with w != 0."""
    w = _raw(weights).astype(losses.dtype, copy=False)
    losses = ndiv.where(w != 0, losses, 0.0)
    total = w.sum()
    num = (losses * w).sum()
    if total == 0:
        return num * 0.0
    return num / float(total)


def level_to_outputs(level):
    """level [80, 90] -> quantiles [0.5, 0.05, 0.1, 0.9, 0.95] and output names
    ['-median', '-lo-90', '-lo-80', '-hi-80', '-hi-90'] (NeuralForecast's order)."""
    unique = list(dict.fromkeys(level))
    if len(unique) < len(level):
        warnings.warn(f"Duplicate levels detected. Using unique levels: {unique}")
    for lv in unique:
        if not 0 < lv < 100:
            raise ValueError(f"level must be between 0 and 100 (exclusive), got {lv}")
    qs = sum([[50 - lv / 2, 50 + lv / 2] for lv in unique], [])
    names = sum([[f"-lo-{lv}", f"-hi-{lv}"] for lv in unique], [])
    order = np.argsort(qs, kind="stable")
    quantiles = np.concatenate([[50.0], np.asarray(qs)[order]]) / 100
    return quantiles, ["-median"] + [names[i] for i in order]


def quantiles_to_outputs(quantiles):
    """quantiles [0.1, 0.5, 0.9] -> the same and names ['-lo-80.0', '-median', '-hi-80.0']."""
    unique = list(dict.fromkeys(quantiles))
    if len(unique) < len(quantiles):
        warnings.warn(f"Duplicate quantiles detected. Using unique quantiles: {unique}")
    names = []
    for q in unique:
        if not 0 < q < 1:
            raise ValueError(f"quantiles must be between 0 and 1 (exclusive), got {q}")
        if q < 0.5:
            names.append(f"-lo-{np.round(100 - 200 * q, 2)}")
        elif q > 0.5:
            names.append(f"-hi-{np.round(100 - 200 * (1 - q), 2)}")
        else:
            names.append("-median")
    return np.asarray(unique, dtype=np.float64), names


def level_to_quantiles(level) -> list[float]:
    """predict(level=...) -> the quantiles to forecast, sorted and unique (NeuralForecast's
    utils.level_to_quantiles): [80, 90] -> [0.05, 0.1, 0.9, 0.95] (no median)."""
    for lv in level:
        if isinstance(lv, bool) or not isinstance(lv, (int, float, np.integer, np.floating)) or not 0 < lv < 100:
            raise ValueError(f"level must hold numbers between 0 and 100 (exclusive), e.g. level=[80, 90]; "
                             f"got {list(level)}")
    return sorted({float(q) for lv in level for q in ((50 - lv / 2) / 100, (50 + lv / 2) / 100)})


def quantiles_to_level(quantiles) -> list[int]:
    """The interval levels that quantiles stand for (NeuralForecast's utils.quantiles_to_level)."""
    return sorted({int(round(100 - 200 * (q * (q < 0.5) + (1 - q) * (q >= 0.5)), 2)) for q in quantiles})


def check_quantiles(quantiles) -> list[float]:
    """predict(quantiles=...) -> sorted, unique floats in (0, 1)."""
    for q in quantiles:
        if isinstance(q, bool) or not isinstance(q, (int, float, np.integer, np.floating)) or not 0 < q < 1:
            raise ValueError(f"quantiles must hold numbers between 0 and 1 (exclusive), e.g. quantiles=[0.1, 0.5, "
                             f"0.9]; got {list(quantiles)}")
    return sorted({float(q) for q in quantiles})


def quantile_column(q: float, has_level: bool) -> str:
    """The column suffix of quantile q in predict(level=) (-lo-90, -median, -hi-90) or
    predict(quantiles=) (_ql0.1), as NeuralForecast's core._get_column_name."""
    if not has_level:
        return f"_ql{q}"
    if q < 0.5:
        return f"-lo-{int(round(100 - 200 * q))}"
    if q > 0.5:
        return f"-hi-{int(round(100 - 200 * (1 - q)))}"
    return "-median"


def _request(quantiles, has_level) -> str:
    return f"level={quantiles_to_level(quantiles)}" if has_level else f"quantiles={list(quantiles)}"


# ----------------------------------------------------------------------------- base
class BasePointLoss:
    """Shared by the point losses: weights from mask and horizon_weight, identity domain_map.

    horizon_weight: optional array [h], a weight per forecast step.
    """

    is_distribution_output = False

    def __init__(self, horizon_weight=None, outputsize_multiplier: int = 1, output_names=("",)):
        self.horizon_weight = None if horizon_weight is None else np.asarray(horizon_weight, np.float64).ravel()
        self.outputsize_multiplier = outputsize_multiplier
        self.output_names = list(output_names)

    def domain_map(self, y_hat):
        """[B, h, N] -> [B, h, N] (the network output is the forecast)."""
        return y_hat

    def predict_output_names(self, quantiles=None, has_level: bool = False, who: str = "the model") -> list[str]:
        """The column suffixes of a forecast asked for `quantiles` (from predict(level=) when
        has_level, else predict(quantiles=)); None: the loss's own outputs. A point loss has no
        intervals: asking for some raises ValueError (`who` names the model in the message)."""
        if quantiles is None:
            return list(self.output_names)
        raise ValueError(
            f"{who} was trained with loss={self!r}, which forecasts a single value: it cannot give "
            f"{_request(quantiles, has_level)}. Train it with loss=DistributionLoss('Normal') (intervals at any "
            "level) or MQLoss(level=[...]) (the levels it is trained with), fit with prediction_intervals="
            "PredictionIntervals() (conformal intervals), or predict without level/quantiles")

    def _compute_weights(self, y, mask):
        mask = np.ones(_raw(y).shape) if mask is None else _raw(mask)
        if self.horizon_weight is None:
            return mask
        if mask.shape[1] != len(self.horizon_weight):
            raise ValueError(f"{type(self).__name__}: horizon_weight has {len(self.horizon_weight)} entries "
                             f"but the forecast has h={mask.shape[1]} steps")
        return mask * self.horizon_weight.reshape((1, -1) + (1,) * (mask.ndim - 2))

    def _prepare(self, y, y_hat):
        if not isinstance(y_hat, Tensor):
            y_hat = ndiv.tensor(np.asarray(y_hat))
        y = as_tensor(y, y_hat)
        if tuple(y.shape) != tuple(y_hat.shape[:y.ndim]):
            raise ValueError(f"{type(self).__name__}: y has shape {tuple(y.shape)} but y_hat has shape "
                             f"{tuple(y_hat.shape)}; expected the same [B, h, N]")
        return y, y_hat

    def __repr__(self):
        return f"{type(self).__name__}()"


class MAE(BasePointLoss):
    """Mean absolute error: mean |y - y_hat|."""

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        return weighted_mean((y - y_hat).abs(), self._compute_weights(y, mask))


class MSE(BasePointLoss):
    """Mean squared error: mean (y - y_hat)^2."""

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        d = y - y_hat
        return weighted_mean(d * d, self._compute_weights(y, mask))


class RMSE(BasePointLoss):
    """Root mean squared error: sqrt(weighted mean of (y - y_hat)^2) over the whole batch."""

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        d = y - y_hat
        return weighted_mean(d * d, self._compute_weights(y, mask)).sqrt()


class MAPE(BasePointLoss):
    """Mean absolute percentage error: mean |y - y_hat| / |y| (0 where y = 0)."""

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        scale = _divide_no_nan(np.ones(y.shape, y.dtype), np.abs(y.data))
        return weighted_mean((y - y_hat).abs() * scale, self._compute_weights(y, mask))


class SMAPE(BasePointLoss):
    """Symmetric MAPE, NeuralForecast's: 2 mean |y - y_hat| / (|y| + |y_hat|), in [0, 2]."""

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        losses = _divide_no_nan((y - y_hat).abs(), y.abs() + y_hat.abs())
        return weighted_mean(losses, self._compute_weights(y, mask)) * 2.0


class MASE(BasePointLoss):
    """Mean absolute scaled error: |y - y_hat| / mean |y_insample[t] - y_insample[t - seasonality]|.

    seasonality: 24 hourly, 7 daily, 52 weekly, 12 monthly, 4 quarterly, 1 yearly.
    y_insample: [B, L] or [B, L, N] (the window's input, in the same scale as y). The scale is
    per window (and series). NeuralForecast computes the same for [B, L]; for the [B, L, N] its
    base passes, its broadcasting pairs every window with every other window's scale, which is
    not the intended metric, so ndiv keeps the per-window scale there too.
    """

    def __init__(self, seasonality: int, horizon_weight=None):
        super().__init__(horizon_weight)
        if not isinstance(seasonality, (int, np.integer)) or seasonality < 1:
            raise ValueError(f"MASE: seasonality must be a positive integer, got {seasonality!r}")
        self.seasonality = seasonality

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        if y_insample is None:
            raise ValueError("MASE needs y_insample (the window's input) to compute its scale")
        y, y_hat = self._prepare(y, y_hat)
        ins = _raw(y_insample).astype(np.float64)
        s = self.seasonality
        if ins.shape[1] <= s:
            raise ValueError(f"MASE: seasonality={s} needs input_size > {s}, got y_insample with {ins.shape[1]} steps")
        scale = np.mean(np.abs(ins[:, s:] - ins[:, :-s]), axis=1, keepdims=True)       # [B, 1(, N)]
        if scale.ndim == 2:
            scale = scale[:, :, None]
        losses = _divide_no_nan((y - y_hat).abs(), scale.astype(y.dtype))
        return weighted_mean(losses, self._compute_weights(y, mask))


class HuberLoss(BasePointLoss):
    """Huber: 0.5 (y - y_hat)^2 where |y - y_hat| < delta, else delta (|y - y_hat| - delta / 2)."""

    def __init__(self, delta: float = 1.0, horizon_weight=None):
        super().__init__(horizon_weight)
        if delta <= 0:
            raise ValueError(f"HuberLoss: delta must be > 0, got {delta}")
        self.delta = float(delta)

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        d = y - y_hat
        a = d.abs()
        quad = d * d * 0.5
        lin = (a - 0.5 * self.delta) * self.delta
        return weighted_mean(ndiv.where(a.data < self.delta, quad, lin), self._compute_weights(y, mask))


class QuantileLoss(BasePointLoss):
    """Pinball loss of quantile q: max(q (y - y_hat), (q - 1)(y - y_hat)). Output name '_ql{q}'."""

    def __init__(self, q: float, horizon_weight=None):
        if not 0 < q < 1:
            raise ValueError(f"QuantileLoss: q must be between 0 and 1, got {q}")
        super().__init__(horizon_weight, 1, [f"_ql{q}"])
        self.q = q

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        d = y - y_hat
        return weighted_mean(ndiv.maximum(d * self.q, d * (self.q - 1)), self._compute_weights(y, mask))


class MQLoss(BasePointLoss):
    """Multi-quantile loss: the pinball losses of Q quantiles, summed over the quantiles and
    averaged over the (masked) steps, as NeuralForecast computes it.

    level: interval levels, e.g. [80, 90] -> quantiles [0.5, 0.05, 0.1, 0.9, 0.95] and outputs
        ['-median', '-lo-90', '-lo-80', '-hi-80', '-hi-90']; or quantiles (overrides level),
        e.g. [0.1, 0.5, 0.9] -> ['-lo-80.0', '-median', '-hi-80.0'].
    y_hat: [B, h, N, Q] (after domain_map), or [B, h, N] for a single quantile.
    """

    def __init__(self, level=(80, 90), quantiles=None, horizon_weight=None):
        qs, names = level_to_outputs(list(level))
        if quantiles is not None:
            qs, names = quantiles_to_outputs(list(quantiles))
        super().__init__(horizon_weight, len(qs), names)
        self.quantiles = np.asarray(qs, dtype=np.float64)

    def predict_output_names(self, quantiles=None, has_level: bool = False, who: str = "the model") -> list[str]:
        """All the trained outputs (as NeuralForecast returns them), once every requested
        quantile is among the trained ones; ValueError naming the levels it has otherwise."""
        if quantiles is None:
            return list(self.output_names)
        have = self.quantiles
        missing = [q for q in quantiles if not np.isclose(have, q, rtol=0, atol=1e-9).any()]
        if missing:
            trained = sorted(float(q) for q in have)
            levels = [lv for lv in quantiles_to_level([q for q in trained if q < 0.5])
                      if all(np.isclose(have, q, rtol=0, atol=1e-6).any() for q in level_to_quantiles([lv]))]
            raise ValueError(
                f"{who} was trained with {type(self).__name__}, whose quantiles are {trained} (levels {levels}): "
                f"it cannot give {_request(quantiles, has_level)} (quantiles {missing} missing). Ask for levels among "
                f"{levels} or "
                "those quantiles, or train it with an MQLoss that includes them (DistributionLoss gives any level)")
        return list(self.output_names)

    def domain_map(self, y_hat):
        """[B, h, N * Q] -> [B, h, N, Q]."""
        return y_hat.reshape(y_hat.shape[0], y_hat.shape[1], -1, self.outputsize_multiplier)

    def _pinball(self, error: Tensor, q: np.ndarray) -> Tensor:
        """error = y_hat - y [B, h, N, Q], q [Q] -> the pinball loss of each quantile."""
        under, over = ndiv.maximum(-error, 0.0), ndiv.maximum(error, 0.0)
        return under * q + over * (1 - q)

    def sort_quantiles(self, y_hat: np.ndarray) -> np.ndarray:
        """Forecasts [..., Q] (outputs in self.quantiles' order) with the values sorted along the
        quantiles, so that no interval crosses (lo-90 <= lo-80 <= median <= ...). Applied at
        predict; NeuralForecast 3.3 returns MQLoss outputs unsorted (crossings are possible there)."""
        order = np.argsort(self.quantiles, kind="stable")
        out = np.empty_like(y_hat)
        out[..., order] = np.sort(y_hat, axis=-1)
        return out

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        if not isinstance(y_hat, Tensor):
            y_hat = ndiv.tensor(np.asarray(y_hat))
        if y_hat.ndim == 3:
            y_hat = y_hat.unsqueeze(-1)
        y = as_tensor(y, y_hat).unsqueeze(-1)                                      # [B, h, N, 1]
        if tuple(y.shape[:3]) != tuple(y_hat.shape[:3]):
            raise ValueError(f"{type(self).__name__}: y has shape {tuple(y.shape[:3])} but y_hat has shape "
                             f"{tuple(y_hat.shape)}; expected y [B, h, N] and y_hat [B, h, N, Q]")
        mask = np.ones(y.shape) if mask is None else _raw(mask)[..., None]
        error = y_hat - y
        q = self.quantiles.astype(y_hat.dtype)
        losses = self._pinball(error, q)
        # NeuralForecast's effective formula, kept so that training behaves the same: its
        # 1 / len(quantiles[None, None, None, :]) is 1, and its weights [B, h, N, 1] count each
        # step once, so the loss is the SUM over quantiles of the masked mean pinball loss
        # (its docstring says the mean; the sum is Q times that)
        weights = self._compute_weights(mask, mask)                                 # [B, h, N, 1]
        losses = ndiv.where(np.broadcast_to(weights != 0, losses.shape), losses, 0.0)
        total = weights.sum()
        num = (losses * weights.astype(losses.dtype)).sum()
        return num * 0.0 if total == 0 else num / float(total)


# ----------------------------------------------------------------------------- robust losses
def _huber0(x: Tensor, delta: float) -> Tensor:
    """torch's huber_loss(x, 0, delta): 0.5 x^2 where |x| < delta, else delta (|x| - delta / 2)."""
    a = x.abs()
    return ndiv.where(a.data < delta, x * x * 0.5, (a - 0.5 * delta) * delta)


class TukeyLoss(BasePointLoss):
    """NeuralForecast's TukeyLoss: c^2/6 (1 - (d / c)^2)^3 where d = |y - y_hat| / s <= c, else c^2/6.

    Kept as NeuralForecast computes it, so a model trains as there: the inlier term is Tukey's
    biweight *weight* (c^2/6 at d = 0, 0 at d = c), not its rho function, so an exact forecast and
    an outlier both count c^2/6.

    c: the residual (in standard deviations when normalize) beyond which an error stops counting.
    normalize: divide the residuals by s = masked std of y over the last axis (the series, N) + 0.01,
        as NeuralForecast does (for univariate models N = 1, so s = 0.01); else s = 1.
    NeuralForecast's reduction, kept: the plain mean over every entry of
    mask * inlier * (1 - (d / c)^2)^3 + (1 - inlier), so masked outliers still count c^2/6
    (no horizon_weight).
    """

    def __init__(self, c: float = 4.685, normalize: bool = True):
        super().__init__()
        if c <= 0:
            raise ValueError(f"TukeyLoss: c must be > 0, got {c}")
        self.c = float(c)
        self.normalize = normalize

    @staticmethod
    def _masked_mean(x, mask):
        """Mean over the last axis of the entries with mask >= 1, keepdims; 0 where none."""
        with np.errstate(invalid="ignore", divide="ignore"):
            keep = mask >= 1
            n = keep.sum(axis=-1, keepdims=True)
            s = np.where(keep, x, 0.0).sum(axis=-1, keepdims=True)
            return np.where(n > 0, s / np.maximum(n, 1), 0.0)

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        m = np.ones(y.shape, y.dtype) if mask is None else _raw(mask).astype(y.dtype, copy=False)
        if self.normalize:
            yd = y.data
            mean = self._masked_mean(yd, m)
            std = np.sqrt(self._masked_mean((yd - mean) ** 2, m)) + 1e-2
        else:
            std = 1.0
        d = (y - y_hat).abs() / std
        inlier = (self.c >= d.data).astype(y.dtype)
        r = 1.0 - (d / self.c) ** 2
        losses = r * r * r * (inlier * m) + (1.0 - inlier)
        return losses.mean() * (self.c ** 2 / 6)

    def __repr__(self):
        return f"TukeyLoss(c={self.c})"


class HuberQLoss(BasePointLoss):
    """Huberized quantile loss of quantile q: q huber(max(y - y_hat, 0)) + (1 - q) huber(max(y_hat - y, 0)).

    Output name '_q{q}_d{delta}' (NeuralForecast's).
    """

    def __init__(self, q: float, delta: float = 1.0, horizon_weight=None):
        if not 0 < q < 1:
            raise ValueError(f"HuberQLoss: q must be between 0 and 1, got {q}")
        if delta <= 0:
            raise ValueError(f"HuberQLoss: delta must be > 0, got {delta}")
        super().__init__(horizon_weight, 1, [f"_q{q}_d{delta}"])
        self.q = q
        self.delta = float(delta)

    def __call__(self, y, y_hat, mask=None, y_insample=None) -> Tensor:
        y, y_hat = self._prepare(y, y_hat)
        error = y_hat - y
        under, over = ndiv.maximum(-error, 0.0), ndiv.maximum(error, 0.0)
        q = self.q if isinstance(self.q, float) else as_tensor(self.q, y_hat)
        losses = _huber0(under, self.delta) * q + _huber0(over, self.delta) * (1 - q)
        return weighted_mean(losses, self._compute_weights(y, mask))


class HuberMQLoss(MQLoss):
    """Huberized multi-quantile loss: huber(q max(y - y_hat, 0)) + huber((1 - q) max(y_hat - y, 0))
    per quantile, summed over the quantiles and averaged over the masked steps (as MQLoss and as
    NeuralForecast computes it). level / quantiles: as MQLoss; delta: the Huber threshold."""

    def __init__(self, level=(80, 90), quantiles=None, delta: float = 1.0, horizon_weight=None):
        if delta <= 0:
            raise ValueError(f"HuberMQLoss: delta must be > 0, got {delta}")
        super().__init__(level=level, quantiles=quantiles, horizon_weight=horizon_weight)
        self.delta = float(delta)

    def _pinball(self, error: Tensor, q: np.ndarray) -> Tensor:
        under, over = ndiv.maximum(-error, 0.0), ndiv.maximum(error, 0.0)
        return _huber0(under * q, self.delta) + _huber0(over * (1 - q), self.delta)

"""Local scalers: one pair of statistics per series, fit on the training data, inverted on forecasts.

NeuralForecast's `local_scaler_type` (core.py `_type2scaler`, computed by coreforecast):

    'standard'    (x - mean) / std           std: population (ddof=0)
    'robust'      (x - median) / mad          mad = median |x - median|
    'robust-iqr'  (x - median) / (q75 - q25)  quantiles by linear interpolation
    'minmax'      (x - min) / (max - min)
    'boxcox'      Box-Cox with lambda in [0, 2] maximizing the log-likelihood; y must be >= 0

A zero scale is treated as 1 (a constant series maps to 0, and back). Medians of an even count
average the two middle values (unlike the temporal scalers, which follow torch). Box-Cox
lambdas come from scipy's bounded optimizer, so they agree with coreforecast's to its tolerance
(about 1e-4), not bit for bit.

    >>> import numpy as np
    >>> sc = LocalScaler("standard").fit(np.array([1.0, 2.0, 3.0, 10.0, 10.0]), np.array([0, 3, 5]))
    >>> sc.stats_.tolist()
    [[2.0, 0.816496580927726], [10.0, 0.0]]
    >>> sc.transform(np.array([1.0, 2.0, 3.0, 10.0, 10.0]), np.array([0, 3, 5])).round(4).tolist()
    [-1.2247, 0.0, 1.2247, 0.0, 0.0]
"""
from __future__ import annotations

import numpy as np

from ndiv.data.dataset import AVAILABLE_MASK, TimeSeriesDataset
from ndiv.data.freq import _q

LOCAL_SCALER_TYPES = ("standard", "robust", "robust-iqr", "minmax", "boxcox")


def _groups(x, indptr):
    return [x[indptr[i]:indptr[i + 1]] for i in range(len(indptr) - 1)]


class LocalScaler:
    """Per-series statistics `stats_` [n_series, 2]: (shift, scale), or (lambda, 0) for boxcox."""

    def __init__(self, scaler_type: str):
        if scaler_type not in LOCAL_SCALER_TYPES:
            raise ValueError(f"local_scaler_type={scaler_type!r}; expected None or one of {list(LOCAL_SCALER_TYPES)}")
        self.scaler_type = scaler_type
        self.stats_ = None

    def fit(self, x: np.ndarray, indptr: np.ndarray, column: str = "y", uids=None) -> "LocalScaler":
        """x [n_rows] values of all series, indptr [n_series + 1]."""
        x = np.asarray(x, dtype=np.float64)
        sizes = np.diff(indptr)
        if np.any(sizes == 0):
            raise ValueError("LocalScaler: every series needs at least one value")
        kind = self.scaler_type
        if kind == "standard":
            mean = np.add.reduceat(x, indptr[:-1]) / sizes
            var = np.add.reduceat((x - np.repeat(mean, sizes)) ** 2, indptr[:-1]) / sizes
            stats = np.stack([mean, np.sqrt(var)], 1)
        elif kind == "minmax":
            lo, hi = np.minimum.reduceat(x, indptr[:-1]), np.maximum.reduceat(x, indptr[:-1])
            stats = np.stack([lo, hi - lo], 1)
        elif kind == "robust":
            stats = np.array([(np.median(g), np.median(np.abs(g - np.median(g)))) for g in _groups(x, indptr)])
        elif kind == "robust-iqr":
            stats = np.array([(np.median(g), np.subtract(*np.percentile(g, [75, 25])))
                              for g in _groups(x, indptr)])
        else:
            neg = np.flatnonzero(x < 0)
            if neg.size:
                i = np.searchsorted(indptr, neg[0], side="right") - 1
                who = f"series {_q(uids[i])}" if uids is not None else f"series #{i}"
                raise ValueError(f"local_scaler_type='boxcox' needs values >= 0, but column {column!r} of "
                                 f"{who} has {x[neg[0]]}; use another local_scaler_type")
            stats = np.array([(_boxcox_lambda(g), 0.0) for g in _groups(x, indptr)])
        self.stats_ = stats
        return self

    def _check(self, indptr):
        if self.stats_ is None:
            raise RuntimeError("LocalScaler: call fit before transform")
        if len(indptr) - 1 != len(self.stats_):
            raise ValueError(f"LocalScaler was fit on {len(self.stats_)} series, got {len(indptr) - 1}")

    def transform(self, x: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """x [n_rows] (or [n_rows, k]) of the same series, rows per indptr -> scaled, same shape."""
        self._check(indptr)
        a, b = self._per_row(indptr, np.ndim(x))
        x = np.asarray(x, dtype=np.float64)
        if self.scaler_type == "boxcox":
            return _boxcox(x, a)
        return (x - a) / b

    def inverse_transform(self, z: np.ndarray, indptr: np.ndarray) -> np.ndarray:
        """Undo transform; z [n_rows] or [n_rows, k] (e.g. a forecast and its quantiles)."""
        self._check(indptr)
        a, b = self._per_row(indptr, np.ndim(z))
        z = np.asarray(z, dtype=np.float64)
        if self.scaler_type == "boxcox":
            return _inv_boxcox(z, a)
        return z * b + a

    def _per_row(self, indptr, ndim):
        sizes = np.diff(indptr)
        a = np.repeat(self.stats_[:, 0], sizes)
        b = np.repeat(self.stats_[:, 1], sizes)
        b = np.where(b == 0, 1.0, b)
        if ndim == 2:
            a, b = a[:, None], b[:, None]
        return a, b

    def to_dict(self) -> dict:
        """JSON-friendly state (for Forecaster.save)."""
        return {"scaler_type": self.scaler_type, "stats": self.stats_.tolist()}

    @classmethod
    def from_dict(cls, d: dict, n_series: int | None = None) -> "LocalScaler":
        """The inverse of to_dict, checked: scaler_type one of LOCAL_SCALER_TYPES, stats a list of
        [shift, scale] pairs of finite numbers (n_series of them when given)."""
        if not isinstance(d, dict) or not isinstance(d.get("scaler_type"), str) or "stats" not in d:
            raise ValueError(f"LocalScaler.from_dict expects {{'scaler_type': str, 'stats': [[shift, scale], ...]}}, "
                             f"got {str(d)[:60]}")
        out = cls(d["scaler_type"])
        stats = d["stats"]
        if (not isinstance(stats, list) or not all(isinstance(p, list) and len(p) == 2 for p in stats)
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for p in stats for v in p)):
            raise ValueError(f"LocalScaler stats must be a list of [shift, scale] number pairs, got {str(stats)[:60]}")
        out.stats_ = np.asarray(stats, dtype=np.float64).reshape(-1, 2)
        if not np.isfinite(out.stats_).all():
            raise ValueError("LocalScaler stats must be finite numbers")
        if n_series is not None and len(out.stats_) != n_series:
            raise ValueError(f"LocalScaler stats has {len(out.stats_)} pairs for {n_series} series")
        return out


def _boxcox(x, lmbda):
    with np.errstate(divide="ignore"):
        small = np.abs(lmbda) < 1e-12
        safe = np.where(small, 1.0, lmbda)
        return np.where(small, np.log(x), (np.power(x, lmbda) - 1) / safe)


def _inv_boxcox(z, lmbda):
    # coreforecast's inverse, which NeuralForecast uses: sign(u) |u|^(1/lambda) with u = lambda z + 1,
    # so a forecast below the transform's range comes back negative rather than 0
    small = np.abs(lmbda) < 1e-12
    safe = np.where(small, 1.0, lmbda)
    u = lmbda * z + 1
    return np.where(small, np.exp(z), np.sign(u) * np.power(np.abs(u), 1 / safe))


def _boxcox_lambda(g, lower=0.0, upper=2.0):
    from scipy import optimize, stats
    g = g[g > 0]
    if g.size < 2 or np.all(g == g[0]):
        return 1.0
    res = optimize.minimize_scalar(lambda lm: -stats.boxcox_llf(lm, g), bounds=(lower, upper),
                                   method="bounded", options={"xatol": 1e-8})
    return float(res.x)


def fit_local_scalers(dataset: TimeSeriesDataset, scaler_type: str | None, exclude=()):
    """Fit one LocalScaler per temporal column (not available_mask, nor `exclude`, e.g.
    categorical columns) on `dataset`, as NeuralForecast's `_scalers_fit_transform`.
    Returns (scaled dataset, {column: LocalScaler}); ({} and the same dataset for None)."""
    if scaler_type is None:
        return dataset, {}
    scalers = {}
    temporal = dataset.temporal.copy()
    for i, col in enumerate(dataset.temporal_cols):
        if col == AVAILABLE_MASK or col in exclude:
            continue
        sc = LocalScaler(scaler_type).fit(temporal[:, i], dataset.indptr, col, dataset.uids)
        temporal[:, i] = sc.transform(temporal[:, i], dataset.indptr)
        scalers[col] = sc
    return dataset.with_temporal(temporal), scalers


def apply_local_scalers(dataset: TimeSeriesDataset, scalers: dict, rows=None) -> TimeSeriesDataset:
    """Scale `dataset` with already fitted scalers (same series, e.g. after append_future).
    rows: optional bool [n_rows], only those rows are scaled (the rest, such as appended
    placeholder rows of unknown y, stay as they are)."""
    if not scalers:
        return dataset
    temporal = dataset.temporal.copy()
    for col, sc in scalers.items():
        if col not in dataset.temporal_cols:
            continue
        i = dataset.temporal_cols.index(col)
        scaled = sc.transform(temporal[:, i], dataset.indptr)
        temporal[:, i] = scaled if rows is None else np.where(rows, scaled, temporal[:, i])
    return dataset.with_temporal(temporal)

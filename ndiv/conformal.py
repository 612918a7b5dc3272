"""Conformal prediction intervals, as NeuralForecast 3.3: intervals for any model, point
losses (MAE, MSE, ...) included.

`Forecaster.fit(df, prediction_intervals=PredictionIntervals(n_windows=2))` runs a
cross-validation of n_windows windows (refit=False) on the training data first, and keeps each
point-loss model's absolute errors there (its conformity scores, [n_series, n_windows, h]).
`predict(level=[80, 90])` then gives those models `MLP`, `MLP-lo-90`, `MLP-lo-80`, `MLP-hi-80`,
`MLP-hi-90` (with quantiles: `MLP-ql0.1`, ... as NeuralForecast names them), computed from the
scores by one of NeuralForecast's two methods:

- 'conformal_distribution' (default): the quantiles, over the windows, of the forecast plus and
  minus each window's error (2 x n_windows values per series and step);
- 'conformal_error': the forecast minus (below the median) or plus (above) the quantile of the
  errors over the windows.

Models whose loss gives intervals itself (DistributionLoss, MQLoss) keep them, as in
NeuralForecast.

    >>> from ndiv import Forecaster, PredictionIntervals
    >>> from ndiv.models import MLP
    >>> fc = Forecaster([MLP(h=12, input_size=24, max_steps=50)], freq="MS")
    >>> fc.fit(df, prediction_intervals=PredictionIntervals(n_windows=3))   # doctest: +SKIP
    >>> fc.predict(level=[80])        # unique_id, ds, MLP, MLP-lo-80, MLP-hi-80   # doctest: +SKIP
"""
from __future__ import annotations

import numpy as np

METHODS = ("conformal_distribution", "conformal_error")


class PredictionIntervals:
    """How fit computes conformity scores (NeuralForecast's utils.PredictionIntervals).

    Args:
        n_windows: cross-validation windows on the training data (at least 2).
        method: 'conformal_distribution' or 'conformal_error'.
        step_size: steps between the windows' cutoffs (at least 1).
    """

    def __init__(self, n_windows: int = 2, method: str = "conformal_distribution", step_size: int = 1):
        for name, v, lo in (("n_windows", n_windows, 2), ("step_size", step_size, 1)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"PredictionIntervals: {name} must be an integer >= {lo}, got {v!r}"
                                 + ("; conformal intervals need at least two windows of errors"
                                    if name == "n_windows" else ""))
        if method not in METHODS:
            raise ValueError(f"PredictionIntervals: method must be one of {list(METHODS)}, got {method!r}")
        self.n_windows, self.method, self.step_size = int(n_windows), method, int(step_size)

    def __repr__(self):
        return (f"PredictionIntervals(n_windows={self.n_windows}, method='{self.method}', "
                f"step_size={self.step_size})")

    def to_dict(self) -> dict:
        return {"n_windows": self.n_windows, "method": self.method, "step_size": self.step_size}


def is_point_model(model) -> bool:
    """A model whose loss forecasts one value (NeuralForecast's outputsize_multiplier == 1 and no
    distribution): it gets its intervals from conformity scores."""
    return not model.loss.is_distribution_output and model.loss.outputsize_multiplier == 1


def cuts(level=None, quantiles=None) -> list[float]:
    """The quantiles an interval request stands for: level [80, 90] -> [0.05, 0.1, 0.9, 0.95]
    (NeuralForecast's order); quantiles are used as given (sorted)."""
    if level is not None:
        alphas = [100 - lv for lv in level]
        return [a / 200 for a in reversed(alphas)] + [1 - a / 200 for a in alphas]
    return list(quantiles)


def interval_names(model: str, level=None, quantiles=None) -> list[str]:
    """NeuralForecast's conformal column names: level [80, 90] -> [m-lo-90, m-lo-80, m-hi-80,
    m-hi-90]; quantiles [0.1, 0.9] -> [m-ql0.1, m-ql0.9]."""
    if level is not None:
        return [f"{model}-lo-{lv}" for lv in reversed(level)] + [f"{model}-hi-{lv}" for lv in level]
    return [f"{model}-ql{q}" for q in quantiles]


def conformal_distribution(point: np.ndarray, scores: np.ndarray, qs) -> np.ndarray:
    """point: [n_series * h] forecasts (series-major); scores: [n_series, n_windows, >= h]
    absolute errors; qs: quantiles in (0, 1). Returns [n_series * h, len(qs)]: the quantiles of
    point - score and point + score over the 2 * n_windows values."""
    n_series = scores.shape[0]
    mean = point.reshape(1, n_series, -1)                                       # [1, S, h]
    h = mean.shape[-1]
    s = scores.transpose(1, 0, 2)[:, :, :h]                                     # [W, S, h]
    paths = np.concatenate([mean - s, mean + s])                                # [2W, S, h]
    return np.quantile(paths, qs, axis=0).reshape(len(qs), -1).T


def conformal_error(point: np.ndarray, scores: np.ndarray, qs) -> np.ndarray:
    """As conformal_distribution, by NeuralForecast's error method: below the median the point
    forecast minus the quantile of the errors at the mirrored position, above it plus the
    quantile, at 0.5 the forecast itself."""
    n_series = scores.shape[0]
    mean = point.reshape(-1)
    h = mean.shape[0] // n_series
    s = scores.transpose(1, 0, 2)[:, :, :h]                                     # [W, S, h]
    sq = np.quantile(s, qs, axis=0).reshape(len(qs), -1)                        # [Q, S*h]
    cols = [mean - sq[::-1][i] if q < 0.5 else mean + sq[i] if q > 0.5 else mean for i, q in enumerate(qs)]
    return np.stack(cols, axis=1)


def conformity_scores(fc, df, static_df, val_size: int, id_col: str, time_col: str, target_col: str) -> dict:
    """NeuralForecast's _conformity_scores: cross_validation(n_windows, step_size, refit=False)
    on df, and each point-loss model's |forecast - y| as [n_series, n_windows, h], with the
    series ids they belong to (key '_uids')."""
    pi = fc.prediction_intervals
    if not all(hasattr(pi, k) for k in ("n_windows", "method", "step_size")) or pi.method not in METHODS:
        raise TypeError(f"prediction_intervals must be a PredictionIntervals(n_windows=2, "
                        f"method='conformal_distribution'), got {pi!r}")
    sizes = np.unique(np.asarray(_column(df, id_col)), return_counts=True)[1]
    need = fc.h + pi.step_size * (pi.n_windows - 1) + 1 + val_size
    if sizes.min() < need:
        raise ValueError(f"prediction_intervals={pi!r} needs at least {need} observations in every series "
                         f"(h={fc.h} + step_size x (n_windows - 1) + 1 + val_size={val_size}); the shortest series "
                         "has {0}: use fewer windows, a smaller step_size or val_size, or longer series"
                         .format(sizes.min()))
    cv = fc.cross_validation(df, static_df=static_df, n_windows=pi.n_windows, step_size=pi.step_size,
                             val_size=val_size, id_col=id_col, time_col=time_col, target_col=target_col)
    y = np.asarray(_column(cv, target_col), dtype=np.float64)
    uid = np.asarray(_column(cv, id_col))
    _, first = np.unique(uid, return_index=True)
    uids = uid[np.sort(first)]
    out = {"_uids": uids}
    for m in fc.models:
        if is_point_model(m):
            err = np.abs(np.asarray(_column(cv, str(m)), dtype=np.float64) - y)
            out[str(m)] = err.reshape(len(uids), pi.n_windows, fc.h)          # rows: series, cutoff, ds
    return out


def check_request(fc, has_request: bool) -> list:
    """The models of a predict(level=/quantiles=) request that take conformal intervals: the
    point-loss models that fit scored (the others answer through their loss, which for a point
    loss is a ValueError saying how to get intervals)."""
    scores = getattr(fc, "_conformity", None)
    if not has_request or scores is None:
        return []
    return [m for m in fc.models if is_point_model(m) and str(m) in scores]


def add_columns(fc, out: dict, model, uids, level=None, quantiles=None) -> None:
    """Append model's conformal interval columns to out (after its point column), for the series
    uids (those of the fit: their scores)."""
    scores = fc._conformity
    if len(uids) != len(scores["_uids"]) or not np.array_equal(np.asarray(uids), scores["_uids"]):
        raise ValueError("conformal intervals need the series that fit(prediction_intervals=...) scored; "
                         "predict(df) got other series: refit with them")
    name = str(model)
    method = conformal_distribution if fc.prediction_intervals.method == "conformal_distribution" else conformal_error
    point = np.asarray(out[name], dtype=np.float64)
    qs = cuts(level, quantiles)
    vals = method(point, scores[name], qs)
    for col, v in zip(interval_names(name, level, quantiles), vals.T):
        out[col] = v.astype(np.float32)


def _column(df, name):
    return df[name] if not hasattr(df, "columns") else df[name].to_numpy()

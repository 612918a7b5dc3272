"""Forecast accuracy metrics on arrays, and `evaluate` over a forecast table.

The array metrics take NumPy-like y and y_hat of the same shape and reduce over `axis` (None:
everything). Their definitions are utilsforecast's, the package NeuralForecast users evaluate
with: mape and smape are fractions (smape in [0, 1]; 0/0 counts as 0), mape skips points where
y = 0, mase scales by the in-sample mean absolute seasonal difference.

    >>> import numpy as np
    >>> y, y_hat = np.array([1.0, 2.0, 4.0]), np.array([1.0, 3.0, 2.0])
    >>> mae(y, y_hat), mse(y, y_hat), round(float(smape(y, y_hat)), 4)
    (1.0, 1.6666666666666667, 0.1778)
    >>> coverage(y, lo=y_hat - 1, hi=y_hat + 1)
    0.6666666666666666

`evaluate(df, metrics=["mae", "smape"])` returns one row per (unique_id[, cutoff], metric) and
one column per model, as utilsforecast.evaluation.evaluate does.

The M4 competition's scores: m4_smape (percent, 0-200: 200 x smape), MASE (mase above is M4's),
the Naive2 benchmark and OWA, sMAPE and MASE relative to Naive2's, with m4_scores over series:

    >>> train = {"a": np.array([1.0, 2.0, 4.0, 3.0])}
    >>> test, fc = {"a": np.array([10.0, 20.0])}, {"a": np.array([12.0, 15.0])}
    >>> scores = m4_scores(train, test, fc, m=1)        # sMAPE (200 * 2/22 + 200 * 5/35) / 2
    >>> round(scores["smape"], 3), scores["mase"]       # MASE 3.5 / mean(1, 2, 1)
    (23.377, 2.625)
    >>> naive = {"a": naive2(train["a"], h=2, m=1)}     # not seasonal: the last value, [3.0, 3.0]
    >>> round(owa(scores, m4_scores(train, test, naive, m=1)), 4)
    0.2373
"""
from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

__all__ = ["mae", "mse", "rmse", "mape", "smape", "mase", "coverage", "evaluate", "METRICS",
           "m4_smape", "seasonality_test", "naive2", "m4_scores", "owa"]


def _pair(y, y_hat):
    y, y_hat = np.asarray(y, dtype=np.float64), np.asarray(y_hat, dtype=np.float64)
    if y.shape != y_hat.shape:
        raise ValueError(f"y has shape {y.shape} but y_hat has shape {y_hat.shape}; they must match")
    return y, y_hat


def _mean(x, axis):
    out = np.mean(x, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def mae(y, y_hat, axis=None):
    """Mean absolute error: mean |y - y_hat|."""
    y, y_hat = _pair(y, y_hat)
    return _mean(np.abs(y - y_hat), axis)


def mse(y, y_hat, axis=None):
    """Mean squared error: mean (y - y_hat)^2."""
    y, y_hat = _pair(y, y_hat)
    return _mean((y - y_hat) ** 2, axis)


def rmse(y, y_hat, axis=None):
    """Root mean squared error: sqrt(mse)."""
    out = np.sqrt(mse(y, y_hat, axis))
    return float(out) if np.ndim(out) == 0 else out


def mape(y, y_hat, axis=None):
    """Mean absolute percentage error as a fraction: mean |y - y_hat| / |y| over points with
    y != 0 (NaN where every y is 0)."""
    y, y_hat = _pair(y, y_hat)
    keep = y != 0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.abs(y - y_hat) / np.abs(y)
        out = np.sum(np.where(keep, ratio, 0.0), axis=axis) / np.sum(keep, axis=axis)
    return float(out) if np.ndim(out) == 0 else out


def smape(y, y_hat, axis=None):
    """Symmetric MAPE in [0, 1]: mean |y - y_hat| / (|y| + |y_hat|), 0 where both are 0.
    (NeuralForecast's SMAPE *loss* is twice this, in [0, 2].)"""
    y, y_hat = _pair(y, y_hat)
    denom = np.abs(y) + np.abs(y_hat)
    ratio = np.abs(y - y_hat) / np.where(denom == 0, 1.0, denom)
    return _mean(np.where(denom == 0, 0.0, ratio), axis)


def mase(y, y_hat, y_train, seasonality: int = 1, axis=None):
    """Mean absolute scaled error: mae(y, y_hat) / mean |y_train[t] - y_train[t - seasonality]|.

    y_train: the series' history before the forecast, [T] (or [..., T] with the same leading
    shape as y when axis reduces the last axis).
    """
    y_train = np.asarray(y_train, dtype=np.float64)
    if y_train.shape[-1] <= seasonality:
        raise ValueError(f"mase needs more than seasonality={seasonality} training points, got {y_train.shape[-1]}")
    scale = np.mean(np.abs(y_train[..., seasonality:] - y_train[..., :-seasonality]), axis=-1)
    out = np.asarray(mae(y, y_hat, axis)) / scale
    return float(out) if np.ndim(out) == 0 else out


def coverage(y, lo, hi, axis=None):
    """Fraction of y inside [lo, hi] (bounds included)."""
    y, lo = _pair(y, lo)
    _, hi = _pair(y, hi)
    return _mean((y >= lo) & (y <= hi), axis)


# ----------------------------------------------------------------------------- M4
# Makridakis, Spiliotis and Assimakopoulos (2020), "The M4 Competition: 100,000 time series and
# 61 forecasting methods", and the competition's R benchmarks (M4-methods, Benchmarks and
# Evaluation.R). Naive2 here reproduces the paper's Naive2 scores for M4 Hourly and Weekly.
def m4_smape(y, y_hat, axis=None):
    """M4's sMAPE in percent, 0-200: mean 200 |y - y_hat| / (|y| + |y_hat|), 0 where both are 0.
    y, y_hat: same shape, e.g. [h]."""
    y, y_hat = _pair(y, y_hat)
    d = np.abs(y) + np.abs(y_hat)
    return _mean(np.where(d == 0, 0.0, 200.0 * np.abs(y - y_hat) / np.where(d == 0, 1.0, d)), axis)


def _acf(x, k: int) -> float:
    """Sample autocorrelation of x [T] at lag k >= 1 (R's acf: biased, the full-series variance
    as denominator)."""
    d = x - x.mean()
    return float(np.sum(d[:-k] * d[k:]) / np.sum(d * d))


def seasonality_test(y, m: int) -> bool:
    """M4's 90% autocorrelation test (the R benchmarks' SeasonalityTest) on a series y [T]: seasonal
    when m > 1, T >= 3 m and |acf(m)| > 1.645 sqrt((1 + 2 sum_{k<m} acf(k)^2) / T)."""
    y = np.asarray(y, np.float64)
    if m <= 1 or len(y) < 3 * m:
        return False
    s = sum(_acf(y, k) ** 2 for k in range(1, m))
    return abs(_acf(y, m)) > 1.645 * np.sqrt((1 + 2 * s) / len(y))


def _seasonal_indices(y, m: int) -> np.ndarray:
    """Classical multiplicative decomposition (R's decompose(type='multiplicative')) of y [T]: the
    seasonal figure [m] by position from the series' start, normalised to mean 1. The trend is the
    centred moving average (2 x m when m is even)."""
    w = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        w[0] = w[-1] = 0.5 / m
    half = len(w) // 2
    trend = np.full(len(y), np.nan)
    trend[half: len(y) - half] = np.convolve(y, w, mode="valid")
    ratio = y / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return figure / figure.mean()


def naive2(y_train, h: int, m: int) -> np.ndarray:
    """M4's Naive2 benchmark forecast [h] of a series y_train [T] with season length m: the last
    value of the seasonally adjusted series (classical multiplicative decomposition, applied only
    when seasonality_test says seasonal), reseasonalised with the indices continuing past the end;
    the last value repeated otherwise."""
    y = np.asarray(y_train, np.float64)
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"naive2: y_train must be a non-empty 1-D series, got shape {y.shape}")
    if not (isinstance(h, (int, np.integer)) and h >= 1 and isinstance(m, (int, np.integer)) and m >= 1):
        raise ValueError(f"naive2: h and m must be positive ints, got h={h!r}, m={m!r}")
    if not seasonality_test(y, m):
        return np.full(h, y[-1])
    fig = _seasonal_indices(y, m)
    si_in = fig[np.arange(len(y)) % m]
    si_out = fig[np.arange(len(y), len(y) + h) % m]
    return (y[-1] / si_in[-1]) * si_out


def m4_scores(train: dict, test: dict, forecasts: dict, m: int) -> dict:
    """M4's sMAPE (m4_smape) and MASE (mase with seasonality m), each averaged over the series.

    train, test, forecasts: {unique_id: array}, the history [T], the actuals [h] and the
    forecast [h] of each series of test. Returns {"smape": float, "mase": float}.
    """
    missing = [(k, name) for k in test for name, d in (("train", train), ("forecasts", forecasts)) if k not in d]
    if missing:
        raise ValueError(f"m4_scores: series missing from train or forecasts: {missing[:5]}")
    if not test:
        raise ValueError("m4_scores: test has no series")
    short = [k for k in test if len(train[k]) <= m]
    if short:
        raise ValueError(f"m4_scores: MASE needs more than m={m} training points; series {short[:5]} have fewer")
    ids = list(test)
    return {"smape": float(np.mean([m4_smape(test[k], forecasts[k]) for k in ids])),
            "mase": float(np.mean([mase(test[k], forecasts[k], train[k], m) for k in ids]))}


def owa(scores: dict, naive2_scores: dict) -> float:
    """M4's overall weighted average: the mean of sMAPE and MASE relative to Naive2's, from two
    m4_scores results (1 for Naive2 itself, below 1 when better)."""
    return 0.5 * (scores["smape"] / naive2_scores["smape"] + scores["mase"] / naive2_scores["mase"])


METRICS: dict[str, Callable] = {"mae": mae, "mse": mse, "rmse": rmse, "mape": mape, "smape": smape}


def evaluate(df, metrics: Sequence[str | Callable] = ("mae", "mse", "rmse", "mape", "smape"),
             models: Sequence[str] | None = None, train_df=None, seasonality: int | None = None,
             level: Sequence[int] | None = None, id_col: str = "unique_id", time_col: str = "ds",
             target_col: str = "y", cutoff_col: str = "cutoff", agg_fn: str | None = None):
    """Metrics per series (and cutoff) and model.

    Args:
        df: forecasts, a pandas DataFrame or dict of 1-D arrays with id_col, time_col, target_col,
            the model columns and, for coverage, '{model}-lo-{level}' / '{model}-hi-{level}'.
            A cutoff_col (cross-validation) makes each (series, cutoff) its own group.
        metrics: names ('mae', 'mse', 'rmse', 'mape', 'smape', 'mase', 'coverage') or callables
            f(y, y_hat) -> float, named by their __name__.
        models: model columns (None: every column but id, time, target, cutoff and intervals).
        train_df: history (id_col, time_col, target_col) for 'mase'; with a cutoff, the rows up
            to each cutoff. seasonality: for 'mase'. level: interval levels for 'coverage'.
        agg_fn: None, or 'mean' to average each metric over the series.
    Returns:
        A table like df (pandas when df is pandas): columns id_col[, cutoff_col], 'metric', one
        per model; rows ordered by metric, then series.
    """
    from ndiv.data.frame import as_ds, columns_of, make_frame, require_columns

    cols = columns_of(df, "df")
    require_columns(cols, [id_col, time_col, target_col], "df")
    if models is None:
        models = [c for c in cols if c not in (id_col, time_col, target_col, cutoff_col)
                  and not re.search(r"-(?:lo|hi)-\d+", c)]
    models = list(models)
    missing = [m for m in models if m not in cols]
    if missing:
        raise ValueError(f"evaluate: model columns {missing} not in df (columns: {list(cols)})")
    if not models:
        raise ValueError("evaluate: df has no model columns to evaluate")
    has_cutoff = cutoff_col in cols
    keys = [id_col] + ([cutoff_col] if has_cutoff else [])
    group_vals = [cols[k] for k in keys]
    ds = as_ds(cols[time_col], time_col)
    # groups of rows: (id[, cutoff]) in sorted order, rows by time inside
    uniq, inverse = np.unique(np.rec.fromarrays(group_vals), return_inverse=True) if has_cutoff \
        else np.unique(group_vals[0], return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.lexsort((ds, inverse))
    starts = np.searchsorted(inverse[order], np.arange(len(uniq)))
    bounds = np.append(starts, len(order))
    y = np.asarray(cols[target_col], dtype=np.float64)[order]

    def per_group(fn):
        out = {}
        for m in models:
            yh = np.asarray(cols[m], dtype=np.float64)[order]
            out[m] = np.array([fn(y[a:b], yh[a:b], g, m) for g, (a, b) in enumerate(zip(bounds[:-1], bounds[1:]))])
        return out

    results = []
    for metric in metrics:
        name = metric if isinstance(metric, str) else getattr(metric, "__name__", "metric")
        if callable(metric):
            results.append((name, per_group(lambda a, b, g, m: float(metric(a, b)))))
        elif metric in METRICS:
            fn = METRICS[metric]
            results.append((name, per_group(lambda a, b, g, m: fn(a, b))))
        elif metric == "mase":
            if train_df is None or seasonality is None:
                raise ValueError("evaluate: metric 'mase' needs train_df (the history) and seasonality")
            scales = _mase_scales(train_df, uniq, has_cutoff, seasonality, id_col, time_col, target_col, cutoff_col)
            results.append((name, per_group(lambda a, b, g, m: mae(a, b) / scales[g])))
        elif metric == "coverage":
            if not level:
                raise ValueError("evaluate: metric 'coverage' needs level, e.g. level=[80, 90]")
            for lv in level:
                need = [f"{m}-{s}-{lv}" for m in models for s in ("lo", "hi")]
                absent = [c for c in need if c not in cols]
                if absent:
                    raise ValueError(f"evaluate: coverage at level {lv} needs columns {absent}")
                lo = {m: np.asarray(cols[f"{m}-lo-{lv}"], dtype=np.float64)[order] for m in models}
                hi = {m: np.asarray(cols[f"{m}-hi-{lv}"], dtype=np.float64)[order] for m in models}
                results.append((f"coverage_level{lv}", per_group(
                    lambda a, b, g, m, lo=lo, hi=hi: coverage(a, lo[m][bounds[g]:bounds[g + 1]],
                                                              hi[m][bounds[g]:bounds[g + 1]]))))
        else:
            raise ValueError(f"evaluate: unknown metric {metric!r}; use one of "
                             f"{[*METRICS, 'mase', 'coverage']} or a function f(y, y_hat)")

    out: dict[str, list] = {k: [] for k in keys}
    out["metric"] = []
    for m in models:
        out[m] = []
    for name, vals in results:
        if agg_fn is None:
            if has_cutoff:
                out[id_col] += uniq[uniq.dtype.names[0]].tolist()
                out[cutoff_col] += uniq[uniq.dtype.names[1]].tolist()
            else:
                out[id_col] += uniq.tolist()
            out["metric"] += [name] * len(uniq)
            for m in models:
                out[m] += vals[m].tolist()
        elif agg_fn == "mean":
            out["metric"].append(name)
            for m in models:
                out[m].append(float(np.mean(vals[m])))
        else:
            raise ValueError(f"evaluate: agg_fn must be None or 'mean', got {agg_fn!r}")
    if agg_fn is not None:
        for k in keys:
            del out[k]
    return make_frame({k: np.asarray(v) for k, v in out.items()}, like=df)


def _mase_scales(train_df, groups, has_cutoff, seasonality, id_col, time_col, target_col, cutoff_col):
    from ndiv.data.frame import as_ds, columns_of, require_columns
    tc = columns_of(train_df, "train_df")
    require_columns(tc, [id_col, time_col, target_col], "train_df")
    t_ds = as_ds(tc[time_col], time_col)
    t_id = tc[id_col]
    order = np.lexsort((t_ds, t_id))
    t_id, t_ds, t_y = t_id[order], t_ds[order], np.asarray(tc[target_col], dtype=np.float64)[order]
    scales = []
    for g in groups:
        uid = g[0] if has_cutoff else g
        rows = t_id == uid
        if has_cutoff:
            rows &= t_ds <= np.asarray(g[1]).astype(t_ds.dtype)
        hist = t_y[rows]
        if hist.size <= seasonality:
            raise ValueError(f"evaluate: mase needs more than seasonality={seasonality} training points for "
                             f"series {uid!r}, train_df has {hist.size}")
        scales.append(np.mean(np.abs(hist[seasonality:] - hist[:-seasonality])))
    return np.array(scales)

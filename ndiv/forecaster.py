"""Forecaster: NeuralForecast's user-facing object (fit, predict, cross_validation,
predict_insample, save, load) over ndiv models.

    >>> from ndiv import Forecaster
    >>> from ndiv.models import MLP
    >>> fc = Forecaster(models=[MLP(h=12, input_size=24, max_steps=100)], freq="MS")
    >>> fc.fit(df)                       # df: unique_id, ds, y (+ exogenous columns)
    >>> fc.predict()                     # unique_id, ds, MLP

Data come as a pandas DataFrame or a dict of 1-D arrays; the output has the same kind.
Saved forecasters are a folder of JSON (configuration, local scalers) and safetensors (weights,
the training data), written atomically and loaded without trusting it (ndiv/_saving.py):
loading never unpickles.
"""
from __future__ import annotations

import functools
from typing import Sequence

import numpy as np

from ndiv import _saving, conformal
from ndiv.data import (AVAILABLE_MASK, TimeSeriesDataset, apply_local_scalers, columns_of, fit_local_scalers,
                       make_frame)
from ndiv.data.local_scalers import LocalScaler
from ndiv.losses import check_quantiles, level_to_quantiles
from ndiv.models import BaseModel
from ndiv.models.base import restore_state, snapshot_state


def _transactional(method):
    """Run a Forecaster method that trains, and on any exception (KeyboardInterrupt included)
    put the models' weights and state and the Forecaster's data back as they were, then re-raise:
    an interrupted refit never leaves new data next to half-trained weights."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        saved = self._snapshot()
        try:
            return method(self, *args, **kwargs)
        except BaseException:
            self._restore(saved)
            raise
    return wrapper


class Forecaster:
    """Fit and forecast several models on long-format data.

    Args:
        models: ndiv models (each with its own h; they must agree).
        freq: pandas frequency string of the timestamps ('MS', 'D', 'h', 'W', ...), or an int
            step for integer timestamps.
        local_scaler_type: None, 'standard', 'robust', 'robust-iqr', 'minmax' or 'boxcox':
            per-series scaling of y and the exogenous columns before the models see them.
    """

    def __init__(self, models: Sequence[BaseModel], freq, local_scaler_type: str | None = None):
        models = list(models)
        if not models:
            raise ValueError("Forecaster needs at least one model, e.g. models=[MLP(h=12, input_size=24)]")
        for m in models:
            if not isinstance(m, BaseModel):
                raise TypeError(f"models must be ndiv models (ndiv.models.*), got {type(m).__name__}")
        horizons = {str(m): m.h for m in models}
        if len(set(horizons.values())) > 1:
            raise ValueError(f"the models have different horizons h ({', '.join(f'{k}: h={v}' for k, v in horizons.items())}); "
                             "every model of a Forecaster must forecast the same h steps: build them with one h")
        names = [str(m) for m in models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"two models share the name {dup}; give them different alias= values")
        if local_scaler_type is not None:
            LocalScaler(local_scaler_type)  # validates the name
        self.models = models
        self.freq = freq
        self.local_scaler_type = local_scaler_type
        self.h = models[0].h
        self._fitted = False
        self._dataset = None
        self._scalers: dict = {}
        self._like = None

    # -- data --------------------------------------------------------------------------------
    def _exog_cols(self) -> list[str]:
        cols: list[str] = []
        for m in self.models:
            for c in m.hist_exog_list + m.futr_exog_list:
                if c not in cols:
                    cols.append(c)
        return cols

    def _dataset_from(self, df, static_df, id_col, time_col, target_col):
        cols = columns_of(df, "df")
        exog = self._exog_cols()
        missing = [c for c in exog if c not in cols]
        if missing:
            raise ValueError(f"df lacks the exogenous column{'s' if len(missing) > 1 else ''} {missing} that "
                             f"the models list in futr_exog_list/hist_exog_list; add them to df")
        keep = {k: cols[k] for k in [id_col, time_col, target_col, *exog, AVAILABLE_MASK] if k in cols}
        ds = TimeSeriesDataset.from_df(keep, freq=self.freq, static_df=static_df, exog_cols=exog,
                                       id_col=id_col, time_col=time_col, target_col=target_col)
        return ds

    def _check_lengths(self, ds: TimeSeriesDataset, val_size: int, test_size: int):
        for m in self.models:
            need = (1 if m.start_padding_enabled else m.input_size) + m.h + val_size + test_size
            if ds.max_size < need and not m.start_padding_enabled:
                ds.check_min_length(need, str(m), f"(input_size={m.input_size} + h={m.h} + val_size={val_size} "
                                    f"+ test_size={test_size})")

    def _check_val_size(self, val_size) -> None:
        """NeuralForecast's rule: no validation (0) or at least one horizon of it."""
        if not isinstance(val_size, (int, np.integer)) or isinstance(val_size, bool) or val_size < 0:
            raise ValueError(f"val_size must be a non-negative integer, got {val_size!r}")
        if 0 < val_size < self.h:
            raise ValueError(f"val_size={val_size} is shorter than the horizon h={self.h}: a validation window "
                             f"needs h steps; pass val_size=0 (no validation) or val_size >= {self.h}")

    # -- transactions: a failed fit leaves the Forecaster as it was ------------------------------
    _STATE = ("_fitted", "_dataset", "_raw_dataset", "_scalers", "_like", "_static_df",
              "prediction_intervals", "_conformity")

    def _snapshot(self) -> dict:
        return {"forecaster": {k: self.__dict__[k] for k in self._STATE if k in self.__dict__},
                "models": [snapshot_state(m) for m in self.models]}

    def _restore(self, saved: dict) -> None:
        for k in self._STATE:
            self.__dict__.pop(k, None)
        self.__dict__.update(saved["forecaster"])
        for m, state in zip(self.models, saved["models"]):
            restore_state(m, state)

    # -- fit / predict -----------------------------------------------------------------------
    @_transactional
    def fit(self, df=None, static_df=None, val_size: int = 0, id_col: str = "unique_id",
            time_col: str = "ds", target_col: str = "y", prediction_intervals=None) -> "Forecaster":
        """Train every model on df (long format). val_size: the last steps of each series used
        for validation (early stopping), not for training. prediction_intervals: a
        PredictionIntervals: first a cross-validation on df scores the point-loss models, so that
        predict(level=) gives them conformal intervals (ndiv/conformal.py)."""
        if df is None:
            raise ValueError("fit needs df: a long-format table with unique_id, ds, y")
        self._check_val_size(val_size)
        ds = self._dataset_from(df, static_df, id_col, time_col, target_col)
        self._check_lengths(ds, val_size, 0)
        # conformal intervals (NeuralForecast's _conformity_scores): a cross-validation before the fit
        self.prediction_intervals, self._conformity = prediction_intervals, None
        if prediction_intervals is not None:
            self._conformity = conformal.conformity_scores(self, df, static_df, val_size, id_col, time_col, target_col)
        self._raw_dataset = ds
        ds, self._scalers = fit_local_scalers(ds, self.local_scaler_type)
        for m in self.models:
            m.fit_dataset(ds, val_size=val_size, test_size=0)
        self._dataset, self._fitted, self._like = ds, True, df
        self._static_df = static_df
        return self

    def _require_fit(self, what: str):
        if not self._fitted:
            raise ValueError(f"call fit(df) before {what}")

    def predict(self, df=None, static_df=None, futr_df=None, level: Sequence[float] | None = None,
                quantiles: Sequence[float] | None = None):
        """Forecast h steps after the end of each series (of df if given, else the fit data).

        futr_df: the future exogenous values of the h forecast dates (needed when a model has
        futr_exog_list).
        level: prediction-interval levels in (0, 100), e.g. [80, 95]; or quantiles in (0, 1),
        e.g. [0.1, 0.5, 0.9] (not both). As in NeuralForecast: a model with a DistributionLoss
        gives its mean and the requested intervals at any level (`MLP`, `MLP-lo-95`, `MLP-lo-80`,
        `MLP-hi-80`, `MLP-hi-95`; with quantiles `MLP`, `MLP_ql0.1`, ...); a model with MQLoss
        gives all its trained outputs when they include the requested ones; any other request
        raises ValueError (a point loss, or a level that MQLoss was not trained with).
        Without level and quantiles every model gives its loss's outputs (`MLP`, `MLP-median`,
        `MLP-lo-90`, ...). Returns unique_id, ds and those columns."""
        self._require_fit("predict")
        qs, has_level = _requested_quantiles(level, quantiles)
        conf = conformal.check_request(self, qs is not None)    # point-loss models with conformity scores
        names = {m: m.loss.predict_output_names(None if m in conf else qs, has_level, who=str(m)) for m in self.models}
        like = self._like if df is None else df
        if df is None:
            ds = self._dataset
        else:
            raw = self._dataset_from(df, static_df if static_df is not None else self._static_df,
                                     self._raw_dataset.id_col, self._raw_dataset.time_col, self._raw_dataset.target_col)
            ds = apply_local_scalers(raw, self._scalers) if self._scalers else raw
            if self._scalers and not np.array_equal(raw.uids, self._raw_dataset.uids):
                raise ValueError("with local_scaler_type, predict(df) needs the same series as fit")
        futr = sorted({c for m in self.models for c in m.futr_exog_list})
        if futr and futr_df is None:
            raise ValueError(f"the models use future exogenous columns {futr}: pass futr_df with unique_id, ds "
                             f"and those columns for the {self.h} dates after each series' end")
        full = ds.append_future(self.h, futr_df, futr)
        if self._scalers and futr:
            full = _rescale_future(full, ds, self._scalers, self.h)
        uid, dates = ds.future_dates(self.h)
        out = {ds.id_col: uid, ds.time_col: dates}
        for m in self.models:
            y = m.predict_dataset(full, step_size=1, test_size=self.h, quantiles=None if m in conf else qs)
            self._add_columns(out, m, y, ds, names[m])
            if m in conf:
                conformal.add_columns(self, out, m, ds.uids, sorted(set(level)) if has_level else None,
                                      None if has_level else qs)
        return make_frame(out, like)

    def _add_columns(self, out: dict, model: BaseModel, y: np.ndarray, ds, names: list[str]):
        """y: [n_series * n_windows, h, n_out] (univariate) or [n_windows, h, n_series, n_out];
        names: the n_out column suffixes."""
        if model.MULTIVARIATE:
            y = y.transpose(2, 0, 1, 3)                          # [n_series, n_windows, h, n_out]
        else:
            y = y.reshape(ds.n_series, -1, model.h, y.shape[-1])
        y = y.reshape(-1, y.shape[-1])
        y = self._inverse_local(y, ds, model.h)
        _put_columns(out, model, y, names)

    def _inverse_local(self, y, ds, h):
        """Undo the local scaler of y per series: y rows are series-major, h * windows per series."""
        sc = self._scalers.get(ds.target_col)
        if sc is None:
            return y
        per = len(y) // ds.n_series
        return sc.inverse_transform(y, np.arange(ds.n_series + 1) * per).astype(np.float32)

    @_transactional
    def cross_validation(self, df=None, static_df=None, n_windows: int = 1, step_size: int = 1,
                         val_size: int = 0, refit: bool | int = False, id_col: str = "unique_id",
                         time_col: str = "ds", target_col: str = "y", level: Sequence[float] | None = None,
                         quantiles: Sequence[float] | None = None):
        """Forecasts from n_windows cutoffs at the end of each series, step_size apart, with
        the models trained on the data before the first cutoff (refit=True: retrained before
        every cutoff). level / quantiles: intervals as in predict (checked before training;
        NeuralForecast honours them only with refit, ndiv always). Returns unique_id, ds,
        cutoff, y and one column per model output."""
        if df is None:
            raise ValueError("cross_validation needs df")
        qs, has_level = _requested_quantiles(level, quantiles)
        names = {m: m.loss.predict_output_names(qs, has_level, who=str(m)) for m in self.models}
        for k, v, lo in (("n_windows", n_windows, 1), ("step_size", step_size, 1), ("val_size", val_size, 0)):
            if not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{k} must be an integer >= {lo}, got {v!r}")
        self._check_val_size(val_size)
        h = self.h
        test_size = h + step_size * (n_windows - 1)
        raw = self._dataset_from(df, static_df, id_col, time_col, target_col)
        self._check_lengths(raw, val_size, test_size)
        if raw.min_size <= test_size:
            raw.check_min_length(test_size + 1, "cross_validation", f"(h={h} + step_size={step_size} x "
                                 f"(n_windows={n_windows} - 1) steps of test data and at least one to train on)")
        ds, scalers = fit_local_scalers(raw, self.local_scaler_type)
        self._scalers = scalers
        out = {}
        refits = [0] if not refit else list(range(n_windows))
        if isinstance(refit, int) and not isinstance(refit, bool) and refit > 1:
            refits = list(range(0, n_windows, refit))
        pieces = {m: [] for m in self.models}
        for m in self.models:
            for w0_i, w0 in enumerate(refits):
                w1 = refits[w0_i + 1] if w0_i + 1 < len(refits) else n_windows
                ts = h + step_size * (n_windows - 1 - w0)
                m.fit_dataset(ds, val_size=val_size, test_size=ts)
                y = m.predict_dataset(ds, step_size=step_size, test_size=ts, quantiles=qs)
                y = (y.transpose(2, 0, 1, 3) if m.MULTIVARIATE else y.reshape(ds.n_series, -1, h, y.shape[-1]))
                pieces[m].append(y[:, : w1 - w0])
        # dates, cutoffs and actuals of every (series, window, step)
        ends = raw.indptr[1:]
        win = np.arange(n_windows)
        first_target = ends[:, None] - test_size + win[None, :] * step_size                   # [S, W]
        rows = first_target[:, :, None] + np.arange(h)[None, None, :]                            # [S, W, h]
        out[raw.id_col] = np.repeat(raw.uids, n_windows * h)
        out[raw.time_col] = raw.ds[rows.reshape(-1)]
        out["cutoff"] = raw.ds[(first_target - 1)].repeat(h, axis=1).reshape(-1)
        for m in self.models:
            y = np.concatenate(pieces[m], axis=1).reshape(-1, pieces[m][0].shape[-1])          # [S*W*h, n_out]
            y = self._inverse_local(y, ds, h)
            _put_columns(out, m, y, names[m])
        out[raw.target_col] = raw.temporal[rows.reshape(-1), 0]
        self._dataset, self._raw_dataset, self._fitted, self._like, self._static_df = ds, raw, True, df, static_df
        return make_frame(out, df)

    def predict_insample(self, step_size: int = 1, level: Sequence[float] | None = None,
                         quantiles: Sequence[float] | None = None):
        """Forecasts of the fitted models for windows over the whole training history, every
        step_size steps (as NeuralForecast's predict_insample). level / quantiles: intervals as
        in predict. Returns unique_id, ds, cutoff, y and the model columns."""
        self._require_fit("predict_insample")
        qs, has_level = _requested_quantiles(level, quantiles)
        names = {m: m.loss.predict_output_names(qs, has_level, who=str(m)) for m in self.models}
        ds = self._dataset
        h = self.h
        out_cols = None
        for m in self.models:
            test_size = ds.max_size - m.input_size if ds.max_size > m.input_size else ds.max_size
            test_size = max(test_size, h)
            y = m.predict_dataset(ds, step_size=step_size, test_size=test_size, quantiles=qs)
            n_w = y.shape[0] // ds.n_series if not m.MULTIVARIATE else y.shape[0]
            y = (y.transpose(2, 0, 1, 3) if m.MULTIVARIATE else y.reshape(ds.n_series, n_w, h, y.shape[-1]))
            # window w of series s forecasts padded positions T - test_size + w*step .. + h
            T = ds.max_size
            start = T - test_size + np.arange(n_w) * step_size                                # [W] padded
            pos = start[:, None] + np.arange(h)[None, :]                                        # [W, h]
            keep = pos < T                                                                      # inside history
            if out_cols is None:
                out_cols = {ds.id_col: [], ds.time_col: [], "cutoff": [], ds.target_col: []}
                pad = T - ds.sizes                                                              # [S]
                sel_rows = []
                for s in range(ds.n_series):
                    r = pos - pad[s]                                                            # row within series
                    ok = keep & (r >= 0) & (start[:, None] - 1 - pad[s] >= 0)
                    sel_rows.append((s, ok, r))
                    base = ds.indptr[s]
                    out_cols[ds.id_col].append(np.repeat(ds.uids[s], ok.sum()))
                    out_cols[ds.time_col].append(ds.ds[base + r[ok]])
                    cut = np.broadcast_to((start[:, None] - 1 - pad[s]), r.shape)[ok]
                    out_cols["cutoff"].append(ds.ds[base + cut])
                    out_cols[ds.target_col].append(self._raw_dataset.temporal[base + r[ok], 0])
                out_cols = {k: np.concatenate(v) for k, v in out_cols.items()}
            vals = []
            for s, ok, r in sel_rows:
                ys = y[s][ok]                                                                   # [n, n_out]
                sc = self._scalers.get(ds.target_col)
                if sc is not None:  # rows of series s only: the other series get zero rows
                    counts = np.zeros(ds.n_series, np.int64)
                    counts[s] = len(ys)
                    ys = sc.inverse_transform(ys, np.concatenate([[0], np.cumsum(counts)])).astype(np.float32)
                vals.append(ys)
            vals = np.concatenate(vals)
            _put_columns(out_cols, m, vals, names[m])
        return make_frame(out_cols, self._like)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str, overwrite: bool = False) -> None:
        """Write a folder: forecaster.json (models' configurations, freq, local scalers, file
        names and SHA-256 digests), one safetensors file of weights per model and the training
        data (data.safetensors, in the data's units).

        The folder is written beside `path` and renamed into place: a reader sees the old or
        the new folder, never half of one, and a failed save leaves the old folder as it was.
        overwrite=True replaces only an empty folder or one written by save (ndiv/_saving.py)."""
        self._require_fit("save")
        _saving.save_forecaster(self, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str) -> "Forecaster":
        """Load a folder written by save(): JSON and safetensors only (never a pickle). Raises
        FileNotFoundError for a missing folder or file and ValueError, naming the file and the
        key, for anything edited, truncated, out of the folder or unknown (ndiv/_saving.py)."""
        return _saving.load_forecaster(cls, path)


def _rescale_future(full, ds, scalers, h):
    """Local-scale the appended future exogenous rows (the y placeholders stay 0)."""
    n_rows = len(full.temporal)
    future = np.zeros(n_rows, bool)
    for i in range(ds.n_series):
        future[full.indptr[i + 1] - h: full.indptr[i + 1]] = True
    scaled = apply_local_scalers(full, {k: v for k, v in scalers.items() if k != ds.target_col}, rows=future)
    return scaled


def _requested_quantiles(level, quantiles):
    """predict(level=, quantiles=) -> (sorted unique quantiles or None, has_level), checked
    as NeuralForecast's core.predict: level [80] -> [0.1, 0.9]; not both."""
    if level is not None and quantiles is not None:
        raise ValueError(f"pass level or quantiles, not both (got level={level!r}, quantiles={quantiles!r})")
    for name, v in (("level", level), ("quantiles", quantiles)):
        if v is not None and (isinstance(v, (str, bytes)) or not hasattr(v, "__iter__")):
            raise TypeError(f"{name} must be a list of numbers, e.g. level=[80, 95] or quantiles=[0.1, 0.9]; "
                            f"got {v!r}")
    if level is not None:
        return level_to_quantiles(list(level)) or None, True
    if quantiles is not None:
        return check_quantiles(list(quantiles)) or None, False
    return None, False


def _put_columns(out: dict, model, y: np.ndarray, names: list[str]) -> None:
    """out[model + suffix] = y[:, j] for the suffixes of y's columns [rows, n_out]."""
    if y.shape[-1] != len(names):  # the model and its loss disagree: a bug, never the user's input
        raise RuntimeError(f"{model} returned {y.shape[-1]} forecast columns for the {len(names)} names {names}")
    for j, suffix in enumerate(names):
        out[f"{model}{suffix}"] = y[:, j]


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
        return True
    except ImportError:
        return False

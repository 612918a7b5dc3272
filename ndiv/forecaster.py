"""Forecaster: NeuralForecast's user-facing object (fit, predict, cross_validation,
predict_insample, save, load) over ndiv models.

    >>> from ndiv import Forecaster
    >>> from ndiv.models import MLP
    >>> fc = Forecaster(models=[MLP(h=12, input_size=24, max_steps=100)], freq="MS")
    >>> fc.fit(df)                       # df: unique_id, ds, y (+ exogenous columns)
    >>> fc.predict()                     # unique_id, ds, MLP

`NeuralForecast` is the same class under NeuralForecast's name, so an NF script needs only its
import line changed (`from ndiv import NeuralForecast`).

Data come as a pandas or polars DataFrame or a dict of 1-D arrays; the output has the same kind.
Saved forecasters are a folder of JSON (configuration, local scalers) and safetensors (weights,
the training data), written atomically and loaded without trusting it (ndiv/_saving.py):
loading never unpickles.
"""
from __future__ import annotations

import copy
import functools
from typing import Sequence

import numpy as np

from ndiv import _saving, conformal
from ndiv.data import (AVAILABLE_MASK, TimeSeriesDataset, apply_local_scalers, columns_of, fit_local_scalers,
                       frame_kind, make_frame)
from ndiv.data.categorical import build_vocabulary, categorical_columns, encode_columns, encode_frame
from ndiv.data.frame import as_ds
from ndiv.data.freq import _q, make_future_dates, normalize_freq, offset_dates
from ndiv.data.local_scalers import LocalScaler
from ndiv.losses import check_quantiles, level_to_quantiles
from ndiv.models import BaseModel
from ndiv.models.base import restore_state, snapshot_state

_COPIED = (list, dict, set)


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
        freq: pandas frequency string of the timestamps ('MS', 'D', 'h', 'W', ...), a polars
            duration ('1mo', '1d', '1h'), or an int step (or polars' '1i') for integer timestamps.
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
        self.freq = normalize_freq(freq)
        self.local_scaler_type = local_scaler_type
        self.h = models[0].h
        self._cat_cards = categorical_columns(models)   # {column: cardinality}, checked across models
        self._categories: dict = {}                     # {column: training values}, code = index + 1
        self.prediction_intervals = None
        self._init_states = [snapshot_state(m) for m in models]   # for use_init_models=True
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

    def _dataset_from(self, df, static_df, id_col, time_col, target_col, who: str = "fit",
                      build_categories: bool = False):
        """The TimeSeriesDataset of df (and static_df), categorical columns as codes. With
        build_categories (fit, cross_validation) their vocabulary is built from this data first."""
        cols = columns_of(df, "df")
        if id_col in cols:
            self._check_static(static_df, cols[id_col], id_col, who)
        if self._cat_cards:
            static_cols = None if static_df is None else columns_of(static_df, "static_df")
            if build_categories:
                self._categories = build_vocabulary(cols, static_cols, self._cat_cards)
            cols = encode_columns(cols, self._categories, "df")
            static_df = None if static_cols is None else encode_columns(static_cols, self._categories, "static_df")
        exog = self._exog_cols()
        missing = [c for c in exog if c not in cols]
        if missing:
            raise ValueError(f"df lacks the exogenous column{'s' if len(missing) > 1 else ''} {missing} that "
                             f"the models list in futr_exog_list/hist_exog_list; add them to df")
        keep = {k: cols[k] for k in [id_col, time_col, target_col, *exog, AVAILABLE_MASK] if k in cols}
        ds = TimeSeriesDataset.from_df(keep, freq=self.freq, static_df=static_df, exog_cols=exog,
                                       id_col=id_col, time_col=time_col, target_col=target_col)
        return ds

    def _check_static(self, static_df, ids, id_col: str, who: str) -> None:
        """Static features for every series of df: each column that a model's stat_exog_list
        names, for every series, and numbers only; the errors name the column and the series."""
        need = {c: str(m) for m in self.models for c in m.stat_exog_list}
        if static_df is None:
            if need:
                raise ValueError(f"{who}: the models use the static features {sorted(need)} (stat_exog_list of "
                                 f"{sorted(set(need.values()))}) but no static_df was given; pass static_df with "
                                 f"{id_col!r} and those columns, one row per series")
            return
        cols = columns_of(static_df, "static_df")
        uids = np.unique(ids)
        for c, model in need.items():
            if c not in cols:
                raise ValueError(f"{who}: static_df lacks the static column {c!r} (stat_exog_list of {model}), needed "
                                 f"for the series {uids[:5].tolist()}{' ...' if len(uids) > 5 else ''}; "
                                 f"add it to static_df (it has {list(cols)})")
        if id_col in cols:
            have = set(cols[id_col].tolist())
            lack = [u for u in uids.tolist() if u not in have]
            if lack:
                more = " ..." if len(lack) > 5 else ""
                raise ValueError(f"{who}: static_df has no row for the series {lack[:5]}{more} "
                                 f"(static columns {[c for c in cols if c != id_col]}); add one row per series")
        for c, v in cols.items():
            if c in self._cat_cards:
                continue  # a categorical column (cat_exog_list): coded, then embedded by the models
            if c != id_col and v.dtype.kind in "OUS" and not _all_numbers(v):
                first = next(x for x in v.tolist() if not isinstance(x, (int, float, np.number)))
                raise TypeError(
                    f"{who}: static_df column {c!r} holds {type(first).__name__} values (e.g. {first!r}); the models "
                    f"take numbers: encode it, e.g. one 0/1 column per category with "
                    f"pandas.get_dummies(static_df, columns=[{c!r}], dtype=float), or list it in the models' "
                    f"cat_exog_list (and categorical_cardinalities) to embed it, or drop it")

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
    _STATE = ("_fitted", "_dataset", "_raw_dataset", "_scalers", "_like", "_static_df", "_categories",
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

    def _reset_models(self) -> None:
        """use_init_models=True: every model back to its weights and state at construction
        (NeuralForecast's _reset_models), from a copy so the initial snapshot stays intact."""
        for m, state in zip(self.models, self._init_states):
            restore_state(m, [(mod, {k: (type(v)(v) if isinstance(v, _COPIED) else v) for k, v in attrs.items()},
                               [(t, data.copy(), grad) for t, data, grad in tensors])
                              for mod, attrs, tensors in state])

    # -- fit / predict -----------------------------------------------------------------------
    @_transactional
    def fit(self, df=None, static_df=None, val_size: int = 0, use_init_models: bool = False,
            verbose: bool = False, id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y",
            prediction_intervals=None, backend=None) -> "Forecaster":
        """Train every model on df (long format; None: the data of the last fit again).

        static_df: one row per series with its static features (kept for predict and save).
        val_size: the last steps of each series used for validation (early stopping), not for
        training. use_init_models: start from the weights the models had when constructed
        (otherwise a second fit continues from the trained weights, as NeuralForecast does).
        prediction_intervals: a PredictionIntervals: first a cross-validation on df scores the
        point-loss models, so that predict(level=) gives them conformal intervals (ndiv/conformal.py).
        backend: None (the models one after another, here), or where to fit them at once: 'local',
        'dask', 'ray', a dask Client or scheduler address (ndiv/auto/parallel.py)."""
        like = frame_kind(df)
        if df is None:
            if not self._fitted:
                raise ValueError("fit needs df: a long-format table with unique_id, ds, y")
            if verbose:
                print("Using stored dataset.")
            like, df = self._like, self._stored_table()
            static_df = self._static_df if static_df is None else static_df
            id_col, time_col, target_col = (self._raw_dataset.id_col, self._raw_dataset.time_col,
                                            self._raw_dataset.target_col)
        self._check_val_size(val_size)
        if use_init_models:
            self._reset_models()
        ds = self._dataset_from(df, static_df, id_col, time_col, target_col, build_categories=True)
        self._check_lengths(ds, val_size, 0)
        # conformal intervals (NeuralForecast's _conformity_scores): a cross-validation before the fit
        self.prediction_intervals, self._conformity = prediction_intervals, None
        if prediction_intervals is not None:
            self._conformity = conformal.conformity_scores(self, df, static_df, val_size, id_col, time_col, target_col)
        self._raw_dataset = ds
        ds, self._scalers = fit_local_scalers(ds, self.local_scaler_type, exclude=self._cat_cards)
        if backend is None:
            for m in self.models:
                m.fit_dataset(ds, val_size=val_size, test_size=0)
        else:
            from ndiv.auto.parallel import fit_models
            fit_models(self.models, ds, val_size, backend)
        self._dataset, self._fitted, self._like = ds, True, like
        self._static_df = static_df
        return self

    def _stored_table(self) -> dict:
        """The training data as a table (dict of columns), from the stored dataset."""
        raw = self._raw_dataset
        cols = {raw.id_col: np.repeat(raw.uids, raw.sizes), raw.time_col: raw.ds}
        for j, c in enumerate(raw.temporal_cols):
            cols[c] = raw.temporal[:, j].astype(np.float64)
        return cols

    def _require_fit(self, what: str):
        if not self._fitted:
            raise ValueError(f"call fit(df) before {what}")

    def _check_h(self, h, who: str) -> int:
        """predict(h=): at most the models' h (the first h steps of their forecast)."""
        if h is None:
            return self.h
        if not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1:
            raise ValueError(f"{who}: h must be a positive integer, got {h!r}")
        if h > self.h:  # NeuralForecast's recursive forecast, and its conditions
            if self.prediction_intervals is not None:
                raise ValueError(f"{who}(h={h}) is longer than the models' horizon h={self.h}: a longer h is "
                                 "forecast recursively, which prediction intervals do not support")
            for m in self.models:
                if m.hist_exog_list:
                    raise ValueError(f"{who}(h={h}) is longer than the models' horizon h={self.h}: {m} "
                                     f"has hist_exog_list, so it cannot forecast recursively; build the models "
                                     f"with h={h}")
        return int(h)

    def predict(self, df=None, static_df=None, futr_df=None, verbose: bool = False,
                level: Sequence[float] | None = None, quantiles: Sequence[float] | None = None,
                h: int | None = None):
        """Forecast h steps after the end of each series (of df if given, else the fit data).

        static_df: static features of df's series (default: the static_df given at fit).
        futr_df: the future exogenous values of the h forecast dates (needed when a model has
        futr_exog_list).
        level: prediction-interval levels in (0, 100), e.g. [80, 95]; or quantiles in (0, 1),
        e.g. [0.1, 0.5, 0.9] (not both). As in NeuralForecast: a model with a DistributionLoss
        gives its mean and the requested intervals at any level (`MLP`, `MLP-lo-95`, `MLP-lo-80`,
        `MLP-hi-80`, `MLP-hi-95`; with quantiles `MLP`, `MLP_ql0.1`, ...); a model with MQLoss
        gives all its trained outputs when they include the requested ones; any other request
        raises ValueError (a point loss, or a level that MQLoss was not trained with).
        Without level and quantiles every model gives its loss's outputs (`MLP`, `MLP-median`,
        `MLP-lo-90`, ...). h: a shorter h gives the first h steps (NeuralForecast raises there); a
        longer h is forecast recursively as NeuralForecast does: each horizon's median (else
        point) forecast becomes the input of the next (futr_df must then cover h dates). When h
        is not a multiple of the models' h, NeuralForecast 3.3 returns as its last steps
        forecasts of earlier dates (h=18 from 12: as steps 13-18, the forecasts of 7-12 made
        from steps 1-6); ndiv returns the forecasts of steps 13-18.
        verbose: say when the stored data is used. Returns unique_id, ds and those columns."""
        self._require_fit("predict")
        h = self._check_h(h, "predict")
        qs, has_level = _requested_quantiles(level, quantiles)
        conf = conformal.check_request(self, qs is not None)    # point-loss models with conformity scores
        names = {m: m.loss.predict_output_names(None if m in conf else qs, has_level, who=str(m)) for m in self.models}
        like = self._like if df is None else frame_kind(df)
        if df is None:
            if self._dataset is None:
                raise ValueError("this Forecaster holds no training data (loaded from a NeuralForecast folder saved "
                                 "with save_dataset=False): pass the history, predict(df=...)")
            if verbose:
                print("Using stored dataset.")
            ds = self._dataset
        else:
            raw = self._dataset_from(df, static_df if static_df is not None else self._static_df,
                                     *self._column_names(), who="predict")
            ds = apply_local_scalers(raw, self._scalers) if self._scalers else raw
            if (self._scalers and self._raw_dataset is not None
                    and not np.array_equal(raw.uids, self._raw_dataset.uids)):
                raise ValueError("with local_scaler_type, predict(df) needs the same series as fit")
        futr = sorted({c for m in self.models for c in m.futr_exog_list})
        if futr and futr_df is None:
            raise ValueError(f"the models use future exogenous columns {futr}: pass futr_df with unique_id, ds "
                             f"and those columns for the {self.h} dates after each series' end")
        futr_df = encode_frame(futr_df, self._categories, "futr_df")
        n_steps = -(-h // self.h)                       # forecasts of the models' h, recursively if h is longer
        uid, dates = ds.future_dates(n_steps * self.h)
        first = np.arange(len(uid)) % (n_steps * self.h) < h              # the first h dates of every series
        out = {ds.id_col: uid[first], ds.time_col: dates[first]}
        for m in self.models:
            m_qs = None if m in conf else qs
            y = np.concatenate(list(self._recursive(m, ds, n_steps, futr_df, futr, m_qs, names[m])), axis=1)
            self._add_columns(out, m, y[:, :h], ds, names[m], h)
            if m in conf:
                conformal.add_columns(self, out, m, ds.uids, sorted(set(level)) if has_level else None,
                                      None if has_level else qs)
        return make_frame(out, like)

    def _column_names(self) -> tuple:
        """(id_col, time_col, target_col) of the fit data (of the NF folder when it had none)."""
        raw = self._raw_dataset
        return (raw.id_col, raw.time_col, raw.target_col) if raw is not None else self._nf_columns

    def _recursive(self, model, ds, n_steps: int, futr_df, futr, qs, names):
        """model's forecasts [n_series, self.h, n_out] for n_steps horizons after ds, each from
        the data and the forecasts before it (NeuralForecast's recursive prediction: the median,
        else the point forecast, is fed back as observed y)."""
        point = names.index("-median") if "-median" in names else 0
        for step in range(n_steps):
            full = ds.append_future(self.h, futr_df, futr)
            if self._scalers and futr:
                full = _rescale_future(full, ds, self._scalers, self.h)
            y = model.predict_dataset(full, step_size=1, test_size=self.h, quantiles=qs)   # [S, h, K]
            yield y
            if step + 1 < n_steps:
                rows = (full.indptr[1:, None] - self.h + np.arange(self.h)).reshape(-1)
                temporal = full.temporal.copy()
                fed = y[0, :, :, point].T if model.MULTIVARIATE else y[:, :, point]    # [S, h]
                temporal[rows, 0], temporal[rows, -1] = fed.reshape(-1), 1.0
                ds = full.with_temporal(temporal)

    def make_future_dataframe(self, df=None, h: int | None = None):
        """The h dates after the end of each series (of df if given, else the fit data): the
        unique_id and ds rows that predict's futr_df must have (NeuralForecast's method)."""
        self._require_fit("make_future_dataframe")
        return make_frame(self._future_rows(df, h), self._like if df is None else frame_kind(df))

    def get_missing_future(self, futr_df, df=None, h: int | None = None):
        """The (unique_id, ds) rows of make_future_dataframe(df, h) that futr_df lacks."""
        self._require_fit("get_missing_future")
        want = self._future_rows(df, h)
        id_col, time_col = self._raw_dataset.id_col, self._raw_dataset.time_col
        cols = columns_of(futr_df, "futr_df")
        missing = [c for c in (id_col, time_col) if c not in cols]
        if missing:
            raise ValueError(f"futr_df lacks the column{'s' if len(missing) > 1 else ''} {missing}; it needs "
                             f"{id_col!r} and {time_col!r} (see make_future_dataframe())")
        have = set(zip(cols[id_col].tolist(), as_ds(cols[time_col], time_col).tolist()))
        lack = np.array([k not in have for k in zip(want[id_col].tolist(), want[time_col].tolist())], bool)
        return make_frame({k: v[lack] for k, v in want.items()}, frame_kind(futr_df))

    def _future_rows(self, df, h) -> dict:
        h = self.h if h is None else h
        if not isinstance(h, (int, np.integer)) or isinstance(h, bool) or h < 1:
            raise ValueError(f"h must be a positive integer, got {h!r}")
        raw = self._raw_dataset
        if df is None:
            uids, last = raw.uids, raw.last_ds
        else:
            cols = columns_of(df, "df")
            missing = [c for c in (raw.id_col, raw.time_col) if c not in cols]
            if missing:
                raise ValueError(f"df lacks the column{'s' if len(missing) > 1 else ''} {missing} "
                                 f"(it has {list(cols)})")
            times = as_ds(cols[raw.time_col], raw.time_col)
            uids, codes = np.unique(cols[raw.id_col], return_inverse=True)
            order = np.lexsort((times, codes.reshape(-1)))
            ends = np.cumsum(np.bincount(codes.reshape(-1), minlength=len(uids))) - 1
            last = times[order][ends]
        dates = make_future_dates(last, self.freq, int(h))                       # [n_series, h]
        return {raw.id_col: np.repeat(uids, h), raw.time_col: dates.reshape(-1)}

    def _add_columns(self, out: dict, model: BaseModel, y: np.ndarray, ds, names: list[str], h: int):
        """y: [n_series * n_windows, h, n_out] (univariate) or [n_windows, h, n_series, n_out];
        names: the n_out column suffixes."""
        if model.MULTIVARIATE:
            y = y.transpose(2, 0, 1, 3)                          # [n_series, n_windows, h, n_out]
        else:
            y = y.reshape(ds.n_series, -1, h, y.shape[-1])
        y = y.reshape(-1, y.shape[-1])
        y = self._inverse_local(y, ds, h)
        _put_columns(out, model, y, names)

    def _inverse_local(self, y, ds, h):
        """Undo the local scaler of y per series: y rows are series-major, h * windows per series."""
        sc = self._scalers.get(ds.target_col)
        if sc is None:
            return y
        per = len(y) // ds.n_series
        return sc.inverse_transform(y, np.arange(ds.n_series + 1) * per).astype(np.float32)

    @_transactional
    def cross_validation(self, df=None, static_df=None, n_windows: int | None = 1, step_size: int = 1,
                         val_size: int = 0, test_size: int | None = None, use_init_models: bool = False,
                         verbose: bool = False, refit: bool | int = False, id_col: str = "unique_id",
                         time_col: str = "ds", target_col: str = "y", level: Sequence[float] | None = None,
                         quantiles: Sequence[float] | None = None, h: int | None = None, backend=None):
        """Forecasts from n_windows cutoffs at the end of each series, step_size apart, with
        the models trained on the data before the first cutoff (refit=True: retrained before
        every cutoff; an int k: every k windows). As in NeuralForecast, give n_windows or
        test_size (the last steps of each series forecast: h + step_size * (n_windows - 1);
        pass n_windows=None with it). h: the models' h (the default; NeuralForecast's longer
        recursive h is not supported). use_init_models: start from the weights at construction.
        level / quantiles: intervals as in predict (checked before training; NeuralForecast
        honours them only with refit, ndiv always). Returns unique_id, ds, cutoff, one column
        per model output, and y (NeuralForecast's columns and order). backend (with refit): where the
        refits run at once, each from the models' state before the call ('local', 'dask', 'ray', a
        dask Client; ndiv/auto/parallel.py); None: one after another, each from the previous one."""
        if df is None:
            raise ValueError("cross_validation needs df")
        if h is not None and h != self.h:
            raise ValueError(f"cross_validation(h={h}): ndiv cross-validates the models' horizon h={self.h} only; "
                             f"build the models with h={h} to cross-validate that horizon")
        qs, has_level = _requested_quantiles(level, quantiles)
        names = {m: m.loss.predict_output_names(qs, has_level, who=str(m)) for m in self.models}
        for k, v, lo in (("step_size", step_size, 1), ("val_size", val_size, 0)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < lo:
                raise ValueError(f"{k} must be an integer >= {lo}, got {v!r}")
        n_windows, test_size = _windows_and_test_size(n_windows, test_size, step_size, self.h)
        if use_init_models:
            self._reset_models()
        if verbose:
            print(f"cross_validation: {n_windows} windows, test_size={test_size}")
        self._check_val_size(val_size)
        h = self.h
        raw = self._dataset_from(df, static_df, id_col, time_col, target_col, build_categories=True)
        self._check_lengths(raw, val_size, test_size)
        if raw.min_size <= test_size:
            raw.check_min_length(test_size + 1, "cross_validation", f"(h={h} + step_size={step_size} x "
                                 f"(n_windows={n_windows} - 1) steps of test data and at least one to train on)")
        ds, scalers = fit_local_scalers(raw, self.local_scaler_type, exclude=self._cat_cards)
        self._scalers = scalers
        out = {}
        refits = [0] if not refit else list(range(n_windows))
        if isinstance(refit, int) and not isinstance(refit, bool) and refit > 1:
            refits = list(range(0, n_windows, refit))
        pieces = {m: [] for m in self.models}
        if backend is not None:
            from ndiv.auto.parallel import fit_windows
            ys = fit_windows(self.models, ds, [h + step_size * (n_windows - 1 - w0) for w0 in refits], val_size,
                             step_size, qs, backend)
        for m in self.models:
            for w0_i, w0 in enumerate(refits):
                w1 = refits[w0_i + 1] if w0_i + 1 < len(refits) else n_windows
                ts = h + step_size * (n_windows - 1 - w0)
                if backend is None:
                    m.fit_dataset(ds, val_size=val_size, test_size=ts)
                    y = m.predict_dataset(ds, step_size=step_size, test_size=ts, quantiles=qs)
                else:
                    y = ys[m][w0_i]
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
        self._dataset, self._raw_dataset, self._fitted, self._static_df = ds, raw, True, static_df
        self._like = frame_kind(df)
        return make_frame(out, df)

    def predict_insample(self, step_size: int = 1, level: Sequence[float] | None = None,
                         quantiles: Sequence[float] | None = None):
        """Forecasts of the fitted models over the training history, NeuralForecast's windows:
        per series, the last test_size steps (held out by cross_validation; 0 after fit) are left
        out and the windows cover the rest from its end backwards, every step_size steps, the
        first (whose input is zero padding when it starts the series) cut by the few rows
        that step_size leaves over. cutoff: the date before each window. level / quantiles:
        intervals as in predict. Returns unique_id, ds, cutoff, the model columns and y."""
        self._require_fit("predict_insample")
        if self._dataset is None:
            raise ValueError("predict_insample needs the training data, and this Forecaster was loaded from a "
                             "NeuralForecast folder saved with save_dataset=False")
        if not isinstance(step_size, (int, np.integer)) or isinstance(step_size, bool) or step_size < 1:
            raise ValueError(f"step_size must be an integer >= 1, got {step_size!r}")
        qs, has_level = _requested_quantiles(level, quantiles)
        names = {m: m.loss.predict_output_names(qs, has_level, who=str(m)) for m in self.models}
        ds, raw, h = self._dataset, self._raw_dataset, self.h
        test_size = self.models[0].test_size
        usable = ds.sizes - test_size                                                       # [S]
        short = np.flatnonzero(usable < h)
        if short.size:
            i = short[0]
            raise ValueError(f"predict_insample: series {_q(ds.uids[i])} has {ds.sizes[i]} rows, {usable[i]} after the "
                             f"test_size={test_size} held out, fewer than one window of h={h}")
        offset = (usable - h) % step_size                         # NF's forefront_offset: rows before window 0
        n_win = (usable - h) // step_size + 1                                               # [S]
        first = np.concatenate([ds.indptr[s] + offset[s] + step_size * np.arange(n_win[s])
                                for s in range(ds.n_series)])                               # [sum W] row of step 1
        rows = (first[:, None] + np.arange(h)[None, :]).reshape(-1)                          # [sum W * h]
        out = {ds.id_col: np.repeat(ds.uids, n_win * h), ds.time_col: raw.ds[rows],
               "cutoff": offset_dates(raw.ds[np.repeat(first, h)], self.freq, -1)}
        out_indptr = np.concatenate([[0], np.cumsum(n_win * h)])
        for m in self.models:
            if m.MULTIVARIATE and len(np.unique(ds.sizes)) > 1:
                raise ValueError(f"predict_insample: {m} is multivariate and the series have different lengths "
                                 f"({ds.min_size} to {ds.max_size}); it needs series of one length")
            groups = [np.arange(ds.n_series)] if m.MULTIVARIATE else [
                np.flatnonzero(ds.sizes == n) for n in np.unique(ds.sizes)]              # equal length: one call
            per_series = [None] * ds.n_series
            for idx in groups:
                sub = ds.subset(idx).trim(left=int(offset[idx[0]]), right=int(test_size))
                y = m.predict_dataset(sub, step_size=step_size, test_size=sub.max_size, quantiles=qs)
                y = y.transpose(2, 0, 1, 3) if m.MULTIVARIATE else y.reshape(len(idx), -1, h, y.shape[-1])
                for j, s in enumerate(idx):                                                 # y [s, W, h, K]
                    per_series[s] = y[j].reshape(-1, y.shape[-1])
            y = np.concatenate(per_series)
            sc = self._scalers.get(ds.target_col)
            if sc is not None:
                y = sc.inverse_transform(y, out_indptr).astype(np.float32)
            _put_columns(out, m, y, names[m])
        out[ds.target_col] = raw.temporal[rows, 0]
        return make_frame(out, self._like)

    # -- persistence -------------------------------------------------------------------------
    def save(self, path: str, model_index: Sequence[int] | None = None, save_dataset: bool = True,
             overwrite: bool = False) -> None:
        """Write a folder: forecaster.json (models' configurations, freq, local scalers, file
        names and SHA-256 digests), one safetensors file of weights per model and the training
        data (data.safetensors, in the data's units). NeuralForecast's signature: model_index
        saves only those models (indices into self.models); save_dataset must stay True, as an
        ndiv folder rebuilds its local scalers and predict()'s history from the saved data.

        The folder is written beside `path` and renamed into place: a reader sees the old or
        the new folder, never half of one, and a failed save leaves the old folder as it was.
        overwrite=True replaces only an empty folder or one written by save (ndiv/_saving.py)."""
        self._require_fit("save")
        if self._raw_dataset is None:
            raise ValueError("Forecaster.save needs the training data, and this Forecaster was loaded from a "
                             "NeuralForecast folder saved with save_dataset=False: re-save it in NeuralForecast "
                             "with save_dataset=True and load that")
        if not save_dataset:
            raise ValueError("Forecaster.save(save_dataset=False): an ndiv folder always keeps the training data "
                             "(its local scalers and predict() without df are rebuilt from it); pass save_dataset=True")
        fc = self
        if model_index is not None:
            idx = list(model_index)
            bad = [i for i in idx if not isinstance(i, (int, np.integer)) or not 0 <= i < len(self.models)]
            if bad or not idx:
                raise ValueError(f"model_index must list indices of the {len(self.models)} models "
                                 f"(0..{len(self.models) - 1}), got {model_index!r}")
            fc = copy.copy(self)
            fc.models = [self.models[i] for i in idx]
        _saving.save_forecaster(fc, path, overwrite=overwrite)

    @classmethod
    def load(cls, path: str) -> "Forecaster":
        """Load a folder written by save(), or by NeuralForecast 3.3's NeuralForecast.save() (read
        by ndiv.from_neuralforecast, without torch): JSON and safetensors only (never a pickle).
        Raises FileNotFoundError for a missing folder or file and ValueError, naming the file and
        the key, for anything edited, truncated, out of the folder or unknown (ndiv/_saving.py)."""
        from ndiv import _nf_folder
        if _nf_folder.is_nf_folder(path):
            return _nf_folder.from_neuralforecast(path, cls)
        return _saving.load_forecaster(cls, path)

    # -- interpretation: ndiv.viz.interpret computes, these return frames ----------------------------
    def feature_importances(self, model=None, futr_df=None, unique_id=None) -> dict:
        """A TFT's variable-selection weights on the window that predict() forecasts from, averaged
        over the series (or for the series unique_id), with NeuralForecast's keys:
        'Past variable importance over time' (L rows, one column per past input: hist exog, futr
        exog or 'repeated_target' when there is none, 'observed_target'), 'Future variable
        importance over time' (h rows, one column per future input) and 'Static covariates'
        (index: the static columns, column 'importance', sorted; a dict has a 'variable' column).
        Every row of the first two, and the static column, sums to 1. model: index, alias or the
        model (default the first TFT); futr_df: as for predict."""
        from ndiv.viz.interpret import tft_interpretation
        r = tft_interpretation(self, model, futr_df)
        rows = _interpretation_rows(r["unique_id"], unique_id)
        out = {"Past variable importance over time": self._interpretation_frame(
            dict(zip(r["past_names"], r["past"][rows].mean(0).T)))}
        if r["future_names"] != ["repeated_target"]:     # NF gives future importances with futr exog only
            out["Future variable importance over time"] = self._interpretation_frame(
                dict(zip(r["future_names"], r["future"][rows].mean(0).T)))
        if r["static"] is not None:
            imp = r["static"][rows].mean(0)
            order = np.argsort(imp, kind="stable")
            names = np.asarray(r["static_names"], dtype=object)[order]
            out["Static covariates"] = self._interpretation_frame({"variable": names, "importance": imp[order]},
                                                                  index="variable")
        return out

    def attention_weights(self, model=None, futr_df=None, unique_id=None):
        """A TFT's attention over time on the window that predict() forecasts from, averaged over
        heads and series (or for the series unique_id): one row per step of the window ('step':
        -L+1 .. 0 for the input, 1 .. h for the horizon), a column 'h{k}' per forecast step k with
        the weight it gives that step (each column sums to 1; later steps get 0, the attention is
        causal), and 'mean' over the horizon. NeuralForecast's attention_weights() matrix
        [L + h, L + h] is the full map: ndiv.viz.tft_interpretation(fc)['attention']."""
        from ndiv.viz.interpret import tft_interpretation
        r = tft_interpretation(self, model, futr_df)
        rows = _interpretation_rows(r["unique_id"], unique_id)
        L, h = r["input_size"], r["h"]
        att = r["attention"][rows].mean(axis=(0, 1))[L:]                  # [h, L + h]: horizon steps attend
        cols = {"step": np.arange(-L + 1, h + 1)}
        cols.update({f"h{k + 1}": att[k] for k in range(h)})
        cols["mean"] = att.mean(0)
        return self._interpretation_frame(cols)

    def decomposition(self, model=None, futr_df=None):
        """An NHITS, NBEATS or NBEATSx forecast split into its parts, in the data's units: per series
        and forecast date, 'level' (the last value), one column per stack (e.g. 'stack 0 (trend)')
        and the model's point forecast = level + the stacks (the median's parts with MQLoss).
        model: index, alias or the model (default the first); futr_df: as for predict."""
        from ndiv.viz.interpret import _pick, decomposition
        m = _pick(self, model)
        if getattr(m.loss, "is_distribution_output", False):
            raise ValueError(f"{m}: decomposition() splits point forecasts (and MQLoss quantiles); with "
                             f"{type(m.loss).__name__} the stacks add up distribution parameters, not a forecast")
        r = decomposition(self, m, futr_df)
        k = r["stacks"].shape[-1] // 2                          # the middle output: the median of MQLoss
        h = r["level"].shape[1]
        id_col, time_col, _ = self._column_names()
        cols = {id_col: np.repeat(r["unique_id"], h), time_col: np.asarray(r["ds"]),
                "level": r["level"][:, :, k].reshape(-1)}
        for s, name in enumerate(r["stack_names"]):
            cols[name] = r["stacks"][s, :, :, k].reshape(-1)
        cols[r["model"]] = r["forecast"][:, :, k].reshape(-1)
        return self._interpretation_frame(cols)

    def _interpretation_frame(self, cols: dict, index: str | None = None):
        """cols as the fit data's kind of frame (pandas when installed and the data were a dict)."""
        like = self._like if self._like is not None else ("pandas" if _has_pandas() else None)
        frame = make_frame(cols, like)
        if index is not None and frame_kind(frame) == "pandas":
            frame = frame.set_index(index)
            frame.index.name = None
        return frame


def _rescale_future(full, ds, scalers, h):
    """Local-scale the appended future exogenous rows (the y placeholders stay 0)."""
    n_rows = len(full.temporal)
    future = np.zeros(n_rows, bool)
    for i in range(ds.n_series):
        future[full.indptr[i + 1] - h: full.indptr[i + 1]] = True
    scaled = apply_local_scalers(full, {k: v for k, v in scalers.items() if k != ds.target_col}, rows=future)
    return scaled


def _windows_and_test_size(n_windows, test_size, step_size: int, h: int) -> tuple[int, int]:
    """cross_validation's n_windows or test_size (NeuralForecast's rule: one of them) ->
    (n_windows, test_size) with test_size = h + step_size * (n_windows - 1)."""
    if (n_windows is None) == (test_size is None):
        raise ValueError(f"cross_validation needs n_windows or test_size, not {'both' if n_windows else 'neither'} "
                         f"(got n_windows={n_windows!r}, test_size={test_size!r}); to give test_size, "
                         "pass n_windows=None")
    if test_size is None:
        if not isinstance(n_windows, (int, np.integer)) or isinstance(n_windows, bool) or n_windows < 1:
            raise ValueError(f"n_windows must be an integer >= 1, got {n_windows!r}")
        return int(n_windows), h + step_size * (int(n_windows) - 1)
    if not isinstance(test_size, (int, np.integer)) or isinstance(test_size, bool) or test_size < h:
        raise ValueError(f"test_size must be an integer >= h={h}, got {test_size!r}")
    if (test_size - h) % step_size:
        raise ValueError(f"test_size - h = {test_size - h} must be a multiple of step_size={step_size} "
                         f"(e.g. test_size={h + step_size * ((test_size - h) // step_size)})")
    return (int(test_size) - h) // step_size + 1, int(test_size)


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


def _all_numbers(values: np.ndarray) -> bool:
    return all(isinstance(v, (int, float, np.number, np.bool_)) for v in values.tolist())


def _interpretation_rows(uids: np.ndarray, unique_id) -> np.ndarray:
    """The rows of the series unique_id (all series when None)."""
    if unique_id is None:
        return np.arange(len(uids))
    rows = np.flatnonzero(uids == unique_id)
    if rows.size == 0:
        raise ValueError(f"unique_id={unique_id!r} is not one of the fitted series ({list(uids[:5])}"
                         f"{' ...' if len(uids) > 5 else ''})")
    return rows


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
        return True
    except ImportError:
        return False


NeuralForecast = Forecaster   # NeuralForecast's name for the same class: `from ndiv import NeuralForecast`

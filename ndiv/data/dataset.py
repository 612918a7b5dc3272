"""TimeSeriesDataset: many series in long format, checked, sorted and packed into one array.

The layout is NeuralForecast's `TimeSeriesDataset`: all rows of all series, sorted by
(unique_id, ds), in one contiguous float32 array `temporal` [n_rows, C] whose columns are
`temporal_cols` = [y, exogenous columns..., 'available_mask'] (y first, the mask last); series i
is rows `indptr[i]:indptr[i + 1]`. Static features are one row per series in `static` [n_series, S].

    >>> import numpy as np
    >>> data = {"unique_id": np.repeat(["a", "b"], [3, 2]),
    ...         "ds": np.array([1, 2, 3, 1, 2]), "y": np.arange(5.0)}
    >>> ds = TimeSeriesDataset.from_df(data, freq=1)
    >>> ds.temporal_cols, ds.indptr.tolist(), ds.uids.tolist(), ds.last_ds.tolist()
    (['y', 'available_mask'], [0, 3, 5], ['a', 'b'], [3, 2])
    >>> ds.batch([1])["temporal"][0]     # series 'b', left-padded to the longest series: [C, T]
    array([[0., 3., 4.],
           [0., 1., 1.]], dtype=float32)

Every problem with the input raises ValueError/TypeError naming the column, the series, the date
and what to do (see tests/data/test_validation.py for each message).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from ndiv.data.frame import as_ds, as_float, columns_of, require_columns
from ndiv.data.freq import _fmt, _q, check_follows_freq, check_freq, make_future_dates

AVAILABLE_MASK = "available_mask"


class TimeSeriesDataset:
    """Sorted, validated long-format data. Build it with `TimeSeriesDataset.from_df`.

    Attributes:
        temporal: float32 [n_rows, C], columns `temporal_cols` ([y, *exog, 'available_mask']).
        temporal_cols: list of C names. `y_idx` = 0 is the target.
        indptr: int64 [n_series + 1]; series i is rows indptr[i]:indptr[i+1].
        uids: [n_series] the unique_id of each series, sorted.
        ds: [n_rows] datetime64[ns] or int64 timestamps; last_ds: [n_series] each series' last one.
        static: float32 [n_series, S] or None; static_cols: list of S names.
        freq: the frequency the dates were checked against (None: not checked).
        id_col, time_col, target_col: the input's column names (for output tables).
    """

    y_idx = 0

    def __init__(self, temporal, temporal_cols, indptr, uids, ds, static=None, static_cols=None,
                 freq=None, id_col="unique_id", time_col="ds", target_col="y"):
        self.temporal = np.ascontiguousarray(temporal, dtype=np.float32)
        self.temporal_cols = list(temporal_cols)
        self.indptr = np.asarray(indptr, dtype=np.int64)
        self.uids = np.asarray(uids)
        self.ds = np.asarray(ds)
        self.static = None if static is None else np.ascontiguousarray(static, dtype=np.float32)
        self.static_cols = list(static_cols) if static_cols is not None else []
        self.freq = freq
        self.id_col, self.time_col, self.target_col = id_col, time_col, target_col
        self._padded = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_df(cls, df, freq=None, static_df=None, exog_cols: Sequence[str] | None = None,
                id_col: str = "unique_id", time_col: str = "ds", target_col: str = "y"):
        """Check and pack a long-format table.

        Args:
            df: pandas DataFrame or dict of 1-D arrays with `id_col`, `time_col`, `target_col` and
                exogenous columns. An optional 'available_mask' column (0/1) marks rows whose y
                is missing (y may then be NaN; it is stored as 0).
            freq: pandas frequency string for datetime ds ('MS', 'M', 'D', 'h', 'W', ...), or an
                int for integer ds. When given, every series must be on a regular grid of it.
            static_df: table with `id_col` and static features, one row per series.
            exog_cols: the temporal exogenous columns to keep, in order (None: every other
                column of df, as NeuralForecast does).
        """
        cols = columns_of(df, "df")
        require_columns(cols, [id_col, time_col, target_col], "df",
                        f"; long format needs the series id {id_col!r}, the timestamp {time_col!r} "
                        f"and the target {target_col!r}")
        n = len(cols[id_col])
        if n == 0:
            raise ValueError("df has no rows")
        uid_raw = cols[id_col]
        _check_ids(uid_raw, id_col)
        ds = as_ds(cols[time_col], time_col)
        if freq is not None:
            check_freq(freq, ds.dtype.kind == "M")

        others = [c for c in cols if c not in (id_col, time_col, target_col, AVAILABLE_MASK)]
        if exog_cols is None:
            exog_cols = others
        else:
            exog_cols = list(exog_cols)
            missing = [c for c in exog_cols if c not in cols]
            if missing:
                raise ValueError(f"exogenous column{'s' if len(missing) > 1 else ''} {missing} not in df "
                                 f"(its other columns: {others}); add them to df or remove them "
                                 "from futr_exog_list/hist_exog_list")

        # sort by (unique_id, ds); stable so equal keys keep their order for the duplicate check
        try:
            uids, codes = np.unique(uid_raw, return_inverse=True)
        except TypeError:
            examples = list({type(v): v for v in uid_raw.tolist()}.values())[:3]
            raise TypeError(f"column {id_col!r} mixes types that cannot be sorted together "
                            f"(e.g. {examples}); use all strings or all integers") from None
        codes = codes.reshape(-1)
        order = np.lexsort((ds, codes))
        codes, ds = codes[order], ds[order]
        indptr = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(uids)))]).astype(np.int64)

        dup = np.flatnonzero((codes[1:] == codes[:-1]) & (ds[1:] == ds[:-1]))
        if dup.size:
            i = dup[0]
            raise ValueError(f"df has {dup.size} duplicated ({id_col}, {time_col}) pair"
                             f"{'s' if dup.size > 1 else ''}, e.g. ({_q(uids[codes[i]])}, {_fmt(ds[i])}); "
                             "keep one row per series and timestamp (aggregate or drop duplicates)")

        mask = np.ones(n) if AVAILABLE_MASK not in cols else as_float(cols[AVAILABLE_MASK], AVAILABLE_MASK)[order]
        if not np.all((mask == 0) | (mask == 1)):
            raise ValueError(f"column {AVAILABLE_MASK!r} must hold only 0 and 1")
        y = as_float(cols[target_col], target_col)[order]
        _check_finite(y, mask > 0, target_col, uids, codes, ds,
                      "remove or fill these rows, or set available_mask=0 on them")
        y = np.where(mask > 0, y, 0.0)

        temporal = np.empty((n, len(exog_cols) + 2), dtype=np.float32)
        temporal[:, 0] = y
        for j, c in enumerate(exog_cols):
            x = as_float(cols[c], c)[order]
            _check_finite(x, np.ones(n, bool), c, uids, codes, ds,
                          "fill the exogenous values (exogenous inputs may not be missing)")
            temporal[:, j + 1] = x
        temporal[:, -1] = mask

        if freq is not None:
            check_follows_freq(uids, ds, indptr, freq)

        static, static_cols = (None, None) if static_df is None else _static_table(static_df, uids, id_col)
        return cls(temporal, [target_col, *exog_cols, AVAILABLE_MASK], indptr, uids, ds, static,
                   static_cols, freq, id_col, time_col, target_col)

    # ------------------------------------------------------------------ shape
    @property
    def n_series(self) -> int:
        return len(self.indptr) - 1

    @property
    def sizes(self) -> np.ndarray:
        return np.diff(self.indptr)

    @property
    def max_size(self) -> int:
        return int(self.sizes.max())

    @property
    def min_size(self) -> int:
        return int(self.sizes.min())

    @property
    def last_ds(self) -> np.ndarray:
        return self.ds[self.indptr[1:] - 1]

    @property
    def exog_cols(self) -> list[str]:
        return self.temporal_cols[1:-1]

    def col_idx(self, names: Sequence[str]) -> np.ndarray:
        """Indices of `names` in temporal_cols."""
        return np.array([self.temporal_cols.index(c) for c in names], dtype=np.int64)

    def __repr__(self):
        return (f"TimeSeriesDataset(n_series={self.n_series:,}, n_rows={len(self.temporal):,}, "
                f"temporal_cols={self.temporal_cols}, static_cols={self.static_cols})")

    # ------------------------------------------------------------------ checks a model asks for
    def check_exog(self, futr_exog_list=(), hist_exog_list=(), stat_exog_list=(), model: str = "model"):
        """Raise ValueError if an exogenous list names a column the data does not have."""
        for kind, names, have in (("futr_exog_list", futr_exog_list, self.exog_cols),
                                  ("hist_exog_list", hist_exog_list, self.exog_cols),
                                  ("stat_exog_list", stat_exog_list, self.static_cols)):
            missing = [c for c in (names or ()) if c not in have]
            if missing:
                where = "static_df" if kind == "stat_exog_list" else "df"
                raise ValueError(f"{model}: {kind} names {missing}, not found in {where} "
                                 f"(its exogenous columns: {list(have)}); add the column or remove the name")

    def check_min_length(self, min_length: int, model: str = "model", why: str = ""):
        """Raise ValueError naming the series shorter than `min_length` rows."""
        short = np.flatnonzero(self.sizes < min_length)
        if short.size:
            i = short[0]
            more = f" ({short.size} series are too short)" if short.size > 1 else ""
            raise ValueError(f"series {_q(self.uids[i])} has {self.sizes[i]} rows but {model} needs at least "
                             f"{min_length}{' ' + why if why else ''}{more}; lower input_size (or h, "
                             "val_size), drop the short series, or set start_padding_enabled=True")

    # ------------------------------------------------------------------ arrays for windows
    def padded(self) -> np.ndarray:
        """All series as one float32 array [n_series, C, max_size], each right-aligned and
        left-padded with zeros (the mask column is 0 there), as NeuralForecast's loader does."""
        if self._padded is None:
            sizes = self.sizes
            out = np.zeros((self.n_series, len(self.temporal_cols), self.max_size), dtype=np.float32)
            row = np.arange(len(self.temporal)) - np.repeat(self.indptr[:-1], sizes)
            col = row + np.repeat(self.max_size - sizes, sizes)
            series = np.repeat(np.arange(self.n_series), sizes)
            out[series, :, col] = self.temporal
            self._padded = out
        return self._padded

    def batch(self, idx=None) -> dict:
        """NeuralForecast's collated batch for series `idx` (default: all): temporal [B, C, T],
        temporal_cols, static [B, S] or None, static_cols, y_idx."""
        idx = np.arange(self.n_series) if idx is None else np.asarray(idx)
        return dict(temporal=self.padded()[idx], temporal_cols=self.temporal_cols,
                    static=None if self.static is None else self.static[idx],
                    static_cols=self.static_cols, y_idx=self.y_idx)

    # ------------------------------------------------------------------ derived datasets
    def future_dates(self, h: int) -> tuple[np.ndarray, np.ndarray]:
        """(unique_id [n_series * h], ds [n_series * h]): the h dates after each series' end."""
        if self.freq is None:
            raise ValueError("the dataset was built without freq; pass freq to build future dates")
        dates = make_future_dates(self.last_ds, self.freq, h)          # [n_series, h]
        return np.repeat(self.uids, h), dates.reshape(-1)

    def append_future(self, h: int, futr_df=None, futr_exog_list: Sequence[str] = ()) -> "TimeSeriesDataset":
        """A copy with `h` rows appended to every series (y = 0, available_mask = 0), their
        future exogenous values taken from `futr_df` (needed when futr_exog_list is not empty)
        and the other exogenous columns 0. Rows of futr_df after the horizon are ignored."""
        futr_exog_list = list(futr_exog_list or ())
        uid_f, ds_f = self.future_dates(h)
        block = np.zeros((self.n_series * h, len(self.temporal_cols)), dtype=np.float32)
        if futr_exog_list:
            block[:, self.col_idx(futr_exog_list)] = _future_values(
                futr_df, futr_exog_list, uid_f, ds_f, self, h)
        sizes = self.sizes
        new_indptr = self.indptr + np.arange(self.n_series + 1) * h
        temporal = np.empty((len(self.temporal) + len(block), len(self.temporal_cols)), np.float32)
        ds = np.empty(len(temporal), dtype=self.ds.dtype)
        old_rows = np.arange(len(self.temporal)) + np.repeat(np.arange(self.n_series) * h, sizes)
        new_rows = np.setdiff1d(np.arange(len(temporal)), old_rows, assume_unique=True)
        temporal[old_rows], temporal[new_rows] = self.temporal, block
        ds[old_rows], ds[new_rows] = self.ds, ds_f
        return TimeSeriesDataset(temporal, self.temporal_cols, new_indptr, self.uids, ds, self.static,
                                 self.static_cols, self.freq, self.id_col, self.time_col, self.target_col)

    def trim(self, left: int = 0, right: int = 0) -> "TimeSeriesDataset":
        """A copy without the first `left` and last `right` rows of every series."""
        if self.min_size <= left + right:
            raise ValueError(f"cannot trim {left} + {right} rows: the shortest series has {self.min_size}")
        sizes = self.sizes
        pos = np.arange(len(self.temporal)) - np.repeat(self.indptr[:-1], sizes)
        keep = (pos >= left) & (pos < np.repeat(sizes, sizes) - right)
        indptr = np.concatenate([[0], np.cumsum(sizes - left - right)])
        return TimeSeriesDataset(self.temporal[keep], self.temporal_cols, indptr, self.uids, self.ds[keep],
                                 self.static, self.static_cols, self.freq, self.id_col, self.time_col,
                                 self.target_col)

    def subset(self, idx) -> "TimeSeriesDataset":
        """The series idx (indices, in that order) as a dataset of their rows."""
        idx = np.asarray(idx, dtype=np.int64)
        sizes = self.sizes[idx]
        indptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
        rows = np.repeat(self.indptr[idx] - indptr[:-1], sizes) + np.arange(indptr[-1])
        return TimeSeriesDataset(self.temporal[rows], self.temporal_cols, indptr, self.uids[idx], self.ds[rows],
                                 None if self.static is None else self.static[idx], self.static_cols, self.freq,
                                 self.id_col, self.time_col, self.target_col)

    def with_temporal(self, temporal: np.ndarray, static: np.ndarray | None = None) -> "TimeSeriesDataset":
        """A copy with new values (same rows and columns), e.g. after a local scaler."""
        return TimeSeriesDataset(temporal, self.temporal_cols, self.indptr, self.uids, self.ds,
                                 self.static if static is None else static, self.static_cols, self.freq,
                                 self.id_col, self.time_col, self.target_col)


def _check_ids(uid, id_col):
    """Series ids may not be missing (None or NaN): they would form a series of their own."""
    if uid.dtype.kind == "f":
        missing = np.isnan(uid)
    elif uid.dtype.kind == "O":
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in uid.tolist()], bool)
    else:
        return
    if missing.any():
        n = int(missing.sum())
        raise ValueError(f"column {id_col!r} has {n} missing id{'s' if n > 1 else ''} (None/NaN), first at row "
                         f"{int(np.argmax(missing))}; give every row its series id or drop those rows")


_F32_MAX = float(np.finfo(np.float32).max)


def _check_finite(x, where, column, uids, codes, ds, what_to_do):
    """NaN/inf where `where` is True, and values that float32 (the models' dtype) cannot hold."""
    huge = np.flatnonzero(where & np.isfinite(x) & (np.abs(x) > _F32_MAX))
    if huge.size:
        i = huge[0]
        raise ValueError(f"column {column!r} has {huge.size} value{'s' if huge.size > 1 else ''} beyond float32's "
                         f"range (|x| > {_F32_MAX:.4g}); first: {float(x[i]):.6g} in series {_q(uids[codes[i]])} at "
                         f"{_fmt(ds[i])}. Rescale the column (e.g. divide it by a constant) before fitting")
    bad = np.flatnonzero(where & ~np.isfinite(x))
    if bad.size:
        i = bad[0]
        kind = "NaN" if np.isnan(x[i]) else "inf"
        n_series = len(np.unique(codes[bad]))
        raise ValueError(f"column {column!r} has {bad.size} non-finite value{'s' if bad.size > 1 else ''} "
                         f"in {n_series} series; first: {kind} in series {_q(uids[codes[i]])} at "
                         f"{_fmt(ds[i])}. {what_to_do[0].upper()}{what_to_do[1:]}")


def _static_table(static_df, uids, id_col):
    cols = columns_of(static_df, "static_df")
    require_columns(cols, [id_col], "static_df", " (one row per series with its static features)")
    sid = cols[id_col]
    names = [c for c in cols if c != id_col]
    u, counts = np.unique(sid, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"static_df has {np.sum(counts > 1)} series with more than one row, e.g. "
                         f"{_q(u[counts > 1][0])}; keep one row per series")
    pos = {k: i for i, k in enumerate(sid.tolist())}
    missing = [k for k in uids.tolist() if k not in pos]
    if missing:
        raise ValueError(f"static_df has no row for {len(missing)} series of df, e.g. {missing[:5]}; "
                         "add their static features")
    rows = np.array([pos[k] for k in uids.tolist()])
    static = np.empty((len(uids), len(names)), dtype=np.float32)
    for j, c in enumerate(names):
        x = as_float(cols[c], c)[rows]
        huge = np.flatnonzero(np.isfinite(x) & (np.abs(x) > _F32_MAX))
        if huge.size:
            raise ValueError(f"static_df column {c!r} is {float(x[huge[0]]):.6g} for series {_q(uids[huge[0]])}, beyond "
                             f"float32's range (|x| > {_F32_MAX:.4g}); rescale the static feature")
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise ValueError(f"static_df column {c!r} is NaN or inf for series {_q(uids[bad[0]])} "
                             f"({bad.size} series); fill the static features")
        static[:, j] = x
    return static, names


def _future_values(futr_df, names, uid_f, ds_f, dataset, h):
    """Values of `names` for the rows (uid_f, ds_f) [n_series * h], from futr_df."""
    if futr_df is None:
        raise ValueError(f"the model needs future values of {names} (futr_exog_list): pass futr_df with "
                         f"columns {dataset.id_col}, {dataset.time_col}, {', '.join(names)} for the "
                         f"next {h} dates of every series")
    cols = columns_of(futr_df, "futr_df")
    require_columns(cols, [dataset.id_col, dataset.time_col, *names], "futr_df",
                    f"; it needs the future exogenous columns {names}")
    f_ds = as_ds(cols[dataset.time_col], dataset.time_col)
    if f_ds.dtype != ds_f.dtype:
        raise TypeError(f"futr_df {dataset.time_col!r} has dtype {f_ds.dtype} but df had {ds_f.dtype}")
    key = {(u, d): i for i, (u, d) in enumerate(zip(cols[dataset.id_col].tolist(), f_ds.tolist()))}
    rows = np.array([key.get((u, d), -1) for u, d in zip(uid_f.tolist(), ds_f.tolist())])
    missing = np.flatnonzero(rows < 0)
    if missing.size:
        miss_uids = list(dict.fromkeys(uid_f[missing].tolist()))
        first = miss_uids[0]
        first_dates = [_fmt(d) for d in ds_f[missing][uid_f[missing] == first][:3]]
        raise ValueError(
            f"futr_df does not cover the horizon h={h}: {missing.size} (unique_id, ds) rows are missing "
            f"for {len(miss_uids)} series {miss_uids[:5]}; e.g. series {_q(first)} lacks {', '.join(first_dates)}. "
            f"futr_df needs the {h} dates after each series' last date (make_future_dates(last_ds, freq, h)).")
    out = np.empty((len(rows), len(names)), dtype=np.float32)
    for j, c in enumerate(names):
        x = as_float(cols[c], c)[rows]
        bad = np.flatnonzero(~np.isfinite(x))
        if bad.size:
            raise ValueError(f"futr_df column {c!r} is NaN or inf for series {_q(uid_f[bad[0]])} at "
                             f"{_fmt(ds_f[bad[0]])} ({bad.size} rows); fill the future exogenous values")
        out[:, j] = x
    return out

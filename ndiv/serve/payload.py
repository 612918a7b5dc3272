"""The JSON of `POST /predict`, in and out: request bodies -> column tables for
Forecaster.predict, forecast tables -> JSON rows. No HTTP here, no model.

A body is an object with the history as rows or as columns, optional future exogenous values
the same way, and optional interval levels:

    {"rows": [{"unique_id": "a", "ds": "1960-01-01", "y": 417.0, "x": 1.0}, ...],
     "futr_rows": [{"unique_id": "a", "ds": "1961-01-01", "x": 0.0}, ...],      # optional
     "level": [80, 90]}                                                          # optional
    {"unique_id": ["a", "a"], "ds": [1, 2], "y": [1.0, 2.0], "futr": {...}}     # columns

Values are checked by the library (Forecaster.predict): this module only shapes them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field

import numpy as np

RESERVED = ("level", "futr", "futr_rows")
NUMERIC_EXEMPT = ("unique_id", "ds")


class PayloadError(ValueError):
    """A body that is valid JSON but not a forecast request (answered with 422)."""


class PayloadTooLarge(ValueError):
    """A body with more rows than the service accepts (answered with 413)."""


@dataclass
class PredictRequest:
    """One request: df and futr as dicts of equal-length lists (columns), level as given.
    `uids` are the request's series in the order predict sorts them (None when the ids mix
    types, which predict itself reports); `codes[i]` is row i's index into `uids`."""
    df: dict
    futr: dict | None
    level: object
    uids: list | None = None
    codes: np.ndarray | None = None
    futr_codes: np.ndarray | None = None
    key: tuple = field(default=())

    @property
    def n_rows(self) -> int:
        return len(next(iter(self.df.values()), []))


def parse(body: object, max_rows: int) -> PredictRequest:
    """A decoded JSON body -> PredictRequest. Raises PayloadError (422) for a body of the wrong
    shape and PayloadTooLarge (413) above max_rows rows (history and future together)."""
    if not isinstance(body, dict):
        raise PayloadError(f"the body must be a JSON object with 'rows' (a list of row objects) or columns "
                           f"'unique_id', 'ds', 'y'; got a JSON {type(body).__name__}")
    if "rows" in body:
        extra = sorted(set(body) - {"rows", *RESERVED})
        if extra:
            raise PayloadError(f"unknown keys {extra} next to 'rows'; a body holds 'rows', and optionally "
                               "'futr_rows' (or 'futr') and 'level'")
        df = _table(body["rows"], "rows")
    else:
        df = _table({k: v for k, v in body.items() if k not in RESERVED}, "body")
    futr = None
    if "futr_rows" in body and "futr" in body:
        raise PayloadError("pass the future values as 'futr_rows' or 'futr', not both")
    if "futr_rows" in body:
        futr = _table(body["futr_rows"], "futr_rows")
    elif "futr" in body:
        futr = _table(body["futr"], "futr")
    n = len(next(iter(df.values()), [])) + (len(next(iter(futr.values()), [])) if futr else 0)
    if n > max_rows:
        raise PayloadTooLarge(f"the request has {n} rows; this service accepts at most {max_rows} "
                              "(history and future rows together): split it into several requests")
    req = PredictRequest(df=df, futr=futr, level=body.get("level"))
    req.uids, req.codes = _series(df.get("unique_id"))
    if futr is not None and req.uids is not None:
        req.futr_codes = _codes_in(futr.get("unique_id"), req.uids)
    level = req.level
    level_key = tuple(level) if isinstance(level, list) and all(_is_num(v) for v in level) else repr(level)
    req.key = (tuple(sorted(df)), tuple(sorted(futr)) if futr is not None else None, level_key)
    return req


def _table(obj: object, name: str) -> dict:
    """Rows (a list of objects) or columns (an object of lists) -> dict of equal-length lists,
    with JSON null in a numeric column read as NaN (so the library names the missing value)."""
    if isinstance(obj, list):
        if not obj:
            raise PayloadError(f"{name!r} is empty; send at least one row per series")
        bad = next((i for i, r in enumerate(obj) if not isinstance(r, dict)), None)
        if bad is not None:
            raise PayloadError(f"{name}[{bad}] is a JSON {type(obj[bad]).__name__}; every row must be an object "
                               'like {"unique_id": "a", "ds": "1960-01-01", "y": 1.0}')
        keys = list(obj[0])
        for i, r in enumerate(obj):
            if len(r) != len(keys) or any(k not in r for k in keys):
                raise PayloadError(f"{name}[{i}] has the keys {sorted(r)} but {name}[0] has {sorted(keys)}; "
                                   "every row needs the same columns")
        cols = {k: [r[k] for r in obj] for k in keys}
    elif isinstance(obj, dict):
        cols = dict(obj)
        bad = [k for k, v in cols.items() if not isinstance(v, list)]
        if bad:
            raise PayloadError(f"{name}: column {bad[0]!r} is a JSON {type(cols[bad[0]]).__name__}; columns "
                               "are lists of values (or send 'rows', a list of row objects)")
        if not cols:
            raise PayloadError(f"{name} has no columns; send 'rows' or the columns 'unique_id', 'ds', 'y'")
        lengths = {k: len(v) for k, v in cols.items()}
        if len(set(lengths.values())) > 1:
            raise PayloadError(f"{name}: the columns have different lengths {lengths}; each needs one value per row")
    else:
        raise PayloadError(f"{name!r} must be a list of row objects or an object of columns, "
                           f"got a JSON {type(obj).__name__}")
    for k, v in cols.items():
        if k not in NUMERIC_EXEMPT and any(x is None for x in v):
            cols[k] = [float("nan") if x is None else x for x in v]
    return cols


def _is_num(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _series(ids) -> tuple[list | None, np.ndarray | None]:
    """The series ids sorted as predict sorts them (np.unique) and each row's index into them;
    (None, None) unless every id is a string or every id an integer (predict reports the rest)."""
    if not ids:
        return None, None
    if all(isinstance(v, str) for v in ids):
        arr = np.asarray(ids, dtype=str)
    elif all(isinstance(v, int) and not isinstance(v, bool) for v in ids):
        arr = np.asarray(ids, dtype=np.int64)
    else:
        return None, None
    uids, codes = np.unique(arr, return_inverse=True)
    return uids.tolist(), codes.reshape(-1)


def _codes_in(ids, uids: list) -> np.ndarray | None:
    """Each future row's index into uids, -1 for an id that has no history."""
    if not ids:
        return None
    where = {u: i for i, u in enumerate(uids)}
    return np.array([where.get(v, -1) if type(v) is type(uids[0]) else -1 for v in ids], dtype=np.int64)


def take(cols: dict, rows: np.ndarray) -> dict:
    """The rows (indices) of a column table."""
    return {k: [v[i] for i in rows] for k, v in cols.items()}


def series_keys(req: PredictRequest, model_tag: str) -> list[str]:
    """One content hash per series of req: its history rows, its future rows, the request's
    columns and level, and the model (model_tag); equal keys give equal forecasts."""
    head = [model_tag, list(req.key[0]), list(req.key[1] or []), repr(req.key[2])]
    keys = []
    for s, uid in enumerate(req.uids):
        rows = np.flatnonzero(req.codes == s)
        part = {k: [v[i] for i in rows] for k, v in sorted(req.df.items())}
        futr = None
        if req.futr is not None:
            frows = np.flatnonzero(req.futr_codes == s)
            futr = {k: [v[i] for i in frows] for k, v in sorted(req.futr.items())}
        blob = json.dumps([head, uid, part, futr], separators=(",", ":"), default=str, allow_nan=True)
        keys.append(hashlib.sha256(blob.encode()).hexdigest())
    return keys


def to_columns(table: dict) -> dict[str, list]:
    """A forecast table (dict of arrays from Forecaster.predict) -> JSON-ready lists: ids as
    str/int, ds as ISO dates ('1961-01-01', or with the time when it is not midnight) or int,
    forecasts as floats (NaN/inf as null)."""
    out = {}
    for k, v in table.items():
        a = np.asarray(v)
        if a.dtype.kind == "M":
            whole_days = bool(np.all(a == a.astype("datetime64[D]")))
            out[k] = np.datetime_as_string(a, unit="D" if whole_days else "s").tolist()
        elif a.dtype.kind == "f":
            vals = a.tolist()
            if not np.all(np.isfinite(a)):
                vals = [x if np.isfinite(x) else None for x in vals]
            out[k] = vals
        else:
            out[k] = a.tolist()
    return out


def to_rows(cols: dict[str, list]) -> list[dict]:
    keys = list(cols)
    return [dict(zip(keys, r)) for r in zip(*cols.values())]

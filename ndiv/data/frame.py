"""Long-format tables without a hard pandas dependency.

A table is a pandas or polars DataFrame (or anything with `.columns` whose columns have
`.to_numpy()`) or a plain dict of equal-length 1-D arrays. `columns_of` turns any of them into a
dict of NumPy arrays; `make_frame` turns a dict of arrays back into the kind of table the user
gave: pandas in, pandas out; polars in, polars out; a dict otherwise. Neither library is imported
unless the user's table is one of its frames.

    >>> cols = columns_of({"unique_id": ["a", "a"], "ds": [1, 2], "y": [1.0, 2.0]})
    >>> sorted(cols)
    ['ds', 'unique_id', 'y']
"""
from __future__ import annotations

from collections.abc import Mapping

import numpy as np

_NS = np.dtype("datetime64[ns]")


def is_pandas(df) -> bool:
    return type(df).__module__.startswith("pandas") and hasattr(df, "columns")


def is_polars(df) -> bool:
    return type(df).__module__.startswith("polars") and hasattr(df, "columns")


def columns_of(df, name: str = "df") -> dict[str, np.ndarray]:
    """dict of column name -> 1-D NumPy array, from a DataFrame or a dict of 1-D arrays."""
    if isinstance(df, Mapping):
        cols = {str(k): _as_column(v) for k, v in df.items()}
        lengths = {k: v.shape for k, v in cols.items()}
        bad = [k for k, v in cols.items() if v.ndim != 1]
        if bad:
            raise ValueError(f"{name}: column {bad[0]!r} has shape {lengths[bad[0]]}; every column "
                             "of a dict table must be a 1-D array")
        if len({v.shape[0] for v in cols.values()}) > 1:
            raise ValueError(f"{name}: columns have different lengths {lengths}; a dict table needs "
                             "equal-length 1-D arrays (one entry per row)")
        return cols
    if hasattr(df, "columns") and hasattr(df, "__getitem__"):
        names = [str(c) for c in df.columns]
        dup = sorted({c for c in names if names.count(c) > 1})
        if dup:
            raise ValueError(f"{name} has duplicated column names {dup}; rename or drop the copies "
                             "so that every column name appears once")
        out = {}
        for c in df.columns:
            col = df[c]
            if is_pandas(df) and getattr(col.dtype, "kind", None) == "M" and getattr(col.dtype, "tz", None):
                raise TypeError(f"{name}: column {c!r} has time-zone-aware dates; convert them "
                                f"first, e.g. df[{c!r}] = df[{c!r}].dt.tz_localize(None)")
            if is_polars(df) and getattr(col.dtype, "time_zone", None):
                raise TypeError(f"{name}: column {c!r} has time-zone-aware dates; convert them "
                                f"first, e.g. df.with_columns(pl.col({c!r}).dt.replace_time_zone(None))")
            out[str(c)] = col.to_numpy() if hasattr(col, "to_numpy") else np.asarray(col)
        return out
    raise TypeError(f"{name} must be a pandas DataFrame or a dict of 1-D arrays "
                    f"(unique_id, ds, y, ...) or a polars DataFrame, got {type(df).__name__}")


def _as_column(values) -> np.ndarray:
    """A dict table's column as an array. A list that mixes strings with other values stays an
    object array (np.asarray would turn [1, 'b'] into the strings ['1', 'b'], merging 1 and '1')."""
    if isinstance(values, (list, tuple)) and values:
        arr = np.asarray(values)
        if arr.dtype.kind in "US" and not all(isinstance(v, (str, bytes, np.str_, np.bytes_)) for v in values):
            return np.asarray(values, dtype=object)
        return arr
    return np.asarray(values)


def require_columns(cols: dict, required, name: str = "df", hint: str = ""):
    missing = [c for c in required if c not in cols]
    if missing:
        raise ValueError(f"{name} is missing column{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(map(repr, missing))} (it has {list(cols)}){hint}")


def as_ds(values: np.ndarray, name: str = "ds") -> np.ndarray:
    """Timestamps -> datetime64[ns] or int64. Strings are parsed as ISO dates."""
    kind = values.dtype.kind
    if kind == "M":
        return _no_nat(values.astype(_NS), name)
    if kind in "iu":
        return values.astype(np.int64)
    if kind == "f" and values.size and np.all(np.isfinite(values)) and np.all(values == np.round(values)):
        return values.astype(np.int64)
    if kind in "OUS":
        if kind == "O" and values.size and _check_not_mixed(values, name):
            return as_ds(values.astype(np.float64), name)       # all numbers: integer steps
        try:
            return _no_nat(np.asarray(values, dtype=_NS), name)
        except (ValueError, TypeError):
            pass
        try:
            import pandas as pd
            parsed = pd.to_datetime(values).to_numpy().astype(_NS)
        except Exception:  # noqa: BLE001 - anything pandas cannot parse gets our message
            pass
        else:
            return _no_nat(parsed, name)
    example = values[0] if values.size else None
    raise TypeError(f"column {name!r} must hold dates (datetime64 or ISO strings like '1949-01-01') "
                    f"or integers, got dtype {values.dtype} (first value {example!r})")


def _no_nat(ds: np.ndarray, name: str) -> np.ndarray:
    bad = np.flatnonzero(np.isnat(ds))
    if bad.size:
        raise ValueError(f"column {name!r} has {bad.size} missing date{'s' if bad.size > 1 else ''} (NaT/None), "
                         f"first at row {bad[0]}; drop those rows or fill their dates")
    return ds


def _check_not_mixed(values: np.ndarray, name: str) -> bool:
    """Whether an object column holds only numbers; raises TypeError if it mixes numbers with
    dates or strings (np.datetime64(5) would be 5 ns after 1970)."""
    is_num = [isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
              for v in values]
    if any(is_num) and not all(is_num):
        number = values[is_num.index(True)]
        other = values[is_num.index(False)]
        raise TypeError(f"column {name!r} mixes numbers (e.g. {number!r}) with dates or strings "
                        f"(e.g. {other!r}); use one kind: all dates or all integers")
    return all(is_num)


def as_float(values: np.ndarray, column: str) -> np.ndarray:
    """A numeric column -> float64, with a TypeError naming the column otherwise."""
    if values.dtype.kind in "biuf":
        return values.astype(np.float64)
    try:
        return values.astype(np.float64)
    except (ValueError, TypeError):
        first = next((v for v in values if not _is_number(v)), values[0] if values.size else None)
        raise TypeError(f"column {column!r} must be numeric, got dtype {values.dtype} (e.g. {first!r}); "
                        "encode it as numbers, list it in the model's cat_exog_list (with categorical_cardinalities) "
                        "if it is categorical, or leave it out of the exogenous lists") from None


def _is_number(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


def make_frame(cols: dict, like=None):
    """A pandas DataFrame when `like` is one (or like='pandas'), a polars DataFrame when `like`
    is one (or like='polars'), else the dict itself."""
    kind = like if isinstance(like, str) else "pandas" if is_pandas(like) else "polars" if is_polars(like) else None
    if kind == "pandas":
        import pandas as pd
        return pd.DataFrame(cols)
    if kind == "polars":
        import polars as pl
        return pl.DataFrame({k: _for_polars(v) for k, v in cols.items()})
    return cols


def frame_kind(df) -> str | None:
    """'pandas', 'polars' or None (a dict): what make_frame should give back for `df`."""
    return "pandas" if is_pandas(df) else "polars" if is_polars(df) else None


def _for_polars(values) -> np.ndarray:
    """polars takes a NumPy object column of str only as a list; other arrays as they are."""
    values = np.asarray(values)
    return values.tolist() if values.dtype.kind == "O" else values

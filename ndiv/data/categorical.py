"""Categorical exogenous columns: NeuralForecast 3.3's panel-wide vocabulary.

A model lists categorical columns in `cat_exog_list` (each also in its hist_, futr_ or
stat_exog_list) with `categorical_cardinalities` {column: number of categories}. At fit the
Forecaster builds one vocabulary per column from the training data: the sorted distinct values
get the codes 1..K and 0 is kept for a value not seen in training (the model embeds code 0 as
the mean of its learned category embeddings). The same vocabulary encodes df, static_df and
futr_df at fit, predict and cross_validation, and travels with Forecaster.save/load.

    >>> import numpy as np
    >>> vocab = build_vocabulary({"sku": np.array(["b", "a", "b"])}, None, {"sku": 3})
    >>> vocab
    {'sku': ['a', 'b']}
    >>> encode_columns({"sku": np.array(["b", "c"])}, vocab, "df")["sku"]
    array([2., 0.])

Categories may be strings, integers (or integral floats), booleans or pandas categoricals;
missing values (None/NaN) are an error: fill them or give them a category of their own.
"""
from __future__ import annotations

import numpy as np

from ndiv.data.frame import columns_of


def categorical_columns(models) -> dict:
    """{column: cardinality} over the models' cat_exog_list, checked across models: models
    that share a categorical column must give it the same cardinality, and no model may use
    it as a numeric exogenous column (the Forecaster replaces its values with codes)."""
    cards: dict = {}
    owner: dict = {}
    for m in models:
        for col in getattr(m, "cat_exog_list", []):
            card = m.categorical_cardinalities[col]
            if col in cards and cards[col] != card:
                raise ValueError(f"models {owner[col]} and {m} declare different categorical_cardinalities for "
                                 f"{col!r} ({cards[col]} and {card}); give every model the same cardinality")
            cards[col] = card
            owner.setdefault(col, str(m))
    for m in models:
        numeric = [c for c in m.hist_exog_list + m.futr_exog_list + m.stat_exog_list
                   if c in cards and c not in getattr(m, "cat_exog_list", [])]
        if numeric:
            raise ValueError(f"{m} lists {numeric} as numeric exogenous columns, but {owner[numeric[0]]} lists "
                             f"{numeric[0]!r} in cat_exog_list: a column is categorical for every model or for "
                             f"none; add it to {m}'s cat_exog_list (with categorical_cardinalities) or drop it "
                             f"from {m}'s exogenous lists")
    return cards


def _plain(v):
    """A category value as a plain JSON-able Python value (numpy scalars -> int/float/bool/str)."""
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer():
        v = int(v)   # 1.0 and 1 are one category (a pandas int column with gaps reads as float)
    return v


def _missing(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array([v is None or (isinstance(v, float) and v != v) or type(v).__name__ in ("NAType", "NaTType")
                         for v in values.tolist()], bool)
    return np.zeros(len(values), bool)


def _check_no_missing(values: np.ndarray, col: str, where: str) -> None:
    miss = _missing(values)
    if miss.any():
        raise ValueError(f"{where} categorical column {col!r} has {int(miss.sum())} missing value"
                         f"{'s' if miss.sum() > 1 else ''} (None/NaN), first at row {int(np.argmax(miss))}; "
                         f"fill them, e.g. df[{col!r}] = df[{col!r}].fillna('unknown') (a category of its own)")


def build_vocabulary(cols: dict, static_cols: dict | None, cardinalities: dict) -> dict:
    """{column: sorted list of its distinct training values} (code = position + 1).

    cols, static_cols: the training df's and static_df's columns (dicts of 1-D arrays, see
    frame.columns_of); a column is read from static_df when it is there. Raises ValueError
    for a missing column, missing values, more distinct values than the declared cardinality,
    and TypeError for values that cannot be sorted together or saved (e.g. mixed str and int)."""
    vocab = {}
    for col, card in cardinalities.items():
        src, where = (static_cols, "static_df") if static_cols is not None and col in static_cols else (cols, "df")
        if col not in src:
            raise ValueError(f"the categorical column {col!r} (cat_exog_list) is not in df"
                             f"{' or static_df' if static_cols is not None else ''}; add it")
        values = src[col]
        _check_no_missing(values, col, where)
        uniques = {_plain(v) for v in values.tolist()}
        bad = [v for v in uniques if not isinstance(v, (str, int, float, bool))]
        if bad:
            raise TypeError(f"{where} categorical column {col!r} holds {type(bad[0]).__name__} values (e.g. {bad[0]!r}); "
                            "categories must be strings, integers, booleans or a pandas categorical of those")
        try:
            uniques = sorted(uniques)
        except TypeError:
            kinds = sorted({type(v).__name__ for v in uniques})
            raise TypeError(f"{where} categorical column {col!r} mixes {' and '.join(kinds)} values, which cannot be "
                            f"sorted into one vocabulary; convert the column to one type, e.g. "
                            f"df[{col!r}] = df[{col!r}].astype(str)") from None
        if len(uniques) > card:
            raise ValueError(f"categorical column {col!r} has {len(uniques)} distinct values in the training data "
                             f"but categorical_cardinalities declares {card} (e.g. {uniques[:5]}); "
                             f"set categorical_cardinalities={{{col!r}: {len(uniques)}}} or more")
        vocab[col] = uniques
    return vocab


def encode_columns(cols: dict, vocab: dict, where: str = "df") -> dict:
    """A copy of `cols` (dict of 1-D arrays) with each vocabulary column replaced by its codes
    (float64: 1..K for the training values, 0 for a value not seen in training). Missing
    values raise ValueError naming the column."""
    out = dict(cols)
    for col, values in vocab.items():
        if col not in cols:
            continue
        _check_no_missing(cols[col], col, where)
        code = {v: i + 1 for i, v in enumerate(values)}
        out[col] = np.array([code.get(_plain(v), 0) for v in cols[col].tolist()], dtype=np.float64)
    return out


def encode_frame(df, vocab: dict, where: str = "df"):
    """df (pandas DataFrame or dict of arrays) -> dict of arrays with the vocabulary columns
    encoded (None stays None; an empty vocabulary returns df unchanged)."""
    if df is None or not vocab:
        return df
    return encode_columns(columns_of(df, where), vocab, where)


def check_vocabulary(vocab, cardinalities: dict, fail) -> dict:
    """A vocabulary read back from a saved forecaster: {column: sorted distinct plain values},
    one per categorical column, within its cardinality. fail(key, problem) raises."""
    if not isinstance(vocab, dict):
        fail("categories", f"must be an object, got {type(vocab).__name__}")
    if sorted(vocab) != sorted(cardinalities):
        fail("categories", f"names columns {sorted(vocab)} but the models' cat_exog_list are {sorted(cardinalities)}")
    for col, values in vocab.items():
        ok = (isinstance(values, list) and all(isinstance(v, (str, int, float, bool)) for v in values)
              and len(values) <= cardinalities[col] and len({_plain(v) for v in values}) == len(values))
        if ok:
            try:
                ok = sorted(values) == values
            except TypeError:
                ok = False
        if not ok:
            fail(f"categories[{col!r}]", f"must be a sorted list of at most {cardinalities[col]} distinct "
                                         "strings or numbers")
    return vocab

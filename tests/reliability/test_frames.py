"""Malformed frames through Forecaster.fit: each gets an error naming the column (and the series
or row), or, where the input has one meaning, the same result as the clean frame."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.models import MLP

pd = pytest.importorskip("pandas")


def frame(n=30):
    t = pd.date_range("2000-01-01", periods=n, freq="D")
    y = np.concatenate([10 + np.sin(np.arange(n) / 3), 5 + np.cos(np.arange(n) / 4)])
    return pd.DataFrame({"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": y})


def fit(df, freq="D", **kw):
    model = MLP(h=3, input_size=6, hidden_size=8, max_steps=2, enable_progress_bar=False)
    return ndiv.Forecaster([model], freq=freq).fit(df, **kw)


def edit(fn):
    df = frame()
    out = fn(df)
    return df if out is None else out


def int_dates(df):
    d = {"unique_id": df["unique_id"].tolist(), "ds": np.tile(np.arange(30), 2), "y": df["y"].to_numpy()}
    return d


BAD = {
    "missing y": (lambda df: df.drop(columns="y"), ValueError, r"df is missing column 'y'"),
    "duplicated column": (lambda df: df.set_axis(["unique_id", "ds", "ds"], axis=1), ValueError,
                          r"df has duplicated column names \['ds'\]"),
    "text y": (lambda df: df.assign(y=df["y"].astype(str).where(df.index != 4, "n/a")), TypeError,
               r"column 'y' must be numeric, got dtype object \(e.g. 'n/a'\)"),
    "fractional int dates": (lambda df: df.assign(ds=np.tile(np.arange(30) + 0.5, 2)), TypeError,
                             r"column 'ds' must hold dates .* got dtype float64"),
    "NaN y": (lambda df: df.assign(y=df["y"].where(df.index != 33)), ValueError,
              r"column 'y' has 1 non-finite value in 1 series; first: NaN in series 'b' at 2000-01-04"),
    "inf y": (lambda df: df.assign(y=df["y"].where(df.index != 2, np.inf)), ValueError, r"first: inf in series 'a'"),
    "y beyond float32": (lambda df: df.assign(y=df["y"].where(df.index != 35, -1e39)), ValueError,
                         r"column 'y' has 1 value beyond float32's range .* -1e\+39 in series 'b' at 2000-01-06"),
    "tz-aware dates": (lambda df: df.assign(ds=df["ds"].dt.tz_localize("UTC")), TypeError,
                       r"column 'ds' has time-zone-aware dates"),
    "missing date": (lambda df: df.assign(ds=df["ds"].where(df.index != 7)), ValueError,
                     r"column 'ds' has 1 missing date \(NaT/None\), first at row 7"),
    "dates and numbers": (lambda df: df.assign(ds=df["ds"].astype(object).where(df.index != 3, 5)), TypeError,
                          r"column 'ds' mixes numbers \(e.g. 5\) with dates"),
    "gap": (lambda df: df.drop(index=10), ValueError, r"ds of series 'a' does not follow freq='D': after 2000-01-10 comes 2000-01-12"),
    "off-grid date": (lambda df: df.assign(ds=df["ds"].where(df.index != 40, pd.Timestamp("2000-01-11 06:00"))),
                      ValueError, r"series 'b' does not follow freq='D'.*2000-01-11 06:00"),
    "duplicated rows": (lambda df: pd.concat([df, df.iloc[[5]]]), ValueError, r"df has 1 duplicated \(unique_id, ds\) pair, e.g. \('a', 2000-01-06\)"),
    "mixed id types": (lambda df: df.assign(unique_id=[1] * 30 + ["b"] * 30), TypeError,
                       r"column 'unique_id' mixes types that cannot be sorted together \(e.g. \[1, 'b'\]\)"),
    "1 and '1' in a dict": (lambda df: {**int_dates(df), "unique_id": [1] * 30 + ["1"] * 30}, TypeError,
                            r"column 'unique_id' mixes types"),
    "missing id": (lambda df: df.assign(unique_id=df["unique_id"].where(df.index != 8, None)), ValueError,
                   r"column 'unique_id' has 1 missing id \(None/NaN\), first at row 8"),
    "no rows": (lambda df: df.iloc[:0], ValueError, r"df has no rows"),
    "not a table": (lambda df: [1, 2, 3], TypeError, r"df must be a pandas DataFrame or a dict of 1-D arrays"),
}


@pytest.mark.parametrize("name", list(BAD))
def test_malformed_frame_is_named(name):
    make, exc, match = BAD[name]
    df = edit(make)
    freq = 1 if isinstance(df, dict) else "D"
    with pytest.raises(exc, match=match):
        fit(df, freq=freq)


def test_static_beyond_float32_is_named():
    static = pd.DataFrame({"unique_id": ["a", "b"], "pop": [1.0, 5e38]})
    model = MLP(h=3, input_size=6, hidden_size=8, max_steps=2, stat_exog_list=["pop"], enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"static_df column 'pop' is 5e\+38 for series 'b', beyond float32's range"):
        ndiv.Forecaster([model], freq="D").fit(frame(), static_df=static)


@pytest.mark.parametrize("variant", ["string dates", "shuffled rows", "dict of lists", "datetime64[s]"])
def test_frames_with_one_meaning_give_the_clean_result(variant):
    df = frame()
    expected = fit(df).predict()
    if variant == "string dates":
        other = df.assign(ds=df["ds"].dt.strftime("%Y-%m-%d"))
    elif variant == "shuffled rows":
        other = df.sample(frac=1.0, random_state=0)
    elif variant == "dict of lists":
        other = {k: df[k].tolist() for k in df.columns}
    else:
        other = df.assign(ds=df["ds"].astype("datetime64[s]"))
    got = fit(other).predict()
    got = got if isinstance(got, dict) else {k: got[k].to_numpy() for k in got.columns}
    np.testing.assert_array_equal(np.asarray(got["ds"], dtype="datetime64[ns]"), expected["ds"].to_numpy())
    np.testing.assert_array_equal(np.asarray(got["MLP"]), expected["MLP"].to_numpy())

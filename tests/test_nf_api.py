"""NeuralForecast's API where a user's script touches it: the NeuralForecast name, predict(h=),
fit(use_init_models=, prediction_intervals=), cross_validation(test_size=, h=), predict_insample's
windows, make_future_dataframe, get_missing_future, polars frames and frequency strings, and
static features kept through predict and save/load. NF-parity tests skip without neuralforecast."""
from __future__ import annotations

import os

import numpy as np
import pytest

import ndiv
from ndiv import NeuralForecast
from ndiv.data.freq import make_future_dates
from ndiv.models import MLP

os.environ.setdefault("PL_DISABLE_FORK", "1")


def mlp(**kw):
    kw = {"h": 4, "input_size": 8, "hidden_size": 16, "max_steps": 5, "enable_progress_bar": False, **kw}
    return MLP(**kw)


def series(n=30, ids=("a", "b")):
    t = np.arange(n)
    y = np.concatenate([10 + np.sin(t / 2 + i) + 0.1 * i * t for i in range(len(ids))])
    return {"unique_id": np.repeat(list(ids), n), "ds": np.tile(t, len(ids)), "y": y}


def arrays(df) -> dict:
    return df if isinstance(df, dict) else {c: np.asarray(df[c].to_numpy()) for c in df.columns}


# -- names and signatures ---------------------------------------------------------------------
def test_neuralforecast_is_the_forecaster_and_keeps_models():
    assert NeuralForecast is ndiv.Forecaster
    m = mlp()
    nf = NeuralForecast(models=[m], freq=1)
    assert nf.models == [m]


def test_fit_stores_prediction_intervals_and_refits_from_stored_data():
    from ndiv import PredictionIntervals
    pi = PredictionIntervals(n_windows=2)          # fit keeps it for predict(level=) to use
    nf = NeuralForecast([mlp()], freq=1).fit(series(), prediction_intervals=pi)
    assert nf.prediction_intervals is pi
    fresh = arrays(NeuralForecast([mlp()], freq=1).fit(series()).predict())["MLP"]
    nf.fit(use_init_models=True)                      # df=None: the stored data, as NF
    assert nf.prediction_intervals is None
    np.testing.assert_array_equal(arrays(nf.predict())["MLP"], fresh)


def test_use_init_models_starts_again_and_a_plain_refit_continues():
    data = series()
    fresh = arrays(NeuralForecast([mlp()], freq=1).fit(data).predict())["MLP"]
    nf = NeuralForecast([mlp()], freq=1).fit(data)
    nf.fit(data)                                      # continues from the trained weights
    assert not np.array_equal(arrays(nf.predict())["MLP"], fresh)
    nf.fit(data, use_init_models=True)
    np.testing.assert_array_equal(arrays(nf.predict())["MLP"], fresh)


# -- predict(h=) ---------------------------------------------------------------------------------
def test_predict_shorter_h_is_the_first_steps():
    nf = NeuralForecast([mlp(h=12, input_size=12)], freq=1).fit(series(n=40))
    full, short = arrays(nf.predict()), arrays(nf.predict(h=6))
    assert len(short["MLP"]) == 2 * 6
    first6 = np.tile(np.arange(12) < 6, 2)
    for c in ("unique_id", "ds", "MLP"):
        np.testing.assert_array_equal(short[c], full[c][first6])
    with pytest.raises(ValueError, match="h must be a positive integer"):
        nf.predict(h=0)


def test_predict_longer_h_is_recursive_as_nf():
    data = series(n=40)
    nf = NeuralForecast([mlp(h=6, input_size=12)], freq=1).fit(data)
    full, long = arrays(nf.predict()), arrays(nf.predict(h=12))
    a = long["unique_id"] == "a"
    np.testing.assert_array_equal(long["ds"][a], np.arange(40, 52))
    np.testing.assert_array_equal(long["MLP"][a][:6], full["MLP"][full["unique_id"] == "a"])
    # the second horizon is the forecast from the data with the first forecast appended as y
    grown = {"unique_id": np.repeat(["a", "b"], 46), "ds": np.tile(np.arange(46), 2),
             "y": np.concatenate([np.concatenate([data["y"][i * 40:(i + 1) * 40], full["MLP"][i * 6:(i + 1) * 6]])
                                  for i in range(2)])}
    nxt = arrays(nf.predict(df=grown))
    np.testing.assert_allclose(long["MLP"][a][6:], nxt["MLP"][nxt["unique_id"] == "a"], rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(arrays(nf.predict(h=9))["MLP"][:9], long["MLP"][:9])
    hist = NeuralForecast([mlp(h=6, input_size=12, hist_exog_list=["x"])], freq=1)
    hist.fit({**data, "x": np.cos(data["ds"])})
    with pytest.raises(ValueError, match=r"predict\(h=7\) is longer than the models' horizon h=6: MLP has "
                                         "hist_exog_list, so it cannot forecast recursively"):
        hist.predict(h=7)


# -- cross_validation(test_size=, h=) -------------------------------------------------------------
def test_cross_validation_test_size_equals_n_windows():
    data = series(n=40)
    by_n = arrays(NeuralForecast([mlp()], freq=1).cross_validation(data, n_windows=3, step_size=2))
    by_size = arrays(NeuralForecast([mlp()], freq=1).cross_validation(
        data, n_windows=None, test_size=8, step_size=2, h=4))
    assert list(by_size) == ["unique_id", "ds", "cutoff", "MLP", "y"]
    for c in by_n:
        np.testing.assert_array_equal(by_n[c], by_size[c])
    np.testing.assert_array_equal(np.unique(by_size["cutoff"]), [31, 33, 35])


@pytest.mark.parametrize("kw, msg", [
    ({"n_windows": 2, "test_size": 8}, "n_windows or test_size, not both"),
    ({"n_windows": None}, "n_windows or test_size, not neither"),
    ({"n_windows": None, "test_size": 9, "step_size": 2}, r"test_size - h = 5 must be a multiple of step_size=2"),
    ({"n_windows": None, "test_size": 3}, "test_size must be an integer >= h=4"),
    ({"h": 2}, r"cross_validation\(h=2\): ndiv cross-validates the models' horizon h=4 only"),
])
def test_cross_validation_argument_errors(kw, msg):
    with pytest.raises(ValueError, match=msg):
        NeuralForecast([mlp()], freq=1).cross_validation(series(), **kw)


# -- predict_insample ------------------------------------------------------------------------------
def test_predict_insample_windows_cover_the_series_as_nf():
    data = series(n=30)
    nf = NeuralForecast([mlp()], freq=1).fit(data)
    ins = arrays(nf.predict_insample(step_size=3))
    assert list(ins) == ["unique_id", "ds", "cutoff", "MLP", "y"]
    a = ins["unique_id"] == "a"
    # (30 - h) // 3 + 1 = 9 windows; (30 - 4) % 3 = 2 rows before the first one
    np.testing.assert_array_equal(np.unique(ins["cutoff"][a]), np.arange(1, 27, 3))
    np.testing.assert_array_equal(ins["ds"][a], (np.arange(2, 27, 3)[:, None] + np.arange(4)).reshape(-1))
    np.testing.assert_allclose(ins["y"][a], data["y"][:30][ins["ds"][a]], rtol=1e-6)
    assert np.isfinite(ins["MLP"]).all()
    whole = arrays(nf.predict_insample(step_size=1))
    assert len(whole["MLP"]) == 2 * 27 * 4 and whole["cutoff"][0] == -1   # window 0 starts the series


@pytest.fixture(scope="module")
def nf_and_ndiv():
    """NeuralForecast and ndiv, the same tiny MLP fitted on AirPassengers."""
    pytest.importorskip("torch")
    core = pytest.importorskip("neuralforecast")
    from neuralforecast.models import MLP as NFMLP
    from neuralforecast.utils import AirPassengersDF
    import logging
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    df = AirPassengersDF.copy()
    quiet = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False, "accelerator": "cpu"}
    ref = core.NeuralForecast([NFMLP(h=12, input_size=24, max_steps=2, **quiet)], freq="ME")
    ref.fit(df)
    ours = NeuralForecast([MLP(h=12, input_size=24, max_steps=2)], freq="ME").fit(df)
    return ref, ours, df


def _same_frame(ref, ours, cols=None):
    ours = ours.reset_index(drop=True)
    assert list(ours.columns) == list(ref.columns)
    assert ours.shape == ref.shape
    for c in cols or ["unique_id", "ds", "cutoff", "y"]:
        np.testing.assert_array_equal(ours[c].to_numpy().astype(ref[c].dtype), ref[c].to_numpy(), err_msg=c)


@pytest.mark.parametrize("step_size", [1, 12, 5])
def test_predict_insample_matches_nf_windows(nf_and_ndiv, step_size):
    ref, ours, _ = nf_and_ndiv
    _same_frame(ref.predict_insample(step_size=step_size), ours.predict_insample(step_size=step_size))


def test_cross_validation_then_insample_and_future_frames_match_nf(nf_and_ndiv):
    ref, ours, df = nf_and_ndiv
    kw = {"n_windows": None, "test_size": 24, "step_size": 12}
    _same_frame(ref.cross_validation(df, **kw), ours.cross_validation(df, **kw), ["unique_id", "ds", "cutoff", "y"])
    _same_frame(ref.predict_insample(step_size=12), ours.predict_insample(step_size=12))  # test_size held out
    for kw in ({}, {"h": 3}, {"df": df.iloc[:-5]}):
        _same_frame(ref.make_future_dataframe(**kw), ours.make_future_dataframe(**kw), ["unique_id", "ds"])
    futr = ref.make_future_dataframe().iloc[[0, 3, 5]]
    _same_frame(ref.get_missing_future(futr).reset_index(drop=True), ours.get_missing_future(futr),
                ["unique_id", "ds"])


def test_recursive_predict_equals_nf_with_nf_weights(nf_and_ndiv):
    from .models.nf_reference import load_nf_weights
    ref, _, df = nf_and_ndiv
    ours = NeuralForecast([MLP(h=12, input_size=24, max_steps=1)], freq="ME").fit(df)
    load_nf_weights(ref.models[0], ours.models[0])
    for h in (12, 24):  # (NF's h=18 labels the forecasts of steps 7-12 of the second horizon as 13-18)
        a, b = ref.predict(h=h), ours.predict(h=h)
        _same_frame(a, b, ["unique_id", "ds"])
        np.testing.assert_allclose(b["MLP"].to_numpy(), a["MLP"].to_numpy(), rtol=1e-4, atol=1e-3)


# -- make_future_dataframe / get_missing_future without pandas ----------------------------------
def test_future_frames_on_dicts():
    nf = NeuralForecast([mlp()], freq=2).fit({**series(), "ds": np.tile(np.arange(0, 60, 2), 2)})
    fut = nf.make_future_dataframe()
    assert isinstance(fut, dict) and fut["unique_id"].tolist() == ["a"] * 4 + ["b"] * 4
    np.testing.assert_array_equal(fut["ds"], np.tile([60, 62, 64, 66], 2))
    missing = nf.get_missing_future({"unique_id": ["a", "a", "b"], "ds": [60, 66, 64]})
    assert missing["unique_id"].tolist() == ["a", "a", "b", "b", "b"]
    np.testing.assert_array_equal(missing["ds"], [62, 64, 60, 62, 66])
    with pytest.raises(ValueError, match="futr_df lacks the column"):
        nf.get_missing_future({"unique_id": ["a"]})


# -- polars ------------------------------------------------------------------------------------------
def test_polars_in_polars_out():
    pl = pytest.importorskip("polars")
    data = series(n=30)
    dates = make_future_dates(np.datetime64("1999-12-31"), "ME", 30).astype("datetime64[us]")
    df = pl.DataFrame({"unique_id": data["unique_id"].tolist(), "ds": np.tile(dates, 2), "y": data["y"]})
    nf = NeuralForecast([mlp()], freq="1mo").fit(df)
    pred = nf.predict()
    for out in (pred, nf.predict_insample(step_size=4), nf.make_future_dataframe(),
                nf.cross_validation(df, n_windows=2)):
        assert isinstance(out, pl.DataFrame), type(out)
    assert pred.columns == ["unique_id", "ds", "MLP"]
    assert [str(d)[:10] for d in pred["ds"].to_list()[:4]] == ["2002-07-31", "2002-08-31", "2002-09-30", "2002-10-31"]
    plain = NeuralForecast([mlp()], freq="ME").fit({**data, "ds": np.tile(dates, 2)}).predict()
    assert isinstance(plain, dict)
    np.testing.assert_allclose(pred["MLP"].to_numpy(), plain["MLP"], rtol=1e-6)


def test_polars_integer_ds_with_integer_freq():
    pl = pytest.importorskip("polars")
    df = pl.DataFrame({k: (v.tolist() if k == "unique_id" else v) for k, v in series().items()})
    nf = NeuralForecast([mlp()], freq="1i").fit(df)
    assert nf.freq == 1
    pred = nf.predict()
    assert isinstance(pred, pl.DataFrame) and pred["ds"].to_list() == [30, 31, 32, 33] * 2


def test_pandas_in_pandas_out():
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame(series())
    nf = NeuralForecast([mlp()], freq=1).fit(df)
    for out in (nf.predict(), nf.predict_insample(step_size=4), nf.make_future_dataframe(),
                nf.get_missing_future(nf.make_future_dataframe().iloc[:2])):
        assert isinstance(out, pd.DataFrame)


@pytest.mark.parametrize("freq, last, want", [
    ("1mo", "2000-01-31", ["2000-02-29", "2000-03-31", "2000-04-30"]),   # month ends stay month ends
    ("1mo", "2000-01-30", ["2000-02-29", "2000-03-30", "2000-04-30"]),   # the day is kept, clipped
    ("1mo", "2000-01-01", ["2000-02-01", "2000-03-01", "2000-04-01"]),
    ("1q", "2000-01-01", ["2000-04-01", "2000-07-01", "2000-10-01"]),
    ("1y", "2000-02-29", ["2001-02-28", "2002-02-28", "2003-02-28"]),
    ("1d", "2000-01-31", ["2000-02-01", "2000-02-02", "2000-02-03"]),
    ("1w", "2000-01-05", ["2000-01-12", "2000-01-19", "2000-01-26"]),     # seven days, not W-SUN
])
def test_polars_frequency_strings(freq, last, want):
    got = make_future_dates(np.datetime64(last), freq, 3).astype("datetime64[D]").astype(str).tolist()
    assert got == want


def test_polars_time_frequency_strings():
    start = np.datetime64("2000-01-01T10:00")
    assert make_future_dates(start, "1h", 2).astype("datetime64[m]").astype(str).tolist() == [
        "2000-01-01T11:00", "2000-01-01T12:00"]
    assert make_future_dates(start, "30m", 1).astype("datetime64[m]").astype(str).tolist() == ["2000-01-01T10:30"]
    np.testing.assert_array_equal(make_future_dates(np.int64(3), "2i", 2), [5, 7])
    with pytest.raises(TypeError, match="datetime ds needs a pandas frequency string"):
        make_future_dates(start, "1i", 2)


# -- static features -------------------------------------------------------------------------------
def static_fit(**kw):
    data = series()
    static = {"unique_id": ["a", "b"], "s": [0.0, 1.0]}
    nf = NeuralForecast([mlp(stat_exog_list=["s"], **kw)], freq=1).fit(data, static_df=static)
    return nf, data, static


def test_static_df_kept_for_predict_and_after_load(tmp_path):
    nf, data, static = static_fit()
    before = arrays(nf.predict(df=data))
    np.testing.assert_array_equal(arrays(nf.predict(df=data, static_df=static))["MLP"], before["MLP"])
    nf.save(str(tmp_path / "fc"))
    loaded = NeuralForecast.load(str(tmp_path / "fc"))
    np.testing.assert_array_equal(arrays(loaded.predict(df=data))["MLP"], before["MLP"])
    np.testing.assert_array_equal(arrays(loaded.predict())["MLP"], before["MLP"])


def test_static_errors_name_the_column_and_the_series():
    nf, data, _ = static_fit()
    with pytest.raises(ValueError, match=r"predict: static_df lacks the static column 's' \(stat_exog_list of MLP\), "
                                         r"needed for the series \['a', 'b'\]"):
        nf.predict(df=data, static_df={"unique_id": ["a", "b"], "t": [1.0, 2.0]})
    with pytest.raises(ValueError, match=r"predict: static_df has no row for the series \['b'\]"):
        nf.predict(df=data, static_df={"unique_id": ["a"], "s": [1.0]})
    with pytest.raises(ValueError, match=r"fit: the models use the static features \['s'\].*no static_df was given"):
        NeuralForecast([mlp(stat_exog_list=["s"])], freq=1).fit(series())


def test_string_static_column_says_how_to_encode_it():
    with pytest.raises(TypeError, match=r"static_df column 'kind' holds str values \(e.g. 'big'\).*"
                                        r"pandas.get_dummies\(static_df, columns=\['kind'\], dtype=float\)"):
        NeuralForecast([mlp()], freq=1).fit(series(), static_df={"unique_id": ["a", "b"], "kind": ["big", "small"]})


# -- the CLI's dates ---------------------------------------------------------------------------------
def test_cli_writes_one_iso_format_that_pandas_reads_back(tmp_path):
    pd = pytest.importorskip("pandas")
    from ndiv.cli import write_csv
    for ds in (np.array(["2000-01-01T00", "2000-01-01T06", "2000-01-01T12"], dtype="datetime64[ns]"),
               np.array(["2000-01-01", "2000-02-01", "2000-03-01"], dtype="datetime64[ns]")):
        write_csv(str(tmp_path / "out.csv"), {"unique_id": ["a"] * 3, "ds": ds, "y": [1.0, 2.0, 3.0]})
        written = [line.split(",")[1] for line in (tmp_path / "out.csv").read_text().splitlines()[1:]]
        assert len({len(d) for d in written}) == 1 and not any(d.endswith("000000") for d in written), written
        back = pd.read_csv(tmp_path / "out.csv", parse_dates=["ds"])
        np.testing.assert_array_equal(back["ds"].to_numpy().astype("datetime64[ns]"), ds)

"""Every bad input gets a ValueError/TypeError that names the problem and what to do."""
import numpy as np
import pytest

from ndiv.data import TimeSeriesDataset, TrainWindowSampler, make_future_dates


def build(data, **kw):
    return TimeSeriesDataset.from_df(data, **kw)


def test_missing_column(data):
    del data["y"]
    with pytest.raises(ValueError, match=r"df is missing column 'y' \(it has \[.*\]\); long format needs"):
        build(data)


def test_not_a_table():
    with pytest.raises(TypeError, match="must be a pandas DataFrame or a dict of 1-D arrays"):
        build([[1, 2, 3]])


def test_dict_columns_of_different_lengths(data):
    data["y"] = data["y"][:-1]
    with pytest.raises(ValueError, match="columns have different lengths"):
        build(data)


@pytest.mark.parametrize("bad, word", [(np.nan, "NaN"), (np.inf, "inf")])
def test_non_finite_y_names_series_and_date(data, bad, word):
    data["y"][35] = bad                     # series 'b', its 6th row: 2000-01-06
    with pytest.raises(ValueError, match=rf"column 'y' has 1 non-finite value in 1 series; first: {word} "
                                         r"in series 'b' at 2000-01-06\. Remove or fill"):
        build(data)


def test_nan_y_allowed_where_unavailable(data):
    data["y"][35] = np.nan
    data["available_mask"] = np.ones(len(data["y"]))
    data["available_mask"][35] = 0
    ds = build(data)
    assert ds.temporal[35, 0] == 0 and ds.temporal[35, -1] == 0


def test_duplicated_pairs(data):
    for k in data:
        data[k] = np.concatenate([data[k], data[k][3:5]])
    with pytest.raises(ValueError, match=r"2 duplicated \(unique_id, ds\) pairs, e.g. \('a', 2000-01-04\); keep one row"):
        build(data)


def test_gap_does_not_follow_freq(data):
    keep = np.ones(len(data["y"]), bool)
    keep[34] = False                        # 'b' loses 2000-01-05
    data = {k: v[keep] for k, v in data.items()}
    with pytest.raises(ValueError, match=r"ds of series 'b' does not follow freq='D': after 2000-01-04 comes "
                                         r"2000-01-06, expected 2000-01-05 \(1 series affected\)\. Fill"):
        build(data, freq="D")


def test_monthly_data_with_wrong_anchor():
    d = {"unique_id": np.zeros(3, int), "ds": np.array(["2000-01-31", "2000-02-29", "2000-03-31"], "datetime64[ns]"),
         "y": np.ones(3)}
    build(d, freq="M")                      # month ends follow 'M'
    with pytest.raises(ValueError, match=r"does not follow freq='MS': after 2000-01-31 comes 2000-02-29, expected 2000-02-01"):
        build(d, freq="MS")


def test_integer_ds_and_freq():
    d = {"unique_id": np.zeros(4, int), "ds": np.array([1, 2, 4, 5]), "y": np.ones(4)}
    with pytest.raises(ValueError, match=r"after 2 comes 4, expected 3"):
        build(d, freq=1)
    with pytest.raises(TypeError, match=r"integer ds needs a positive integer freq"):
        build(d, freq="D")
    d["ds"] = np.array([0, 2, 4, 6])
    assert build(d, freq=2).last_ds.tolist() == [6]


def test_unknown_freq_string(data):
    try:
        import pandas  # noqa: F401
        message = r"freq='XYZ' is not a frequency pandas knows"
    except ModuleNotFoundError:                      # the base install: ndiv's own calendar only
        message = r"freq='XYZ' needs pandas \(pip install pandas\); without it ndiv knows 'D', 'h'"
    with pytest.raises(ValueError, match=message):
        build(data, freq="XYZ")
    with pytest.raises(TypeError, match=r"datetime ds needs a pandas frequency string"):
        build(data, freq=1)


def test_unparseable_dates(data):
    data["ds"] = np.array(["not a date"] * len(data["y"]), dtype=object)
    with pytest.raises(TypeError, match=r"column 'ds' must hold dates .* or integers"):
        build(data)


def test_non_numeric_exogenous(data):
    data["x1"] = np.array(["red"] * len(data["y"]), dtype=object)
    with pytest.raises(TypeError, match=r"column 'x1' must be numeric, got dtype object \(e.g. 'red'\)"):
        build(data)


def test_nan_in_exogenous(data):
    data["x2"][40] = np.nan                  # series 'b', 2000-01-11
    with pytest.raises(ValueError, match=r"column 'x2' has 1 non-finite value .* series 'b' at 2000-01-11\. Fill the exogenous"):
        build(data)


def test_exog_cols_not_in_df(data):
    with pytest.raises(ValueError, match=r"exogenous column \['temp'\] not in df \(its other columns: \['x1', 'x2'\]\)"):
        build(data, exog_cols=["x1", "temp"])


def test_model_exog_lists_checked(data):
    ds = build(data, exog_cols=["x1"])
    ds.check_exog(futr_exog_list=["x1"])
    with pytest.raises(ValueError, match=r"NHITS: hist_exog_list names \['x9'\], not found in df \(its exogenous columns: \['x1'\]\)"):
        ds.check_exog(hist_exog_list=["x9"], model="NHITS")
    with pytest.raises(ValueError, match=r"stat_exog_list names \['pop'\], not found in static_df"):
        ds.check_exog(stat_exog_list=["pop"])


def test_static_df_problems(data):
    ok = {"unique_id": np.array(["a", "b", "c"]), "pop": np.array([1.0, 2.0, 3.0])}
    assert build(data, static_df=ok).static[:, 0].tolist() == [1.0, 2.0, 3.0]
    with pytest.raises(ValueError, match=r"static_df has no row for 1 series of df, e.g. \['c'\]"):
        build(data, static_df={k: v[:2] for k, v in ok.items()})
    with pytest.raises(ValueError, match=r"static_df has 1 series with more than one row, e.g. 'a'"):
        build(data, static_df={k: np.concatenate([v, v[:1]]) for k, v in ok.items()})
    with pytest.raises(ValueError, match=r"static_df column 'pop' is NaN or inf for series 'b'"):
        build(data, static_df={"unique_id": ok["unique_id"], "pop": np.array([1.0, np.nan, 3.0])})
    with pytest.raises(ValueError, match=r"static_df is missing column 'unique_id'"):
        build(data, static_df={"pop": ok["pop"]})


def test_series_too_short(data):
    ds = build(data)
    with pytest.raises(ValueError, match=r"series 'b' has 17 rows but MLP needs at least 24 \(input_size \+ h\) "
                                         r"\(2 series are too short\); lower input_size"):
        ds.check_min_length(24, model="MLP", why="(input_size + h)")
    with pytest.raises(ValueError, match=r"time series too short for training: the longest series has 30 steps, "
                                         r"20 after removing val_size=10 and test_size=0, but a window needs input_size=24"):
        TrainWindowSampler(ds, input_size=24, h=5, val_size=10)


def test_futr_df_must_cover_the_horizon(data):
    ds = build(data, freq="D")
    last = ds.last_ds
    futr = {"unique_id": np.repeat(ds.uids, 3), "ds": make_future_dates(last, "D", 3).ravel(),
            "x2": np.arange(9.0)}
    out = ds.append_future(3, futr, ["x2"])
    assert out.temporal[out.indptr[1] - 3:out.indptr[1], 2].tolist() == [0.0, 1.0, 2.0]
    short = {k: v[[0, 1, 2, 3, 6, 7]] for k, v in futr.items()}   # 'b' has only its first date
    with pytest.raises(ValueError, match=r"futr_df does not cover the horizon h=3: 3 \(unique_id, ds\) rows are "
                                         r"missing for 2 series \['b', 'c'\]; e.g. series 'b' lacks 2000-01-19, 2000-01-20"):
        ds.append_future(3, short, ["x2"])
    with pytest.raises(ValueError, match=r"futr_df is missing column 'x2' .*future exogenous columns \['x2'\]"):
        ds.append_future(3, {k: futr[k] for k in ("unique_id", "ds")}, ["x2"])
    with pytest.raises(ValueError, match=r"the model needs future values of \['x2'\] \(futr_exog_list\): pass futr_df"):
        ds.append_future(3, None, ["x2"])
    futr["x2"][4] = np.nan
    with pytest.raises(ValueError, match=r"futr_df column 'x2' is NaN or inf for series 'b' at 2000-01-19"):
        ds.append_future(3, futr, ["x2"])


def test_bad_sampler_arguments(data):
    ds = build(data)
    with pytest.raises(ValueError, match="windows_batch_size must be a positive integer or None, got 0"):
        TrainWindowSampler(ds, input_size=3, h=2, windows_batch_size=0)
    with pytest.raises(ValueError, match="h must be an integer >= 1, got 0"):
        TrainWindowSampler(ds, input_size=3, h=0)
    with pytest.raises(ValueError, match="cannot be an integer"):
        TrainWindowSampler(ds, input_size=3, h=2, training_data_availability_threshold=1)


def test_pandas_input_same_as_dict(data):
    pd = pytest.importorskip("pandas")
    a = build(pd.DataFrame(data).sample(frac=1.0, random_state=0), freq="D")   # shuffled rows
    b = build(data, freq="D")
    np.testing.assert_array_equal(a.temporal, b.temporal)
    np.testing.assert_array_equal(a.ds, b.ds)
    assert a.uids.tolist() == b.uids.tolist() == ["a", "b", "c"]
    tz = pd.DataFrame(data).assign(ds=lambda d: d.ds.dt.tz_localize("UTC"))
    with pytest.raises(TypeError, match="time-zone-aware dates"):
        build(tz)

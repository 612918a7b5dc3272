"""ndiv.datasets.long_horizon: the papers' splits and z-scoring on synthetic wide CSV files, every
error message, and the real ETT tables where the shared data folder exists."""
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from ndiv.datasets import LongHorizonData, load_long_horizon, split_borders, wide_to_long

SHARED = [p for p in (Path("/work/shared/data"), Path(__file__).resolve().parents[3] / "shared" / "data")
          if (p / "ett").is_dir()]


def write_wide(path, values, columns=None, header_date="date"):
    """A wide CSV like the papers' files: a date column, then one column per channel."""
    values = np.asarray(values, dtype=np.float64)
    columns = columns or [f"c{j}" for j in range(values.shape[1])]
    dates = np.datetime64("2016-07-01T00:00") + np.arange(len(values)).astype("timedelta64[h]")
    lines = [",".join([header_date, *columns])]
    lines += [",".join([str(d).replace("T", " "), *map(repr, row.tolist())]) for d, row in zip(dates, values)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def wide(tmp_path):
    """50 rows, 3 channels (the last constant), at tmp_path/custom.csv: (path, raw values)."""
    pytest.importorskip("pandas")
    rng = np.random.default_rng(0)
    raw = np.column_stack([rng.normal(5.0, 2.0, 50).cumsum(), rng.normal(size=50), np.full(50, 7.0)])
    return write_wide(tmp_path / "custom.csv", raw, ["OT", "HUFL", "flat"]), raw


def test_split_borders_the_papers_and_explicit():
    assert split_borders(17420, "ett-h") == (8640, 11520, 14400)          # 12/4/4 months of 30 days
    assert split_borders(69680, "ett-m") == (34560, 46080, 57600)
    assert split_borders(966, "custom") == (676, 966 - 193, 966)           # int(0.7 n), int(0.2 n)
    assert split_borders(5, "custom") == (3, 4, 5)
    assert split_borders(69680, val_size=11520, test_size=11520) == (46640, 58160, 69680)   # N-HiTS' ETTm2
    assert split_borders(52696, val_size=5270, test_size=10539) == (36887, 42157, 52696)    # and weather
    assert split_borders(10, val_size=0, test_size=3) == (7, 7, 10)


@pytest.mark.parametrize("args,kwargs,match", [
    ((10, "custom"), dict(val_size=1, test_size=1), "pass either kind or val_size and test_size, not both"),
    ((10,), {}, r"pass kind \('ett-h', 'ett-m', 'custom'\) or both val_size and test_size, got val_size=None"),
    ((10,), dict(test_size=2), "or both val_size and test_size, got val_size=None, test_size=2"),
    ((10,), dict(val_size=-1, test_size=2), "val_size must be an int >= 0 and test_size an int >= 1"),
    ((10,), dict(val_size=1, test_size=0), "val_size must be an int >= 0 and test_size an int >= 1"),
    ((10,), dict(val_size=4, test_size=6), "val_size=4 \\+ test_size=6 leave no train rows of the 10; pass smaller"),
    ((10, "hourly"), {}, "unknown kind 'hourly'; use 'ett-h', 'ett-m' or 'custom'"),
    ((14399, "ett-h"), {}, "the 'ett-h' split takes 20 months = 14400 rows, got 14399; use kind='custom'"),
    ((4, "custom"), {}, "70/10/20 split of 4 rows leaves no test rows; it needs at least 5 rows"),
    ((0, "custom"), {}, "n_rows must be a positive int, got 0"),
])
def test_split_borders_errors(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        split_borders(*args, **kwargs)


def test_wide_to_long_one_series_per_column_in_order():
    pytest.importorskip("pandas")
    values = np.arange(12.0).reshape(4, 3)                                  # [T=4, C=3]
    df = wide_to_long(values, ["a", "b", "c"])
    assert list(df.columns) == ["unique_id", "ds", "y"] and len(df) == 12
    assert df["unique_id"].tolist() == ["a"] * 4 + ["b"] * 4 + ["c"] * 4
    assert df["ds"].tolist() == [0, 1, 2, 3] * 3 and df["y"].dtype == np.float32
    np.testing.assert_array_equal(df["y"].to_numpy().reshape(3, 4), values.T)
    dates = np.array(["2020-01-01", "2020-01-02", "2020-01-03", "2020-01-04"], dtype="datetime64[ns]")
    assert (wide_to_long(values, ["a", "b", "c"], ds=dates)["ds"].to_numpy() == np.tile(dates, 3)).all()


@pytest.mark.parametrize("values,columns,ds,match", [
    (np.zeros(4), ["a"], None, r"values must be a \[T, C\] array, got shape \(4,\)"),
    (np.zeros((4, 2)), ["a"], None, "1 column names for 2 columns of values"),
    (np.zeros((4, 2)), ["a", "a"], None, r"column names \['a'\] repeat; each column becomes one series"),
    (np.zeros((4, 2)), ["a", "b"], np.arange(3), r"ds must have one entry per row of values \(4\), got shape \(3,\)"),
])
def test_wide_to_long_errors(values, columns, ds, match):
    pytest.importorskip("pandas")
    with pytest.raises(ValueError, match=match):
        wide_to_long(values, columns, ds)


def test_load_custom_split_and_z_scoring(wide):
    path, raw = wide
    d = load_long_horizon(path)
    assert isinstance(d, LongHorizonData) and d.columns == ("OT", "HUFL", "flat")
    assert (d.train_end, d.val_end, d.test_end) == (35, 40, 50) and (d.val_size, d.test_size) == (5, 10)
    train = raw[:35]
    np.testing.assert_allclose(d.mean, train.mean(0), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(d.std[:2], train[:, :2].std(0), rtol=1e-12, atol=1e-14)  # ddof 0
    assert d.std[2] == 1.0 and (d.values[:, 2] == 0).all()                           # constant channel
    assert d.mean[0] != pytest.approx(raw[:, 0].mean())                              # val/test rows unused
    np.testing.assert_allclose(d.values, (raw - d.mean) / d.std, rtol=1e-14)
    np.testing.assert_allclose(d.values[:35].mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(d.unscale(d.values), raw, rtol=1e-12)                 # round trip
    fc = d.values[None, -4:, :]                                                      # [B, h, C] forecasts
    np.testing.assert_allclose(d.unscale(fc)[0], raw[-4:], rtol=1e-12)
    df = d.df
    assert len(df) == 150 and df["unique_id"].unique().tolist() == ["OT", "HUFL", "flat"]
    np.testing.assert_allclose(df["y"].to_numpy()[:50], d.values[:, 0].astype(np.float32))
    assert repr(d) == "LongHorizonData(values [50, 3], columns ['OT', 'HUFL', 'flat'], train/val/test 35/5/10 rows)"


def test_load_is_frozen_and_read_only(wide):
    d = load_long_horizon(wide[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        d.train_end = 3
    with pytest.raises(ValueError, match="read-only"):
        d.values[0, 0] = 1.0
    with pytest.raises(ValueError, match=r"unscale: the last axis must be the 3 channels, got shape \(5, 2\)"):
        d.unscale(np.zeros((5, 2)))


def test_load_explicit_sizes_max_rows_and_raw(wide):
    path, raw = wide
    d = load_long_horizon(path, val_size=8, test_size=12)
    assert (d.train_end, d.val_end, d.test_end) == (30, 38, 50)
    np.testing.assert_allclose(d.mean, raw[:30].mean(0), rtol=1e-12, atol=1e-14)  # the rows before val
    q = load_long_horizon(path, max_rows=20)                                         # the first rows, 70/10/20
    assert (q.train_end, q.val_end, q.test_end) == (14, 16, 20) and q.values.shape == (20, 3)
    np.testing.assert_allclose(q.mean, raw[:14].mean(0), rtol=1e-12, atol=1e-14)
    q = load_long_horizon(path, max_rows=20, val_size=2, test_size=3)
    assert (q.train_end, q.val_end, q.test_end) == (15, 17, 20)
    r = load_long_horizon(path, normalize=False)                                     # values = (raw - 0) / 1
    np.testing.assert_array_equal(r.values, raw)
    assert (r.mean == 0).all() and (r.std == 1).all() and r.values.flags.writeable is False


def test_load_ett_by_name_drops_the_tail_unless_sizes_are_given(tmp_path, monkeypatch):
    pytest.importorskip("pandas")
    raw = np.column_stack([np.arange(14500.0), np.sin(np.arange(14500.0))])
    write_wide(tmp_path / "ETTh1.csv", raw, ["HUFL", "OT"])                         # root/ETTh1.csv is found too
    d = load_long_horizon("ETTh1", root=tmp_path)
    assert (d.train_end, d.val_end, d.test_end) == (8640, 11520, 14400) and d.values.shape == (14400, 2)
    np.testing.assert_allclose(d.mean, raw[:8640].mean(0), rtol=1e-13)
    monkeypatch.setenv("NDIV_DATA", str(tmp_path))                                   # root from the environment
    d = load_long_horizon("ETTh1", val_size=1000, test_size=2000)                    # the full series
    assert (d.train_end, d.val_end, d.test_end) == (11500, 12500, 14500) and d.values.shape == (14500, 2)


def test_load_errors(wide, tmp_path, monkeypatch):
    path, raw = wide
    with pytest.raises(ValueError, match=r"unknown dataset 'ETTh3'; use one of \['ETTh1', .*'illness'\] or a path"):
        load_long_horizon("ETTh3", root=tmp_path)
    monkeypatch.delenv("NDIV_DATA", raising=False)
    with pytest.raises(ValueError, match="ndiv ships none of the long-horizon data; pass root= .* or set the "
                                         "NDIV_DATA environment variable"):
        load_long_horizon("weather")
    with pytest.raises(FileNotFoundError, match=r"no file for weather under .*; looked for .*weather/weather.csv.gz"):
        load_long_horizon("weather", root=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"no file .*missing\.csv"):
        load_long_horizon(tmp_path / "missing.csv")
    with pytest.raises(ValueError, match="val_size=20 \\+ test_size=30 leave no train rows of the 50"):
        load_long_horizon(path, val_size=20, test_size=30)
    with pytest.raises(ValueError, match="or both val_size and test_size, got val_size=None, test_size=5"):
        load_long_horizon(path, test_size=5)
    with pytest.raises(ValueError, match="max_rows must be a positive int or None, got 0"):
        load_long_horizon(path, max_rows=0)
    with pytest.raises(ValueError, match=r"needs a date column and at least one channel, got columns \['date'\]"):
        load_long_horizon(write_wide(tmp_path / "one.csv", np.zeros((6, 0)), []))
    text = tmp_path / "text.csv"
    text.write_text("date,a,b\n2020-01-01,1.0,x\n2020-01-02,2.0,y\n")
    with pytest.raises(ValueError, match=r"columns \['b'\] of .* are not numeric; the first column is the date"):
        load_long_horizon(text)
    gaps = raw.copy()
    gaps[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"columns \['HUFL'\] of .* have missing or infinite values"):
        load_long_horizon(write_wide(tmp_path / "gaps.csv", gaps, ["OT", "HUFL", "flat"]))


@pytest.mark.skipif(not SHARED, reason="no shared data (/work/shared/data or ../shared/data)")
def test_real_ett_tables():
    pytest.importorskip("pandas")
    d = load_long_horizon("ETTh1", root=SHARED[0])                    # 17,420 rows, the papers keep 14,400
    assert d.values.shape == (14400, 7) and d.columns[-1] == "OT"
    assert (d.train_end, d.val_end, d.test_end) == (8640, 11520, 14400)
    np.testing.assert_allclose(d.values[:8640].mean(0), 0.0, atol=1e-10)
    np.testing.assert_allclose(d.values[:8640].std(0), 1.0, rtol=1e-10)
    m2 = load_long_horizon("ETTm2", root=SHARED[0], val_size=11520, test_size=11520)   # N-HiTS: every row
    assert m2.values.shape == (69680, 7) and (m2.train_end, m2.val_end, m2.test_end) == (46640, 58160, 69680)

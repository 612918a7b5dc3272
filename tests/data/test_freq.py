"""Future dates and freq checks: NumPy's calendar equals pandas' offsets."""
import warnings

import numpy as np
import pytest

from ndiv.data import make_future_dates
from ndiv.data.freq import _PANDAS_ALIASES, offset_dates

FREQS = ["MS", "M", "QS", "Q", "YS", "Y", "W", "D", "h", "H", "15min", "2D", "s"]


def dates():
    rng = np.random.default_rng(0)
    d = np.datetime64("1990-01-01") + rng.integers(0, 20000, 200).astype("timedelta64[D]")
    edge = np.array(["2000-01-31", "2000-02-29", "2000-12-31", "2001-01-01", "2000-06-30", "2000-01-02",
                     "2000-01-31T12:00", "2000-01-15T06:30", "2000-01-01T00:00:01"], "datetime64[ns]")
    return np.concatenate([d.astype("datetime64[ns]"), edge])


@pytest.mark.parametrize("freq", FREQS)
def test_offsets_equal_pandas(freq):
    pd = pytest.importorskip("pandas")
    offset = pd.tseries.frequencies.to_offset(_PANDAS_ALIASES.get(freq, freq))
    d = dates()
    for k in (1, 2, 7):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            expected = (pd.DatetimeIndex(d) + k * offset).to_numpy()
        np.testing.assert_array_equal(offset_dates(d, freq, k), expected)


def test_other_pandas_frequencies_go_through_pandas():
    pytest.importorskip("pandas")
    out = make_future_dates(np.datetime64("2024-01-05"), "B", 3)      # Friday -> Mon, Tue, Wed
    assert out.astype("datetime64[D]").astype(str).tolist() == ["2024-01-08", "2024-01-09", "2024-01-10"]


def test_make_future_dates_shapes():
    out = make_future_dates(np.array(["1960-12-01", "1961-03-01"], "datetime64[ns]"), "MS", 2)
    assert out.shape == (2, 2)
    assert out.astype("datetime64[D]").astype(str).tolist() == [["1961-01-01", "1961-02-01"], ["1961-04-01", "1961-05-01"]]
    assert make_future_dates(5, 2, 3).tolist() == [7, 9, 11]
    assert make_future_dates("2000-01-31", "M", 1).astype("datetime64[D]").astype(str).tolist() == ["2000-02-29"]
    with pytest.raises(ValueError, match="h must be a positive integer, got 0"):
        make_future_dates(5, 1, 0)

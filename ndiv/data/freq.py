"""Frequencies: checking that timestamps follow `freq`, and the dates after a series ends.

`freq` is a pandas frequency string ('MS', 'M', 'D', 'h', 'W', '15min', ...) for datetime `ds`,
or a positive int for integer `ds` (freq=1: consecutive integers). The common frequencies are
handled here with NumPy alone, so pandas stays optional; any other pandas string ('B', 'W-MON',
'SM', ...) is handed to pandas, imported only then.

Old pandas aliases that pandas 3 no longer parses but NeuralForecast users still write
('M', 'H', 'T', 'S', 'Q', 'Y', 'A') keep their meaning: 'M' is month end, 'H' is hourly.

polars' duration strings, a count then a unit ('1h', '30m', '1d', '1w', '1mo', '1q', '1y', and
'1i' for integer ds), mean what they mean to polars and to NeuralForecast on a polars frame:
'1mo' keeps the day of the month (clipped to the month's length) and keeps month ends on month
ends, as utilsforecast does; '1w' is seven days, not a Sunday anchor; 'm' is minutes.

    >>> import numpy as np
    >>> make_future_dates(np.datetime64("1960-12-01"), "MS", 3)
    array(['1961-01-01T00:00:00.000000000', '1961-02-01T00:00:00.000000000',
           '1961-03-01T00:00:00.000000000'], dtype='datetime64[ns]')
    >>> make_future_dates(np.int64(10), 1, 2)
    array([11, 12])
"""
from __future__ import annotations

import re
import warnings

import numpy as np

# fixed-length steps: unit -> numpy timedelta unit and count
_TICKS = {
    "D": ("D", 1), "h": ("h", 1), "H": ("h", 1), "min": ("m", 1), "T": ("m", 1),
    "s": ("s", 1), "S": ("s", 1), "ms": ("ms", 1), "L": ("ms", 1), "us": ("us", 1),
    "U": ("us", 1), "ns": ("ns", 1), "N": ("ns", 1),
}
# calendar steps: alias -> (months per step, anchored at the 'start' or 'end' of the period)
_CALENDAR = {
    "MS": (1, "start"), "M": (1, "end"), "ME": (1, "end"),
    "QS": (3, "start"), "QS-JAN": (3, "start"), "Q": (3, "end"), "QE": (3, "end"), "QE-DEC": (3, "end"),
    "YS": (12, "start"), "AS": (12, "start"), "YS-JAN": (12, "start"),
    "Y": (12, "end"), "A": (12, "end"), "YE": (12, "end"), "YE-DEC": (12, "end"),
}
# pandas 3 rejects these old spellings; translate before handing a string to pandas
_PANDAS_ALIASES = {"M": "ME", "H": "h", "T": "min", "S": "s", "L": "ms", "U": "us", "N": "ns",
                   "Q": "QE", "Y": "YE", "A": "YE", "AS": "YS"}
_FREQ_RE = re.compile(r"^(\d*)([A-Za-z][A-Za-z\-]*)$")
# polars durations (a count is required, so 'D' or 'h' alone stay pandas strings)
_POLARS_RE = re.compile(r"^(\d+)(ns|us|ms|s|m|h|d|w|mo|q|y|i)$")
_POLARS_TICKS = {"ns": ("ns", 1), "us": ("us", 1), "ms": ("ms", 1), "s": ("s", 1), "m": ("m", 1),
                 "h": ("h", 1), "d": ("D", 1), "w": ("D", 7)}
_POLARS_MONTHS = {"mo": 1, "q": 3, "y": 12}
_NS = np.dtype("datetime64[ns]")


def is_int_freq(freq) -> bool:
    return isinstance(freq, (int, np.integer)) and not isinstance(freq, bool)


def normalize_freq(freq):
    """polars' integer step '3i' -> 3; any other freq unchanged (polars' date strings are
    understood wherever a pandas string is)."""
    if isinstance(freq, str):
        m = _POLARS_RE.match(freq.strip())
        if m and m.group(2) == "i":
            if int(m.group(1)) < 1:
                raise ValueError(f"freq={freq!r}: an integer step must be positive, e.g. '1i'")
            return int(m.group(1))
    return freq


def check_freq(freq, datetime_ds: bool):
    """Validate `freq` against the kind of `ds` (datetime -> str, integer -> int)."""
    freq = normalize_freq(freq)
    if datetime_ds:
        if not isinstance(freq, str):
            raise TypeError(f"freq={freq!r}: datetime ds needs a pandas frequency string "
                            "such as 'D', 'h', 'W', 'MS' or 'M'")
        _parse(freq)  # raises on an unknown string
    elif not is_int_freq(freq) or freq <= 0:
        raise TypeError(f"freq={freq!r}: integer ds needs a positive integer freq (e.g. freq=1)")
    return freq


def _parse(freq: str):
    """-> ('tick', np.timedelta64) | ('calendar', months, anchor) | ('months', n) (polars'
    'mo', 'q', 'y') | ('week',) | ('pandas', offset)."""
    m = _POLARS_RE.match(freq.strip())
    if m:
        n, unit = int(m.group(1)), m.group(2)
        if n < 1:
            raise ValueError(f"freq={freq!r}: the count must be positive, e.g. '1{unit}'")
        if unit in _POLARS_TICKS:
            u, k = _POLARS_TICKS[unit]
            return ("tick", np.timedelta64(n * k, u).astype("timedelta64[ns]"))
        if unit in _POLARS_MONTHS:
            return ("months", n * _POLARS_MONTHS[unit])
        raise TypeError(f"freq={freq!r} is polars' integer step: it needs integer ds, not dates")
    m = _FREQ_RE.match(freq.strip())
    if m:
        n = int(m.group(1)) if m.group(1) else 1
        unit = m.group(2)
        if unit in _TICKS:
            u, k = _TICKS[unit]
            return ("tick", np.timedelta64(n * k, u).astype("timedelta64[ns]"))
        if unit == "W" or unit == "W-SUN":
            if n == 1:
                return ("week",)
        if unit in _CALENDAR and n == 1:
            months, anchor = _CALENDAR[unit]
            return ("calendar", months, anchor)
    try:
        import pandas as pd
    except ImportError:
        raise ValueError(
            f"freq={freq!r} needs pandas (pip install pandas); without it ndiv knows "
            "'D', 'h', 'min', 's', 'W', 'MS', 'M', 'QS', 'Q', 'YS', 'Y' and their multiples of "
            "fixed length such as '15min'") from None
    m = _FREQ_RE.match(freq.strip())
    if m and m.group(2) in _PANDAS_ALIASES:
        freq = m.group(1) + _PANDAS_ALIASES[m.group(2)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            offset = pd.tseries.frequencies.to_offset(freq)
    except ValueError as e:
        raise ValueError(f"freq={freq!r} is not a frequency pandas knows ({e}); use e.g. "
                         "'D', 'h', 'W', 'MS', 'M'") from None
    return ("pandas", offset)


def _month_end(months):
    """integer months since 1970-01 -> datetime64[ns] of the last day of that month (midnight)."""
    return ((months + 1).astype("datetime64[M]").astype("datetime64[D]") - 1).astype(_NS)


def offset_dates(last, freq, k):
    """Dates `k` steps of `freq` after each date in `last` (pandas' `last + k * offset`).

    last: datetime64 or int array [n]; k: int array broadcastable to it (k >= 1).
    A date that is not on the offset (a mid-month date with 'MS') rolls forward as pandas does:
    its first step goes to the next date on the offset.
    """
    freq = normalize_freq(freq)
    if is_int_freq(freq):
        return np.asarray(last) + np.asarray(k) * freq
    last = np.asarray(last).astype(_NS)
    k = np.asarray(k, dtype=np.int64)
    kind = _parse(freq)
    if kind[0] == "tick":
        return last + k * kind[1]
    # calendar offsets work on the day; the time of day is carried along, as pandas does
    days = last.astype("datetime64[D]")
    time_of_day = last - days.astype(_NS)
    if kind[0] == "week":  # W-SUN: the next Sunday (a Sunday moves a full week)
        weekday = (days.astype(np.int64) + 3) % 7          # 1970-01-01 was a Thursday (3)
        to_sunday = (6 - weekday) % 7
        to_sunday = np.where(to_sunday == 0, 7, to_sunday)
        return (days + to_sunday + 7 * (k - 1)).astype(_NS) + time_of_day
    if kind[0] == "months":   # polars: same day of the month, clipped; month ends stay month ends
        months = days.astype("datetime64[M]")
        day = (days - months.astype("datetime64[D]")).astype(np.int64)     # 0-based day of month
        on_end = days == (months + 1).astype("datetime64[D]") - 1
        target = months + k * kind[1]
        length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
        day = np.where(on_end, length - 1, np.minimum(day, length - 1))
        return (target.astype("datetime64[D]") + day).astype(_NS) + time_of_day
    if kind[0] == "calendar":
        step, anchor = kind[1], kind[2]
        months = days.astype("datetime64[M]").astype(np.int64)  # months since 1970-01
        if anchor == "start":   # period starts: months 0, step, 2 step, ... (Jan for 'QS', 'YS')
            first = (months // step + 1) * step                   # the next start, on or off it
            out = (first + (k - 1) * step).astype("datetime64[M]").astype(_NS)
        else:
            end_month = (months // step + 1) * step - 1           # last month of this period
            on_end = days.astype(_NS) == _month_end(end_month)
            first = np.where(on_end, end_month + step, end_month)  # before the end: roll to it
            out = _month_end(first + (k - 1) * step)
        return out + time_of_day
    import pandas as pd
    offset = kind[1]
    last_b, k_b = np.broadcast_arrays(last, k)
    if k_b.size and np.all(k_b == k_b.flat[0]):      # one step count: vectorized
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = pd.DatetimeIndex(last_b.ravel()) + int(k_b.flat[0]) * offset
        return out.to_numpy().astype(_NS).reshape(last_b.shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # PerformanceWarning: non-vectorized offsets
        out = [pd.Timestamp(d) + int(n) * offset for d, n in zip(last_b.ravel(), k_b.ravel())]
    return np.array(out, dtype=_NS).reshape(last_b.shape)


def make_future_dates(last_ds, freq, h: int) -> np.ndarray:
    """The `h` dates after `last_ds` at `freq`.

    last_ds: one date (np.datetime64, pandas Timestamp, ISO string) or int, or an array [n] of
        them; freq: pandas string or int; h: horizon.
    Returns [h] for one date, [n, h] for an array (row i follows last_ds[i]).
    """
    if not isinstance(h, (int, np.integer)) or h < 1:
        raise ValueError(f"h must be a positive integer, got {h!r}")
    scalar = np.ndim(last_ds) == 0
    last = np.atleast_1d(np.asarray(last_ds))
    if last.dtype.kind == "O" or last.dtype.kind == "U":
        last = last.astype(_NS)
    datetime_ds = last.dtype.kind == "M"
    check_freq(freq, datetime_ds)
    k = np.arange(1, h + 1)
    out = offset_dates(last[:, None], freq, k[None, :])
    return out[0] if scalar else out


def check_follows_freq(uids, ds, indptr, freq):
    """Raise ValueError naming the first series whose consecutive dates are not one `freq` apart.

    ds: [n_rows] sorted by (series, ds); indptr: [n_series + 1].
    """
    if len(ds) < 2:
        return
    prev, nxt = ds[:-1], ds[1:]
    same = np.ones(len(ds) - 1, dtype=bool)
    same[indptr[1:-1] - 1] = False                      # pairs that cross a series boundary
    expected = offset_dates(prev, freq, 1)
    bad = np.flatnonzero(same & (expected != nxt))
    if bad.size == 0:
        return
    # also: a one-step series or the first date may be off the offset ('MS' with mid-month dates)
    i = bad[0]
    s = np.searchsorted(indptr, i, side="right") - 1
    n_bad_series = len(np.unique(np.searchsorted(indptr, bad, side="right") - 1))
    raise ValueError(
        f"ds of series {_q(uids[s])} does not follow freq={freq!r}: after {_fmt(prev[i])} comes "
        f"{_fmt(nxt[i])}, expected {_fmt(expected[i])} ({n_bad_series} series affected). Fill the "
        "missing dates (e.g. with utilsforecast.preprocessing.fill_gaps) or pass the freq of the data.")


def _fmt(d):
    if isinstance(d, np.datetime64):
        s = str(d.astype("datetime64[s]"))
        return s[:10] if s.endswith("T00:00:00") else s.replace("T", " ")
    return str(d)


def _q(x) -> str:
    """repr of an id for messages: 'b', not np.str_('b')."""
    return repr(x.item() if isinstance(x, np.generic) else x)

"""The long-horizon benchmark's wide tables (ETT, weather, exchange_rate, illness), loaded as the
papers load them: every column but the date is a channel (the 'M' setting), the split in time
order, z-scored with the train rows' mean and std, one series per channel (channel independence).

ndiv ships none of these files: `root` (or $NDIV_DATA) is a folder holding them, either as
`root/ett/ETTh1.csv` (the layout of LONG_HORIZON's paths) or directly as `root/ETTh1.csv`.

    >>> import numpy as np
    >>> from ndiv.datasets import split_borders, wide_to_long
    >>> split_borders(17420, "ett-h"), split_borders(69680, val_size=11520, test_size=11520)
    ((8640, 11520, 14400), (46640, 58160, 69680))
    >>> wide_to_long(np.arange(6.0).reshape(3, 2), ["a", "b"])["y"].tolist()
    [0.0, 2.0, 4.0, 1.0, 3.0, 5.0]
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# name -> (file under the data folder, split kind of split_borders); the folders and files of
# Autoformer's release, where the papers (Informer, Autoformer, DLinear, PatchTST, N-HiTS) read them
LONG_HORIZON = {
    "ETTh1": ("ett/ETTh1.csv", "ett-h"), "ETTh2": ("ett/ETTh2.csv", "ett-h"),
    "ETTm1": ("ett/ETTm1.csv.gz", "ett-m"), "ETTm2": ("ett/ETTm2.csv.gz", "ett-m"),
    "weather": ("weather/weather.csv.gz", "custom"),
    "exchange_rate": ("exchange_rate/exchange_rate.csv", "custom"),
    "illness": ("illness/national_illness.csv", "custom"),
}
_ETT_MONTH = {"ett-h": 30 * 24, "ett-m": 30 * 24 * 4}       # the papers' 30-day months, in rows


def _is_int(v) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def split_borders(n_rows: int, kind: str | None = None, *, val_size: int | None = None,
                  test_size: int | None = None) -> tuple[int, int, int]:
    """(train_end, val_end, test_end): rows [0, train_end) train, [train_end, val_end) validation,
    [val_end, test_end) test, in time order.

    kind: the Informer/Autoformer/DLinear split. 'ett-h' / 'ett-m': 12/4/4 months of 30 days
        (hourly / 15-minute rows; the rows after 20 months are unused); 'custom': 70/10/20%,
        n_train = int(0.7 n), n_test = int(0.2 n), validation the rows between.
    val_size, test_size (instead of kind): the last test_size rows are the test, the val_size
        rows before them the validation, all earlier rows the train (N-HiTS' protocol: ETTm2
        uses all 69,680 rows with 11,520 + 11,520).
    """
    if not _is_int(n_rows) or n_rows < 1:
        raise ValueError(f"split_borders: n_rows must be a positive int, got {n_rows!r}")
    if kind is not None and (val_size is not None or test_size is not None):
        raise ValueError("split_borders: pass either kind or val_size and test_size, not both")
    if kind is None:
        if val_size is None or test_size is None:
            raise ValueError("split_borders: pass kind ('ett-h', 'ett-m', 'custom') or both val_size and "
                             f"test_size, got val_size={val_size!r}, test_size={test_size!r}")
        if not (_is_int(val_size) and val_size >= 0 and _is_int(test_size) and test_size >= 1):
            raise ValueError(f"split_borders: val_size must be an int >= 0 and test_size an int >= 1, got "
                             f"val_size={val_size!r}, test_size={test_size!r}")
        if val_size + test_size >= n_rows:
            raise ValueError(f"split_borders: val_size={val_size} + test_size={test_size} leave no train rows "
                             f"of the {n_rows}; pass smaller sizes")
        return n_rows - val_size - test_size, n_rows - test_size, n_rows
    if kind in _ETT_MONTH:
        m = _ETT_MONTH[kind]
        if n_rows < 20 * m:
            raise ValueError(f"split_borders: the {kind!r} split takes 20 months = {20 * m} rows, got {n_rows}; "
                             "use kind='custom' or val_size/test_size for a shorter series")
        return 12 * m, 16 * m, 20 * m
    if kind == "custom":
        n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
        if n_test < 1:
            raise ValueError(f"split_borders: the 'custom' 70/10/20 split of {n_rows} rows leaves no test rows; "
                             "it needs at least 5 rows")
        return n_train, n_rows - n_test, n_rows
    raise ValueError(f"split_borders: unknown kind {kind!r}; use 'ett-h', 'ett-m' or 'custom'")


def wide_to_long(values, columns, ds=None):
    """A wide table [T, C] as a long pandas DataFrame, one series per column (channel independence).

    Returns columns unique_id (the column's name), ds (ds[t], default the integers 0..T-1) and
    y (float32), C * T rows ordered by column, then time.
    """
    import pandas as pd

    values = np.asarray(values)
    if values.ndim != 2:
        raise ValueError(f"wide_to_long: values must be a [T, C] array, got shape {values.shape}")
    t, c = values.shape
    columns = [str(k) for k in columns]
    if len(columns) != c:
        raise ValueError(f"wide_to_long: {len(columns)} column names for {c} columns of values")
    if len(set(columns)) != c:
        dup = sorted({k for k in columns if columns.count(k) > 1})
        raise ValueError(f"wide_to_long: column names {dup} repeat; each column becomes one series and "
                         "needs its own name")
    ds = np.arange(t) if ds is None else np.asarray(ds)
    if ds.shape != (t,):
        raise ValueError(f"wide_to_long: ds must have one entry per row of values ({t}), got shape {ds.shape}")
    return pd.DataFrame({"unique_id": np.repeat(np.asarray(columns, dtype=object), t),
                         "ds": np.tile(ds, c), "y": values.T.reshape(-1).astype(np.float32)})


@dataclass(frozen=True, eq=False, repr=False)
class LongHorizonData:
    """A wide table split and scaled as the papers do; values = (raw - mean) / std.

    values [T, C] float64 (read-only), columns (C names), train_end / val_end / test_end (the
    borders of split_borders, test_end = T), mean / std [C] (the train rows' statistics, ddof 0,
    a zero std replaced by 1; 0 and 1 when loaded with normalize=False).
    """
    values: np.ndarray
    columns: tuple
    train_end: int
    val_end: int
    test_end: int
    mean: np.ndarray
    std: np.ndarray

    @property
    def val_size(self) -> int:
        return self.val_end - self.train_end

    @property
    def test_size(self) -> int:
        return self.test_end - self.val_end

    @property
    def df(self):
        """The long frame of wide_to_long(values, columns): unique_id, ds (0..T-1), y (float32)."""
        return wide_to_long(self.values, self.columns)

    def unscale(self, values) -> np.ndarray:
        """Scaled values [..., C] (e.g. forecasts) back in the data's units: values * std + mean."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape[-1:] != self.mean.shape:
            raise ValueError(f"unscale: the last axis must be the {len(self.columns)} channels, got shape "
                             f"{values.shape}")
        return values * self.std + self.mean

    def __repr__(self) -> str:
        cols = list(self.columns) if len(self.columns) <= 4 else [*self.columns[:2], "...", self.columns[-1]]
        return (f"LongHorizonData(values {list(self.values.shape)}, columns {cols}, "
                f"train/val/test {self.train_end}/{self.val_size}/{self.test_size} rows)")


def _data_file(name_or_path, root) -> tuple[Path, str]:
    """The CSV file and split kind of a dataset name or a path."""
    name = os.fspath(name_or_path)
    if name not in LONG_HORIZON:
        path = Path(name)
        if path.suffix in (".csv", ".gz") or path.is_file():
            if not path.is_file():
                raise FileNotFoundError(f"load_long_horizon: no file {path}")
            return path, "custom"
        raise ValueError(f"load_long_horizon: unknown dataset {name!r}; use one of {list(LONG_HORIZON)} "
                         "or a path to a wide CSV file (date, then one column per channel)")
    root = root if root is not None else os.environ.get("NDIV_DATA")
    if not root:
        raise ValueError(f"load_long_horizon: where is {name}? ndiv ships none of the long-horizon data; "
                         "pass root= (the folder holding the files) or set the NDIV_DATA environment variable")
    rel, kind = LONG_HORIZON[name]
    tried = []
    for r in (rel, Path(rel).name):                   # root/ett/ETTh1.csv or root/ETTh1.csv,
        for cand in (r, r[:-3] if r.endswith(".gz") else r + ".gz"):   # gzipped or not
            tried.append(Path(root) / cand)
            if tried[-1].is_file():
                return tried[-1], kind
    raise FileNotFoundError(f"load_long_horizon: no file for {name} under {root}; looked for "
                            f"{', '.join(str(p) for p in tried)}")


def load_long_horizon(name_or_path, root=None, *, val_size: int | None = None, test_size: int | None = None,
                      max_rows: int | None = None, normalize: bool = True) -> LongHorizonData:
    """A long-horizon dataset, split and z-scored as in the papers (needs pandas).

    Args:
        name_or_path: one of LONG_HORIZON ('ETTh1', 'ETTh2', 'ETTm1', 'ETTm2', 'weather',
            'exchange_rate', 'illness'), or the path of a wide CSV file (first column the date,
            every other column a channel; split like 'custom').
        root: the folder holding the files (default $NDIV_DATA).
        val_size, test_size: the explicit split of split_borders on the full series (N-HiTS);
            without them the papers' split: ETT 12/4/4 months (the rows after are dropped), the
            others 70/10/20%.
        max_rows: keep the first rows only (a quick run); without sizes they are split 70/10/20.
        normalize: z-score every channel with the train rows' mean and std (ddof 0, as
            sklearn's StandardScaler in the papers' loaders); False keeps the raw values.
    Returns:
        LongHorizonData: values [T, C], columns, the borders, mean / std [C]; `.df` is the long
        frame of one series per channel, `.unscale(forecasts)` undoes the scaling.

        load_long_horizon("ETTh1", root="data")   # values [14400, 7], borders 8640/11520/14400
    """
    path, kind = _data_file(name_or_path, root)
    if max_rows is not None and not (_is_int(max_rows) and max_rows >= 1):
        raise ValueError(f"load_long_horizon: max_rows must be a positive int or None, got {max_rows!r}")
    try:
        import pandas as pd
    except ImportError as e:
        raise ImportError("load_long_horizon reads the CSV files with pandas: pip install 'ndiv[pandas]'") from e
    table = pd.read_csv(path)
    if table.shape[1] < 2:
        raise ValueError(f"load_long_horizon: {path} needs a date column and at least one channel, "
                         f"got columns {list(table.columns)}")
    channels = table.iloc[:, 1:]                       # the papers' 'M' setting: every column but the date
    text = [str(c) for c, t in channels.dtypes.items() if not pd.api.types.is_numeric_dtype(t)]
    if text:
        raise ValueError(f"load_long_horizon: columns {text} of {path} are not numeric; the first column is "
                         "the date and every other one a channel")
    values = channels.to_numpy(np.float64)
    bad = [str(c) for c, ok in zip(channels.columns, np.isfinite(values).all(0)) if not ok]
    if bad:
        raise ValueError(f"load_long_horizon: columns {bad} of {path} have missing or infinite values; "
                         "fill them before loading")
    if max_rows is not None:
        values = values[:max_rows]
        kind = "custom"
    if val_size is None and test_size is None:
        train_end, val_end, test_end = split_borders(len(values), kind)
    else:
        train_end, val_end, test_end = split_borders(len(values), val_size=val_size, test_size=test_size)
    values = values[:test_end]
    if normalize:
        mean, std = values[:train_end].mean(0), values[:train_end].std(0)
        std = np.where(std == 0, 1.0, std)             # a constant channel stays constant (0)
        values = (values - mean) / std
    else:
        values = values.copy()
        mean, std = np.zeros(values.shape[1]), np.ones(values.shape[1])
    for a in (values, mean, std):
        a.flags.writeable = False
    return LongHorizonData(values, tuple(str(c) for c in channels.columns), train_end, val_end, test_end, mean, std)

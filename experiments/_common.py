"""Shared pieces of the benchmark scripts: data loading with the papers' splits, the
competitions' metrics (M4 sMAPE / MASE / OWA against Naive2, tourism MAPE), and a resumable
results store (JSON + CSV under experiments/results/).

Not part of the installed package: run the scripts from the repository root,
`python experiments/long_horizon.py --quick`.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:       # the repository's ndiv, not an installed one
    sys.path.insert(0, str(HERE.parent))
RESULTS = HERE / "results"


# ----------------------------------------------------------------------------- data
def data_root() -> Path:
    """The shared data folder: $NDIV_DATA, /work/shared/data or ../shared/data from the repo."""
    for p in (os.environ.get("NDIV_DATA"), "/work/shared/data", HERE.parent.parent / "shared" / "data"):
        if p and Path(p).is_dir():
            return Path(p)
    raise FileNotFoundError("no shared data folder: set NDIV_DATA, or put it at /work/shared/data or ../shared/data")


# file, split kind ('ett-h', 'ett-m' or 'custom'), periods: see each data README ("Usual split")
WIDE = {
    "ETTh1": ("ett/ETTh1.csv", "ett-h"), "ETTh2": ("ett/ETTh2.csv", "ett-h"),
    "ETTm1": ("ett/ETTm1.csv.gz", "ett-m"), "ETTm2": ("ett/ETTm2.csv.gz", "ett-m"),
    "weather": ("weather/weather.csv.gz", "custom"),
    "exchange_rate": ("exchange_rate/exchange_rate.csv", "custom"),
    "illness": ("illness/national_illness.csv", "custom"),
}


def split_borders(n_rows: int, kind: str) -> tuple[int, int, int]:
    """(train_end, val_end, test_end) row indices of the Informer/Autoformer/DLinear split:
    ETT 12/4/4 months (30-day months), the others 70/10/20% in time order (the 'custom'
    loader: n_train = int(0.7 n), n_test = int(0.2 n), val the rest)."""
    if kind == "ett-h":
        m = 30 * 24
        return 12 * m, 16 * m, 20 * m
    if kind == "ett-m":
        m = 30 * 24 * 4
        return 12 * m, 16 * m, 20 * m
    n_train, n_test = int(n_rows * 0.7), int(n_rows * 0.2)
    return n_train, n_rows - n_test, n_rows


def load_wide(name: str, max_rows: int | None = None):
    """A long-horizon dataset as z-scored values [T, C] (mean/std of the train rows, ddof=0, as
    sklearn's StandardScaler in the papers' loaders), the channel names and the split borders.
    Rows past the test end (ETT's unused tail) are dropped. max_rows (quick mode): keep the
    first rows only and split them 70/10/20."""
    import pandas as pd

    path, kind = WIDE[name]
    df = pd.read_csv(data_root() / path)
    values = df.iloc[:, 1:].to_numpy(np.float64)          # the papers' 'M' setting: every column but date
    cols = [str(c) for c in df.columns[1:]]
    if max_rows is not None:
        values, kind = values[:max_rows], "custom"
    train_end, val_end, test_end = split_borders(len(values), kind)
    values = values[:test_end]
    mu, sd = values[:train_end].mean(0), values[:train_end].std(0)
    return (values - mu) / np.where(sd == 0, 1.0, sd), cols, (train_end, val_end, test_end)


def wide_to_long(values: np.ndarray, cols):
    """Channel-independent long frame: every column of [T, C] is a series (unique_id = column
    name, integer ds 0..T-1)."""
    import pandas as pd

    t, c = values.shape
    return pd.DataFrame({"unique_id": np.repeat(np.asarray(cols, dtype=object), t),
                         "ds": np.tile(np.arange(t), c), "y": values.T.reshape(-1).astype(np.float32)})


def load_long_split(folder: str, prefix: str):
    """A competition's official train and test long frames (unique_id, ds, y)."""
    import pandas as pd

    root = data_root() / folder
    return (pd.read_csv(root / f"{prefix}_train.csv.gz"), pd.read_csv(root / f"{prefix}_test.csv.gz"))


def series_arrays(df, ids=None):
    """{unique_id: y as float64 array, in ds order} of a long frame."""
    df = df.sort_values(["unique_id", "ds"], kind="stable")
    out = {k: g.to_numpy(np.float64) for k, g in df.groupby("unique_id", sort=False)["y"]}
    return out if ids is None else {k: out[k] for k in ids}


# ----------------------------------------------------------------------------- metrics
def smape_m4(y, f) -> float:
    """M4 sMAPE in percent: mean 200 |y - f| / (|y| + |f|) (0 where both are 0)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    d = np.abs(y) + np.abs(f)
    return float(np.mean(np.where(d == 0, 0.0, 200.0 * np.abs(y - f) / np.where(d == 0, 1.0, d))))


def mase_m4(y_train, y, f, m: int) -> float:
    """M4 MASE: mae(y, f) / mean |y_train[t] - y_train[t - m]| (in-sample seasonal naive)."""
    y_train = np.asarray(y_train, np.float64)
    if len(y_train) <= m:
        raise ValueError(f"mase_m4 needs more than m={m} training points, got {len(y_train)}")
    scale = np.mean(np.abs(y_train[m:] - y_train[:-m]))
    return float(np.mean(np.abs(np.asarray(y, np.float64) - np.asarray(f, np.float64))) / scale)


def mape_pct(y, f) -> float:
    """MAPE in percent over the points with y != 0 (tourism's metric in the N-BEATS paper)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    keep = y != 0
    return float(100.0 * np.mean(np.abs(y[keep] - f[keep]) / np.abs(y[keep])))


def acf(x, k: int) -> float:
    """Sample autocorrelation at lag k (R's acf: biased, the full-series variance as denominator)."""
    x = np.asarray(x, np.float64)
    d = x - x.mean()
    return float(np.sum(d[:-k] * d[k:]) / np.sum(d * d))


def seasonality_test(x, m: int) -> bool:
    """M4's 90% autocorrelation test (R benchmarks' SeasonalityTest): seasonal when the series has
    at least 3 m points and |acf(m)| > 1.645 sqrt((1 + 2 sum_{k<m} acf(k)^2) / n)."""
    x = np.asarray(x, np.float64)
    if m <= 1 or len(x) < 3 * m:
        return False
    s = sum(acf(x, k) ** 2 for k in range(1, m))
    return abs(acf(x, m)) > 1.645 * np.sqrt((1 + 2 * s) / len(x))


def seasonal_indices(x, m: int) -> np.ndarray:
    """Classical multiplicative decomposition (R's decompose(type='multiplicative')): the seasonal
    figure [m] by position from the series' start, normalised to mean 1. The trend is the
    centred moving average (2 x m when m is even)."""
    x = np.asarray(x, np.float64)
    w = np.full(m + 1, 1.0 / m) if m % 2 == 0 else np.full(m, 1.0 / m)
    if m % 2 == 0:
        w[0] = w[-1] = 0.5 / m
    half = len(w) // 2
    trend = np.full(len(x), np.nan)
    trend[half: len(x) - half] = np.convolve(x, w, mode="valid")
    ratio = x / trend
    figure = np.array([np.nanmean(ratio[i::m]) for i in range(m)])
    return figure / figure.mean()


def naive2(x, h: int, m: int) -> np.ndarray:
    """M4's Naive2 benchmark: the last value of the seasonally adjusted series (multiplicative
    classical decomposition, applied only when the 90% seasonality test says so), reseasonalised
    with the indices continuing past the end of the series."""
    x = np.asarray(x, np.float64)
    if not seasonality_test(x, m):
        return np.full(h, x[-1])
    fig = seasonal_indices(x, m)
    si_in = fig[np.arange(len(x)) % m]
    si_out = fig[np.arange(len(x), len(x) + h) % m]
    return (x[-1] / si_in[-1]) * si_out


def m4_scores(train: dict, test: dict, fcst: dict, m: int) -> dict:
    """Average sMAPE and MASE over the series of a forecast {uid: [h]}."""
    ids = list(test)
    return {"smape": float(np.mean([smape_m4(test[k], fcst[k]) for k in ids])),
            "mase": float(np.mean([mase_m4(train[k], test[k], fcst[k], m) for k in ids]))}


def owa(scores: dict, naive2_scores: dict) -> float:
    """M4's overall weighted average: the mean of sMAPE and MASE relative to Naive2's."""
    return 0.5 * (scores["smape"] / naive2_scores["smape"] + scores["mase"] / naive2_scores["mase"])


# ----------------------------------------------------------------------------- runs and results
def parse_args(description: str, extra=None):
    """The options every script shares: --quick, --seeds, --out, --only (substring filter)."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="tiny run of the same code path (CI)")
    p.add_argument("--seeds", type=int, nargs="+", default=[1], help="random seeds, one row each")
    p.add_argument("--out", default=str(RESULTS), help="results folder (default experiments/results)")
    p.add_argument("--only", nargs="*", default=None, help="run only rows whose key contains one of these")
    if extra:
        extra(p)
    return p.parse_args()


def versions() -> dict:
    import numba
    import ndiv

    return {"ndiv": getattr(ndiv, "__version__", "?"), "numpy": np.__version__, "numba": numba.__version__,
            "python": platform.python_version()}


class ResultStore:
    """Rows of one table, kept in <out>/<name>.json (and a CSV copy), keyed by `key`. A row
    already in the file is skipped on the next run, so an interrupted script resumes."""

    def __init__(self, out, name: str, key: tuple[str, ...]):
        self.dir = Path(out)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.json, self.csv, self.key = self.dir / f"{name}.json", self.dir / f"{name}.csv", key
        self.rows = json.loads(self.json.read_text())["rows"] if self.json.exists() else []

    def _k(self, row) -> tuple:
        return tuple(str(row[k]) for k in self.key)

    def has(self, **key) -> bool:
        return self._k(key) in {self._k(r) for r in self.rows}

    def add(self, row: dict) -> None:
        row = dict(row, versions=versions(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if self.json.exists():                       # rows another run of the script saved meanwhile
            self.rows = json.loads(self.json.read_text())["rows"]
        self.rows = [r for r in self.rows if self._k(r) != self._k(row)] + [row]
        self.json.write_text(json.dumps({"rows": self.rows}, indent=1, default=float))
        cols = list(dict.fromkeys(k for r in self.rows for k in r if k != "versions"))
        with open(self.csv, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            w.writerows(self.rows)

    def print_table(self, cols) -> None:
        print(" | ".join(cols))
        for r in self.rows:
            print(" | ".join(_fmt(r.get(c, "")) for c in cols))


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def seed_all(seed: int) -> None:
    np.random.seed(seed)


def fit_predict(model, train_df) -> tuple[dict, float]:
    """Fit one ndiv model on a long frame with integer ds and forecast its h steps after each
    series: ({uid: [h]}, wall seconds of fit + predict)."""
    import ndiv

    fc = ndiv.Forecaster(models=[model], freq=1)
    t0 = time.perf_counter()
    fc.fit(train_df)
    out = fc.predict()
    wall = time.perf_counter() - t0
    name = str(model)
    out = out.sort_values(["unique_id", "ds"], kind="stable")
    return {k: g.to_numpy(np.float64) for k, g in out.groupby("unique_id", sort=False)[name]}, wall


def quick_subset(train_df, test_df, n_series: int):
    """The first n_series series of a train/test pair (quick mode)."""
    keep = sorted(train_df["unique_id"].unique())[:n_series]
    return train_df[train_df["unique_id"].isin(keep)], test_df[test_df["unique_id"].isin(keep)]


def integer_ds(train_df, test_df):
    """Dated long frames -> integer ds 1..n per series (test continues after train), as M4's."""
    train_df = train_df.sort_values(["unique_id", "ds"], kind="stable").copy()
    test_df = test_df.sort_values(["unique_id", "ds"], kind="stable").copy()
    train_df["ds"] = train_df.groupby("unique_id").cumcount() + 1
    n = train_df.groupby("unique_id")["ds"].max()
    test_df["ds"] = test_df.groupby("unique_id").cumcount() + 1 + test_df["unique_id"].map(n).to_numpy()
    return train_df, test_df

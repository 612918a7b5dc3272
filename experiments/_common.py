"""Shared pieces of the benchmark scripts: data loading with the papers' splits, the
competitions' metrics (M4 sMAPE / MASE / OWA against Naive2, tourism MAPE), and a resumable
results store (JSON + CSV under experiments/results/). The loaders and M4 metrics are the
package's (ndiv.datasets.load_long_horizon, ndiv.metrics), under the scripts' names here.

Not part of the installed package: run the scripts from the repository root,
`python experiments/long_horizon.py --quick`.
"""
from __future__ import annotations

import argparse
import csv
import io
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


# the long-horizon tables, split and scaled as in the papers, and the M4 metrics live in the package
# (ndiv.datasets.long_horizon, ndiv.metrics); the names below keep the scripts' calls working
from ndiv import datasets as _datasets, metrics as _metrics  # noqa: E402

WIDE = _datasets.LONG_HORIZON              # name -> (file under data_root(), split kind)
split_borders, wide_to_long = _datasets.split_borders, _datasets.wide_to_long
smape_m4, seasonality_test, naive2 = _metrics.m4_smape, _metrics.seasonality_test, _metrics.naive2
m4_scores, owa = _metrics.m4_scores, _metrics.owa


def load_wide(name: str, max_rows: int | None = None):
    """ndiv.datasets.load_long_horizon from the shared data folder, as (z-scored values [T, C],
    channel names, (train_end, val_end, test_end)). max_rows (quick mode): keep the first rows
    only and split them 70/10/20."""
    d = _datasets.load_long_horizon(name, data_root(), max_rows=max_rows)
    return np.array(d.values), list(d.columns), (d.train_end, d.val_end, d.test_end)


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
def mase_m4(y_train, y, f, m: int) -> float:
    """M4 MASE (ndiv.metrics.mase): mae(y, f) / mean |y_train[t] - y_train[t - m]|."""
    if len(y_train) <= m:
        raise ValueError(f"mase_m4 needs more than m={m} training points, got {len(y_train)}")
    return _metrics.mase(y, f, y_train, m)


def mape_pct(y, f) -> float:
    """MAPE in percent over the points with y != 0 (tourism's metric in the N-BEATS paper)."""
    y, f = np.asarray(y, np.float64), np.asarray(f, np.float64)
    keep = y != 0
    return float(100.0 * np.mean(np.abs(y[keep] - f[keep]) / np.abs(y[keep])))


def acf(x, k: int) -> float:
    """Sample autocorrelation at lag k (R's acf: biased, the full-series variance as denominator)."""
    return _metrics._acf(np.asarray(x, np.float64), k)


def seasonal_indices(x, m: int) -> np.ndarray:
    """The multiplicative seasonal figure [m] of M4's Naive2 (R's decompose), mean 1."""
    return _metrics._seasonal_indices(np.asarray(x, np.float64), m)


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

    def get(self, **key) -> dict | None:
        """The saved row with this key, or None."""
        k = self._k(key)
        return next((r for r in self.rows if self._k(r) == k), None)

    def has(self, **key) -> bool:
        return self.get(**key) is not None

    def add(self, row: dict) -> None:
        row = dict(row, versions=versions(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        if self.json.exists():                       # rows another run of the script saved meanwhile
            self.rows = json.loads(self.json.read_text())["rows"]
        self.rows = [r for r in self.rows if self._k(r) != self._k(row)] + [row]
        _write_atomic(self.json, json.dumps({"rows": self.rows}, indent=1, default=float))
        cols = list(dict.fromkeys(k for r in self.rows for k in r if k != "versions"))
        text = io.StringIO(newline="")
        w = csv.DictWriter(text, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        w.writerows(self.rows)
        _write_atomic(self.csv, text.getvalue())

    def print_table(self, cols) -> None:
        print(" | ".join(cols))
        for r in self.rows:
            print(" | ".join(_fmt(r.get(c, "")) for c in cols))


def _write_atomic(path: Path, text: str) -> None:
    """Write through a temporary file in the same folder and rename it over path: a run killed
    mid-write leaves the previous file whole."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as fh:
        fh.write(text)
    os.replace(tmp, path)


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

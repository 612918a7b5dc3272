"""Multivariate models on real multi-series data: electricity_weekly's clients and exchange_rate.

    python examples/multivariate_electricity.py [--clients 50] [--steps 300]

A multivariate model (`n_series` = the number of series) sees every series in each window, so
the series must be aligned: same dates, same length. electricity_weekly (Monash: 321 clients x
156 weeks) is; this fits TSMixer, iTransformer and MLPMultivariate on its first `--clients`
clients, holds out the last 8 weeks and compares each model's MAE with repeating each client's
last week. Then the same for exchange_rate's 8 daily series (h = 7 days; the last value is hard
to beat on exchange rates, a random walk). Needs ../shared/data (see each folder's README).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import ndiv
from ndiv.models import MLPMultivariate, TSMixer, iTransformer

DATA = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"


def electricity(n_clients: int) -> pd.DataFrame:
    df = pd.read_csv(DATA / "electricity_weekly" / "electricity_weekly_long.csv.gz", parse_dates=["ds"])
    keep = sorted(df["unique_id"].unique(), key=lambda u: int(u[1:]))[:n_clients]
    return df[df["unique_id"].isin(keep)].reset_index(drop=True)


def exchange_rate() -> pd.DataFrame:
    raw = pd.read_csv(DATA / "exchange_rate" / "exchange_rate.csv")
    raw["date"] = pd.to_datetime(raw["date"], format="%Y/%m/%d %H:%M")
    return raw.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})


def evaluate(df, h, input_size, freq, steps, title):
    n = df["unique_id"].nunique()
    last = df["ds"].max()
    cut = np.sort(df["ds"].unique())[-h - 1]
    train, test = df[df["ds"] <= cut], df[df["ds"] > cut]
    common = dict(h=h, input_size=input_size, n_series=n, max_steps=steps, scaler_type="standard",
                  learning_rate=1e-3, random_seed=1, enable_progress_bar=False)
    models = [TSMixer(**common, dropout=0.1), iTransformer(**common, hidden_size=64, n_heads=4, d_ff=128),
              MLPMultivariate(**common, hidden_size=256)]
    pred = ndiv.Forecaster(models, freq=freq).fit(train).predict()
    merged = test.merge(pred, on=["unique_id", "ds"])
    naive = merged["unique_id"].map(train.groupby("unique_id")["y"].last())
    print(f"\n{title}: {n} series, h={h}, input_size={input_size}, {steps} steps, test ends {last:%Y-%m-%d}")
    print(f"  last value       MAE {np.mean(np.abs(merged['y'] - naive)):.4g}")
    for m in models:
        name = type(m).__name__
        print(f"  {name:16s} MAE {np.mean(np.abs(merged['y'] - merged[name])):.4g}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()
    ndiv.set_num_threads(1)
    evaluate(electricity(args.clients), 8, 52, "W-SUN", args.steps, "electricity_weekly")
    evaluate(exchange_rate().groupby("unique_id").tail(1000), 7, 56, "D", args.steps, "exchange_rate (last 1000 days)")


if __name__ == "__main__":
    main()

"""NBEATSx on EPF: next-day Nord Pool electricity prices from the day-ahead load and wind forecasts.

    python examples/epf_nbeatsx.py [--days 56] [--steps 300]

The two exogenous columns are forecasts published the day before, so they are future-known
(`futr_exog_list`): the model reads them over its input window and over the 24 hours it
forecasts, and predict() needs them for those hours (`futr_df`). Trains on the `--days` days
before the usual EPF test period (its last 728 days), forecasts its first day and compares with
EPF's naive benchmark (Lago et al. 2021: yesterday's prices, or last week's on Mon/Sat/Sun).
Needs ../shared/data/epf/NP.csv (see its README).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd

import ndiv
from ndiv.models import NBEATSx

NP_CSV = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "epf" / "NP.csv"
H = 24


def load_np() -> pd.DataFrame:
    raw = pd.read_csv(NP_CSV, index_col=0, parse_dates=True)
    raw.columns = [c.strip() for c in raw.columns]          # the source's names start with a space
    return pd.DataFrame({"unique_id": "NP", "ds": raw.index, "y": raw["Price"].to_numpy(np.float64),
                         "load": raw["Grid load forecast"].to_numpy(np.float64),
                         "wind": raw["Wind power forecast"].to_numpy(np.float64)})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--days", type=int, default=56, help="days of history to train on")
    p.add_argument("--steps", type=int, default=300)
    args = p.parse_args()

    df = load_np()
    start = len(df) - 728 * H                                  # first hour of the test period
    history = df.iloc[start - args.days * H:start]
    day = df.iloc[start:start + H]

    model = NBEATSx(h=H, input_size=5 * H, futr_exog_list=["load", "wind"], scaler_type="robust",
                    mlp_units=[[64, 64]] * 3, max_steps=args.steps, random_seed=1)
    fc = ndiv.Forecaster(models=[model], freq="h")
    fc.fit(history)
    forecast = fc.predict(futr_df=day[["unique_id", "ds", "load", "wind"]])

    weekday = day["ds"].iloc[0].dayofweek
    back = 7 if weekday in (0, 5, 6) else 1                    # EPF's naive: last week on Mon/Sat/Sun
    naive = history["y"].to_numpy()[len(history) - back * H:len(history) - (back - 1) * H or None]
    y = day["y"].to_numpy()
    out = forecast.assign(y=y, naive=naive)
    print(out.to_string(index=False, float_format="%.2f"))
    print(f"\nMAE NBEATSx {np.mean(np.abs(out['NBEATSx'] - y)):.3f}   naive {np.mean(np.abs(naive - y)):.3f}")


if __name__ == "__main__":
    main()

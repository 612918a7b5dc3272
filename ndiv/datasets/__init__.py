"""Real datasets shipped inside the package (provenance in ndiv/datasets/README.md), and the
loader of the long-horizon benchmark's wide tables, which are not shipped (long_horizon.py).

    >>> from ndiv.datasets import load_air_passengers
    >>> data = load_air_passengers(as_pandas=False)
    >>> len(data["y"]), data["ds"][0], data["y"][:3].tolist()
    (144, np.datetime64('1949-01-01T00:00:00.000000000'), [112.0, 118.0, 132.0])
"""
from __future__ import annotations

import csv
from importlib import resources

import numpy as np

from ndiv.datasets.long_horizon import LONG_HORIZON, LongHorizonData, load_long_horizon, split_borders, wide_to_long

__all__ = ["AIR_PASSENGERS_FREQ", "AIR_PASSENGERS_SEASON_LENGTH", "load_air_passengers",
           "LONG_HORIZON", "LongHorizonData", "load_long_horizon", "split_borders", "wide_to_long"]

AIR_PASSENGERS_FREQ = "MS"       # month start
AIR_PASSENGERS_SEASON_LENGTH = 12


def _read_csv(name: str) -> dict[str, list[str]]:
    with resources.files(__package__).joinpath(name).open("r", newline="") as f:
        rows = list(csv.reader(f))
    header, body = rows[0], rows[1:]
    return {c: [r[j] for r in body] for j, c in enumerate(header)}


def load_air_passengers(as_pandas: bool | None = None):
    """Box & Jenkins monthly airline passengers (thousands), 1949-01 .. 1960-12, one series.

    Long format: unique_id ('AirPassengers'), ds (month starts, datetime64[ns]), y (float64);
    144 rows, freq='MS', season length 12. The usual split holds out the last 12 months.

    Args:
        as_pandas: True -> pandas DataFrame; False -> dict of NumPy arrays; None (default) ->
            a DataFrame when pandas is installed, else the dict.
    """
    raw = _read_csv("air_passengers.csv")
    cols = {"unique_id": np.array(raw["unique_id"]),
            "ds": np.array(raw["ds"], dtype="datetime64[ns]"),
            "y": np.array(raw["y"], dtype=np.float64)}
    if as_pandas is None:
        try:
            import pandas  # noqa: F401
            as_pandas = True
        except ImportError:
            as_pandas = False
    if as_pandas:
        import pandas as pd
        return pd.DataFrame(cols)
    return cols

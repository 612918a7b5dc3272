"""NeuralForecast's `neuralforecast.utils` names that scripts import: PredictionIntervals
(ndiv/conformal.py) and AirPassengersDF (NeuralForecast's copy of the bundled AirPassengers:
unique_id 1.0, month-end dates; a pandas DataFrame, so it needs pandas)."""
from ndiv.conformal import PredictionIntervals  # noqa: F401


def __getattr__(name):
    if name == "AirPassengersDF":
        import pandas as pd

        from ndiv.datasets import load_air_passengers
        df = load_air_passengers(as_pandas=True)
        return pd.DataFrame({"unique_id": 1.0, "ds": df["ds"] + pd.offsets.MonthEnd(0),
                             "y": df["y"].to_numpy(dtype="float32")})
    raise AttributeError(f"module 'ndiv.utils' has no attribute {name!r}")

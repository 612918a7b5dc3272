"""Data: long-format tables -> checked TimeSeriesDataset -> training/validation/prediction windows,
with NeuralForecast's temporal (per window) and local (per series) scalers.

    from ndiv.data import TimeSeriesDataset, TrainWindowSampler, TemporalNorm
    ds = TimeSeriesDataset.from_df(df, freq="MS")                # df: unique_id, ds, y, exog...
    sampler = TrainWindowSampler(ds, input_size=24, h=12, random_seed=1)
    batch = sampler.sample(scaler=TemporalNorm("robust", dim=1))  # insample_y [W, 24, 1], ...

pandas is optional: a dict of 1-D arrays works wherever a DataFrame does.
"""
from ndiv.data.dataset import AVAILABLE_MASK, TimeSeriesDataset
from ndiv.data.frame import columns_of, frame_kind, is_pandas, is_polars, make_frame
from ndiv.data.freq import make_future_dates
from ndiv.data.local_scalers import LOCAL_SCALER_TYPES, LocalScaler, apply_local_scalers, fit_local_scalers
from ndiv.data.scalers import SCALER_TYPES, TemporalNorm, inverse_scale, scale
from ndiv.data.windows import (SeriesSampler, TrainWindowSampler, availability_fractions, create_windows,
                               normalize_windows, parse_windows)

__all__ = [
    "AVAILABLE_MASK", "TimeSeriesDataset", "columns_of", "frame_kind", "is_pandas", "is_polars", "make_frame",
    "make_future_dates",
    "LOCAL_SCALER_TYPES", "LocalScaler", "apply_local_scalers", "fit_local_scalers", "SCALER_TYPES",
    "TemporalNorm", "inverse_scale", "scale", "SeriesSampler", "TrainWindowSampler",
    "availability_fractions", "create_windows", "normalize_windows", "parse_windows",
]

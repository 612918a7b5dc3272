import numpy as np

from ndiv.data import TimeSeriesDataset
from ndiv.datasets import AIR_PASSENGERS_FREQ, load_air_passengers


def test_air_passengers_without_pandas():
    data = load_air_passengers(as_pandas=False)
    assert set(data) == {"unique_id", "ds", "y"} and len(data["y"]) == 144
    assert data["y"][:3].tolist() == [112.0, 118.0, 132.0] and data["y"][-1] == 432.0
    ds = TimeSeriesDataset.from_df(data, freq=AIR_PASSENGERS_FREQ)     # a regular 'MS' grid
    assert ds.n_series == 1 and str(ds.last_ds[0])[:10] == "1960-12-01"


def test_air_passengers_same_as_shared_copy():
    import os
    import pytest
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "air_passengers", "air_passengers.csv")
    if not os.path.exists(path):
        pytest.skip("shared/data not present")
    pd = pytest.importorskip("pandas")
    ref = pd.read_csv(path, parse_dates=["ds"])
    ours = load_air_passengers(as_pandas=True)
    np.testing.assert_array_equal(ours["y"].to_numpy(), ref["y"].to_numpy(dtype=float))
    np.testing.assert_array_equal(ours["ds"].to_numpy(), ref["ds"].to_numpy())


def test_m4_weekly_real_data():
    """359 real series of different lengths, integer ds: validated, windowed, scaled, finite."""
    import os
    import pytest
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "m4", "m4_weekly_train.csv.gz")
    if not os.path.exists(path):
        pytest.skip("shared/data not present")
    pd = pytest.importorskip("pandas")
    from ndiv.data import TemporalNorm, TrainWindowSampler
    ds = TimeSeriesDataset.from_df(pd.read_csv(path), freq=1)
    assert ds.n_series == 359 and ds.min_size < ds.max_size
    sampler = TrainWindowSampler(ds, input_size=26, h=13, batch_size=64, windows_batch_size=256, val_size=13)
    batch = sampler.sample(TemporalNorm("robust", dim=1))
    assert batch["insample_y"].shape == (256, 26, 1)
    assert all(np.isfinite(batch[k]).all() for k in ("insample_y", "outsample_y", "y_loc", "y_scale"))
    assert batch["outsample_mask"].sum() > 0

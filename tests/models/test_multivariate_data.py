"""The multivariate models on real multi-series data beyond ETTh1: exchange_rate's 8 daily series
and a slice of electricity_weekly (Monash, 321 clients x 156 weeks), from ../shared/data (the
tests skip where it is absent). Tiny configurations: each model trains (its loss falls), forecasts
every series over the horizon, and a global fit beats repeating the last value where the data
allow it (electricity's clients share a strong yearly pattern; exchange rates are a random walk,
where the last value is the benchmark to lose to, so there the test asks for finite, per-series
forecasts near each series' level instead)."""
import os

import numpy as np
import pytest

import ndiv
from ndiv.models import MLPMultivariate, StemGNN, TSMixer, TSMixerx, iTransformer

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data")

TINY = {
    MLPMultivariate: dict(hidden_size=32, num_layers=2),
    TSMixer: dict(ff_dim=16, n_block=1, dropout=0.0),
    TSMixerx: dict(ff_dim=16, n_block=1, dropout=0.0),
    StemGNN: dict(multi_layer=1, dropout_rate=0.0),
    iTransformer: dict(hidden_size=16, n_heads=2, d_ff=16, e_layers=1, dropout=0.0),
}


def exchange_rate(last_days: int):
    """exchange_rate.csv (wide: date and 8 currency columns) -> its last days, long format."""
    pd = pytest.importorskip("pandas")
    path = os.path.join(DATA, "exchange_rate", "exchange_rate.csv")
    if not os.path.exists(path):
        pytest.skip("../shared/data/exchange_rate is absent")
    raw = pd.read_csv(path).tail(last_days)
    raw["date"] = pd.to_datetime(raw["date"], format="%Y/%m/%d %H:%M")
    return raw.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})


def electricity_weekly(n_series: int):
    """The first n_series clients of electricity_weekly (156 weeks each, aligned), long format."""
    pd = pytest.importorskip("pandas")
    path = os.path.join(DATA, "electricity_weekly", "electricity_weekly_long.csv.gz")
    if not os.path.exists(path):
        pytest.skip("../shared/data/electricity_weekly is absent")
    df = pd.read_csv(path, parse_dates=["ds"])
    keep = sorted(df["unique_id"].unique(), key=lambda u: int(u[1:]))[:n_series]
    return df[df["unique_id"].isin(keep)].reset_index(drop=True)


@pytest.mark.parametrize("cls", list(TINY), ids=lambda c: c.__name__)
def test_exchange_rate_eight_series(cls):
    """8 series in every batch: the loss falls, and each series gets its own h forecasts, finite
    and within a few of its recent standard deviations of its last value."""
    df = exchange_rate(400)
    h = 7
    last = df["ds"].max()
    train = df[df["ds"] <= last - np.timedelta64(h, "D")]
    model = cls(h=h, input_size=28, n_series=8, max_steps=60, learning_rate=3e-3, scaler_type="standard",
                random_seed=1, enable_progress_bar=False, **TINY[cls])
    pred = ndiv.Forecaster([model], freq="D").fit(train).predict()
    assert len(pred) == 8 * h and sorted(pred["unique_id"].unique()) == sorted(df["unique_id"].unique())
    losses = [v for _, v in model.train_trajectories]
    assert np.mean(losses[-10:]) < np.mean(losses[:10]), losses
    f = pred[cls.__name__].to_numpy()
    assert np.isfinite(f).all()
    stats = train.groupby("unique_id")["y"].agg(last="last", std=lambda s: s.tail(60).std())
    merged = pred.merge(stats, left_on="unique_id", right_index=True)
    assert (np.abs(merged[cls.__name__] - merged["last"]) < 6 * merged["std"] + 1e-3).all()


def test_electricity_weekly_slice_beats_last_value():
    """20 clients x 156 weeks, one TSMixer over all of them: the held-out 8 weeks are forecast
    better than repeating each client's last week (mean MAE over clients and weeks), and
    cross_validation gives one forecast per client, window and week."""
    pd = pytest.importorskip("pandas")
    df = electricity_weekly(20)
    h = 8
    last = df["ds"].max()
    train = df[df["ds"] <= last - pd.Timedelta(weeks=h)]
    test = df[df["ds"] > last - pd.Timedelta(weeks=h)]
    model = TSMixer(h=h, input_size=52, n_series=20, max_steps=200, learning_rate=3e-3, scaler_type="standard",
                    random_seed=1, enable_progress_bar=False, **TINY[TSMixer])
    fc = ndiv.Forecaster([model], freq="W-SUN")
    pred = fc.fit(train).predict()
    merged = test.merge(pred, on=["unique_id", "ds"])
    assert len(merged) == 20 * h
    naive = merged["unique_id"].map(train.groupby("unique_id")["y"].last())
    mae, mae_naive = (float(np.mean(np.abs(merged["y"] - v))) for v in (merged["TSMixer"], naive))
    print(f"electricity_weekly 20 clients, h=8: MAE {mae:.1f}, last value {mae_naive:.1f}")
    assert mae < mae_naive, (mae, mae_naive)
    cv = fc.cross_validation(train, n_windows=2, step_size=h)
    assert len(cv) == 2 * 20 * h and cv["TSMixer"].notna().all()

"""Real exogenous data: NBEATSx and TiDE on a slice of EPF (Nord Pool day-ahead prices with the
day-ahead load and wind forecasts as future-known inputs), through ndiv.Forecaster with futr_df
at predict. Skips when ../shared/data is absent."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ndiv
from ndiv.models import NBEATSx, TiDE

NP_CSV = Path(__file__).parents[2] / ".." / "shared" / "data" / "epf" / "NP.csv"
H, DAYS = 24, 28                    # forecast one day from the four weeks before it
HELD_OUT_DAY = 708                  # Monday 2017-01-16, in the usual test period (the last 728 days)


def _np_slice():
    """(history, next_day): DAYS days of NP hours, then the held-out day (unique_id, ds, y, load, wind)."""
    if not NP_CSV.exists():
        pytest.skip(f"EPF data not found at {NP_CSV}")
    pd = pytest.importorskip("pandas")
    raw = pd.read_csv(NP_CSV, index_col=0, parse_dates=True)
    raw.columns = [c.strip() for c in raw.columns]
    df = pd.DataFrame({"unique_id": "NP", "ds": raw.index, "y": raw["Price"].to_numpy(np.float64),
                       "load": raw["Grid load forecast"].to_numpy(np.float64),
                       "wind": raw["Wind power forecast"].to_numpy(np.float64)})
    end = len(df) - HELD_OUT_DAY * H
    return df.iloc[end - DAYS * H:end].reset_index(drop=True), df.iloc[end:end + H].reset_index(drop=True)


# (model, hyperparameters, its MAE / the naive's MAE must stay below): on this day NBEATSx beats the
# naive by ~17% for seeds 1-3 (MAE 9.74, 9.64, 9.90 against 11.79); TiDE this small only matches it
# (11.73, 11.85, 11.80; 200 steps and 64 units do no better), so it is held to within 5% of it.
MODELS = [
    (NBEATSx, dict(mlp_units=[[32, 32]] * 3), 1.0),
    (TiDE, dict(hidden_size=32, decoder_output_dim=4, temporal_decoder_dim=8), 1.05),
]


@pytest.mark.parametrize("cls, kw, ratio", MODELS, ids=[c.__name__ for c, _, _ in MODELS])
def test_epf_future_exogenous_forecast_against_the_naive_forecast(cls, kw, ratio):
    history, day = _np_slice()
    model = cls(h=H, input_size=3 * H, futr_exog_list=["load", "wind"], scaler_type="robust", max_steps=100,
                windows_batch_size=64, random_seed=1, enable_progress_bar=False, **kw)
    fc = ndiv.Forecaster(models=[model], freq="h")
    fc.fit(history)
    with pytest.raises(ValueError, match="futr"):
        fc.predict()                                    # the day's exogenous forecasts are required
    out = fc.predict(futr_df=day[["unique_id", "ds", "load", "wind"]])
    name = cls.__name__
    assert list(out.columns) == ["unique_id", "ds", name]
    assert len(out) == H
    np.testing.assert_array_equal(out["ds"].to_numpy(), day["ds"].to_numpy())
    pred = out[name].to_numpy()
    assert np.isfinite(pred).all()
    mae = np.mean(np.abs(pred - day["y"].to_numpy()))
    # EPF's naive benchmark (Lago et al. 2021): a Monday's prices are those of the Monday before
    naive = np.mean(np.abs(history["y"].to_numpy()[-7 * H:-6 * H] - day["y"].to_numpy()))
    assert mae < ratio * naive, (name, mae, naive)

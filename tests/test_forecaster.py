"""Forecaster: fit/predict/cross_validation/predict_insample/save/load, and its errors."""
from __future__ import annotations

import inspect
import json
import os

import numpy as np
import pytest

import ndiv
from ndiv.losses import MAE, MQLoss, DistributionLoss
from ndiv.models import MLP

from .models.nf_reference import air_passengers, seasonal_naive_mae


def small_mlp(**kw):
    kw = {"h": 12, "input_size": 24, "hidden_size": 64, "max_steps": 150, "scaler_type": "robust",
          "enable_progress_bar": False, **kw}
    return MLP(**kw)


def two_series(n=60, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ys = [10 + np.sin(2 * np.pi * t / 12) * 3 + rng.normal(0, 0.1, n), 5 + 0.05 * t + rng.normal(0, 0.1, n)]
    return {"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": np.concatenate(ys),
            "x": np.tile(np.cos(t), 2)}


def test_mlp_beats_seasonal_naive_on_air_passengers():
    train, test = air_passengers()
    fc = ndiv.Forecaster(models=[small_mlp(max_steps=300)], freq="MS")
    fc.fit(train)
    pred = fc.predict()
    pred = pred if isinstance(pred, dict) else {k: pred[k].to_numpy() for k in pred.columns}
    assert list(pred) == ["unique_id", "ds", "MLP"]
    assert np.isfinite(pred["MLP"]).all() and len(pred["MLP"]) == 12
    np.testing.assert_array_equal(pred["ds"], test["ds"])
    mae = float(np.mean(np.abs(pred["MLP"] - test["y"])))
    assert mae < 0.7 * seasonal_naive_mae(train, test), mae


def test_same_seed_same_forecast_and_different_seed_differs():
    data = two_series()
    p1 = ndiv.Forecaster([small_mlp(max_steps=30, random_seed=3)], freq=1).fit(data).predict()
    p2 = ndiv.Forecaster([small_mlp(max_steps=30, random_seed=3)], freq=1).fit(data).predict()
    p3 = ndiv.Forecaster([small_mlp(max_steps=30, random_seed=4)], freq=1).fit(data).predict()
    np.testing.assert_array_equal(p1["MLP"], p2["MLP"])
    assert not np.array_equal(p1["MLP"], p3["MLP"])


def test_dedupe_gives_the_same_training_as_every_drawn_window():
    data = two_series()
    a = ndiv.Forecaster([small_mlp(max_steps=5, dedupe_windows=True)], freq=1).fit(data)
    b = ndiv.Forecaster([small_mlp(max_steps=5, dedupe_windows=False)], freq=1).fit(data)
    la = [v for _, v in a.models[0].train_trajectories]
    lb = [v for _, v in b.models[0].train_trajectories]
    np.testing.assert_allclose(la, lb, rtol=2e-4)
    np.testing.assert_allclose(a.predict()["MLP"], b.predict()["MLP"], rtol=1e-3, atol=1e-3)


def test_exogenous_and_futr_df():
    data = two_series()
    model = small_mlp(max_steps=20, futr_exog_list=["x"], hist_exog_list=[])
    fc = ndiv.Forecaster([model], freq=1).fit(data)
    with pytest.raises(ValueError, match="futr_df"):
        fc.predict()
    futr = {"unique_id": np.repeat(["a", "b"], 12), "ds": np.tile(np.arange(60, 72), 2), "x": np.zeros(24)}
    out = fc.predict(futr_df=futr)
    assert len(out["MLP"]) == 24 and np.isfinite(out["MLP"]).all()
    short = {k: v[:-1] for k, v in futr.items()}
    with pytest.raises(ValueError, match="futr_df"):
        fc.predict(futr_df=short)


def test_interval_columns_mqloss_and_distribution():
    data = two_series()
    m1 = small_mlp(max_steps=20, loss=MQLoss(level=[80, 90]), alias="MQ")
    m2 = small_mlp(max_steps=20, loss=DistributionLoss("Normal", level=[90]), alias="N")
    out = ndiv.Forecaster([m1, m2], freq=1).fit(data).predict()
    cols = list(out)
    assert cols[:2] == ["unique_id", "ds"]
    for c in ["MQ-median", "MQ-lo-90", "MQ-lo-80", "MQ-hi-80", "MQ-hi-90", "N", "N-median", "N-lo-90", "N-hi-90"]:
        assert c in cols, (c, cols)
    assert (out["MQ-lo-90"] <= out["MQ-hi-90"] + 1e-6).all()
    assert (out["N-lo-90"] <= out["N-median"]).all() and (out["N-median"] <= out["N-hi-90"]).all()


def test_cross_validation_windows_and_cutoffs():
    data = two_series(n=60)
    fc = ndiv.Forecaster([small_mlp(h=6, input_size=12, max_steps=10)], freq=1)
    cv = fc.cross_validation(data, n_windows=3, step_size=4)
    assert list(cv)[:3] == ["unique_id", "ds", "cutoff"] and {"y", "MLP"} <= set(cv)
    assert len(cv["MLP"]) == 2 * 3 * 6
    a = cv["unique_id"] == "a"
    np.testing.assert_array_equal(np.unique(cv["cutoff"][a]), [45, 49, 53])
    for c in (45, 49, 53):  # test_size = h + step * (n_windows - 1) = 14: first cutoff 59 - 14
        sel = a & (cv["cutoff"] == c)
        np.testing.assert_array_equal(cv["ds"][sel], np.arange(c + 1, c + 7))
        np.testing.assert_allclose(cv["y"][sel], data["y"][:60][c + 1:c + 7], rtol=1e-6)


def test_predict_insample_covers_the_history():
    data = two_series(n=40)
    fc = ndiv.Forecaster([small_mlp(h=4, input_size=8, max_steps=10)], freq=1).fit(data)
    ins = fc.predict_insample(step_size=4)
    assert set(["unique_id", "ds", "cutoff", "y", "MLP"]) <= set(ins)
    assert np.isfinite(ins["MLP"]).all()
    a = ins["unique_id"] == "a"
    assert (ins["ds"][a] > ins["cutoff"][a]).all() and (ins["ds"][a] - ins["cutoff"][a] <= 4).all()
    np.testing.assert_allclose(ins["y"][a], data["y"][:40][ins["ds"][a]], rtol=1e-6)


def test_save_load_round_trip(tmp_path):
    data = two_series()
    fc = ndiv.Forecaster([small_mlp(max_steps=10, loss=MQLoss(level=[80]))], freq=1, local_scaler_type="standard")
    fc.fit(data)
    before = fc.predict()
    fc.save(str(tmp_path / "fc"))
    files = sorted(os.listdir(tmp_path / "fc"))
    assert "forecaster.json" in files and any(f.endswith(".safetensors") for f in files)
    assert not any(f.endswith((".pkl", ".pt", ".ckpt")) for f in files)
    json.load(open(tmp_path / "fc" / "forecaster.json"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "fc"))
    after = loaded.predict()
    for k in before:
        np.testing.assert_array_equal(np.asarray(before[k]), np.asarray(after[k]))
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fc.save(str(tmp_path / "fc"))
    with pytest.raises(FileNotFoundError, match="Forecaster.save"):
        ndiv.Forecaster.load(str(tmp_path / "nothing"))


def test_local_scaler_round_trip_matches_scale():
    data = two_series()
    data["y"] = data["y"] * 1000 + 5000
    fc = ndiv.Forecaster([small_mlp(max_steps=60)], freq=1, local_scaler_type="standard").fit(data)
    out = fc.predict()
    assert 3000 < np.median(out["MLP"]) < 20000


# -- errors ----------------------------------------------------------------------------------
def test_unknown_model_option_and_bad_hyperparameters():
    with pytest.raises(TypeError, match=r"unknown option.*'hiden_size'"):
        MLP(h=12, input_size=24, hiden_size=3)
    with pytest.raises(ValueError, match="h must be a positive integer"):
        MLP(h=0, input_size=24)
    with pytest.raises(ValueError, match="learning_rate"):
        MLP(h=1, input_size=2, learning_rate=-1.0)
    from ndiv.models.base import BaseModel

    class NoExog(BaseModel):
        def __init__(self, h, input_size, **kw):
            super().__init__(h=h, input_size=input_size, **kw)

    with pytest.raises(ValueError, match="does not support futr exogenous"):
        NoExog(h=1, input_size=2, futr_exog_list=["x"])


def test_signature_shows_shared_options_with_model_defaults():
    sig = inspect.signature(MLP)
    assert "hidden_size" in sig.parameters and "max_steps" in sig.parameters
    assert sig.parameters["learning_rate"].default == 1e-3
    assert sig.parameters["scaler_type"].default == "identity"


def test_data_errors_are_named():
    data = two_series()
    fc = ndiv.Forecaster([small_mlp(max_steps=2)], freq=1)
    bad = dict(data)
    bad["y"] = data["y"].copy()
    bad["y"][5] = np.nan
    with pytest.raises(ValueError, match=r"y.*NaN|NaN.*y"):
        fc.fit(bad)
    bad = {k: np.concatenate([v, v[:1]]) for k, v in data.items()}
    with pytest.raises(ValueError, match="duplicated"):
        fc.fit(bad)
    with pytest.raises(ValueError, match="missing column|'y'"):
        fc.fit({k: v for k, v in data.items() if k != "y"})
    short = {k: v[np.r_[0:10, 60:70]] for k, v in data.items()}
    with pytest.raises(ValueError, match="short|shorter"):
        fc.fit(short)
    with pytest.raises(ValueError, match="lacks the exogenous column"):
        ndiv.Forecaster([small_mlp(max_steps=2, hist_exog_list=["zzz"])], freq=1).fit(data)
    gap = {k: np.delete(v, 7) for k, v in data.items()}
    with pytest.raises(ValueError, match="freq|regular|gap|missing"):
        fc.fit(gap)
    with pytest.raises(ValueError, match="fit"):
        ndiv.Forecaster([small_mlp()], freq=1).predict()


def test_non_finite_loss_stops_training():
    data = two_series()
    data["y"] = data["y"] * 1e37  # finite in float32 (|y| < 3.4e38), but the loss's sum over windows overflows
    fc = ndiv.Forecaster([small_mlp(max_steps=50, scaler_type="identity", learning_rate=10.0, loss=MAE())], freq=1)
    with pytest.raises(FloatingPointError, match="training loss became"):
        fc.fit(data)

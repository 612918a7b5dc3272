"""Conformal prediction intervals (ndiv/conformal.py) as NeuralForecast 3.3's: the interval math
equal to NeuralForecast's functions on the same scores, the columns and their order, and
Forecaster.fit(prediction_intervals=) giving point-loss models predict(level=)."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.conformal import (PredictionIntervals, conformal_distribution, conformal_error, cuts,
                            interval_names)
from ndiv.losses import MAE, MQLoss
from ndiv.models import MLP

KW = dict(h=4, input_size=8, hidden_size=8, num_layers=1, max_steps=5, enable_progress_bar=False)


def data(n=40, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ys = [10 + 3 * np.sin(t / 2) + rng.normal(0, 0.3, n), 100 + t + rng.normal(0, 2, n)]
    return {"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": np.concatenate(ys)}


def test_prediction_intervals_checks_its_arguments():
    assert repr(PredictionIntervals()) == "PredictionIntervals(n_windows=2, method='conformal_distribution', step_size=1)"
    with pytest.raises(ValueError, match="n_windows must be an integer >= 2, got 1; conformal intervals need"):
        PredictionIntervals(n_windows=1)
    with pytest.raises(ValueError, match=r"method must be one of \['conformal_distribution', 'conformal_error'\]"):
        PredictionIntervals(method="bootstrap")
    with pytest.raises(ValueError, match="step_size must be an integer >= 1, got 0"):
        PredictionIntervals(step_size=0)
    assert ndiv.PredictionIntervals is PredictionIntervals
    from ndiv.utils import PredictionIntervals as P
    assert P is PredictionIntervals


@pytest.mark.parametrize("method", ["conformal_distribution", "conformal_error"])
@pytest.mark.parametrize("request_", [dict(level=[80, 90]), dict(quantiles=[0.1, 0.5, 0.9])])
def test_interval_math_and_names_equal_neuralforecast(method, request_):
    pd = pytest.importorskip("pandas")
    nf_utils = pytest.importorskip("neuralforecast.utils")
    rng = np.random.default_rng(1)
    S, W, h = 3, 4, 5
    point = rng.normal(size=(S * h, 1))
    scores = np.abs(rng.normal(size=(S, W, h)))
    cs_df = pd.DataFrame({"M": scores.reshape(-1)})             # rows: series, window, step (NF's sort)
    nf_fn = nf_utils.get_prediction_interval_method(method)
    expect, nf_cols = nf_fn(point, cs_df, model="M", cs_n_windows=W, n_series=S, horizon=h,
                            level=request_.get("level"), quantiles=request_.get("quantiles"))
    mine = {"conformal_distribution": conformal_distribution, "conformal_error": conformal_error}[method]
    got = mine(point[:, 0], scores, cuts(**request_))
    np.testing.assert_allclose(got, expect[:, 1:], rtol=0, atol=1e-12)
    assert interval_names("M", **request_) == nf_cols


def test_point_loss_model_gets_conformal_intervals():
    df = data()
    fc = ndiv.Forecaster([MLP(loss=MAE(), alias="P", **KW), MLP(loss=MQLoss(level=[80, 90]), alias="Q", **KW)], freq=1)
    with pytest.raises(ValueError, match=r"P was trained with loss=MAE\(\).*fit with prediction_intervals="
                                         r"PredictionIntervals\(\) \(conformal intervals\)"):
        fc.fit(df).predict(level=[80])
    fc.fit(df, prediction_intervals=PredictionIntervals(n_windows=3))
    p = fc.predict(level=[90, 80])
    p = p if isinstance(p, dict) else {k: p[k].to_numpy() for k in p.columns}
    assert list(p) == ["unique_id", "ds", "P", "P-lo-90", "P-lo-80", "P-hi-80", "P-hi-90",
                       "Q-median", "Q-lo-90", "Q-lo-80", "Q-hi-80", "Q-hi-90"]
    assert fc._conformity["P"].shape == (2, 3, 4) and "Q" not in fc._conformity
    lo90, lo80, hi80, hi90 = (p[f"P-{s}"] for s in ("lo-90", "lo-80", "hi-80", "hi-90"))
    assert np.all(lo90 <= lo80) and np.all(lo80 <= p["P"]) and np.all(p["P"] <= hi80) and np.all(hi80 <= hi90)
    assert np.all(hi90 > lo90)
    q = fc.predict(quantiles=[0.1, 0.9])
    q = q if isinstance(q, dict) else {k: q[k].to_numpy() for k in q.columns}
    assert [c for c in q if c.startswith("P")] == ["P", "P-ql0.1", "P-ql0.9"]
    assert list(fc.predict())[2:] == ["P", "Q-median", "Q-lo-90", "Q-lo-80", "Q-hi-80", "Q-hi-90"]   # no request: no intervals


def test_conformal_needs_enough_history_and_a_prediction_intervals():
    df = data(n=14)
    fc = ndiv.Forecaster([MLP(loss=MAE(), **KW)], freq=1)
    with pytest.raises(ValueError, match=r"needs at least 15 observations in every series .*the shortest series has 14"):
        fc.fit(df, prediction_intervals=PredictionIntervals(n_windows=11))
    assert not fc._fitted                                        # the failed fit left nothing behind
    with pytest.raises(TypeError, match="prediction_intervals must be a PredictionIntervals"):
        fc.fit(df, prediction_intervals=3)


def test_mqloss_quantiles_do_not_cross_at_predict():
    loss = MQLoss(level=[80, 90])                                # outputs: median, lo-90, lo-80, hi-80, hi-90
    crossed = np.array([[5.0, 9.0, 1.0, 4.0, 8.0]])              # values in output order, crossing
    np.testing.assert_array_equal(loss.sort_quantiles(crossed), [[5.0, 1.0, 4.0, 8.0, 9.0]])
    # an untrained model's quantile heads are in random order: predict sorts them
    fc = ndiv.Forecaster([MLP(loss=MQLoss(level=[50, 80, 90]), **{**KW, "max_steps": 1})], freq=1).fit(data())
    p = fc.predict()
    p = p if isinstance(p, dict) else {k: p[k].to_numpy() for k in p.columns}
    order = ["MLP-lo-90", "MLP-lo-80", "MLP-lo-50", "MLP-median", "MLP-hi-50", "MLP-hi-80", "MLP-hi-90"]
    vals = np.stack([p[c] for c in order], axis=1)
    assert np.all(np.diff(vals, axis=1) >= 0)


def test_conformal_intervals_survive_save_and_load(tmp_path):
    fc = ndiv.Forecaster([MLP(loss=MAE(), alias="P", **KW)], freq=1)
    fc.fit(data(), prediction_intervals=PredictionIntervals(n_windows=3, method="conformal_error"))
    want = fc.predict(level=[80])
    fc.save(str(tmp_path / "m"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "m"))
    assert loaded.prediction_intervals.method == "conformal_error" and loaded.prediction_intervals.n_windows == 3
    got = loaded.predict(level=[80])
    for col in ("P", "P-lo-80", "P-hi-80"):
        np.testing.assert_array_equal(np.asarray(got[col]), np.asarray(want[col]))
    # an edited score file is named, never used
    path = tmp_path / "m" / "conformity.safetensors"
    path.write_bytes(path.read_bytes()[:-8])
    with pytest.raises(ValueError, match="conformity.safetensors"):
        ndiv.Forecaster.load(str(tmp_path / "m"))

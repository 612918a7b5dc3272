"""The search itself, in this process (backend=None): tiny AutoMLP searches on AirPassengers."""
from __future__ import annotations

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pd = pytest.importorskip("pandas")

from ndiv import Forecaster  # noqa: E402
from ndiv.auto import AutoMLP, spaces  # noqa: E402
from ndiv.datasets import load_air_passengers  # noqa: E402

H = 12


def tiny_config(**over):
    cfg = dict(input_size=spaces.choice([12, 24]), hidden_size=spaces.choice([8, 16]), num_layers=1,
               learning_rate=spaces.loguniform(1e-3, 1e-1), max_steps=6, val_check_steps=2,
               windows_batch_size=32, random_seed=spaces.randint(1, 5))
    cfg.update(over)
    return cfg


@pytest.fixture(scope="module")
def df():
    return load_air_passengers(as_pandas=True)


def search(df, **kw):
    kw.setdefault("config", tiny_config())
    kw.setdefault("num_samples", 4)
    model = AutoMLP(h=H, backend=None, **kw)
    fc = Forecaster(models=[model], freq="MS").fit(df)
    return fc, model


def test_search_keeps_the_best_trial_and_refits_it(df):
    fc, m = search(df)
    res = m.results
    assert list(res["number"]) == [0, 1, 2, 3] and set(res["state"]) == {"COMPLETE"}
    best = res.loc[res["loss"].idxmin()]
    assert m.model.hidden_size == best["config/hidden_size"] and m.model.input_size == best["config/input_size"]
    assert m.study.best_trial.number == best["number"]
    # the refit model is the best config trained on all the data (NF: refit_with_val=False)
    assert m.model.val_size == 0 and len(m.model.train_trajectories) == 6
    out = fc.predict()
    assert list(out.columns) == ["unique_id", "ds", "AutoMLP"] and len(out) == H
    assert np.isfinite(out["AutoMLP"]).all()


def test_same_seed_same_search_same_forecast(df):
    fc1, m1 = search(df)
    fc2, m2 = search(df)
    pd.testing.assert_frame_equal(m1.results.drop(columns="seconds"), m2.results.drop(columns="seconds"))
    np.testing.assert_array_equal(fc1.predict()["AutoMLP"], fc2.predict()["AutoMLP"])
    _, m3 = search(df, seed=7)
    assert not m1.results["config/learning_rate"].equals(m3.results["config/learning_rate"])


def test_a_trial_that_raises_is_recorded_failed(df):
    def config(trial):
        hidden = trial.suggest_categorical("hidden_size", [8, 16])
        return dict(input_size=24, hidden_size=-1 if trial.number == 1 else hidden, max_steps=4,
                    val_check_steps=2, windows_batch_size=32, num_layers=1)
    _, m = search(df, config=config, num_samples=3)
    states = list(m.results["state"])
    assert states == ["COMPLETE", "FAIL", "COMPLETE"]
    assert "hidden_size" in m.results["error"][1]
    assert m.study.trials[1].state == optuna.trial.TrialState.FAIL


def test_pruner_stops_a_hopeless_trial_from_its_validation_curve(df):
    def config(trial):   # trial 0 learns, trial 1 barely moves: its validation curve is worse at every check
        lr = 5e-2 if trial.number == 0 else 1e-7
        return dict(input_size=24, hidden_size=16, num_layers=1, learning_rate=lr, max_steps=8, val_check_steps=2,
                    windows_batch_size=32, scaler_type="standard")
    _, m = search(df, config=config, num_samples=2, concurrent_trials=1,
                  pruner=optuna.pruners.MedianPruner(n_startup_trials=1, n_warmup_steps=0))
    t0, t1 = m.study.trials
    assert t0.state.name == "COMPLETE" and len(t0.intermediate_values) == 4
    assert t1.state.name == "PRUNED" and len(t1.intermediate_values) < 4
    assert list(m.results["state"]) == ["COMPLETE", "PRUNED"]


def test_user_config_of_optuna_distributions(df):
    cfg = tiny_config(hidden_size=optuna.distributions.CategoricalDistribution([4, 8]),
                      learning_rate=optuna.distributions.FloatDistribution(1e-3, 1e-1, log=True))
    _, m = search(df, config=cfg, num_samples=2)
    assert set(m.results["config/hidden_size"]) <= {4, 8}
    assert m.results["config/learning_rate"].between(1e-3, 1e-1).all()


def test_save_and_load_the_refit_model(df, tmp_path):
    fc, m = search(df, num_samples=2)
    fc.save(str(tmp_path / "fc"))
    loaded = Forecaster.load(str(tmp_path / "fc"))
    assert type(loaded.models[0]).__name__ == "MLP" and str(loaded.models[0]) == "AutoMLP"
    np.testing.assert_array_equal(loaded.predict()["AutoMLP"], fc.predict()["AutoMLP"])


def test_cross_validation_searches_before_each_cutoff(df):
    m = AutoMLP(h=H, backend=None, config=tiny_config(), num_samples=2)
    cv = Forecaster(models=[m], freq="MS").cross_validation(df, n_windows=2, step_size=H)
    assert len(cv) == 2 * H and np.isfinite(cv["AutoMLP"]).all()
    assert m.test_size == 2 * H   # the last search held out both windows


def test_before_fit_the_auto_model_says_so():
    with pytest.raises(ValueError, match="call fit"):
        AutoMLP(h=H, config=tiny_config()).predict_dataset(None)


def test_callbacks_see_every_trial_and_time_budget_stops_the_search(df):
    seen = []
    _, m = search(df, num_samples=3, concurrent_trials=1, callbacks=[lambda study, t: seen.append(t.number)])
    assert seen == [0, 1, 2]
    _, m = search(df, num_samples=5, concurrent_trials=1, time_budget=1e-9)
    assert len(m.results) == 1          # the budget is checked before each batch: the first always runs

"""A fit or cross_validation interrupted mid-training (KeyboardInterrupt or an error) leaves the
Forecaster as it was: predict() afterwards is bitwise the predict() from before."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.models import MLP, NLinear


def series(ids, n=40, seed=0, level=10.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.concatenate([level + i + np.sin(t / 3) + rng.normal(0, 0.1, n) for i in range(len(ids))])
    return {"unique_id": np.repeat(ids, n), "ds": np.tile(t, len(ids)), "y": y}


def make_forecaster(**kw):
    models = [MLP(h=4, input_size=8, hidden_size=16, max_steps=8, scaler_type="robust", enable_progress_bar=False),
              NLinear(h=4, input_size=8, max_steps=8, enable_progress_bar=False)]
    return ndiv.Forecaster(models, freq=1, **kw)


def fail_at_training_step(monkeypatch, model, step, exc):
    """Make `model` raise `exc` at its step-th training forward (counted over every later fit)."""
    calls = {"n": 0}
    forward = model.forward

    def failing(windows_batch):
        if model.training:
            calls["n"] += 1
            if calls["n"] == step:
                raise exc
        return forward(windows_batch)

    monkeypatch.setattr(model, "forward", failing)
    return calls


def weights(model):
    return {k: np.array(v) for k, v in model.state_dict().items()}


def assert_same(a: dict, b: dict):
    assert list(a) == list(b)
    for k in a:
        np.testing.assert_array_equal(np.asarray(a[k]), np.asarray(b[k]), err_msg=k)


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("disk full")])
@pytest.mark.parametrize("failing", [0, 1])
def test_interrupted_refit_leaves_the_forecaster_as_it_was(monkeypatch, exc, failing):
    fc = make_forecaster(local_scaler_type="standard")
    fc.fit(series(["a", "b"]))
    before, w_before = fc.predict(), [weights(m) for m in fc.models]
    # a refit on other series and values, interrupted at the 3rd step of one model (the first
    # model has then fully trained on the new data when the second fails)
    fail_at_training_step(monkeypatch, fc.models[failing], 3, exc)
    with pytest.raises(type(exc)):
        fc.fit(series(["x", "y", "z"], seed=1, level=100.0))
    assert_same(fc.predict(), before)
    for m, w in zip(fc.models, w_before):
        assert_same(weights(m), w)
        assert not m.training and m.val_size == 0
    # and nothing of the failed attempt remains: the refit gives what it gives without the failure
    monkeypatch.undo()
    new = series(["x", "y", "z"], seed=1, level=100.0)
    clean = make_forecaster(local_scaler_type="standard").fit(series(["a", "b"]))
    assert_same(fc.fit(new).predict(), clean.fit(new).predict())


def test_interrupted_first_fit_leaves_an_unfitted_forecaster(monkeypatch):
    fc = make_forecaster()
    w_init = [weights(m) for m in fc.models]
    fail_at_training_step(monkeypatch, fc.models[1], 3, KeyboardInterrupt)
    with pytest.raises(KeyboardInterrupt):
        fc.fit(series(["a", "b"]))
    with pytest.raises(ValueError, match=r"call fit\(df\) before predict"):
        fc.predict()
    for m, w in zip(fc.models, w_init):
        assert_same(weights(m), w)


def test_interrupted_cross_validation_refit_leaves_the_forecaster_as_it_was(monkeypatch):
    fc = make_forecaster()
    fc.fit(series(["a", "b"]))
    before = fc.predict()
    calls = fail_at_training_step(monkeypatch, fc.models[0], 8 + 3, KeyboardInterrupt)  # the 2nd refit, step 3
    with pytest.raises(KeyboardInterrupt):
        fc.cross_validation(series(["x", "y"], seed=2, level=50.0), n_windows=3, refit=True)
    assert calls["n"] == 11
    assert_same(fc.predict(), before)

"""One trial of a search, as a worker runs it: build the model from its configuration, fit it
with a validation split, report each validation check to an optuna pruner, and return a plain
record (never raises: an exception becomes a failed trial with its message)."""
from __future__ import annotations

import time
import traceback


class _Pruned(Exception):
    pass


class _Pruning:
    """The model's validation callback: report (step, loss) to the trial; prune when the
    pruner, looking at the trials completed before this one, says so."""

    def __init__(self, trial):
        self.trial = trial

    def __call__(self, step: int, value: float) -> None:
        self.trial.report(value, step)
        if self.trial.should_prune():
            raise _Pruned(f"pruned at step {step} (validation loss {value:.6g})")


def _pruning_trial(pruner, history):
    """A running optuna trial in a private in-memory study that holds the finished trials
    `history`, so that pruner decisions depend on them only (deterministic on any worker)."""
    import optuna
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction="minimize", pruner=pruner, sampler=optuna.samplers.RandomSampler(0))
    study.add_trials(history)
    return study.ask()


def run_trial(data: dict, task: dict) -> dict:
    """data: {'cls': model class, 'dataset', 'val_size', 'test_size'} (scattered once);
    task: {'number', 'config', 'pruner', 'history'}. Returns {'number', 'state' ('COMPLETE',
    'PRUNED' or 'FAIL'), 'value', 'intermediate' [(step, loss)], 'train_loss', 'error', 'seconds'}."""
    t0 = time.perf_counter()
    out = {"number": task["number"], "state": "FAIL", "value": None, "intermediate": [], "train_loss": None,
           "error": None}
    model = None
    try:
        model = data["cls"](**task["config"])
        if task.get("pruner") is not None:
            model._validation_callback = _Pruning(_pruning_trial(task["pruner"], task.get("history", [])))
        model.fit_dataset(data["dataset"], val_size=data["val_size"], test_size=data["test_size"])
        last = model.valid_trajectories[-1] if model.valid_trajectories else None
        n_steps = len(model.train_trajectories)
        value = last[1] if last is not None and last[0] == n_steps else model.validate(data["dataset"])
        out.update(state="COMPLETE", value=float(value))
    except _Pruned as e:
        out.update(state="PRUNED", error=str(e))
    except Exception as e:  # noqa: BLE001 -- any error of a trial is its result, recorded as failed
        out.update(error=f"{type(e).__name__}: {e}", traceback=traceback.format_exc(limit=8))
    if model is not None:
        out["intermediate"] = [(int(s), float(v)) for s, v in getattr(model, "valid_trajectories", [])]
        train = getattr(model, "train_trajectories", [])
        out["train_loss"] = float(train[-1][1]) if train else None
    out["seconds"] = time.perf_counter() - t0
    return out


def fit_task(data: dict, task: dict):
    """A whole fit on a worker (Forecaster.fit of several models, a cross-validation window):
    data {'dataset'}; task {'model', 'series': None or the indices of the series to fit on (a
    partition), 'val_size', 'test_size', 'predict': None or {'step_size', 'test_size',
    'quantiles'}}. Returns (fitted model, forecast or None)."""
    model, dataset = task["model"], data["dataset"]
    if task.get("series") is not None:
        dataset = dataset.subset(task["series"])
    model.fit_dataset(dataset, val_size=task["val_size"], test_size=task["test_size"])
    pred = task.get("predict")
    y = None if pred is None else model.predict_dataset(dataset, **pred)
    return model, y

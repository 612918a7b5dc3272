"""Forecaster's work on a backend: the fits of many models, and cross-validation windows with refit.

    fc.fit(df, backend="local")                                   # one worker per model
    fc.cross_validation(df, n_windows=8, refit=True, backend=client)  # one worker per (model, window)

The dataset is scattered to the workers once; each task fits a copy of one model and sends the
fitted model back, whose state the Forecaster's model then takes (the user's model objects stay
the ones in fc.models). Auto models run in this process: their trials go to their own backend.

With refit, every window's fit starts from the model as it was before cross_validation (the
windows are independent, so they can run at once); backend=None keeps the sequential loop in
which each window continues from the previous one's weights.
"""
from __future__ import annotations

from ndiv.auto.backends import WorkerLost, get_backend
from ndiv.auto.search import fit_task


def _is_auto(m) -> bool:
    from ndiv.auto.base_auto import BaseAuto
    return isinstance(m, BaseAuto)


def _adopt(model, fitted) -> None:
    """model takes the fitted copy's state (weights, trajectories, sizes), keeping its identity."""
    model.__dict__.clear()
    model.__dict__.update(fitted.__dict__)


def run_fits(dataset, tasks: list, backend) -> list:
    """[(fitted model, forecast or None)] of fit_task over tasks, on the backend (data scattered once)."""
    engine, owned = get_backend(backend)
    handle = engine.scatter({"dataset": dataset})
    try:
        outs = engine.map(fit_task, handle, tasks)
    finally:
        engine.release(handle)
        if owned:
            engine.close()
    for task, out in zip(tasks, outs):
        if isinstance(out, WorkerLost):
            raise RuntimeError(f"fitting {task['model']} (test_size={task['test_size']}) failed: {out.error}")
    return outs


def fit_models(models: list, dataset, val_size: int, backend) -> None:
    """Forecaster.fit's loop: each model fitted on a worker, its state taken back."""
    remote = [m for m in models if not _is_auto(m)]
    outs = run_fits(dataset, [{"model": m, "val_size": val_size, "test_size": 0} for m in remote], backend)
    for m, (fitted, _) in zip(remote, outs):
        _adopt(m, fitted)
    for m in models:
        if _is_auto(m):
            m.fit_dataset(dataset, val_size=val_size, test_size=0)


def fit_windows(models: list, dataset, test_sizes: list, val_size: int, step_size: int, quantiles, backend) -> dict:
    """cross_validation with refit: {model: [forecast of each refit, in test_sizes' order]}; each
    (model, refit) a task from the model's state before cross_validation. The models end as
    their last refit (as the sequential loop leaves them)."""
    out = {}
    remote = [m for m in models if not _is_auto(m)]
    tasks = [{"model": m, "val_size": val_size, "test_size": ts,
              "predict": {"step_size": step_size, "test_size": ts, "quantiles": quantiles}}
             for m in remote for ts in test_sizes]
    results = run_fits(dataset, tasks, backend)
    for i, m in enumerate(remote):
        mine = results[i * len(test_sizes):(i + 1) * len(test_sizes)]
        out[m] = [y for _, y in mine]
        _adopt(m, mine[-1][0])
    for m in models:
        if _is_auto(m):
            out[m] = []
            for ts in test_sizes:
                m.fit_dataset(dataset, val_size=val_size, test_size=ts)
                out[m].append(m.predict_dataset(dataset, step_size=step_size, test_size=ts, quantiles=quantiles))
    return out

"""Forecaster's work on a backend: the fits of many models, and cross-validation windows with refit.

    fc.fit(df, backend="local")                                   # one worker per model
    fc.cross_validation(df, n_windows=8, refit=True, backend=client)  # one worker per (model, window)

The dataset is scattered to the workers once; each task fits a copy of one model and sends the
fitted model back, whose state the Forecaster's model then takes (the user's model objects stay
the ones in fc.models). Auto models run in this process: their trials go to their own backend.

A Partitioned model (ndiv.auto.partitioned) is one task per partition of the series: each
task fits a copy on its partition's rows, picked on the worker from the scattered dataset.

With refit, every window's fit starts from the model as it was before cross_validation (the
windows are independent, so they can run at once); backend=None keeps the sequential loop in
which each window continues from the previous one's weights.
"""
from __future__ import annotations

from ndiv.auto.backends import WorkerLost, get_backend
from ndiv.auto.partitioned import Partitioned, assemble
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


def _units(m, dataset) -> list:
    """(model to fit, series indices or None) of each task of model m: one per partition of a
    Partitioned model, else the model itself on all series."""
    return m.start_copies(dataset) if isinstance(m, Partitioned) else [(m, None)]


def _take(m, fitted: list, units: list, dataset) -> None:
    """m takes the state of its fitted task copies (one per unit of _units)."""
    if isinstance(m, Partitioned):
        m.adopt(fitted, dataset, [idx for _, idx in units])
    else:
        _adopt(m, fitted[0])


def fit_models(models: list, dataset, val_size: int, backend) -> None:
    """Forecaster.fit's loop: each model (each partition of a Partitioned one) fitted on a
    worker, its state taken back."""
    remote = [m for m in models if not _is_auto(m)]
    units = [_units(m, dataset) for m in remote]
    tasks = [{"model": c, "series": idx, "val_size": val_size, "test_size": 0} for u in units for c, idx in u]
    outs = iter(run_fits(dataset, tasks, backend))
    for m, u in zip(remote, units):
        _take(m, [next(outs)[0] for _ in u], u, dataset)
    for m in models:
        if _is_auto(m):
            m.fit_dataset(dataset, val_size=val_size, test_size=0)


def fit_windows(models: list, dataset, test_sizes: list, val_size: int, step_size: int, quantiles, backend) -> dict:
    """cross_validation with refit: {model: [forecast of each refit, in test_sizes' order]}; each
    (model, refit) a task from the model's state before cross_validation. The models end as
    their last refit (as the sequential loop leaves them)."""
    out = {}
    remote = [m for m in models if not _is_auto(m)]
    units = [_units(m, dataset) for m in remote]
    tasks = [{"model": c, "series": idx, "val_size": val_size, "test_size": ts,
              "predict": {"step_size": step_size, "test_size": ts, "quantiles": quantiles}}
             for m, u in zip(remote, units) for ts in test_sizes for c, idx in u]
    results = iter(run_fits(dataset, tasks, backend))
    for m, u in zip(remote, units):
        out[m] = []
        for _ in test_sizes:
            mine = [next(results) for _ in u]
            out[m].append(assemble(dataset.n_series, [(idx, y) for (_, idx), (_, y) in zip(u, mine)])
                          if isinstance(m, Partitioned) else mine[0][1])
        _take(m, [f for f, _ in mine], u, dataset)       # the models end as their last refit
    for m in models:
        if _is_auto(m):
            out[m] = []
            for ts in test_sizes:
                m.fit_dataset(dataset, val_size=val_size, test_size=ts)
                out[m].append(m.predict_dataset(dataset, step_size=step_size, test_size=ts, quantiles=quantiles))
    return out

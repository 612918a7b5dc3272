"""One fitted Forecaster serves concurrent predict() calls: every result equals the sequential one.

Per-call state (a window batch's scaling statistics, the test size, the sampling generator,
RevIN's statistics, the requested quantiles) must travel with the call: stored
on the model, a call reads the statistics of another call's series and returns its forecast
scaled by them.
"""
from __future__ import annotations

import sys
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ndiv
from ndiv.losses import DistributionLoss
from ndiv.models import MLP, PatchTST

N_THREADS, N_CALLS = 8, 25
SCALES = [1.0, 30.0, 1e3, 3e4, 1e6, 3e7]


def series(n=40, seed=0) -> dict:
    """Six series whose levels differ by up to 7 orders of magnitude."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ys = [s * (2 + np.sin(2 * np.pi * t / 6 + i) + 0.1 * rng.normal(size=n)) for i, s in enumerate(SCALES)]
    return {"unique_id": np.repeat([f"s{i}" for i in range(len(SCALES))], n), "ds": np.tile(t, len(SCALES)),
            "y": np.concatenate(ys)}


def select(data: dict, keep) -> dict:
    return {k: v[keep] for k, v in data.items()}


def as_arrays(pred) -> dict:
    return pred if isinstance(pred, dict) else {k: pred[k].to_numpy() for k in pred.columns}


def small(cls=MLP, **kw):
    base = dict(h=4, input_size=8, max_steps=5, scaler_type="standard", enable_progress_bar=False)
    if cls is MLP:
        base.update(hidden_size=16, num_layers=1)
    return cls(**{**base, **kw})


@pytest.fixture
def fine_switching():
    """Switch threads every 10 µs (default 5 ms), so that calls interleave inside predict."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    yield
    sys.setswitchinterval(old)


def run_concurrently(call, jobs):
    """call(job) for every job from N_THREADS threads at once (a barrier lines them up)."""
    barrier = threading.Barrier(N_THREADS)

    def worker(my_jobs):
        barrier.wait()
        return [call(j) for j in my_jobs]

    chunks = [jobs[i::N_THREADS] for i in range(N_THREADS)]
    with ThreadPoolExecutor(N_THREADS) as pool:
        results = list(pool.map(worker, chunks))
    return {job: r for chunk, rs in zip(chunks, results) for job, r in zip(chunk, rs)}


def assert_same(expected: dict, got: dict, what):
    assert list(got) == list(expected), what
    for k in expected:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=f"{what}: column {k}")


def test_concurrent_predicts_on_different_series_match_the_sequential_ones(fine_switching):
    data = series()
    uid = data["unique_id"]
    fc = ndiv.Forecaster([small(), small(loss=DistributionLoss("Normal", level=[80], num_samples=50), alias="N"),
                          small(PatchTST, encoder_layers=1, n_heads=2, hidden_size=8, linear_hidden_size=8,
                                patch_len=4, stride=2, scaler_type="identity", max_steps=2)], freq=1).fit(data)
    subsets = [np.isin(uid, [f"s{i}" for i in ids]) for ids in
               ([0], [5], [1, 4], [0, 5], [2, 3, 4], [0, 1, 2, 3, 4, 5])]
    dfs = [select(data, keep) for keep in subsets]
    expected = {i: as_arrays(fc.predict(df=df)) for i, df in enumerate(dfs)}
    jobs = [(t * N_CALLS + c) for t in range(N_THREADS) for c in range(N_CALLS)]
    got = run_concurrently(lambda j: as_arrays(fc.predict(df=dfs[j % len(dfs)])), jobs)
    for j, pred in got.items():
        assert_same(expected[j % len(dfs)], pred, f"call {j} on series subset {j % len(dfs)}")


def test_concurrent_predicts_with_a_local_scaler_match_the_sequential_ones(fine_switching):
    data = series(seed=1)
    n = len(data["ds"]) // len(SCALES)
    fc = ndiv.Forecaster([small(scaler_type="robust")], freq=1, local_scaler_type="standard").fit(data)
    # the same series (a local scaler needs them), cut at different ends
    dfs = [select(data, data["ds"] < n - cut) for cut in (0, 3, 7, 11)]
    expected = {i: as_arrays(fc.predict(df=df)) for i, df in enumerate(dfs)}
    jobs = list(range(N_THREADS * N_CALLS))
    got = run_concurrently(lambda j: as_arrays(fc.predict(df=dfs[j % len(dfs)])), jobs)
    for j, pred in got.items():
        assert_same(expected[j % len(dfs)], pred, f"call {j} on cut {j % len(dfs)}")


def test_concurrent_predicts_with_different_levels(fine_switching):
    data = series(seed=2)
    fc = ndiv.Forecaster([small(loss=DistributionLoss("StudentT", level=[80], num_samples=50))], freq=1).fit(data)
    levels = [[80], [95], [50, 99]]
    expected = {i: as_arrays(fc.predict(level=lv)) for i, lv in enumerate(levels)}
    assert list(expected[1]) == ["unique_id", "ds", "MLP", "MLP-lo-95", "MLP-hi-95"]
    got = run_concurrently(lambda j: as_arrays(fc.predict(level=levels[j % 3])), list(range(2 * N_CALLS)))
    for j, pred in got.items():
        assert_same(expected[j % 3], pred, f"call {j} with level={levels[j % 3]}")
    # and the model's own outputs are untouched by the calls with other levels
    assert list(as_arrays(fc.predict())) == ["unique_id", "ds", "MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"]

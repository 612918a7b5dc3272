"""The backends with real workers: a local process pool and a dask.distributed LocalCluster of two
worker processes (one per module: its startup is slow). The same search, fits and cross-validation
give the same results on each; a worker that dies mid-search loses no trial."""
from __future__ import annotations

import os
import signal

import numpy as np
import pytest

optuna = pytest.importorskip("optuna")
pd = pytest.importorskip("pandas")

from ndiv import Forecaster  # noqa: E402
from ndiv.auto import AutoMLP, LocalBackend, Partitioned, make_auto, spaces  # noqa: E402
from ndiv.datasets import load_air_passengers  # noqa: E402
from ndiv.models import MLP, DLinear  # noqa: E402

H = 12
CONFIG = dict(input_size=spaces.choice([12, 24]), hidden_size=spaces.choice([8, 16]), num_layers=1,
              learning_rate=spaces.loguniform(1e-3, 1e-1), max_steps=6, val_check_steps=2, windows_batch_size=32,
              random_seed=spaces.randint(1, 5))


class KillsItsWorkerOnce(MLP):
    """An MLP whose first fit, anywhere, terminates the process it runs in (SIGKILL)."""

    def __init__(self, h, input_size, flag_file="", **kwargs):
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.flag_file = flag_file

    def fit_dataset(self, dataset, val_size=0, test_size=0):
        if self.flag_file and not os.path.exists(self.flag_file):
            with open(self.flag_file, "w") as f:
                f.write(str(os.getpid()))
            os.kill(os.getpid(), signal.SIGKILL)
        return super().fit_dataset(dataset, val_size=val_size, test_size=test_size)


AutoKiller = make_auto(KillsItsWorkerOnce)


@pytest.fixture(scope="module")
def df():
    return load_air_passengers(as_pandas=True)


@pytest.fixture(scope="module")
def pool():
    backend = LocalBackend(n_workers=2)     # its processes start once and serve every test here
    yield backend
    backend.close()


@pytest.fixture(scope="module")
def client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def searched(df, backend, **kw):
    m = AutoMLP(h=H, config=CONFIG, num_samples=4, concurrent_trials=2, backend=backend, **kw)
    fc = Forecaster(models=[m], freq="MS").fit(df)
    return m, fc.predict()["AutoMLP"].to_numpy()


def test_same_search_in_process_local_pool_and_dask(df, pool, client):
    ref, y_ref = searched(df, None)
    for backend in (pool, client):
        m, y = searched(df, backend)
        pd.testing.assert_frame_equal(m.results.drop(columns="seconds"), ref.results.drop(columns="seconds"))
        np.testing.assert_array_equal(y, y_ref)


def test_fit_of_several_models_on_dask_equals_the_loop(df, client):
    def models():
        return [MLP(h=H, input_size=24, hidden_size=16, max_steps=5), DLinear(h=H, input_size=24, max_steps=5)]
    ref = Forecaster(models=models(), freq="MS").fit(df).predict()
    fc = Forecaster(models=models(), freq="MS")
    out = fc.fit(df, backend=client).predict()
    pd.testing.assert_frame_equal(out, ref)
    assert len(fc.models[0].train_trajectories) == 5


def test_cross_validation_refit_on_dask_equals_local(df, pool, client):
    def run(backend):
        fc = Forecaster(models=[MLP(h=H, input_size=24, hidden_size=8, max_steps=4)], freq="MS")
        return fc.cross_validation(df, n_windows=3, step_size=H, refit=True, backend=backend)
    local = run(pool)
    pd.testing.assert_frame_equal(run(client), local)
    # each window is an independent refit: the first equals a plain cross_validation of one window
    one = Forecaster(models=[MLP(h=H, input_size=24, hidden_size=8, max_steps=4)], freq="MS").cross_validation(
        df.iloc[:-2 * H], n_windows=1)
    # (float32 rounding of a shorter table: equal to ~1e-7, not bit for bit)
    np.testing.assert_allclose(local["MLP"].to_numpy()[:H], one["MLP"].to_numpy(), rtol=1e-5)


def test_partitioned_fit_and_refits_on_workers_equal_the_loop(pool, client):
    """A fit over partitions of the series: one task per partition, as the in-process loop."""
    from tests.auto.test_partitioned import mlp, panel
    data = pd.DataFrame(panel())
    def fc():
        return Forecaster(models=[Partitioned(mlp(), 3), MLP(h=H, input_size=24, hidden_size=8, max_steps=3, alias="one")],
                          freq="MS")
    ref = fc().fit(data).predict()
    for backend in (pool, client):
        f = fc()
        pd.testing.assert_frame_equal(f.fit(data, backend=backend).predict(), ref)
        assert [len(t) for t in f.models[0].train_trajectories] == [4, 4, 4]
    # cross-validation with refit: (window, partition) tasks
    cv_ref = fc().cross_validation(data, n_windows=2, step_size=H, refit=True, backend=None)
    cv = fc().cross_validation(data, n_windows=2, step_size=H, refit=True, backend=client)
    # the loop continues each window from the last; the backend refits each from the start:
    # the first window agrees, the second is a fresh fit on more data
    first = cv["cutoff"] == cv["cutoff"].min()
    np.testing.assert_array_equal(cv.loc[first, "MLP"].to_numpy(), cv_ref.loc[first, "MLP"].to_numpy())
    assert np.isfinite(cv["MLP"].to_numpy()).all()


def test_a_worker_killed_mid_search_loses_no_trial(df, client, tmp_path):
    flag = str(tmp_path / "killed")
    cfg = dict(CONFIG, flag_file=flag)
    m = AutoKiller(h=H, config=cfg, num_samples=4, concurrent_trials=2, backend=client)
    Forecaster(models=[m], freq="MS").fit(df)
    assert os.path.exists(flag)                                   # a worker process was killed
    pid = int(open(flag).read())
    assert pid != os.getpid() and pid not in client.run(os.getpid).values()
    assert list(m.results["state"]) == ["COMPLETE"] * 4           # its trial ran again elsewhere
    client.wait_for_workers(2, timeout=60)


def test_a_local_worker_killed_mid_search_loses_no_trial(df, pool, tmp_path):
    flag = str(tmp_path / "killed")
    m = AutoKiller(h=H, config=dict(CONFIG, flag_file=flag), num_samples=2, concurrent_trials=2,
                   backend=pool)
    Forecaster(models=[m], freq="MS").fit(df)
    assert os.path.exists(flag) and list(m.results["state"]) == ["COMPLETE"] * 2


def test_a_trial_that_raises_on_a_worker_is_recorded_failed(df, client):
    def config(trial):    # trial 1's model rejects its options on the worker
        return dict(CONFIG, input_size=24, hidden_size=-1 if trial.number == 1 else 8, learning_rate=1e-2,
                    random_seed=1)
    m = AutoMLP(h=H, config=config, num_samples=2, concurrent_trials=2, backend=client)
    Forecaster(models=[m], freq="MS").fit(df)
    assert list(m.results["state"]) == ["COMPLETE", "FAIL"] and "hidden_size" in m.results["error"][1]


def _plus(data, task):
    return data["x"] + task


def test_dask_scatters_again_when_a_dead_worker_held_the_only_copy(client):
    import time
    from ndiv.auto import DaskBackend
    backend = DaskBackend(client)
    handle = backend.scatter({"x": 3})
    victim = sorted(client.scheduler_info()["workers"])[0]
    handle.future = client.scatter([handle.data], workers=[victim], hash=False)[0]   # a single copy
    os.kill(client.run(os.getpid)[victim], signal.SIGKILL)                            # terminate its process
    deadline = time.monotonic() + 60
    while victim in client.scheduler_info()["workers"] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert backend.map(_plus, handle, [1, 2]) == [4, 5]
    backend.release(handle)
    client.wait_for_workers(2, timeout=60)

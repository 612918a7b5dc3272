"""The Ray backend: the same search as in this process. Ray's local start takes ~20 s on the
2-core CI machine (more than the whole auto test budget), so this runs with NDIV_TEST_RAY=1 only."""
from __future__ import annotations

import os

import numpy as np
import pytest

if os.environ.get("NDIV_TEST_RAY") != "1":
    pytest.skip("Ray's start is slow: set NDIV_TEST_RAY=1 to run the Ray backend test", allow_module_level=True)
ray = pytest.importorskip("ray")
pytest.importorskip("optuna")
pd = pytest.importorskip("pandas")

from ndiv import Forecaster  # noqa: E402
from ndiv.auto import AutoMLP  # noqa: E402
from ndiv.datasets import load_air_passengers  # noqa: E402
from tests.auto.test_backends import CONFIG, H  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_same_search_on_ray(ray_cluster):
    df = load_air_passengers(as_pandas=True)
    out = {}
    for backend in (None, "ray"):
        m = AutoMLP(h=H, config=CONFIG, num_samples=4, concurrent_trials=2, backend=backend)
        fc = Forecaster(models=[m], freq="MS").fit(df)
        out[backend] = (m.results.drop(columns="seconds"), fc.predict()["AutoMLP"].to_numpy())
    pd.testing.assert_frame_equal(out["ray"][0], out[None][0])
    np.testing.assert_array_equal(out["ray"][1], out[None][1])

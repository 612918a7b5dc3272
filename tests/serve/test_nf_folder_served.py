"""The reason to move a model: a folder that NeuralForecast 3.3 saved, served by `ndiv serve`,
answers with NeuralForecast's own forecast (the server process runs with torch blocked)."""
from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import urllib.request
import warnings

import numpy as np
import pytest

for _mod in ("starlette", "uvicorn", "prometheus_client"):
    pytest.importorskip(_mod, reason=f"the serve tests need the 'serve' extra ({_mod})")
pytest.importorskip("torch")
pytest.importorskip("neuralforecast")
os.environ.setdefault("PL_DISABLE_FORK", "1")

from tests.serve.test_server import ROOT, free_port  # noqa: E402

# a meta-path finder that makes torch (and what pulls it) unimportable, then the CLI
BLOCK_TORCH = """
import sys
class _Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'neuralforecast', 'lightning', 'pytorch_lightning'):
            raise ImportError(f'{name} is blocked: the server must run without torch')
sys.meta_path.insert(0, _Block())
from ndiv.cli import main
sys.exit(main())
"""


def test_a_neuralforecast_folder_serves_neuralforecasts_forecast(tmp_path):
    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import MLP

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    t = np.arange(40)
    df = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 40), "ds": np.tile(t, 2),
                       "y": np.concatenate([100 + 10 * np.sin(t / 2), 50 + 5 * np.cos(t / 3)])})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nf = NeuralForecast([MLP(h=4, input_size=8, hidden_size=8, num_layers=1, max_steps=3, accelerator="cpu",
                                 logger=False, enable_progress_bar=False, enable_model_summary=False)], freq=1)
        nf.fit(df)
        want = nf.predict(df=df)
        nf.save(str(tmp_path / "nf"), save_dataset=False, overwrite=True)

    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", BLOCK_TORCH, "serve", str(tmp_path / "nf"), "--port", str(port)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                with urllib.request.urlopen(url + "/ready", timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the server was not ready in time"
            time.sleep(0.3)
        body = {"unique_id": df["unique_id"].tolist(), "ds": df["ds"].tolist(), "y": df["y"].tolist()}
        req = urllib.request.Request(url + "/predict", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as r:
            rows = json.loads(r.read())["forecast"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert [r["unique_id"] for r in rows] == want["unique_id"].tolist()
    assert [r["ds"] for r in rows] == want["ds"].tolist()
    np.testing.assert_allclose([r["MLP"] for r in rows], want["MLP"].to_numpy(), rtol=1e-4)

"""Same seed, same forecast, bit for bit, across processes; and a forecaster saved by one
process forecasts, loaded in another, exactly what it forecast where it was fitted.

Two fresh Python processes each fit an MLP and an LSTM (tiny, a few steps) on AirPassengers
with a local scaler: the first saves its forecaster, the second also loads that folder. The
forecasts are compared as bytes.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import sys
import numpy as np
import ndiv
from ndiv.datasets import load_air_passengers
from ndiv.models import LSTM, MLP

save_to, load_from, out = sys.argv[1:]
models = [MLP(h=12, input_size=24, hidden_size=32, num_layers=2, max_steps=8, random_seed=5,
              enable_progress_bar=False),
          LSTM(h=12, input_size=24, encoder_n_layers=1, encoder_hidden_size=16, decoder_hidden_size=16,
               decoder_layers=1, max_steps=4, random_seed=5, enable_progress_bar=False)]
fc = ndiv.Forecaster(models, freq="MS", local_scaler_type="standard").fit(load_air_passengers(as_pandas=False))

def forecast_bytes(f):
    pred = f.predict()
    return b"".join(np.ascontiguousarray(np.asarray(pred[k], dtype=np.float32)).tobytes() for k in ("MLP", "LSTM"))

with open(out + ".fit", "wb") as f:
    f.write(forecast_bytes(fc))
if save_to != "-":
    fc.save(save_to)
if load_from != "-":
    with open(out + ".loaded", "wb") as f:
        f.write(forecast_bytes(ndiv.Forecaster.load(load_from)))
"""


def run(*args):
    done = subprocess.run([sys.executable, "-c", SCRIPT, *map(str, args)], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]


def test_same_seed_gives_the_same_bytes_in_another_process_and_after_load(tmp_path):
    folder = tmp_path / "fc"
    run(folder, "-", tmp_path / "first")
    run("-", folder, tmp_path / "second")
    first = (tmp_path / "first.fit").read_bytes()
    assert len(first) == 2 * 12 * 4  # two models, h = 12, float32
    assert (tmp_path / "second.fit").read_bytes() == first, "same seed, another process: another forecast"
    assert (tmp_path / "second.loaded").read_bytes() == first, "loaded in another process: another forecast"

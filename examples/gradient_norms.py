"""Watch the gradients of a small MLP while it learns AirPassengers.

The model maps the last 12 months (log scale, standardised) to the next 12. Each step prints,
per layer, the norm of the gradient of its parameters (`ndiv.nn.utils.grad_norms(model,
by="module")`) and the norm of the gradient flowing out of it (a full backward hook, via
`GradOutputRecorder`): large early, shrinking as the loss falls; the last layer's usually
largest. Run:

    python examples/gradient_norms.py [--steps 300] [--every 50] [--seed 0]
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

import ndiv
import ndiv.nn as nn
import ndiv.nn.functional as F
import ndiv.optim
from ndiv.nn.utils import GradOutputRecorder, grad_norms

INPUT_SIZE, H = 12, 12
SHARED_CSV = Path(__file__).resolve().parents[2] / "shared" / "data" / "air_passengers" / "air_passengers.csv"


def load_series() -> np.ndarray:
    """AirPassengers y (144 months): the shared data file, the copy bundled with ndiv, or a
    synthetic stand-in (trend x seasonality) when neither is there."""
    if SHARED_CSV.exists():
        return np.genfromtxt(SHARED_CSV, delimiter=",", skip_header=1, usecols=2)
    try:
        from ndiv.datasets import load_air_passengers
        return load_air_passengers(as_pandas=False)["y"]
    except (ImportError, FileNotFoundError):
        t = np.arange(144)
        return (110 + 2.5 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12))


def make_windows(y: np.ndarray):
    """Windows of INPUT_SIZE inputs and H targets; train on all but the last H months."""
    z = np.log(y)
    train = z[:-H]
    mu, sd = train.mean(), train.std()
    z = (z - mu) / sd
    n = len(train) - INPUT_SIZE - H + 1
    idx = np.arange(n)[:, None] + np.arange(INPUT_SIZE + H)[None, :]
    win = z[idx].astype(np.float32)
    test_x = z[-H - INPUT_SIZE:-H].astype(np.float32)[None]
    return win[:, :INPUT_SIZE], win[:, INPUT_SIZE:], test_x, (mu, sd)


def main(steps: int = 300, every: int = 50, seed: int = 0, lr: float = 3e-3, verbose: bool = True) -> dict:
    ndiv.manual_seed(seed)
    y = load_series()
    x, target, test_x, (mu, sd) = make_windows(y)
    model = nn.Sequential(nn.Linear(INPUT_SIZE, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, H))
    opt = ndiv.optim.Adam(model.parameters(), lr=lr)
    recorder = GradOutputRecorder(model, types=(nn.Linear,))
    xs, ts = ndiv.tensor(x), ndiv.tensor(target)
    history = {"step": [], "loss": [], "param_grad": [], "output_grad": []}
    for step in range(1, steps + 1):
        loss = F.mse_loss(model(xs), ts)
        opt.zero_grad()
        loss.backward()
        if step == 1 or step % every == 0 or step == steps:
            norms = grad_norms(model, by="module")
            out_norms = {name: v[-1] for name, v in recorder.norms.items()}
            history["step"].append(step)
            history["loss"].append(loss.item())
            history["param_grad"].append(norms)
            history["output_grad"].append(out_norms)
            if verbose:
                cols = "  ".join(f"layer {k}: {v:8.4f} (out {out_norms[k]:.2e})" for k, v in norms.items())
                print(f"step {step:4d}  loss {loss.item():.4f}  |grad| {cols}")
        opt.step()
    recorder.remove()
    model.eval()
    with ndiv.no_grad():
        pred = np.exp(model(ndiv.tensor(test_x)).numpy()[0] * sd + mu)
    actual = y[-H:]
    mae = float(np.abs(pred - actual).mean())
    naive_mae = float(np.abs(y[-H - 12:-12] - actual).mean())  # seasonal naive: the same month last year
    if verbose:
        print(f"test MAE over the last {H} months: {mae:.1f} (seasonal naive: {naive_mae:.1f})")
    history.update(mae=mae, naive_mae=naive_mae)
    return history


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    main(args.steps, args.every, args.seed)

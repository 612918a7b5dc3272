"""NeuralForecast as the reference: load an NF model's weights into the ndiv model and compare.

Used by every model test module (skips without torch/neuralforecast):

    nf_model = nf_ref.build("NHITS", h=12, input_size=24, ...)      # neuralforecast.models.NHITS
    nd_model = NHITS(h=12, input_size=24, ...)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)                       # strict=True
    nf_ref.assert_same_forward(nf_model, nd_model, batch)            # same windows -> same output
"""
from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("PL_DISABLE_FORK", "1")


def nf_models():
    pytest.importorskip("torch")
    nf = pytest.importorskip("neuralforecast.models")
    return nf


def build(name: str, **kwargs):
    """A NeuralForecast model on the CPU, quiet."""
    nf = nf_models()
    kwargs.setdefault("accelerator", "cpu")
    kwargs.setdefault("enable_progress_bar", False)
    kwargs.setdefault("enable_model_summary", False)
    kwargs.setdefault("logger", False)
    return getattr(nf, name)(**kwargs)


def _skip_key(k: str) -> bool:
    # NF keeps loss buffers (e.g. MQLoss.quantiles) in the state_dict; ndiv losses hold plain arrays
    return k.startswith("loss.") or k.startswith("valid_loss.")


def nf_state_dict(nf_model) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in nf_model.state_dict().items() if not _skip_key(k)}


def assert_same_state_dict_layout(nf_model, nd_model):
    ref = {k: v.shape for k, v in nf_state_dict(nf_model).items()}
    got = {k: tuple(v.shape) for k, v in nd_model.state_dict().items() if not _skip_key(k)}
    assert sorted(got) == sorted(ref), (sorted(set(ref) - set(got)), sorted(set(got) - set(ref)))
    for k in ref:
        assert tuple(ref[k]) == got[k], (k, ref[k], got[k])


def load_nf_weights(nf_model, nd_model):
    nd_model.load_state_dict(nf_state_dict(nf_model), strict=True)


def windows_batch(rng, b, input_size, h, hist=0, futr=0, stat=0, n_series=1):
    """A random univariate windows_batch (numpy) with NF's keys and shapes."""
    out = dict(insample_y=rng.standard_normal((b, input_size, n_series)).astype(np.float32),
               insample_mask=np.ones((b, input_size, n_series), np.float32),
               hist_exog=rng.standard_normal((b, input_size, hist)).astype(np.float32) if hist else None,
               futr_exog=rng.standard_normal((b, input_size + h, futr)).astype(np.float32) if futr else None,
               stat_exog=rng.standard_normal((b, stat)).astype(np.float32) if stat else None)
    return out


def assert_same_forward(nf_model, nd_model, batch: dict, rtol=1e-4, atol=1e-5):
    """The same windows through both models give the same output (eval mode)."""
    import torch

    import ndiv
    nf_model.eval()
    nd_model.eval()
    with torch.no_grad():
        ref = nf_model({k: None if v is None else torch.tensor(v) for k, v in batch.items()}).numpy()
    with ndiv.no_grad():
        got = nd_model({k: None if v is None else ndiv.tensor(v) for k, v in batch.items()}).numpy()
    assert got.shape == ref.shape, (got.shape, ref.shape)
    np.testing.assert_allclose(got, ref, rtol=rtol, atol=atol)
    return got


def air_passengers():
    """(train, test) dicts: the last 12 months held out (skips without ../shared/data)."""
    here = os.path.dirname(__file__)
    path = os.path.join(here, "..", "..", "..", "shared", "data", "air_passengers", "air_passengers.csv")
    if not os.path.exists(path):
        from ndiv.datasets import load_air_passengers
        data = load_air_passengers()
        data = data if isinstance(data, dict) else {k: data[k].to_numpy() for k in data.columns}
    else:
        import csv
        with open(path) as f:
            rows = list(csv.DictReader(f))
        data = {"unique_id": np.array([r["unique_id"] for r in rows]),
                "ds": np.array([r["ds"] for r in rows], dtype="datetime64[ns]"),
                "y": np.array([float(r["y"]) for r in rows])}
    train = {k: v[:-12] for k, v in data.items()}
    test = {k: v[-12:] for k, v in data.items()}
    return train, test


def seasonal_naive_mae(train, test, season=12):
    y = train["y"]
    return float(np.mean(np.abs(test["y"] - np.resize(y[-season:], len(test["y"])))))


# -- helpers shared by the model test modules -----------------------------------------------------
def as_tensors(batch: dict, dtype=None, requires_grad=False) -> dict:
    """A numpy windows_batch as ndiv Tensors (the mask never requires grad)."""
    import ndiv
    return {k: None if v is None else ndiv.tensor(v.astype(dtype or v.dtype),
                                                  requires_grad=requires_grad and k != "insample_mask")
            for k, v in batch.items()}


def nf_loss(loss):
    """The NeuralForecast twin of an ndiv loss (MQLoss and MAE are enough for the parity tests)."""
    import neuralforecast.losses.pytorch as nf_losses

    from ndiv.losses import MQLoss
    if isinstance(loss, MQLoss):
        return nf_losses.MQLoss(quantiles=[float(q) for q in loss.quantiles])
    return nf_losses.MAE()


def overfit_losses(model, batch: dict, y, steps: int, lr: float) -> list:
    """Adam on one fixed batch for `steps` steps: the loss after each step."""
    import ndiv
    opt = ndiv.optim.Adam(model.parameters(), lr=lr)
    losses = []
    for _ in range(steps):
        loss = model.loss(y=y, y_hat=model(batch))
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses

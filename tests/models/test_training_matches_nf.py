"""Training, not only the forward pass, matches NeuralForecast step for step.

Same initial weights (NF's, loaded into ndiv), same drawn windows (ndiv's sampler draws them and
NF's own training_step is run on that draw, torch.randint patched): the scaled inputs, the loss,
every gradient and every parameter after the Adam step agree to float32 noise for the first
steps. (Over hundreds of steps the two drift apart chaotically from float32 rounding alone, as
two torch runs with 1e-6-perturbed weights do: compare final accuracy over many seeds, not one.
tools/nf_train_compare.py prints the per-step divergence for any model.)

Skips without torch / neuralforecast.
"""
from __future__ import annotations


import numpy as np
import pytest

from tests.models import nf_reference as nf_ref

H, L = 12, 24


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


def _train_df():
    pd = pytest.importorskip("pandas")
    train, _ = nf_ref.air_passengers()
    return pd.DataFrame({"unique_id": train["unique_id"], "ds": train["ds"], "y": train["y"]})


# 128 windows per step: drawn with replacement (AirPassengers has 97); 32: without
@pytest.mark.parametrize("name, windows_batch_size", [("RNN", 128), ("LSTM", 32)])
def test_training_steps_match_neuralforecast_on_the_same_windows(name, windows_batch_size, monkeypatch):
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    import pandas as pd
    import ndiv.models
    from ndiv.data import TimeSeriesDataset, TrainWindowSampler
    from ndiv.models.base import _loc_scale
    torch.set_num_threads(1)

    kw = dict(h=H, input_size=L, max_steps=5, random_seed=3, encoder_hidden_size=16, decoder_hidden_size=16,
              windows_batch_size=windows_batch_size)
    nf = nf_ref.build(name, **kw)
    nd = getattr(ndiv.models, name)(enable_progress_bar=False, dedupe_windows=False, **kw)
    nf_ref.load_nf_weights(nf, nd)
    nf.log = lambda *a, **k: None          # no Lightning trainer here
    nf.train()
    nd.train()
    cfg = nf.configure_optimizers()
    t_opt, t_sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    n_opt, n_sched = nd._make_optimizer()

    train = _train_df()
    ds = TimeSeriesDataset.from_df({c: train[c].to_numpy() for c in ("unique_id", "ds", "y")}, freq="MS")
    sampler = TrainWindowSampler(ds, input_size=L, h=H, batch_size=nd.batch_size,
                                 windows_batch_size=nd.windows_batch_size, random_seed=nd.random_seed)
    b = ds.batch()
    nf_batch = dict(temporal=torch.tensor(b["temporal"]), temporal_cols=pd.Index(list(b["temporal_cols"])),
                    y_idx=b["y_idx"])
    seen = {}
    orig_forward = type(nf).forward

    def spy(self, wb):
        seen["insample_y"] = wb["insample_y"].detach().numpy().copy()
        return orig_forward(self, wb)
    monkeypatch.setattr(type(nf), "forward", spy)

    for step in range(5):
        batch = sampler.sample(scaler=nd.scaler)
        # ndiv: the body of BaseModel.fit_dataset
        y_loc, y_scale = _loc_scale(nd.scaler)
        out = nd.loss.domain_map(nd(nd._tensors(batch)))
        loss = nd._loss(nd.loss, out, batch, y_loc, y_scale, original=False)
        n_opt.zero_grad()
        loss.backward()
        # NF: its own training_step on the same draw
        idx = torch.as_tensor(batch["window_idx"].astype(np.int64))
        rest = torch.as_tensor(np.setdiff1d(np.arange(200), batch["window_idx"]))
        monkeypatch.setattr(torch, "randint", lambda *a, **k: idx)                   # with replacement
        monkeypatch.setattr(torch, "randperm", lambda n, **k: torch.cat([idx, rest[rest < n]]))  # without
        t_opt.zero_grad()
        t_loss = nf.training_step(nf_batch, step)
        monkeypatch.undo()
        monkeypatch.setattr(type(nf), "forward", spy)
        t_loss.backward()

        np.testing.assert_allclose(batch["insample_y"], seen["insample_y"], rtol=1e-6, atol=1e-6)
        assert abs(loss.item() - t_loss.item()) <= 1e-5 * abs(t_loss.item()), (step, loss.item(), t_loss.item())
        nd_params = dict(nd.named_parameters())
        for k, p in nf.named_parameters():
            assert _rel(nd_params[k].grad, p.grad.numpy()) < 1e-3, (step, k)
        n_opt.step()
        n_sched.step()
        t_opt.step()
        t_sched.step()
        for k, p in nf.named_parameters():
            assert _rel(nd_params[k].data, p.detach().numpy()) < 1e-4, (step, k)


def test_adam_flat_path_matches_torch_adam_on_a_model(monkeypatch):
    """ndiv.optim.Adam's flat fast path against torch.optim.Adam on an RNN's parameters, fed the
    same gradients, with the lr changed mid-way (as a scheduler does)."""
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    import ndiv.models
    import ndiv.optim
    torch.set_num_threads(1)
    kw = dict(h=H, input_size=L, encoder_hidden_size=8, decoder_hidden_size=8)
    nf = nf_ref.build("RNN", **kw)
    nd = ndiv.models.RNN(**kw)
    nf_ref.load_nf_weights(nf, nd)
    names = [k for k, _ in nf.named_parameters()]
    t_params = dict(nf.named_parameters())
    n_params = dict(nd.named_parameters())
    t_opt = torch.optim.Adam([t_params[k] for k in names], lr=1e-2)
    n_opt = ndiv.optim.Adam([n_params[k] for k in names], lr=1e-2)
    rng = np.random.default_rng(0)
    for step in range(30):
        if step == 15:
            t_opt.param_groups[0]["lr"] = n_opt.param_groups[0]["lr"] = 5e-3
        for k in names:
            g = (rng.standard_normal(n_params[k].shape) * 10.0 ** rng.integers(-4, 1)).astype(np.float32)
            n_params[k].grad = g.copy()
            t_params[k].grad = torch.tensor(g)
        n_opt.step()
        t_opt.step()
        for k in names:
            np.testing.assert_allclose(n_params[k].data, t_params[k].detach().numpy(), rtol=1e-5, atol=1e-6,
                                       err_msg=f"step {step}: {k}")
    assert getattr(n_opt, "_flat", None), "the flat path was not taken"

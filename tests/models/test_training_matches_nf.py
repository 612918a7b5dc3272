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


# -- the exogenous dense models: TiDE, BiTCN, DeepNPTS, NBEATSx ---------------------------------
# Tiny configurations, every kind of exogenous input the model takes, no dropout (two libraries
# cannot draw the same masks; DeepNPTS keeps its BatchNorm: batch statistics are deterministic).
EXOG = dict(hist_exog_list=["trend"], futr_exog_list=["month_sin"], stat_exog_list=["level"])
STEP_CONFIGS = [
    ("TiDE", dict(hidden_size=16, decoder_output_dim=4, temporal_decoder_dim=8, dropout=0.0, **EXOG)),
    ("BiTCN", dict(hidden_size=4, dropout=0.0, **EXOG)),
    ("DeepNPTS", dict(hidden_size=16, dropout=0.0, **EXOG)),
    ("NBEATSx", dict(mlp_units=[[16, 16]], stack_types=["identity", "exogenous"], n_blocks=[1, 1], **EXOG)),
    ("NBEATSx", dict(mlp_units=[[16, 16]], n_harmonics=1, n_polynomials=1)),       # NF's default stacks
]


def _exog_train_df():
    """AirPassengers plus a historical column, a future-known one and a static feature."""
    pd = pytest.importorskip("pandas")
    df = _train_df()
    t = np.arange(len(df), dtype=np.float64)
    df["trend"] = t / len(df) + 0.1 * np.cos(t)
    df["month_sin"] = np.sin(2 * np.pi * pd.to_datetime(df["ds"]).dt.month.to_numpy() / 12)
    static = pd.DataFrame({"unique_id": df["unique_id"].unique(), "level": [0.5]})
    return df, static


def _grad(p, shape):
    """A parameter's gradient as numpy (zeros where the loss does not reach it)."""
    if p is None:
        return np.zeros(shape, np.float32)
    return p.detach().numpy() if hasattr(p, "detach") else np.asarray(p)


@pytest.mark.parametrize("name, kw", STEP_CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STEP_CONFIGS)])
def test_exogenous_dense_models_step_like_neuralforecast(name, kw, monkeypatch):
    """Three steps, each from the same weights (NF's, copied into ndiv after every step) on the
    same windows: the scaled inputs, the loss, every gradient and the Adam + StepLR update agree.

    Gradient elements at float32 rounding noise (below 1e-6 of the model's largest gradient: e.g.
    TiDE's LayerNorm over one feature, whose weight's gradient is exactly 0 in ndiv and ~1e-7 in
    torch) carry no sign: Adam turns any of them into a step of up to lr, so there the updates
    are only required to stay within 2 lr of each other."""
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    import pandas as pd
    import ndiv.models
    from ndiv.data import TimeSeriesDataset, TrainWindowSampler
    from ndiv.models.base import _loc_scale
    torch.set_num_threads(1)

    kw = dict(h=H, input_size=L, max_steps=3, random_seed=2, windows_batch_size=32, **kw)
    nf = nf_ref.build(name, **kw)
    nd = getattr(ndiv.models, name)(enable_progress_bar=False, dedupe_windows=False, **kw)
    nf_ref.load_nf_weights(nf, nd)
    nf.log = lambda *a, **k: None          # no Lightning trainer here
    nf.train()
    nd.train()
    cfg = nf.configure_optimizers()
    t_opt, t_sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
    n_opt, n_sched = nd._make_optimizer()
    lr = nd.learning_rate

    train, static = _exog_train_df()
    exog = list(nd.hist_exog_list) + list(nd.futr_exog_list)
    ds = TimeSeriesDataset.from_df({c: train[c].to_numpy() for c in ["unique_id", "ds", "y"] + exog}, freq="MS",
                                   static_df=static if nd.stat_exog_list else None, exog_cols=exog)
    sampler = TrainWindowSampler(ds, input_size=L, h=H, batch_size=nd.batch_size,
                                 windows_batch_size=nd.windows_batch_size, random_seed=nd.random_seed)
    b = ds.batch()
    nf_batch = dict(temporal=torch.tensor(b["temporal"]), temporal_cols=pd.Index(list(b["temporal_cols"])),
                    y_idx=b["y_idx"])
    if b["static"] is not None:
        nf_batch.update(static=torch.tensor(b["static"]), static_cols=pd.Index(list(b["static_cols"])))
    seen = {}
    orig_forward = type(nf).forward

    def spy(self, wb):
        seen.update({k: v.detach().numpy().copy() for k, v in wb.items() if v is not None})
        return orig_forward(self, wb)
    monkeypatch.setattr(type(nf), "forward", spy)

    nd_params = dict(nd.named_parameters())
    for step in range(3):
        before = {k: p.detach().numpy().copy() for k, p in nf.named_parameters()}
        batch = sampler.sample(scaler=nd.scaler, hist_exog_list=nd.hist_exog_list, futr_exog_list=nd.futr_exog_list,
                               stat_exog_list=nd.stat_exog_list)
        y_loc, y_scale = _loc_scale(nd.scaler)
        out = nd.loss.domain_map(nd(nd._tensors(batch)))
        loss = nd._loss(nd.loss, out, batch, y_loc, y_scale, original=False)
        n_opt.zero_grad()
        loss.backward()
        idx = torch.as_tensor(batch["window_idx"].astype(np.int64))
        rest = torch.as_tensor(np.setdiff1d(np.arange(200), batch["window_idx"]))
        monkeypatch.setattr(torch, "randint", lambda *a, **k: idx)
        monkeypatch.setattr(torch, "randperm", lambda n, **k: torch.cat([idx, rest[rest < n]]))
        t_opt.zero_grad()
        t_loss = nf.training_step(nf_batch, step)
        monkeypatch.undo()
        monkeypatch.setattr(type(nf), "forward", spy)
        t_loss.backward()

        for key in ("insample_y", "futr_exog", "hist_exog", "stat_exog"):
            if batch.get(key) is not None:
                np.testing.assert_allclose(batch[key], seen[key], rtol=1e-6, atol=1e-6, err_msg=f"{step}: {key}")
        assert abs(loss.item() - t_loss.item()) <= 1e-5 * abs(t_loss.item()), (step, loss.item(), t_loss.item())
        t_grads = {k: _grad(p.grad, tuple(p.shape)) for k, p in nf.named_parameters()}
        n_grads = {k: _grad(nd_params[k].grad, t_grads[k].shape) for k in t_grads}
        noise = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
        for k in t_grads:
            err = np.abs(n_grads[k] - t_grads[k]).max()
            assert err <= 1e-3 * np.abs(t_grads[k]).max() + noise, (step, k, err)
        n_opt.step()
        n_sched.step()
        t_opt.step()
        t_sched.step()
        for k, p in nf.named_parameters():
            after = p.detach().numpy()
            tol = 2e-3 * np.abs(after - before[k]).max() + 1e-6 * np.abs(before[k]).max() + 1e-8  # of the update
            tol = np.where(np.abs(t_grads[k]) < noise, 2 * lr, tol)
            err = np.abs(nd_params[k].data - after)
            assert (err <= tol).all(), (step, k, float(err.max()))
            nd_params[k].data[...] = after      # the next step starts from the same weights again

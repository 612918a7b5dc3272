"""ndiv's training loop against NeuralForecast's, step by step, on identical batches.

    python tools/nf_train_compare.py RNN --steps 20
    python tools/nf_train_compare.py LSTM --steps 200 --seed 2 --every 20
    python tools/nf_train_compare.py NBEATSx --exog --kw '{"mlp_units": [[16, 16]]}'
    python tools/nf_train_compare.py all --steps 3      # the four exogenous dense models, with --exog

Models whose NF defaults draw dropout (TiDE, BiTCN, DeepNPTS) are compared with dropout=0 (see
DETERMINISTIC): two libraries cannot draw the same dropout masks. --exog adds two synthetic
columns to AirPassengers, one historical and one future-known, and a static feature, so the
exogenous paths are trained too.

Builds NeuralForecast's model and ndiv's with the same hyperparameters (h=12, input_size=24 on
AirPassengers without its last 12 months), copies NF's initial weights into ndiv, then runs the
two training loops side by side: ndiv's sampler draws the windows of each step, and NF's own
`training_step` (its _create_windows, _sample_windows, _normalization, _parse_windows, loss) is
run on the same draw (torch.randint / randperm are patched to return ndiv's indices). Each step
prints the largest relative difference of: the scaled inputs, the loss, every parameter's
gradient (after backward) and every parameter after the optimizer step (torch.optim.Adam and
StepLR from NF's configure_optimizers against ndiv's _make_optimizer). The first step that
exceeds float32 noise names the culprit.

Then (--predict) the forecasts of the two trained models through their own predict paths.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import logging
import os
import warnings

if __name__ == "__main__":    # a script: one thread each; imported by the tests, the process's own settings
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("NUMBA_NUM_THREADS", "1")
os.environ.setdefault("PL_DISABLE_FORK", "1")
warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)

import numpy as np  # noqa: E402

H, L = 12, 24

# no dropout, so the two forwards are the same function (DeepNPTS keeps its BatchNorm: batch
# statistics are deterministic)
DETERMINISTIC = {"TiDE": dict(dropout=0.0), "BiTCN": dict(dropout=0.0), "DeepNPTS": dict(dropout=0.0),
                 "NBEATSx": dict(dropout_prob_theta=0.0)}
# the transformers: no dropout; Informer with a factor that keeps every query at h=12, L=24
# (its ProbSparse key draws then change nothing)
DETERMINISTIC.update(VanillaTransformer=dict(dropout=0.0), Informer=dict(dropout=0.0, factor=6))
DETERMINISTIC.update(Autoformer=dict(dropout=0.0), FEDformer=dict(dropout=0.0))
DETERMINISTIC.update(TFT=dict(dropout=0.0))
DETERMINISTIC["TimesNet"] = dict(dropout=0.0)
NEW_MODELS = ("TiDE", "BiTCN", "DeepNPTS", "NBEATSx")
EXOG = dict(hist_exog_list=["trend"], futr_exog_list=["month_sin"], stat_exog_list=["level"])


def with_exog(train_df):
    """(df, static_df): AirPassengers plus a historical column (a scaled trend), a future-known
    one (the month as a sine) and a static feature."""
    import pandas as pd
    df = train_df.copy()
    t = np.arange(len(df), dtype=np.float64)
    df["trend"] = t / len(df) + 0.1 * np.cos(t)
    df["month_sin"] = np.sin(2 * np.pi * pd.to_datetime(df["ds"]).dt.month.to_numpy() / 12)
    static = pd.DataFrame({"unique_id": df["unique_id"].unique(), "level": [0.5]})
    return df, static


def load_train():
    import pandas as pd
    here = os.path.dirname(os.path.abspath(__file__))
    path = os.path.join(here, "..", "..", "shared", "data", "air_passengers", "air_passengers.csv")
    if os.path.exists(path):
        df = pd.read_csv(path, parse_dates=["ds"])
    else:
        from ndiv.datasets import load_air_passengers
        df = pd.DataFrame(load_air_passengers())
        df["ds"] = pd.to_datetime(df["ds"])
    return df.iloc[:-H].reset_index(drop=True), df.iloc[-H:].reset_index(drop=True)


def rel(a, b):
    if np.iscomplexobj(a) or np.iscomplexobj(b):     # complex parameters (FEDformer): both parts
        a, b = (np.stack([np.real(x), np.imag(x)], axis=-1) for x in (a, b))
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / (np.max(np.abs(b)) + 1e-12))


class Pair:
    """NF's and ndiv's model, same weights, same hyperparameters, and their optimizers."""

    def __init__(self, name, seed=1, max_steps=200, dedupe=False, **extra):
        import torch

        import ndiv
        import neuralforecast.models as M
        from ndiv.models import MODELS
        torch.set_num_threads(1)
        self.name = name
        kw = dict(h=H, input_size=L, max_steps=max_steps, random_seed=seed)
        kw.update(DETERMINISTIC.get(name, {}))
        kw.update(extra)
        # NF's default loss objects are single instances shared by every model built without one
        # (a DeepAR's StudentT loss keeps tensors after a step): this model gets its own copies
        nf_kw = dict(kw)
        for arg, param in inspect.signature(getattr(M, name)).parameters.items():
            if arg in ("loss", "valid_loss") and arg not in kw and param.default not in (None, inspect.Parameter.empty):
                nf_kw[arg] = copy.deepcopy(param.default)
        self.nf = getattr(M, name)(accelerator="cpu", enable_progress_bar=False, enable_model_summary=False,
                                   logger=False, **nf_kw)
        self.nd = MODELS[name](enable_progress_bar=False, dedupe_windows=dedupe, **kw)
        self.nd.load_state_dict({k: v.detach().numpy() for k, v in self.nf.state_dict().items()
                                 if not k.startswith(("loss.", "valid_loss."))}, strict=True)
        self.nf.log = lambda *a, **k: None      # no trainer here
        self.nf.train_trajectories = []
        self.nf.train()
        self.nd.train()
        cfg = self.nf.configure_optimizers()
        self.t_opt, self.t_sched = cfg["optimizer"], cfg["lr_scheduler"]["scheduler"]
        self.n_opt, self.n_sched = self.nd._make_optimizer()
        self.ndiv, self.torch = ndiv, torch

    def setup_data(self, train_df, static_df=None, freq="MS"):
        from ndiv.data import TimeSeriesDataset, TrainWindowSampler
        import pandas as pd
        m = self.nd
        exog = list(m.hist_exog_list) + list(m.futr_exog_list)
        self.ds = TimeSeriesDataset.from_df({c: train_df[c].to_numpy() for c in ["unique_id", "ds", "y"] + exog},
                                            freq=freq, static_df=static_df, exog_cols=exog)
        m._rng = np.random.default_rng(m.random_seed)
        win_input, win_h, self.win_hist, self.win_futr = m._window_spec("train")   # recurrent: L + 1, h_train
        self.sampler = TrainWindowSampler(
            self.ds, input_size=win_input, h=win_h, batch_size=m.batch_size, windows_batch_size=m.windows_batch_size,
            step_size=m.step_size, start_padding_enabled=m.start_padding_enabled, random_seed=m.random_seed,
            multivariate=m.MULTIVARIATE)
        b = self.ds.batch()
        self.nf_batch = dict(temporal=self.torch.tensor(b["temporal"]), temporal_cols=pd.Index(list(b["temporal_cols"])),
                             y_idx=b["y_idx"])
        if b["static"] is not None:
            self.nf_batch.update(static=self.torch.tensor(b["static"]), static_cols=pd.Index(list(b["static_cols"])))

    def step(self):
        """One training step of both; returns a dict of the largest relative differences."""
        torch, ndiv, m, nf = self.torch, self.ndiv, self.nd, self.nf
        dedupe = m.dedupe_windows
        batch = self.sampler.sample(scaler=m.scaler, hist_exog_list=self.win_hist, futr_exog_list=self.win_futr,
                                    stat_exog_list=m.stat_exog_list, temporal_exog_scaled=m._scaled_exog(),
                                    dedupe=dedupe)
        idx = batch["window_idx"] if not dedupe else np.repeat(batch["window_idx"], batch["counts"].astype(int))
        # ndiv: the body of BaseModel.fit_dataset
        from ndiv.models.base import _loc_scale
        y_loc, y_scale = _loc_scale(m.scaler, m.device)
        out = m.loss.domain_map(m._network(batch, "train"))
        loss = m._loss(m.loss, out, batch, y_loc, y_scale, original=False)
        self.n_opt.zero_grad()
        loss.backward()
        # a parameter the loss does not reach keeps grad None (ndiv) or gets none (torch): zeros
        n_grads = {k: np.zeros(p.shape, np.float32) if p.grad is None else np.asarray(p.grad).copy()
                   for k, p in m.named_parameters()}
        # NF: its training_step on the same draw
        seen = {}
        orig_randint, orig_randperm = torch.randint, torch.randperm
        full_idx = torch.as_tensor(np.asarray(idx, np.int64))
        # NF's window draw passes size=; a model's own draws (Informer's keys) keep torch's randint
        torch.randint = lambda *a, **k: full_idx if "size" in k else orig_randint(*a, **k)
        torch.randperm = lambda n, **k: torch.cat([full_idx, torch.as_tensor(np.setdiff1d(np.arange(n), idx))])
        orig_fwd = type(nf).forward

        def spy(self_, wb):
            seen.update({k: v.detach().numpy().copy() for k, v in wb.items() if v is not None})
            return orig_fwd(self_, wb)
        type(nf).forward = spy
        try:
            self.t_opt.zero_grad()
            t_loss = nf.training_step(self.nf_batch, 0)
        finally:
            torch.randint, torch.randperm = orig_randint, orig_randperm
            type(nf).forward = orig_fwd
        t_loss.backward()
        t_grads = {k: np.zeros(tuple(p.shape), np.float32) if p.grad is None else p.grad.detach().numpy().copy()
                   for k, p in nf.named_parameters() if not k.startswith(("loss.", "valid_loss."))}
        d = {}
        if not dedupe:
            from ndiv.models import _recurrent
            insample = _recurrent.shifted_inputs(m, batch)["insample_y"].numpy() if m.RECURRENT else batch["insample_y"]
            d["insample_y"] = rel(insample, seen["insample_y"])
        d["loss_nd"], d["loss_nf"] = loss.item(), t_loss.item()
        d["loss"] = abs(d["loss_nd"] - d["loss_nf"]) / abs(d["loss_nf"])
        d["grad"] = {k: rel(n_grads[k], t_grads[k]) for k in t_grads}
        d["grad_abs"] = {k: float(np.max(np.abs(n_grads[k] - t_grads[k]), initial=0.0)) for k in t_grads}
        d["n_grads"], d["t_grads"] = n_grads, t_grads      # the raw gradients, for tests
        self.n_opt.step()
        self.n_sched.step()
        self.t_opt.step()
        self.t_sched.step()
        n_params = dict(m.named_parameters())
        d["param"] = {k: rel(n_params[k].data, p.detach().numpy()) for k, p in nf.named_parameters()
                      if not k.startswith(("loss.", "valid_loss."))}
        d["lr"] = (self.n_opt.param_groups[0]["lr"], self.t_opt.param_groups[0]["lr"])
        return d

    def sync(self):
        """Copy NF's current weights into ndiv (to compare one step at a time without drift)."""
        sd = {k: v.detach().numpy() for k, v in self.nf.state_dict().items() if not k.startswith(("loss.", "valid_loss."))}
        for k, p in self.nd.named_parameters():
            p.data[...] = sd[k]


def main():
    import json
    p = argparse.ArgumentParser()
    p.add_argument("model", help="a model name, or 'all' for TiDE, BiTCN, DeepNPTS and NBEATSx (with --exog)")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--every", type=int, default=1, help="print every k-th step")
    p.add_argument("--dedupe", action="store_true")
    p.add_argument("--sync", action="store_true", help="copy NF's weights into ndiv after each step")
    p.add_argument("--predict", action="store_true", help="compare the forecasts of the trained models")
    p.add_argument("--own", action="store_true", help="MAE on the held-out year of each library's own trained "
                   "weights (same initial weights and windows; for accuracy questions, several --seed)")
    p.add_argument("--exog", action="store_true", help="add a historical, a future and a static exogenous input")
    p.add_argument("--kw", default="{}", help="more hyperparameters as JSON, e.g. '{\"hidden_size\": 16}'")
    args = p.parse_args()
    names = NEW_MODELS if args.model == "all" else (args.model,)
    for name in names:
        if len(names) > 1:
            print(f"== {name}")
        run(name, args, json.loads(args.kw), exog=args.exog or args.model == "all")


def run(name, args, extra, exog=False):
    train, test = load_train()
    static = None
    if exog:
        train, static = with_exog(train)
        extra = {**EXOG, **extra}
    pair = Pair(name, seed=args.seed, max_steps=args.steps, dedupe=args.dedupe, **extra)
    pair.setup_data(train, static)
    print(f"{'step':>5} {'loss nd':>10} {'loss nf':>10} {'d loss':>9} {'d input':>9} {'max d grad':>11} "
          f"{'(abs)':>9} {'max d param':>11}  worst grad")
    for s in range(1, args.steps + 1):
        d = pair.step()
        if args.sync:
            pair.sync()
        if s % args.every == 0 or s == 1:
            wg = max(d["grad"], key=d["grad"].get)
            print(f"{s:5d} {d['loss_nd']:10.6f} {d['loss_nf']:10.6f} {d['loss']:9.2e} {d.get('insample_y', 0):9.2e} "
                  f"{d['grad'][wg]:11.2e} {max(d['grad_abs'].values()):9.2e} {max(d['param'].values()):11.2e}  {wg}",
                  flush=True)
    if args.own:
        print("own weights: MAE nd {:.3f} nf {:.3f}".format(*own_mae(pair, train, test)))
    if args.predict:
        if exog:
            print("--predict compares without exogenous inputs only; skipped")
        else:
            predict_compare(pair, train, test)


def own_mae(pair, train, test):
    """(MAE of ndiv's trained weights, MAE of NF's trained weights) on the held-out year, both
    forecast through ndiv (the forecasts from the same weights agree: see --predict)."""
    import ndiv
    from ndiv.models import MODELS
    y = test["y"].to_numpy()
    states = [{k: np.asarray(v).copy() for k, v in pair.nd.state_dict().items()},
              {k: v.detach().numpy().copy() for k, v in pair.nf.state_dict().items()
               if not k.startswith(("loss.", "valid_loss."))}]
    out = []
    for state in states:
        m = MODELS[pair.name](**{**pair.nd._init_config, "max_steps": 1, "enable_progress_bar": False})
        fc = ndiv.Forecaster(models=[m], freq="MS").fit(train)
        m.load_state_dict(state, strict=True)
        out.append(float(np.mean(np.abs(y - fc.predict()[pair.name].to_numpy()))))
    return out


def predict_compare(pair, train, test):
    """Same trained weights -> same forecast through both libraries' predict paths?"""
    import ndiv
    pair.sync()
    from neuralforecast import NeuralForecast
    nd_fc = ndiv.Forecaster(models=[pair.nd], freq="MS")
    nd_fc._dataset = nd_fc._dataset_from(train, None, "unique_id", "ds", "y")
    nd_fc._raw_dataset, nd_fc._fitted, nd_fc._like, nd_fc._static_df = nd_fc._dataset, True, train, None
    p_nd = nd_fc.predict()[pair.name].to_numpy()
    # NF has no "fitted from outside" switch: fit (which trains on), then restore the trained weights
    trained = {k: v.detach().clone() for k, v in pair.nf.state_dict().items()}
    nf = NeuralForecast(models=[pair.nf], freq="MS")
    nf.fit(train)
    nf.models[0].load_state_dict(trained)     # fit trains a copy of the model it was given
    p_nf = nf.predict()[pair.name].to_numpy()
    y = test["y"].to_numpy()
    print(f"predict: max |nd - nf| = {np.max(np.abs(p_nd - p_nf)):.3e}; MAE nd {np.mean(np.abs(y - p_nd)):.3f} "
          f"nf {np.mean(np.abs(y - p_nf)):.3f}")


if __name__ == "__main__":
    main()

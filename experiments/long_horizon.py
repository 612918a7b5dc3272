"""Long-horizon benchmark (the DLinear / PatchTST / NHITS protocol), channel-independent.

Every channel of a wide dataset is a series (the models are univariate and share their weights
over the channels, as DLinear, PatchTST and NHITS do; multivariate models take all channels).
Data z-scored with the train rows' mean/std; ETT split 12/4/4 months, the others 70/10/20%
(see _common.split_borders). Training windows end in the train part, early stopping on the
validation part, and the test metric is the mean MSE and MAE on the z-scored test part over
every test window with step 1 (the papers' test loader; NeuralForecast's cross_validation with
step_size=1, which is what this script calls).

    python experiments/long_horizon.py                       # every row (hours to days on 2 cores)
    python experiments/long_horizon.py --only DLinear/ETTh1  # a subset; rows already saved are skipped
    python experiments/long_horizon.py --quick               # seconds: the same code path, tiny
    python experiments/long_horizon.py --search 10 --datasets ETTm2 --horizons 96   # N-HiTS' own search

Epoch-based schedules of the papers become steps: steps_per_epoch = ceil(train windows /
batch), max_steps = epochs x steps_per_epoch, the lr halves after every epoch (LTSF-Linear's
lradj 'type1' = num_lr_decays=epochs), validation once per epoch with the papers' patience. A
batch of B multivariate samples of C channels is B x C univariate windows.
"""
from __future__ import annotations

import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

DATASETS = ["ETTh1", "ETTh2", "ETTm1", "ETTm2", "weather", "exchange_rate", "illness"]
HORIZONS = {"illness": [24, 36, 48, 60]}       # the rest: 96, 192, 336, 720

_LTSF = ("LTSF-Linear scripts/EXP-LongForecasting/Linear/<dataset>.sh + run_longExp.py defaults (epochs 10, patience 3, "
         "lradj type1, MSE loss); exp_main.py reloads the best validation checkpoint before testing")
# LTSF-Linear's scripts: (batch, lr) per dataset, seq_len 336 (104 for illness)
_LTSF_BATCH_LR = {"ETTh1": (32, 0.005), "ETTh2": (32, 0.05), "ETTm1": (8, 1e-4), "ETTm2": (32, 0.001),
                  "weather": (16, 1e-4), "exchange_rate": (8, 5e-4), "illness": (32, 0.01)}


def _linear(ds, h):
    batch, lr = _LTSF_BATCH_LR[ds]
    if ds == "ETTm2" and h >= 336:
        lr = 0.01                                    # ettm2.sh uses 0.01 for 336 and 720
    if ds == "exchange_rate" and h >= 336:
        batch = 32                                   # exchange_rate.sh uses batch 32 for 336 and 720
    return dict(input_size=104 if ds == "illness" else 336, kwargs={}, batch=batch, lr=lr, epochs=10,
                patience=3, loss="MSE", lradj="type1", restore_best=True, source=_LTSF)


def _patchtst(ds, h):
    small = ds in ("ETTh1", "ETTh2", "illness")      # PatchTST paper: smaller model on the small sets
    kw = dict(encoder_layers=3, n_heads=4 if small else 16, hidden_size=16 if small else 128,
              linear_hidden_size=128 if small else 256, dropout=0.3 if small else 0.2,
              fc_dropout=0.3 if small else 0.2, head_dropout=0.0, patch_len=24 if ds == "illness" else 16,
              stride=2 if ds == "illness" else 8, revin=True, revin_affine=False, revin_subtract_last=False)
    # scripts/PatchTST/<ds>.sh: ETTh1/ETTh2 keep run_longExp's patience 100, the others 20; ETTm1/ETTm2
    # use lradj 'TST' (OneCycle per batch, pct_start 0.4), the rest run_longExp's default 'type3'
    tst = ds in ("ETTm1", "ETTm2")
    return dict(input_size=104 if ds == "illness" else 336, kwargs=kw, batch=16 if ds == "illness" else 128,
                lr=0.0025 if ds == "illness" else 1e-4, epochs=100, patience=100 if small else 20, loss="MSE",
                lradj="TST" if tst else "type3", pct_start=0.4, restore_best=True,
                source="PatchTST/42: yuqinie98/PatchTST PatchTST_supervised/scripts/PatchTST/<ds>.sh and "
                       "run_longExp.py / exp_main.py / utils/tools.py: 100 epochs, batch 128, lr 1e-4, patience "
                       "100 (ETTh) or 20, lradj type3 (the OneCycleLR built anyway leaves epoch 1 at lr/25 and "
                       "Adam's beta1 at 0.95) or TST (OneCycle, pct_start 0.4), best checkpoint reloaded")


def _nhits(ds, h):
    kw = dict(n_pool_kernel_size=[2, 2, 1], n_freq_downsample=[max(h // 24, 1), max(h // 96, 1), 1],
              mlp_units=3 * [[512, 512]], n_blocks=[1, 1, 1], dropout_prob_theta=0.0)
    return dict(input_size=5 * h, kwargs=kw, batch=1, lr=1e-3, epochs=None, max_steps=1000, patience=10,
                val_check_steps=50, windows_batch_size=256, loss="MAE", scaler_type="identity",
                source="cchallu/n-hits nhits_multivariate.py: input 5h, 3 stacks x 1 block, 2 x 512 MLPs, MAE loss, "
                       "lr 1e-3 halved 3 times, 1000 steps of 256 windows of one series, validation every 50 steps, "
                       "patience 10, its val/test sizes (ETTm2's file is the first 57,600 rows: the 12/4/4 split); "
                       "the paper chose pooling/downsampling (and the seed) per dataset by hyperopt over 10 trials, "
                       "this fixed choice is ours")


# N-HiTS' search space (nhits_multivariate.py get_experiment_space): the paper picked these and the
# seed per dataset and horizon by hyperopt, 10 trials, on validation MAE.
NHITS_SPACE = dict(
    n_pool_kernel_size=[[1, 1, 1], [2, 2, 2], [4, 4, 4], [8, 8, 8], [8, 4, 1], [16, 8, 1]],
    n_freq_downsample=[[168, 24, 1], [24, 12, 1], [180, 60, 1], [60, 8, 1], [40, 20, 1]],
    random_seed=list(range(1, 11)))


def search_trials(n: int, search_seed: int) -> list[dict]:
    """n points of NHITS_SPACE drawn uniformly (hyperopt's TPE starts with random draws too)."""
    import numpy as np

    rng = np.random.default_rng(search_seed)
    return [{k: v[rng.integers(len(v))] for k, v in NHITS_SPACE.items()} for _ in range(n)]


def run_search(store, ds, h, n, search_seed, quick):
    """N-HiTS' protocol with its search: n trials (each saved, so a run resumes), the test error of
    the trial with the lowest final validation loss as the row "NHITS (search n)"."""
    L = min(5 * h, 96) if quick else 5 * h
    if store.has(model=f"NHITS (search {n})", dataset=ds, h=h, seed=search_seed, input_size=L, protocol=PROTOCOL):
        print(f"have NHITS (search {n})/{ds}/{h} seed {search_seed}")
        return
    trials = []
    for i, t in enumerate(search_trials(n, search_seed)):
        kw = {k: v for k, v in t.items() if k != "random_seed"}
        name = f"NHITS[pool {t['n_pool_kernel_size']}, down {t['n_freq_downsample']}]"
        key = dict(model=name, dataset=ds, h=h, seed=t["random_seed"], input_size=L, protocol="v2-trial")
        if not store.has(**key):
            C.seed_all(t["random_seed"])
            row = run_one("NHITS", ds, h, t["random_seed"], quick, overrides=kw)
            row.update(model=name, protocol="v2-trial", trial_of=f"search {n} seed {search_seed}", **kw)
            store.add(row)
            print(f"  trial {i}: {name} seed {t['random_seed']}: valid {row['valid_losses'][-1]} "
                  f"mse {row['mse']:.4f} ({row['wall_s']} s)")
        trials.append(store.get(**key))
    best = min(trials, key=lambda r: r["valid_losses"][-1] if r["valid_losses"] else float("inf"))
    row = {k: best[k] for k in ("dataset", "h", "input_size", "quick", "split", "mse", "mae", "n_test_windows",
                                "max_steps", "steps_run", "valid_losses", "n_pool_kernel_size",
                                "n_freq_downsample")}
    row.update(model=f"NHITS (search {n})", seed=search_seed, protocol=PROTOCOL, best_trial_seed=best["seed"],
               wall_s=round(sum(r["wall_s"] for r in trials), 2),
               settings_source=SETTINGS["NHITS"](ds, h)["source"] + f"; here: {n} uniform trials of its space, "
               "the lowest final validation MAE chosen")
    row.update(paper_fields("NHITS", ds, h, row))
    store.add(row)
    print(f"NHITS (search {n})/{ds}/{h}: best {best['model']} seed {best['seed']}: mse {row['mse']:.4f} "
          f"mae {row['mae']:.4f}")


# N-HiTS' splits (nhits_multivariate.py: val/test 11,520 for ETTm2, 5,270/10,539 for weather) are the
# papers' own: its ETTm2 file (datasetsforecast LongHorizon, "ETT uses 20% validation") holds the first
# 57,600 rows, of which 11,520 is 20%, i.e. the 12/4/4-month split; weather's is the 70/10/20 split.


def _former(ds, h, **extra):
    kw = dict(hidden_size=512, n_head=8, conv_hidden_size=2048, encoder_layers=2, decoder_layers=1,
              dropout=0.05, decoder_input_size_multiplier=0.5, **extra)
    return dict(input_size=36 if ds == "illness" else 96, kwargs=kw, batch=32, lr=1e-4, epochs=10, patience=3,
                loss="MSE", source="Autoformer/FEDformer/Informer scripts: seq_len 96 (36 illness), label_len 48, "
                                   "d_model 512, 8 heads, 2+1 layers, d_ff 2048, 10 epochs (as recalled, not re-checked); "
                                   "NOTE the papers mix channels, ndiv's (NF's) versions are univariate")


def _unchecked(input_size, **kw):
    return lambda ds, h: dict(input_size=input_size, kwargs=dict(kw), batch=32, lr=1e-4, epochs=10, patience=3,
                              loss="MSE", source="paper settings NOT checked: lookback from the paper, the rest "
                                                 "NeuralForecast defaults")


# model name -> settings(dataset, h); models absent from ndiv.models.MODELS are skipped
SETTINGS = {
    "DLinear": _linear, "NLinear": _linear, "PatchTST": _patchtst, "NHITS": _nhits,
    "Informer": lambda ds, h: _former(ds, h, factor=5),
    "Autoformer": lambda ds, h: _former(ds, h, factor=1),
    "FEDformer": lambda ds, h: _former(ds, h, modes=64),
    "TSMixer": _unchecked(512), "iTransformer": _unchecked(96), "TimesNet": _unchecked(96),
}
QUICK_SIZES = dict(hidden_size=16, conv_hidden_size=16, linear_hidden_size=16, mlp_units=3 * [[16, 16]])
MAIN_MODELS = ["DLinear", "NLinear", "PatchTST", "NHITS"]
MULTIVARIATE_KW = {"TSMixer", "iTransformer"}    # models that need n_series

# Published figures, read from the tables the authors publish as images in their repositories:
# (model, dataset, h) -> (MSE, MAE or None, reference). The DLinear paper's Table 2 (LTSF-Linear
# pics/Mul-results.png, look-back 336) and PatchTST's Table 3 (pic/table3.png, PatchTST/42: look-back
# 336). LTSF-Linear's LTSF-Benchmark.md repeats Table 2 under an "input length 96" title with the
# DLinear and NLinear rows swapped: not used. N-HiTS (cchallu/n-hits images/results.png) gives MSE only.
_T2 = "DLinear paper Table 2 (cure-lab/LTSF-Linear pics/Mul-results.png), look-back 336"
_T3 = "PatchTST paper Table 3, PatchTST/42 (yuqinie98/PatchTST pic/table3.png), look-back 336"
_NH = "N-HiTS paper (cchallu/n-hits images/results.png), MSE only"
PAPER = {
    ("DLinear", "ETTh1", 96): (0.375, 0.399, _T2), ("DLinear", "ETTh1", 720): (0.472, 0.490, _T2),
    ("DLinear", "ETTm2", 96): (0.167, 0.260, _T2), ("DLinear", "ETTm2", 720): (0.397, 0.421, _T2),
    ("DLinear", "weather", 96): (0.176, 0.237, _T2), ("DLinear", "weather", 720): (0.323, 0.362, _T2),
    ("NLinear", "ETTh1", 96): (0.374, 0.394, _T2), ("NLinear", "ETTh1", 720): (0.440, 0.453, _T2),
    ("NLinear", "ETTm2", 96): (0.167, 0.255, _T2), ("NLinear", "ETTm2", 720): (0.368, 0.384, _T2),
    ("NLinear", "weather", 96): (0.182, 0.232, _T2), ("NLinear", "weather", 720): (0.338, 0.348, _T2),
    ("PatchTST", "ETTh1", 96): (0.375, 0.399, _T3), ("PatchTST", "ETTh1", 720): (0.449, 0.466, _T3),
    ("PatchTST", "ETTm2", 96): (0.165, 0.255, _T3), ("PatchTST", "ETTm2", 720): (0.367, 0.385, _T3),
    ("PatchTST", "weather", 96): (0.152, 0.199, _T3), ("PatchTST", "weather", 720): (0.320, 0.335, _T3),
    ("NHITS", "ETTm2", 96): (0.176, None, _NH), ("NHITS", "ETTm2", 720): (0.401, None, _NH),
    ("NHITS", "weather", 96): (0.158, None, _NH), ("NHITS", "weather", 720): (0.351, None, _NH),
}
PAPER_LOOKBACK = {"DLinear": 336, "NLinear": 336, "PatchTST": 336}   # NHITS: 5h
PROTOCOL = "v2"     # v2: best checkpoint reloaded (linear, PatchTST), the scripts' lr schedules, N-HiTS' one series a step


def paper_fields(model: str, ds: str, h: int, row: dict) -> dict:
    """The paper's figures for (model, ds, h) and the row's relative gaps to them ({} without one)."""
    paper = PAPER.get((model, ds, h))
    if not paper:
        return {}
    return dict(paper_mse=paper[0], paper_mae=paper[1], paper_ref=paper[2],
                gap_mse_pct=round(100 * (row["mse"] / paper[0] - 1), 2),
                gap_mae_pct=None if paper[1] is None else round(100 * (row["mae"] / paper[1] - 1), 2))


def training_opts(st: dict, n_train_windows: int, n_channels: int, multivariate: bool) -> dict:
    """The paper's epoch schedule as NeuralForecast-style step options."""
    from ndiv.optim.lr_scheduler import LambdaLR, OneCycleLR

    restore = dict(restore_best_weights=bool(st.get("restore_best")))
    if st.get("epochs") is None:
        return dict(max_steps=st["max_steps"], learning_rate=st["lr"], val_check_steps=st.get("val_check_steps", 100),
                    early_stop_patience_steps=st["patience"], windows_batch_size=st.get("windows_batch_size", 1024),
                    batch_size=st["batch"],
                    num_lr_decays=3, **restore)
    spe = max(math.ceil(n_train_windows / st["batch"]), 1)
    opts = dict(max_steps=st["epochs"] * spe, learning_rate=st["lr"], val_check_steps=spe,
                early_stop_patience_steps=st["patience"], num_lr_decays=st["epochs"],
                windows_batch_size=st["batch"] if multivariate else st["batch"] * n_channels, **restore)
    if st.get("lradj") == "type3":     # lr/25 in epoch 1 (OneCycleLR's start), lr in 2-3, then x0.9 an epoch
        opts.update(lr_scheduler=LambdaLR, optimizer_kwargs=dict(betas=(0.95, 0.999)),
                    lr_scheduler_kwargs=dict(lr_lambda=_Type3(spe)))
    elif st.get("lradj") == "TST":     # OneCycle over all epochs, stepped every batch
        opts.update(lr_scheduler=OneCycleLR, lr_scheduler_kwargs=dict(
            max_lr=st["lr"], epochs=st["epochs"], steps_per_epoch=spe, pct_start=st.get("pct_start", 0.3)))
    return opts


class _Type3:
    """PatchTST's lradj 'type3' as a LambdaLR factor of the step (a class: picklable)."""

    def __init__(self, steps_per_epoch: int):
        self.spe = steps_per_epoch

    def __call__(self, step: int) -> float:
        epoch = step // self.spe
        return 1 / 25 if epoch == 0 else (1.0 if epoch < 3 else 0.9 ** (epoch - 3))


def run_one(model_name, ds, h, seed, quick, lookback=None, overrides=None):
    """One model trained and tested on one dataset and horizon; overrides: architecture
    options that replace the settings' (a search trial)."""
    import ndiv
    from ndiv.losses import MAE, MSE
    from ndiv.models import MODELS

    st = SETTINGS[model_name](ds, h)
    values, cols, (train_end, val_end, test_end) = C.load_wide(ds, max_rows=800 if quick else None)
    L = lookback or st["input_size"]
    if quick:                                        # tiny: short lookback, small layers, 3 steps
        L = min(L, 96)
        st["kwargs"].update({k: v for k, v in QUICK_SIZES.items() if k in st["kwargs"]})
    st["kwargs"].update(overrides or {})
    cls = MODELS[model_name]
    mv = getattr(cls, "MULTIVARIATE", False)
    opts = training_opts(st, train_end - L - h + 1, len(cols), mv)
    if quick:
        opts.update(max_steps=3, val_check_steps=2, early_stop_patience_steps=1)
    kw = dict(st["kwargs"])
    if model_name in MULTIVARIATE_KW or mv:
        kw["n_series"] = len(cols)
    model = cls(h=h, input_size=L, loss={"MSE": MSE, "MAE": MAE}[st["loss"]](), random_seed=seed,
                scaler_type=st.get("scaler_type", "identity"), **kw, **opts)
    df = C.wide_to_long(values, cols)
    fc = ndiv.Forecaster(models=[model], freq=1)
    t0 = time.perf_counter()
    cv = fc.cross_validation(df, n_windows=None, test_size=test_end - val_end, step_size=1,
                             val_size=val_end - train_end)
    wall = time.perf_counter() - t0
    err = cv[model_name].to_numpy() - cv["y"].to_numpy()
    return dict(model=model_name, dataset=ds, h=h, seed=seed, input_size=L, quick=quick, protocol=PROTOCOL,
                split=f"train {train_end} / val {val_end - train_end} / test {test_end - val_end} rows",
                mse=float((err ** 2).mean()), mae=float(abs(err).mean()), wall_s=round(wall, 2),
                n_test_windows=int(test_end - val_end - h + 1), max_steps=opts["max_steps"],
                steps_run=int(model.train_trajectories[-1][0]) if model.train_trajectories else 0,
                valid_losses=[round(float(v), 5) for _, v in model.valid_trajectories],
                settings_source=st["source"])


def main():
    def extra(p):
        p.add_argument("--models", nargs="+", default=None, help="default: every model of SETTINGS "
                       "(--quick: the four main ones)")
        p.add_argument("--datasets", nargs="+", default=DATASETS)
        p.add_argument("--horizons", nargs="+", type=int, default=None)
        p.add_argument("--lookback", type=int, default=None, help="override every model's input size")
        p.add_argument("--search", type=int, default=0, help="NHITS only: N-HiTS' search with this many trials "
                       "per dataset and horizon (--seeds: the search's seeds) instead of the fixed settings")

    a = C.parse_args(__doc__.splitlines()[0], extra)
    from ndiv.models import MODELS

    store = C.ResultStore(a.out, "long_horizon_quick" if a.quick else "long_horizon",
                          ("model", "dataset", "h", "seed", "input_size", "protocol"))
    wanted = a.models or (MAIN_MODELS if a.quick else list(SETTINGS))
    models = [m for m in wanted if m in MODELS and m in SETTINGS]
    for m in sorted(set(wanted) - set(models)):
        print(f"skip {m}: not in ndiv.models.MODELS or without settings")
    datasets = ["ETTh1"] if a.quick else a.datasets
    for ds in datasets:
        hs = [24] if a.quick else (a.horizons or HORIZONS.get(ds, [96, 192, 336, 720]))
        for h in hs:
            if a.search:
                for seed in a.seeds:
                    run_search(store, ds, h, a.search, seed, a.quick)
                continue
            for m in models:
                for seed in a.seeds:
                    L = a.lookback or SETTINGS[m](ds, h)["input_size"]
                    L = min(L, 96) if a.quick else L
                    name = f"{m}/{ds}/{h}"
                    if a.only and not any(s in name for s in a.only):
                        continue
                    if store.has(model=m, dataset=ds, h=h, seed=seed, input_size=L, protocol=PROTOCOL):
                        print(f"have {name} seed {seed} L={L}")
                        continue
                    C.seed_all(seed)
                    row = run_one(m, ds, h, seed, a.quick, a.lookback)
                    if L == PAPER_LOOKBACK.get(m, 5 * h):
                        row.update(paper_fields(m, ds, h, row))
                    store.add(row)
                    print(f"{name} seed {seed} L={L}: mse {row['mse']:.4f} mae {row['mae']:.4f} ({row['wall_s']} s)")
    store.print_table(["model", "dataset", "h", "seed", "input_size", "mse", "mae", "paper_mse", "paper_mae", "gap_mse_pct", "gap_mae_pct", "wall_s"])


if __name__ == "__main__":
    main()

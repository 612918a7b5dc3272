"""M4 Hourly and Weekly on the official train/test split: N-BEATS (generic and interpretable),
NHITS and MLP against the competition's Naive2, with its metrics (sMAPE, MASE, OWA).

    python experiments/m4.py                 # every row
    python experiments/m4.py --only Hourly   # a subset; rows already saved are skipped
    python experiments/m4.py --quick         # seconds: 12 series, 3 steps, small layers
    python experiments/m4.py --library nf    # the same rows with NeuralForecast (where installed)

Naive2 is computed here (_common.naive2: classical multiplicative decomposition, applied when
the 90% autocorrelation test at lag m says the series is seasonal) and the OWA of each model is
relative to it. MASE uses m = 24 (Hourly) and 1 (Weekly), as the competition does.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GROUPS = {"Hourly": dict(prefix="m4_hourly", h=48, m=24), "Weekly": dict(prefix="m4_weekly", h=13, m=1)}

_NB_SRC = ("N-BEATS paper (Oreshkin et al. 2020) architecture: G = 30 identity stacks x 1 block x 4 layers of "
           "512, I = trend (3 blocks) + seasonality (3 blocks), 4 layers, shared weights; the paper's I widths "
           "(trend 256, seasonality 2048) differ by stack, which NF's one mlp_units cannot say: 512 for both here; "
           "lookback 2h, sMAPE loss, batch 1024, lr 1e-3 (one member, not the paper's 180-model ensemble; "
           "training steps NF's default 1000, not the paper's)")
# model name -> (ndiv class name, kwargs(h), settings source)
SETTINGS = {
    "NBEATS-G": ("NBEATS", lambda h: dict(input_size=2 * h, stack_types=["identity"] * 30, n_blocks=[1] * 30,
                                           mlp_units=3 * [[512, 512]], shared_weights=False), _NB_SRC),
    "NBEATS-I": ("NBEATS", lambda h: dict(input_size=2 * h, stack_types=["trend", "seasonality"], n_blocks=[3, 3],
                                           mlp_units=3 * [[512, 512]], shared_weights=True), _NB_SRC),
    "NHITS": ("NHITS", lambda h: dict(input_size=2 * h), "NeuralForecast defaults, lookback 2h, sMAPE loss"),
    "MLP": ("MLP", lambda h: dict(input_size=2 * h), "NeuralForecast defaults, lookback 2h, sMAPE loss"),
}


def _shrink(kw):
    """Quick mode: the same stacks with 16 units per layer."""
    kw = dict(kw)
    if "mlp_units" in kw:
        kw["mlp_units"] = [[16, 16] for _ in kw["mlp_units"]]
    if "stack_types" in kw and len(kw["stack_types"]) > 3:
        kw.update(stack_types=kw["stack_types"][:3], n_blocks=kw["n_blocks"][:3])
    return kw


def build(name, h, seed, quick):
    from ndiv.losses import SMAPE
    from ndiv.models import MODELS

    cls_name, kwf, _ = SETTINGS[name]
    kw = kwf(h)
    opts = dict(max_steps=3, windows_batch_size=64, hidden_size=16) if quick else {}
    if quick:
        kw = _shrink(kw)
    if cls_name != "MLP":
        opts.pop("hidden_size", None)
    return MODELS[cls_name](h=h, loss=SMAPE(), random_seed=seed, alias=name, **kw, **opts)


def build_nf(name, h, seed, quick):
    """The same model in NeuralForecast (the reference run here with the same settings)."""
    import neuralforecast.models as nfm
    from neuralforecast.losses.pytorch import SMAPE

    cls_name, kwf, _ = SETTINGS[name]
    kw = _shrink(kwf(h)) if quick else kwf(h)
    opts = dict(max_steps=3, windows_batch_size=64) if quick else {}
    if quick and cls_name == "MLP":
        opts["hidden_size"] = 16
    return getattr(nfm, cls_name)(h=h, loss=SMAPE(), random_seed=seed, alias=name, enable_progress_bar=False,
                                  logger=False, enable_checkpointing=False, accelerator="cpu", **kw, **opts)


def fit_predict_nf(model, train_df):
    """NeuralForecast's fit + predict on the same frame: ({uid: [h]}, wall seconds)."""
    import time

    from neuralforecast import NeuralForecast

    nf = NeuralForecast(models=[model], freq=1)
    t0 = time.perf_counter()
    nf.fit(train_df)
    out = nf.predict()
    wall = time.perf_counter() - t0
    out = out.reset_index() if "unique_id" not in out.columns else out
    out = out.sort_values(["unique_id", "ds"], kind="stable")
    return {k: g.to_numpy(np.float64) for k, g in out.groupby("unique_id", sort=False)[str(model)]}, wall


def naive2_scores(train, test, h, m):
    fc = {k: C.naive2(train[k], h, m) for k in test}
    return C.m4_scores(train, test, fc, m)


def main():
    def extra(p):
        p.add_argument("--library", choices=["ndiv", "nf"], default="ndiv",
                       help="nf: the same settings in NeuralForecast (the reference where no paper has the figure)")

    a = C.parse_args(__doc__.splitlines()[0], extra)
    store = C.ResultStore(a.out, "m4_quick" if a.quick else "m4", ("model", "group", "seed", "library"))
    for group, g in GROUPS.items():
        if a.quick and group != "Hourly":
            continue
        train_df, test_df = C.load_long_split("m4", g["prefix"])
        if a.quick:
            train_df, test_df = C.quick_subset(train_df, test_df, 12)
        train, test = C.series_arrays(train_df), C.series_arrays(test_df)
        n2 = naive2_scores(train, test, g["h"], g["m"])
        if not store.has(model="Naive2", group=group, seed=0, library="ndiv"):
            store.add(dict(model="Naive2", group=group, seed=0, library="ndiv", quick=a.quick, n_series=len(test), owa=1.0, wall_s=0.0,
                           settings_source="M4 Naive2, computed here", **n2))
        for name in SETTINGS:
            for seed in a.seeds:
                if a.only and not any(s in f"{name}/{group}" for s in a.only):
                    continue
                if store.has(model=name, group=group, seed=seed, library=a.library):
                    print(f"have {name}/{group} seed {seed} ({a.library})")
                    continue
                C.seed_all(seed)
                if a.library == "nf":
                    fc, wall = fit_predict_nf(build_nf(name, g["h"], seed, a.quick), train_df)
                else:
                    fc, wall = C.fit_predict(build(name, g["h"], seed, a.quick), train_df)
                sc = C.m4_scores(train, test, fc, g["m"])
                store.add(dict(model=name, group=group, seed=seed, library=a.library, quick=a.quick, n_series=len(test),
                               owa=C.owa(sc, n2), wall_s=round(wall, 2), settings_source=SETTINGS[name][2], **sc))
                print(f"{name}/{group} seed {seed} ({a.library}): smape {sc['smape']:.3f} mase {sc['mase']:.3f} "
                      f"owa {C.owa(sc, n2):.3f} ({wall:.1f} s)")
    store.print_table(["model", "group", "seed", "library", "smape", "mase", "owa", "wall_s"])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

"""Tourism competition, monthly (h=24) and quarterly (h=8): N-BEATS generic and interpretable on
the protocol of the N-BEATS authors' repository, against their own figures, with the seasonal
naive and the M4 Naive2 as baselines computed here.

    python experiments/tourism.py            # every row
    python experiments/tourism.py --quick    # seconds: 12 series, 3 steps, small layers, 2 lookbacks
    python experiments/tourism.py --sampler nbeats   # N-BEATS' own draw: series uniformly

One row is a small ensemble: six models with lookbacks 2h..7h (one repeat, MAPE loss), their
forecasts combined by the median, as the authors' "small ensemble (1 repeat)". The row keeps
each member's MAPE too.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402

GROUPS = {"monthly": dict(prefix="tourism_monthly", h=24, m=12), "quarterly": dict(prefix="tourism_quarterly", h=8, m=4)}
LOOKBACKS = [2, 3, 4, 5, 6, 7]

# ServiceNow/N-BEATS experiments/tourism/{generic,interpretable}.gin: training steps and the
# window sampling limit (cut points in the last history x h points of a series), per group.
PROTOCOL = {
    "NBEATS-G": dict(steps=dict(monthly=100, quarterly=100), history=dict(monthly=20, quarterly=10)),
    "NBEATS-I": dict(steps=dict(monthly=300, quarterly=500), history=dict(monthly=20, quarterly=10)),
}
SOURCE = ("ServiceNow/N-BEATS (the authors' repository) experiments/tourism/*.gin and main.py: G = 30 identity "
          "stacks x 1 block, 2 hidden layers of 512; I = trend (3 blocks, degree 2) + seasonality (3 blocks, "
          "1 harmonic), 2 hidden layers, shared weights, 512 units in both stacks (the authors use 256 for trend "
          "and 2048 for seasonality, which one mlp_units for all blocks cannot say); MAPE loss, batch 1024 "
          "windows (of 256 series a step: N-BEATS draws series uniformly), lr 1e-3 halved 3 times, gradient "
          "norm clipped at 1; no scaling; steps G 100/100, I 300/500 (monthly/quarterly); windows cut in the last 20h "
          "(monthly) / 10h (quarterly) points; lookbacks 2h..7h, median of the six forecasts")
# The authors' notebooks/Tourism.ipynb (MAPE): the median ensemble of one repeat of the six
# lookbacks ("small ensemble"), and of all 10 repeats (the paper's ensemble of this model type).
PAPER = {("NBEATS-G", "monthly"): (19.78, 19.45), ("NBEATS-G", "quarterly"): (14.93, 14.90),
         ("NBEATS-I", "monthly"): (20.16, 19.91), ("NBEATS-I", "quarterly"): (15.51, 15.27)}
PAPER_REF = "ServiceNow/N-BEATS notebooks/Tourism.ipynb, 'Small ensemble (1 repeat)' (and all repeats)"


def snaive(x, h, m):
    """Seasonal naive: the last season repeated."""
    x = np.asarray(x)
    return np.resize(x[-m:], h) if len(x) >= m else np.full(h, x[-1])


def build(name, h, lookback, steps, seed, quick, batch_size=256):
    from ndiv.losses import MAPE
    from ndiv.models import NBEATS

    units = [[16, 16]] if quick else [[512, 512]]
    if name == "NBEATS-G":
        n = 3 if quick else 30
        arch = dict(stack_types=["identity"] * n, n_blocks=[1] * n, shared_weights=False)
    else:
        arch = dict(stack_types=["trend", "seasonality"], n_blocks=[3, 3], shared_weights=True, n_basis=2,
                    n_harmonics=1)
    return NBEATS(h=h, input_size=lookback * h, mlp_units=units, loss=MAPE(), max_steps=3 if quick else steps,
                  learning_rate=1e-3, gradient_clip_val=1.0, batch_size=batch_size, windows_batch_size=64 if quick else 1024,
                  start_padding_enabled=True, random_seed=seed, alias=f"{name}-{lookback}", **arch)


def use_nbeats_sampler() -> None:
    """Train on N-BEATS' own draw for the rest of this process: every series in each step, and
    windows drawn with probability 1 / (windows of their series), with replacement, so that each
    series is equally likely, as N-BEATS' TimeseriesSampler draws them (common/sampler.py: 1024
    series uniformly, one cut point each). NeuralForecast's loader (ndiv's default) draws windows
    uniformly, so a series weighs as much as its length: tourism's monthly series have 91 to 333
    points. NeuralForecast has no option for this; the script replaces TrainWindowSampler's draw."""
    import numpy as np
    from ndiv.data import windows as W

    series_windows = W.TrainWindowSampler._series_windows

    def _series_windows(self, idx):
        hit = series_windows(self, idx)
        self.window_series = hit[2] // hit[1].shape[2]     # valid window -> its series (position)
        return hit

    def draw(self, n_windows):
        _, inv, count = np.unique(self.window_series, return_inverse=True, return_counts=True)
        p = 1.0 / count[inv]
        return self.rng.choice(n_windows, size=self.windows_batch_size, replace=True, p=p / p.sum())

    W.TrainWindowSampler._series_windows, W.TrainWindowSampler.draw = _series_windows, draw


def trim(train_df, keep: int):
    """Each series' last `keep` points: the windows of N-BEATS' sampler, whose cut point lies
    in the last history x h points (the lookback before the first of them included)."""
    return train_df.groupby("unique_id", sort=False).tail(keep)


def main():
    def extra(p):
        p.add_argument("--sampler", choices=["nf", "nbeats"], default="nf",
                       help="nf: NeuralForecast's window draw (256 series a step); nbeats: N-BEATS' (series "
                            "uniformly, all series a step), rows named '<model> (N-BEATS sampler)'")
    a = C.parse_args(__doc__.splitlines()[0], extra)
    nbeats = a.sampler == "nbeats"
    if nbeats:
        use_nbeats_sampler()
    store = C.ResultStore(a.out, "tourism_quick" if a.quick else "tourism", ("model", "group", "seed"))
    for group, g in GROUPS.items():
        if a.quick and group != "quarterly":
            continue
        h, m = g["h"], g["m"]
        train_df, test_df = C.integer_ds(*C.load_long_split("tourism", g["prefix"]))
        if a.quick:
            train_df, test_df = C.quick_subset(train_df, test_df, 12)
        train, test = C.series_arrays(train_df), C.series_arrays(test_df)
        for name, fn in (("SNaive", snaive), ("Naive2", C.naive2)):
            if not store.has(model=name, group=group, seed=0):
                fc = {k: fn(train[k], h, m) for k in test}
                store.add(dict(model=name, group=group, seed=0, quick=a.quick, n_series=len(test), wall_s=0.0,
                               mape=float(np.mean([C.mape_pct(test[k], fc[k]) for k in test]))))
        for name, proto in PROTOCOL.items():
            row_name = f"{name} (N-BEATS sampler)" if nbeats else name
            for seed in a.seeds:
                if a.only and not any(s in f"{row_name}/{group}" for s in a.only):
                    continue
                if store.has(model=row_name, group=group, seed=seed):
                    print(f"have {row_name}/{group} seed {seed}")
                    continue
                members, member_mape, t0 = [], {}, time.perf_counter()
                for lb in LOOKBACKS[:2] if a.quick else LOOKBACKS:
                    C.seed_all(seed)
                    model = build(name, h, lb, proto["steps"][group], seed, a.quick,
                                  batch_size=1024 if nbeats else 256)   # 1024: every series
                    fc, _ = C.fit_predict(model, trim(train_df, proto["history"][group] * h + lb * h))
                    members.append(fc)
                    member_mape[lb] = float(np.mean([C.mape_pct(test[k], fc[k]) for k in test]))
                    print(f"  {name}/{group} lookback {lb}h: MAPE {member_mape[lb]:.2f}")
                wall = time.perf_counter() - t0
                ens = {k: np.median([f[k] for f in members], axis=0) for k in test}
                mape = float(np.mean([C.mape_pct(test[k], ens[k]) for k in test]))
                small, full = PAPER.get((name, group), ("", ""))
                store.add(dict(model=row_name, group=group, seed=seed, quick=a.quick, n_series=len(test), mape=mape,
                               member_mape=member_mape, paper_mape=small, paper_mape_all_repeats=full,
                               gap_pct=round(100 * (mape / small - 1), 2) if small else "", paper_ref=PAPER_REF,
                               wall_s=round(wall, 2), settings_source=SOURCE, protocol="v2", sampler=a.sampler))
                print(f"{row_name}/{group} seed {seed}: median of {len(members)} MAPE {mape:.2f} "
                      f"(authors {small}) in {wall:.0f} s")
    store.print_table(["model", "group", "seed", "mape", "paper_mape", "gap_pct", "wall_s"])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

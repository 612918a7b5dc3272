"""Tourism competition, monthly (h=24) and quarterly (h=8): N-BEATS generic and interpretable
against the N-BEATS paper's MAPE table, with the seasonal naive and the M4 Naive2 as baselines
computed here.

    python experiments/tourism.py            # every row
    python experiments/tourism.py --quick    # seconds: 12 series, 3 steps, small layers
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C  # noqa: E402
from m4 import build  # noqa: E402  (the same N-BEATS settings as the M4 script)

GROUPS = {"monthly": dict(prefix="tourism_monthly", h=24, m=12), "quarterly": dict(prefix="tourism_quarterly", h=8, m=4)}
MODELS = ["NBEATS-G", "NBEATS-I"]
# N-BEATS paper (Oreshkin et al. 2020) tourism MAPE: not found in text form in the stored
# sources (the paper's table is not in its repository's README); left empty on purpose.
PAPER_MAPE: dict = {}


def snaive(x, h, m):
    """Seasonal naive: the last season repeated."""
    x = np.asarray(x)
    return np.resize(x[-m:], h) if len(x) >= m else np.full(h, x[-1])


def main():
    a = C.parse_args(__doc__.splitlines()[0])
    store = C.ResultStore(a.out, "tourism_quick" if a.quick else "tourism", ("model", "group", "seed"))
    for group, g in GROUPS.items():
        if a.quick and group != "quarterly":
            continue
        train_df, test_df = C.integer_ds(*C.load_long_split("tourism", g["prefix"]))
        if a.quick:
            train_df, test_df = C.quick_subset(train_df, test_df, 12)
        train, test = C.series_arrays(train_df), C.series_arrays(test_df)
        for name, fn in (("SNaive", snaive), ("Naive2", C.naive2)):
            if not store.has(model=name, group=group, seed=0):
                fc = {k: fn(train[k], g["h"], g["m"]) for k in test}
                store.add(dict(model=name, group=group, seed=0, quick=a.quick, n_series=len(test), wall_s=0.0,
                               mape=float(np.mean([C.mape_pct(test[k], fc[k]) for k in test]))))
        for name in MODELS:
            for seed in a.seeds:
                if a.only and not any(s in f"{name}/{group}" for s in a.only):
                    continue
                if store.has(model=name, group=group, seed=seed):
                    print(f"have {name}/{group} seed {seed}")
                    continue
                C.seed_all(seed)
                fc, wall = C.fit_predict(build(name, g["h"], seed, a.quick), train_df)
                mape = float(np.mean([C.mape_pct(test[k], fc[k]) for k in test]))
                store.add(dict(model=name, group=group, seed=seed, quick=a.quick, n_series=len(test), mape=mape,
                               paper_mape=PAPER_MAPE.get((name, group), ""), wall_s=round(wall, 2)))
                print(f"{name}/{group} seed {seed}: MAPE {mape:.2f} ({wall:.1f} s)")
    store.print_table(["model", "group", "seed", "mape", "paper_mape", "wall_s"])


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()

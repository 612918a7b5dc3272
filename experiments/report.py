"""The README's tables from the saved rows: mean and spread over seeds, the paper's figure and the
relative gap, the wall time per run.

    python experiments/report.py                 # experiments/results/*.json -> markdown on stdout
    python experiments/report.py --quick         # the --quick rows (what CI writes)
"""
from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def _load(path: Path) -> list[dict]:
    return json.loads(path.read_text())["rows"] if path.exists() else []


def _mean_sd(xs) -> str:
    xs = np.asarray(xs, np.float64)
    return f"{xs.mean():.4f}" if len(xs) == 1 else f"{xs.mean():.4f} ± {xs.std(ddof=1):.4f}"


def _seeds(rs) -> str:
    """The rows' seeds, a run of three or more consecutive ones written first-last."""
    seeds = sorted(int(r["seed"]) for r in rs)
    if len(seeds) >= 3 and seeds == list(range(seeds[0], seeds[-1] + 1)):
        return f"{seeds[0]}-{seeds[-1]}"
    return ",".join(map(str, seeds))


def _gap(ours, paper) -> str:
    if paper is None or paper == "":
        return "–"
    g = 100 * (float(np.mean(ours)) / float(paper) - 1)
    return f"**{g:+.1f}%**" if abs(g) > 2 else f"{g:+.1f}%"


def long_horizon_table(rows: list[dict], protocol: str = "v2") -> str:
    """One line per model x dataset x h x lookback of the given protocol."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("protocol", "v1") == protocol:
            groups[(r["model"], r["dataset"], int(r["h"]), int(r["input_size"]))].append(r)
    out = ["| model | dataset | h | lookback | paper MSE / MAE | ndiv MSE | ndiv MAE | seeds | gap MSE / MAE | wall s (mean) |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for (m, ds, h, L), rs in sorted(groups.items()):
        p_mse, p_mae = rs[0].get("paper_mse"), rs[0].get("paper_mae")
        paper = "–" if p_mse is None else f"{p_mse} / {'–' if p_mae is None else p_mae}"
        mse, mae = [r["mse"] for r in rs], [r["mae"] for r in rs]
        out.append(f"| {m} | {ds} | {h} | {L} | {paper} | {_mean_sd(mse)} | {_mean_sd(mae)} | "
                   f"{_seeds(rs)} | {_gap(mse, p_mse)} / {_gap(mae, p_mae)} | "
                   f"{np.mean([r['wall_s'] for r in rs]):.0f} |")
    return "\n".join(out)


def m4_table(rows: list[dict]) -> str:
    """One line per model x group x library."""
    groups = defaultdict(list)
    for r in rows:
        groups[(r["group"], r["model"], r.get("library", "ndiv"))].append(r)
    out = ["| group | model | library | sMAPE | MASE | OWA | seeds | wall s (mean) |", "|---|---|---|---|---|---|---|---|"]
    for (g, m, lib), rs in sorted(groups.items()):
        out.append(f"| {g} | {m} | {lib} | {_mean_sd([r['smape'] for r in rs])} | {_mean_sd([r['mase'] for r in rs])} | "
                   f"{_mean_sd([r['owa'] for r in rs])} | {_seeds(rs)} | "
                   f"{np.mean([r['wall_s'] for r in rs]):.0f} |")
    return "\n".join(out)


def tourism_table(rows: list[dict]) -> str:
    """One line per model x group: the median ensemble's MAPE against the authors' figure."""
    groups = defaultdict(list)
    for r in rows:
        if r.get("protocol") == "v2" or r["model"] in ("SNaive", "Naive2"):
            groups[(r["group"], r["model"])].append(r)
    out = ["| group | model | authors' MAPE (1 repeat / all) | ndiv MAPE (median of 6) | members (lookback 2h..7h) | seeds | gap | wall s (mean) |",
           "|---|---|---|---|---|---|---|---|"]
    for (g, m), rs in sorted(groups.items()):
        small, full = rs[0].get("paper_mape", ""), rs[0].get("paper_mape_all_repeats", "")
        paper = f"{small} / {full}" if small != "" else "–"
        members = rs[0].get("member_mape") or {}
        mem = ", ".join(f"{float(v):.2f}" for _, v in sorted(members.items(), key=lambda kv: int(kv[0]))) or "–"
        out.append(f"| {g} | {m} | {paper} | {_mean_sd([r['mape'] for r in rs])} | {mem} | "
                   f"{_seeds(rs)} | {_gap([r['mape'] for r in rs], small or None)} | "
                   f"{np.mean([r['wall_s'] for r in rs]):.0f} |")
    return "\n".join(out)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=str(RESULTS))
    a = p.parse_args()
    sfx = "_quick" if a.quick else ""
    lh = _load(Path(a.out) / f"long_horizon{sfx}.json")
    print("## Long horizon (protocol v2)\n\n" + long_horizon_table(lh, "v2" if not a.quick else lh[0].get("protocol", "v2") if lh else "v2"))
    print("\n## M4\n\n" + m4_table(_load(Path(a.out) / f"m4{sfx}.json")))
    print("\n## Tourism\n\n" + tourism_table(_load(Path(a.out) / f"tourism{sfx}.json")))


if __name__ == "__main__":
    main()

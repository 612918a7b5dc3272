"""Print asv results as a markdown table: ndiv's figures, torch's, and the ratio torch/ndiv.

    python asv_benchmarks/ratio_table.py                  # newest result file of each machine
    python asv_benchmarks/ratio_table.py FILE.json ...    # these asv result files
    python asv_benchmarks/ratio_table.py --machine NAME --results-dir .asv/results

Results are written by `asv run` (with --python=same only when given --set-commit-hash, see
asv_benchmarks/README.md) to <results_dir>/<machine>/<commit>-<env>.json. One row per benchmark
and combination of its parameters other than `backend`:

    ratio = torch's cost / ndiv's cost    (time, peak memory): > 1 means ndiv is faster (smaller)
    ratio = ndiv's rate / torch's rate    (track_ benchmarks in a unit "x/s"): > 1, ndiv is faster

Benchmarks without a `backend` parameter (ndiv only: memory pool, first result) show ndiv's
figure and no ratio. "skipped" is a case asv skipped (NotImplementedError: torch, a model or a
kernel not there); "failed" is a case that raised or timed out.
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_RESULTS = os.path.join(ROOT, ".asv", "results")


def latest_result_files(results_dir: str, machine: str | None = None) -> list[str]:
    """The newest result file (by its recorded date) in each machine folder of results_dir."""
    if not os.path.isdir(results_dir):
        raise SystemExit(f"ratio_table: no asv results folder {results_dir!r}: run asv first (see asv_benchmarks/README.md)")
    found = []
    for name in sorted(os.listdir(results_dir)):
        folder = os.path.join(results_dir, name)
        if not os.path.isdir(folder) or (machine is not None and name != machine):
            continue
        dated = []
        for f in os.listdir(folder):
            if f.endswith(".json") and f != "machine.json":
                path = os.path.join(folder, f)
                with open(path) as fh:
                    dated.append((json.load(fh).get("date", 0), path))
        if dated:
            found.append(max(dated)[1])
    if not found:
        which = f"machine {machine!r}" if machine else "any machine"
        raise SystemExit(f"ratio_table: no result files for {which} under {results_dir!r}: asv run "
                         "--python=same saves results only with --set-commit-hash (see asv_benchmarks/README.md)")
    return found


def load_benchmark_meta(result_path: str) -> dict:
    """benchmarks.json (name -> type, unit, param_names), two folders above a result file."""
    path = os.path.join(os.path.dirname(os.path.dirname(result_path)), "benchmarks.json")
    if not os.path.exists(path):
        return {}
    with open(path) as fh:
        return {k: v for k, v in json.load(fh).items() if isinstance(v, dict)}


def expand(result_file: dict) -> dict:
    """{benchmark: {param tuple (as asv's repr strings): value}} from one asv 0.6 result file.

    asv stores per benchmark a row of result_columns; 'result' is a flat list over
    itertools.product(*params), None (JSON null) for a failure and NaN for a skip.
    """
    columns = result_file["result_columns"]
    out = {}
    for name, row in result_file["results"].items():
        rec = dict(zip(columns, row))
        values, params = rec.get("result"), rec.get("params") or []
        if values is None:
            values = [None] * max(1, math.prod(len(p) for p in params))
        combos = list(itertools.product(*params)) if params else [()]
        out[name] = dict(zip(combos, values))
    return out


def _unquote(v: str) -> str:
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in "'\"" else v


def fmt(value, kind: str, unit: str) -> str:
    if value is None:
        return "failed"
    if isinstance(value, float) and math.isnan(value):
        return "skipped"
    if kind == "time":
        for scale, suffix in ((1, "s"), (1e-3, "ms"), (1e-6, "us"), (1e-9, "ns")):
            if value >= scale or suffix == "ns":
                return f"{value / scale:.3g} {suffix}"
    if kind == "peakmemory":
        return f"{value / 2 ** 20:.1f} MiB"
    return f"{value:.4g} {unit}".strip()


def ratio(ndiv_v, torch_v, kind: str, unit: str) -> str:
    ok = lambda v: v is not None and not (isinstance(v, float) and math.isnan(v)) and v > 0  # noqa: E731
    if not (ok(ndiv_v) and ok(torch_v)):
        return "-"
    higher_is_better = kind == "track" and unit.endswith("/s")
    return f"{(ndiv_v / torch_v) if higher_is_better else (torch_v / ndiv_v):.2f}"


def table(result_path: str) -> str:
    with open(result_path) as fh:
        res = json.load(fh)
    meta = load_benchmark_meta(result_path)
    params_info = res.get("params", {})
    lines = [
        f"asv results: machine `{params_info.get('machine', '?')}`, commit `{res.get('commit_hash', '?')[:8]}`, "
        f"env `{res.get('env_name', '?')}` ({os.path.relpath(result_path)})",
        "",
        "| benchmark | parameters | ndiv | torch | torch/ndiv |",
        "|---|---|---|---|---|",
    ]
    omitted = 0
    for name, by_combo in sorted(expand(res).items()):
        m = meta.get(name, {})
        kind, unit = m.get("type", "time"), m.get("unit", "")
        names = m.get("param_names") or [f"p{i}" for i in range(len(next(iter(by_combo), ())))]
        b = names.index("backend") if "backend" in names else None
        rows = {}
        for combo, value in by_combo.items():
            rest = tuple(f"{n}={_unquote(v)}" for i, (n, v) in enumerate(zip(names, combo)) if i != b)
            backend = _unquote(combo[b]) if b is not None else "ndiv"
            rows.setdefault(rest, {})[backend] = value
        for rest, by_backend in rows.items():
            if all(_skipped(v) for v in by_backend.values()):
                omitted += 1  # not run at all (a -b filter, or every side skipped)
                continue
            n_v, t_v = by_backend.get("ndiv"), by_backend.get("torch")
            torch_cell = fmt(t_v, kind, unit) if "torch" in by_backend else "-"
            lines.append(f"| {name} | {', '.join(rest) or '-'} | {fmt(n_v, kind, unit)} | {torch_cell} | "
                         f"{ratio(n_v, t_v, kind, unit)} |")
    if omitted:
        lines.append(f"\n({omitted} rows without any result left out: not selected by -b, or skipped on every side)")
    return "\n".join(lines)


def _skipped(v) -> bool:
    return isinstance(v, float) and math.isnan(v)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="*", help="asv result files (default: the newest of each machine)")
    ap.add_argument("--results-dir", default=DEFAULT_RESULTS, help="asv's results_dir (default: .asv/results)")
    ap.add_argument("--machine", default=None, help="only this machine's newest result")
    args = ap.parse_args(argv)
    files = args.files or latest_result_files(args.results_dir, args.machine)
    print("\n\n".join(table(f) for f in files))
    return 0


if __name__ == "__main__":
    sys.exit(main())

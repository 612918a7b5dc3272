"""The `ndiv` command: forecast a CSV (or the bundled AirPassengers) from the shell.

    ndiv forecast                      # AirPassengers, MLP, last 12 months held out
    ndiv forecast --data my.csv --freq D --h 14 --input-size 56 --model NHITS --plot fc.png
    ndiv cv --n-windows 3              # cross-validation
    ndiv models                        # the models, one line each

CSV columns: unique_id, ds, y (long format). pandas is not needed. A data error prints one
line, `ndiv: error: ...`, and exits with status 2 (`--debug` shows the traceback instead).
"""
from __future__ import annotations

import argparse
import csv
import sys
import time

import numpy as np

SEASONS = {"MS": 12, "M": 12, "ME": 12, "mo": 12, "QS": 4, "Q": 4, "QE": 4, "q": 4, "W": 52, "w": 52,
           "D": 7, "d": 7, "B": 5, "H": 24, "h": 24, "15min": 96, "30min": 48, "T": 60, "min": 60, "m": 60,
           "Y": 1, "YS": 1, "YE": 1, "A": 1, "y": 1}


class DataError(Exception):
    """A problem with the user's data or options: main prints its one line and exits 2."""


def season_length(freq) -> int:
    """The seasonal period of a frequency: 12 for monthly ('MS', 'M', '1mo'), 4 quarterly, 52
    weekly, 7 daily, 24 hourly; 1 (no season) for yearly, integer steps and unknown strings."""
    if isinstance(freq, (int, np.integer)):
        return 1
    if str(freq) in SEASONS:
        return SEASONS[str(freq)]
    base = str(freq).lstrip("0123456789")
    return SEASONS.get(base.split("-")[0], 1)


def read_csv(path: str) -> dict:
    """A long-format CSV -> dict of arrays (ds as datetime64 when it parses as dates)."""
    try:
        f = open(path, newline="")
    except FileNotFoundError:
        raise DataError(f"--data {path}: no such file") from None
    with f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"--data {path}: the file has no rows")
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    for need in ("unique_id", "ds", "y"):
        if need not in cols:
            raise DataError(f"--data {path}: missing column {need!r} (has {list(cols)}); "
                             "the CSV needs unique_id, ds, y")
    ds = cols["ds"]
    try:
        cols["ds"] = ds.astype(np.int64)
    except ValueError:
        try:
            cols["ds"] = ds.astype("datetime64[ns]")
        except ValueError:
            raise DataError(f"--data {path}: column 'ds' holds neither integers nor dates "
                             f"(e.g. {ds[0]!r})") from None
    for k in cols:
        if k not in ("unique_id", "ds"):
            try:
                cols[k] = np.array([float(v) if v != "" else np.nan for v in cols[k]])
            except ValueError:
                raise DataError(f"--data {path}: column {k!r} is not numeric") from None
    return cols


def write_csv(path: str, table: dict) -> None:
    keys = list(table)
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(keys)
        for row in zip(*[_fmt_col(table[k]) for k in keys]):
            w.writerow(row)


def _fmt_col(a):
    a = np.asarray(a)
    if a.dtype.kind == "M":  # one ISO format for the whole column (pandas reads it back): dates, or date-times
        ok = a[~np.isnat(a)]
        unit = next(u for u in ("D", "s", "ms", "us", "ns") if np.all(ok == ok.astype(f"datetime64[{u}]")))
        return np.datetime_as_string(a, unit=unit).tolist()
    if a.dtype.kind == "f":
        return [f"{v:.6g}" for v in a]
    return [str(v) for v in a]


def _as_dict(df) -> dict:
    if isinstance(df, dict):
        return df
    return {k: df[k].to_numpy() for k in df.columns}


def _split(data: dict, h: int):
    """The last h rows of every series as test, the rest as train."""
    uid, ds = data["unique_id"], data["ds"]
    order = np.lexsort((ds, uid))
    data = {k: np.asarray(v)[order] for k, v in data.items()}
    uid = data["unique_id"]
    _, first, counts = np.unique(uid, return_index=True, return_counts=True)
    test = np.zeros(len(uid), bool)
    for f, c in zip(first, counts):
        if c <= h:
            raise DataError(f"series {uid[f]!r} has {c} rows; holding out --h {h} leaves nothing to train on")
        test[f + c - h: f + c] = True
    return {k: v[~test] for k, v in data.items()}, {k: v[test] for k, v in data.items()}


def seasonal_naive(train: dict, h: int, season: int) -> np.ndarray:
    """The value one season earlier, per series, for the h steps after each series' end."""
    out = []
    for u in np.unique(train["unique_id"]):
        y = train["y"][train["unique_id"] == u]
        m = min(season, len(y))
        out.append(np.resize(y[-m:], h))
    return np.concatenate(out)


def _model(args):
    from ndiv.models import MODELS
    if args.model not in MODELS:
        raise DataError(f"unknown --model {args.model!r}; choose one of {sorted(MODELS)} (ndiv models lists them)")
    kwargs = dict(h=args.h, input_size=args.input_size, max_steps=args.max_steps, random_seed=args.seed)
    if args.level:
        from ndiv.losses import MQLoss
        kwargs["loss"] = MQLoss(level=args.level)
    return MODELS[args.model](**kwargs)


def cmd_models(args) -> int:
    from ndiv.models import MODELS
    for name, cls in sorted(MODELS.items()):
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        print(f"{name:14s} {doc}")
    return 0


def _load(args):
    if args.data:
        freq = args.freq
        if freq is None:
            raise DataError("--freq is needed with --data (e.g. MS, D, h, W, or 1 for integer ds)")
        data = read_csv(args.data)
    else:
        from ndiv.datasets import load_air_passengers
        data = _as_dict(load_air_passengers())
        freq = args.freq or "MS"
    try:
        freq = int(freq)
    except (TypeError, ValueError):
        pass
    return data, freq


def cmd_forecast(args) -> int:
    import ndiv
    from ndiv.metrics import mae, smape
    data, freq = _load(args)
    train, test = _split(data, args.h)
    model = _model(args)
    fc = ndiv.Forecaster(models=[model], freq=freq)
    if args.explain and not args.plot:
        raise SystemExit("ndiv: --explain writes its pictures next to the forecast plot: pass --plot PATH.png too")
    recorder = None
    if args.explain:
        from ndiv.viz import GradientRecorder
        recorder = GradientRecorder(model, every=max(1, args.max_steps // 100))   # about 100 points
    t0 = time.perf_counter()
    fc.fit(train)
    if recorder is not None:
        recorder.remove()
    fit_s = time.perf_counter() - t0
    pred = _as_dict(fc.predict())
    season, why = _season(args, freq)
    naive = seasonal_naive(train, args.h, season)
    name = str(model)
    y = np.asarray(test["y"], dtype=np.float64)
    point = name if name in pred else f"{name}-median"   # MQLoss gives the median as the point forecast
    table = {"unique_id": pred["unique_id"], "ds": pred["ds"], "y": y,
             **{k: np.asarray(v, dtype=np.float64) for k, v in pred.items() if k.startswith(name)},
             "SeasonalNaive": naive}
    print(f"{name} trained for {args.max_steps} steps in {fit_s:.2f} s on {len(np.unique(train['unique_id']))} "
          f"series; forecast of the last {args.h} points of each:")
    _print_table(table, limit=args.h * 3)
    print(f"\nSeasonalNaive repeats the last season: season length {season} ({why})")
    print(f"{'model':14s} {'MAE':>10s} {'sMAPE':>7s}   (sMAPE as in M4: 200 |y - f| / (|y| + |f|), 0-200)")
    for col in (point, "SeasonalNaive"):
        print(f"{col:14s} {mae(y, table[col]):10.3f} {200 * smape(y, table[col]):7.2f}")
    write_csv(args.output, table)
    print(f"\nwrote {args.output}")
    if args.plot:
        _plot(args.plot, train, table, name, point, season)
    if recorder is not None:
        _explain(args.plot, fc, recorder)
    return 0


def _explain(path: str, fc, recorder) -> None:
    """PATH_gradients.png (gradient flow over the fit) and the model's own interpretation:
    PATH_decomposition.png (NHITS, NBEATS, NBEATSx), PATH_importances.png (TFT: variable
    importances and attention over time) or PATH_attention.png (PatchTST)."""
    from ndiv import viz
    stem = path[:-4] if path.lower().endswith(".png") else path
    model = fc.models[0]
    viz.plot_gradient_flow(recorder, f"{stem}_gradients.png", depth=2, title=f"{model}: gradient flow")
    print(f"wrote {stem}_gradients.png")
    kind = type(model).__name__
    if kind in viz.interpret.DECOMPOSABLE:
        viz.plot_decomposition(viz.decomposition(fc), f"{stem}_decomposition.png")
        print(f"wrote {stem}_decomposition.png")
    elif kind == "TFT":
        viz.plot_tft(viz.tft_interpretation(fc), f"{stem}_importances.png")
        print(f"wrote {stem}_importances.png")
    elif any(type(m).__name__ == "_ScaledDotProductAttention" for m in model.modules()):
        viz.plot_attention(viz.attention(fc), f"{stem}_attention.png")
        print(f"wrote {stem}_attention.png")
    else:
        print(f"{kind} has no decomposition or attention map to show (NHITS, NBEATS, NBEATSx, TFT and PatchTST do)")


def _season(args, freq) -> tuple[int, str]:
    """The seasonal-naive period and where it comes from (--season-length, or the frequency)."""
    if args.season_length is not None:
        return args.season_length, "--season-length"
    m = season_length(freq)
    if m == 1:
        return 1, f"freq {freq!r} has no known season; the last value is repeated, pass --season-length N to set one"
    return m, f"from freq {freq!r}; --season-length N sets another"


def cmd_cv(args) -> int:
    import ndiv
    from ndiv.metrics import mae
    data, freq = _load(args)
    model = _model(args)
    fc = ndiv.Forecaster(models=[model], freq=freq)
    cv = _as_dict(fc.cross_validation(data, n_windows=args.n_windows, step_size=args.step_size))
    name = str(model) if str(model) in cv else f"{model}-median"
    _print_table(cv, limit=3 * args.h)
    for c in np.unique(cv["cutoff"]):
        sel = cv["cutoff"] == c
        print(f"cutoff {str(c)[:10]}: MAE {mae(cv['y'][sel], cv[name][sel]):.3f}")
    write_csv(args.output, cv)
    print(f"wrote {args.output}")
    return 0


def _print_table(table: dict, limit: int) -> None:
    keys = list(table)
    cols = [_fmt_col(table[k]) for k in keys]
    widths = [max(len(k), *(len(v) for v in c[:limit])) for k, c in zip(keys, cols)]
    print("  ".join(k.rjust(w) for k, w in zip(keys, widths)))
    n = len(cols[0])
    for i in range(min(n, limit)):
        print("  ".join(c[i].rjust(w) for c, w in zip(cols, widths)))
    if n > limit:
        print(f"... ({n - limit} more rows in the output file)")


def _plot(path: str, train: dict, table: dict, name: str, point: str, season: int) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DataError("--plot needs matplotlib: pip install 'ndiv[plot]'") from None
    fig = plot_forecast(plt, train, table, name, point, season)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(f"wrote {path}")


def plot_forecast(plt, train: dict, table: dict, name: str, point: str, season: int, seasons: int = 3):
    """A figure of up to 4 series: the last `seasons` seasons of history (at least 3 horizons),
    the actuals, the forecast with its intervals and the seasonal naive, legend outside the axes."""
    h = int(np.sum(table["unique_id"] == table["unique_id"][0]))
    keep = max(seasons * season, 3 * h)
    uids = np.unique(table["unique_id"])[:4]
    fig, axes = plt.subplots(len(uids), 1, figsize=(10, 3 * len(uids)), squeeze=False)
    for ax, u in zip(axes[:, 0], uids):
        tr = np.flatnonzero(train["unique_id"] == u)[-keep:]
        te = table["unique_id"] == u
        ax.plot(train["ds"][tr], train["y"][tr], color="k", lw=1, label="history")
        ax.plot(table["ds"][te], table["y"][te], color="k", lw=1, ls="--", label="actual")
        for k in sorted((k for k in table if k.startswith(f"{name}-lo-")), key=lambda k: -float(k.split("-lo-")[1])):
            hi = k.replace("-lo-", "-hi-")
            ax.fill_between(table["ds"][te], table[k][te], table[hi][te], color="C0", alpha=0.2,
                            label=f"{k.split('-lo-')[1]}% interval")
        ax.plot(table["ds"][te], table[point][te], color="C0", lw=2, label=point)
        ax.plot(table["ds"][te], table["SeasonalNaive"][te], color="C1", lw=1, label=f"seasonal naive (m={season})")
        ax.set_title(str(u))
        ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, borderaxespad=0)
    fig.tight_layout()
    return fig


FORECAST_EXAMPLES = """examples:
  ndiv forecast                                    # AirPassengers, MLP, last 12 months held out
  ndiv forecast --level 80 90 --plot fc.png        # intervals (MQLoss) and a plot
  ndiv forecast --data sales.csv --freq D --h 14 --input-size 56 --model NHITS --output out.csv
  ndiv forecast --data steps.csv --freq 1 --season-length 24 --max-steps 500 --seed 3

a data error prints one line (ndiv: error: ...) and exits 2; --debug shows the traceback."""

CV_EXAMPLES = """examples:
  ndiv cv --n-windows 3 --step-size 12             # AirPassengers, three yearly cutoffs
  ndiv cv --data sales.csv --freq D --h 7 --input-size 28 --n-windows 4 --step-size 7"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ndiv", description="Neural forecasting without a deep-learning framework.")
    sub = p.add_subparsers(dest="command")

    def common(sp, output):
        sp.add_argument("--data", metavar="CSV",
                        help="long-format CSV with unique_id, ds, y (default: the bundled AirPassengers)")
        sp.add_argument("--freq", default=None, help="frequency of ds: MS, D, h, W, ... or 1 for integer ds "
                        "(needed with --data; default MS for AirPassengers)")
        sp.add_argument("--model", default="MLP", help="model name, see `ndiv models` (default MLP)")
        sp.add_argument("--h", type=int, default=12, help="forecast horizon (default 12)")
        sp.add_argument("--input-size", type=int, default=24, help="input window length (default 24)")
        sp.add_argument("--max-steps", type=int, default=300, help="training steps (default 300)")
        sp.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
        sp.add_argument("--level", type=int, nargs="+", metavar="L",
                        help="prediction intervals, e.g. --level 80 90 (trains with MQLoss)")
        sp.add_argument("--output", default=output, metavar="CSV", help=f"output CSV (default {output})")
        sp.add_argument("--debug", action="store_true", help="show the traceback of an error")

    f = sub.add_parser("forecast", help="hold out the last h points, forecast them, compare with seasonal naive",
                       description="Hold out the last h points of every series, forecast them and compare with "
                       "a seasonal-naive baseline (MAE, and sMAPE on M4's 0-200 scale).",
                       epilog=FORECAST_EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    common(f, "forecast.csv")
    f.add_argument("--season-length", type=int, default=None, metavar="M",
                   help="season of the seasonal-naive baseline (default: from --freq, e.g. 12 for MS, 7 for D)")
    f.add_argument("--plot", metavar="PNG",
                   help="write a PNG of the last seasons of history, forecast and intervals (needs matplotlib)")
    f.add_argument("--explain", action="store_true",
                   help="also write PLOT_gradients.png (gradient flow of the fit) and the model's decomposition "
                        "(NHITS/NBEATS), importances and attention (TFT) or attention (PatchTST) next to --plot")
    c = sub.add_parser("cv", help="cross-validation over the last windows of each series",
                       description="Cross-validation: forecasts from --n-windows cutoffs, --step-size apart, "
                       "at the end of every series.", epilog=CV_EXAMPLES,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    common(c, "cv.csv")
    c.add_argument("--n-windows", type=int, default=3, help="number of cutoffs (default 3)")
    c.add_argument("--step-size", type=int, default=12, help="steps between cutoffs (default 12)")
    sub.add_parser("models", help="list the models")
    s = sub.add_parser("serve", help="an HTTP forecasting service for a saved folder (needs ndiv[serve])")
    s.add_argument("path", help="the folder that Forecaster.save() wrote")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--workers", type=int, default=1, help="worker processes, each with the model (default 1)")
    s.add_argument("--max-batch", type=int, default=32, help="most requests merged into one predict (1: none)")
    s.add_argument("--max-wait-ms", type=float, default=5.0, help="how long a request waits for others (default 5)")
    s.add_argument("--cache-size", type=int, default=0, help="series kept in the forecast cache (default 0: none)")
    s.add_argument("--cache-ttl", type=float, default=300.0, help="seconds a cached forecast lives (default 300)")
    s.add_argument("--max-rows", type=int, default=100_000, help="most rows per request; more get 413")
    s.add_argument("--max-body-mb", type=float, default=16.0, help="largest body in MiB; larger get 413")
    s.add_argument("--log-level", default="info")
    return p


def cmd_serve(args) -> int:
    from ndiv.serve import serve
    serve(args.path, host=args.host, port=args.port, workers=args.workers, max_batch=args.max_batch,
          max_wait_ms=args.max_wait_ms, cache_size=args.cache_size, cache_ttl=args.cache_ttl,
          max_rows=args.max_rows, max_body_bytes=int(args.max_body_mb * 2 ** 20), log_level=args.log_level)
    return 0


def main(argv=None) -> int:
    """Run the command; a data or option error prints `ndiv: error: ...` (one line) and returns 2."""
    args = build_parser().parse_args(argv)
    if args.command is None:
        build_parser().print_help()
        return 0
    try:
        for k in ("h", "input_size", "max_steps", "n_windows", "step_size", "season_length"):
            if getattr(args, k, None) is not None and getattr(args, k) < 1:
                raise DataError(f"--{k.replace('_', '-')} must be a positive integer, got {getattr(args, k)}")
        return {"forecast": cmd_forecast, "cv": cmd_cv, "models": cmd_models, "serve": cmd_serve}[args.command](args)
    except (DataError, ValueError, TypeError, OSError) as e:
        if getattr(args, "debug", False):
            raise
        print(f"ndiv: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""Pictures: the graph, the gradient flow, a decomposition, attention maps (matplotlib, Agg-safe).

Every function returns the matplotlib Figure and writes it to `path` when given. Without
matplotlib they raise ImportError naming the extra to install.
"""
from __future__ import annotations

import shutil

import numpy as np

from ndiv.viz.graph import Graph, graph as _graph


def _plt():
    try:
        import matplotlib.pyplot as plt     # headless, matplotlib picks Agg by itself
    except ImportError:
        raise ImportError('ndiv.viz needs matplotlib for pictures: pip install "ndiv[plot]"') from None
    return plt


def _save(fig, path):
    if path is not None:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    return fig


def _graphviz():
    """The graphviz package, with the dot program it runs; ImportError naming what is missing."""
    try:
        import graphviz
    except ImportError:
        raise ImportError('draw_graph(engine="graphviz") needs the graphviz package: pip install "ndiv[graph]" '
                          '(and the dot program: apt install graphviz), or use engine="matplotlib"') from None
    if shutil.which("dot") is None:
        raise ImportError('draw_graph(engine="graphviz") needs the dot program on PATH (apt install graphviz, '
                          'brew install graphviz), or use engine="matplotlib"')
    return graphviz


def _graphviz_available() -> bool:
    try:
        import graphviz  # noqa: F401
    except ImportError:
        return False
    return shutil.which("dot") is not None


def draw_graph(scalar_or_graph, path=None, model=None, collapse_modules: bool = False, depth: int = 1,
               engine: str = "auto"):
    """Draw a graph (a Graph, or a Tensor whose graph() is taken, labelled by `model`'s names).

    collapse_modules: one box per module (needs the forward to have run inside
    record_modules(model)); depth: how many levels of module names to keep. engine: 'graphviz'
    (the graphviz package and the dot program), 'matplotlib' (a layered layout), or 'auto'
    (graphviz when both are there). Returns the matplotlib Figure, or the graphviz.Source.
    """
    g = scalar_or_graph if isinstance(scalar_or_graph, Graph) else _graph(scalar_or_graph, model=model)
    if collapse_modules:
        g = g.collapse(depth)
    if engine not in ("auto", "graphviz", "matplotlib"):
        raise ValueError(f"engine must be 'auto', 'graphviz' or 'matplotlib', got {engine!r}")
    if engine == "graphviz" or (engine == "auto" and _graphviz_available()):
        graphviz = _graphviz()
        src = graphviz.Source(g.to_dot(), format="png")
        if path is not None:
            with open(path, "wb") as f:
                f.write(src.pipe(format="png"))
        return src
    return _draw_layered(g, path)


def _layers(g: Graph) -> list:
    """Longest-path layering: a node sits one column right of its furthest input."""
    col = {}
    for n in g.nodes:                         # nodes come inputs first
        col[n["id"]] = 0
    for src, dst, _ in sorted(g.edges, key=lambda e: e[1]):
        col[dst] = max(col[dst], col[src] + 1)
    # leaves sit just left of their first consumer, not all in column 0
    first_use = {}
    for src, dst, _ in g.edges:
        first_use[src] = min(first_use.get(src, 10 ** 9), col[dst])
    for n in g.nodes:
        if n["op"] == "leaf" and n["id"] in first_use:
            col[n["id"]] = first_use[n["id"]] - 1
    return col


def _draw_layered(g: Graph, path):
    plt = _plt()
    col = _layers(g)
    rows = {}
    pos = {}
    for n in g.nodes:
        c = col[n["id"]]
        pos[n["id"]] = (c, rows.get(c, 0))
        rows[c] = rows.get(c, 0) + 1
    n_cols, n_rows = max(col.values()) + 1, max(rows.values())
    fig, ax = plt.subplots(figsize=(max(4, 2.2 * n_cols), max(2.5, 1.1 * n_rows)))
    for c, count in rows.items():            # centre each column vertically
        for nid, (cc, r) in pos.items():
            if cc == c:
                pos[nid] = (cc, r - (count - 1) / 2)
    for src, dst, _ in g.edges:
        (x0, y0), (x1, y1) = pos[src], pos[dst]
        ax.annotate("", xy=(x1 - 0.35, y1), xytext=(x0 + 0.35, y0),
                    arrowprops=dict(arrowstyle="->", color="0.5", lw=0.8))
    for n in g.nodes:
        x, y = pos[n["id"]]
        leaf, module = n["op"] == "leaf", n["op"] == "module"
        face = "#cfe8ff" if leaf and n["requires_grad"] else "#eeeeee" if leaf else "#ffe6b3" if module else "white"
        ax.text(x, y, g.label(n), ha="center", va="center", fontsize=7,
                bbox=dict(boxstyle="round,pad=0.3" if not leaf else "square,pad=0.3", fc=face, ec="0.3"))
    ax.set_xlim(-0.7, n_cols - 0.3)
    ax.set_ylim(-n_rows / 2 - 0.2, n_rows / 2 + 0.2)
    ax.axis("off")
    return _save(fig, path)


def plot_gradient_flow(recorder, path=None, per_layer: bool = True, depth: int | None = None,
                       title: str | None = None):
    """Two panels over the steps: each layer's |grad| and its update/weight ratio (log scale;
    a healthy Adam fit keeps ratios near 1e-3, far above means the steps are too big).
    depth: group by the first `depth` parts of the names (2 for NHITS: one line per block)."""
    plt = _plt()
    norms = recorder.grad_norms(per_layer, depth)
    steps = np.asarray(recorder.step_index) + 1                  # 1-based, the recorded backwards
    panels = 2 if recorder.ratios and recorder.updates else 1
    fig, axes = plt.subplots(1, panels, figsize=(6 * panels, 3.6), squeeze=False)
    cmap = plt.get_cmap("viridis")
    for i, (name, v) in enumerate(norms.items()):
        c = cmap(i / max(len(norms) - 1, 1))
        axes[0, 0].plot(steps, v, color=c, lw=1, label=name or "(model)")
    axes[0, 0].set(yscale="log", xlabel="step", ylabel="|grad| per layer", title=title or "gradient norms")
    if panels == 2:
        for i, (name, v) in enumerate(recorder.update_ratios(per_layer, depth).items()):
            c = cmap(i / max(len(norms) - 1, 1))
            axes[0, 1].plot(steps[steps > 1], v, color=c, lw=1)
        axes[0, 1].axhline(1e-3, color="r", ls=":", lw=1)
        axes[0, 1].set(yscale="log", xlabel="step", ylabel="|update| / |weight|", title="update / weight ratio")
    if len(norms) <= 12:
        axes[0, 0].legend(fontsize=6, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_decomposition(decomp: dict, path=None, series: int = 0, history=None):
    """The level and each stack's forecast for one series, stacked above the total.

    decomp: from ndiv.viz.decomposition; history: optional (ds, y) of that series to draw before."""
    plt = _plt()
    k = decomp["stacks"].shape[-1] // 2                    # the middle output (median for MQLoss)
    n_stacks = len(decomp["stacks"])
    fig, axes = plt.subplots(n_stacks + 1, 1, figsize=(8, 1.9 * (n_stacks + 1)), sharex=True)
    h = decomp["level"].shape[1]
    x = np.asarray(decomp["ds"])[series * h:(series + 1) * h]
    total = decomp["forecast"][series, :, k]
    ax = axes[0]
    if history is not None:
        ax.plot(history[0], history[1], color="k", lw=1, label="history")
    ax.plot(x, total, color="C0", lw=2, label="forecast")
    ax.plot(x, decomp["level"][series, :, k], color="0.5", ls="--", lw=1, label="level (last value)")
    ax.set_title(f"{decomp['model']}: forecast = level + stacks ({decomp['unique_id'][series]})")
    ax.legend(fontsize=7)
    for s in range(n_stacks):
        axes[s + 1].plot(x, decomp["stacks"][s, series, :, k], color=f"C{s + 1}", lw=1.5)
        axes[s + 1].axhline(0, color="0.7", lw=0.6)
        axes[s + 1].set_ylabel(decomp["stack_names"][s], fontsize=7)
    fig.tight_layout()
    return _save(fig, path)


def plot_attention(att: dict, path=None, row: int = 0):
    """One heat map per encoder layer and head for window `row`: patch i (rows) attends to j."""
    plt = _plt()
    ws = att["weights"]
    n_heads = min(ws[0].shape[1], 4)
    fig, axes = plt.subplots(len(ws), n_heads, figsize=(2.4 * n_heads, 2.4 * len(ws)), squeeze=False)
    for li, w in enumerate(ws):
        for hi in range(n_heads):
            ax = axes[li, hi]
            ax.imshow(w[row, hi], cmap="magma", vmin=0, vmax=max(w[row, hi].max(), 1e-6))
            ax.set_title(f"layer {li} head {hi}", fontsize=7)
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(f"{att['model']}: attention over patches (rows attend to columns)", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_tft(interp: dict, path=None, series: int | None = None):
    """A TFT's variable importances (past, future, static: mean weight per input) and the attention
    each forecast step gives to the steps of its window (mean over heads and forecast steps).

    interp: from ndiv.viz.tft_interpretation; series: one series' row (default: the mean over all)."""
    plt = _plt()
    rows = slice(None) if series is None else slice(series, series + 1)
    bars = [("past inputs", interp["past_names"], interp["past"][rows].mean(axis=(0, 1)))]
    if interp["future_names"] != ["repeated_target"]:
        bars.append(("future inputs", interp["future_names"], interp["future"][rows].mean(axis=(0, 1))))
    if interp["static"] is not None:
        bars.append(("static inputs", interp["static_names"], interp["static"][rows].mean(0)))
    L, h = interp["input_size"], interp["h"]
    att = interp["attention"][rows].mean(axis=(0, 1))[L:].mean(0)                # [L + h]
    fig, axes = plt.subplots(1, len(bars) + 1, figsize=(3.2 * len(bars) + 6, 3.2), squeeze=False,
                             gridspec_kw={"width_ratios": [1] * len(bars) + [2]})
    for ax, (title, names, w) in zip(axes[0], bars):
        ax.barh(np.arange(len(names)), w, color="C0")
        ax.set_yticks(np.arange(len(names)))
        ax.set_yticklabels(names, fontsize=7)
        ax.set(xlim=(0, 1), title=f"{title}: importance")
    ax = axes[0, -1]
    steps = np.arange(-L + 1, h + 1)
    ax.bar(steps, att, color=np.where(steps <= 0, "C1", "C2"), width=0.9)
    ax.axvline(0.5, color="0.5", ls=":", lw=1)
    ax.set(xlabel="step of the window (1 = first forecast step)", ylabel="attention",
           title=f"{interp['model']}: attention of the forecast steps")
    fig.tight_layout()
    return _save(fig, path)

"""ndiv.viz: see what the tape recorded and what the gradients did.

- graph(loss, model=None, backward=False) -> Graph (plain nodes/edges, .to_dot(), .collapse())
- record_modules(model): a `with` block that tags ops by the module that ran them
- draw_graph(loss_or_graph, path=None, collapse_modules=False): graphviz if installed, else matplotlib
- GradientRecorder(model, every=10): per-layer |grad| and update/weight ratios every k-th backward
- plot_gradient_flow(recorder), decomposition(fc) / plot_decomposition(...) for NHITS/NBEATS,
  attention(fc) / plot_attention(...) for PatchTST, tft_interpretation(fc) / plot_tft(...) for TFT

The data functions need only NumPy; the plot functions need matplotlib (pip install "ndiv[plot]").
"""
from ndiv.viz.graph import Graph, graph, record_modules
from ndiv.viz.interpret import attention, decomposition, tft_interpretation
from ndiv.viz.plot import draw_graph, plot_attention, plot_decomposition, plot_gradient_flow, plot_tft
from ndiv.viz.recorder import GradientRecorder

__all__ = ["Graph", "graph", "record_modules", "draw_graph", "GradientRecorder", "plot_gradient_flow",
           "decomposition", "plot_decomposition", "attention", "plot_attention", "tft_interpretation",
           "plot_tft"]

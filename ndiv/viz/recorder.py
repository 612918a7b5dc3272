"""GradientRecorder: per-layer gradient norms and update/weight ratios over a fit.

It attaches one `Tensor.register_hook` per parameter (the tape's leaf hooks, which run once per
backward on the parameter's summed gradient) and nothing else: the training loop is unchanged,
and with no recorder (or after `remove()`) no hook exists, so a fit costs what it did.

At each backward, a parameter's hook records |grad| (before gradient clipping: the raw signal) and,
from the second backward on, the update the optimizer made since the previous one:
|w_now - w_prev| / |w_prev| (one copy of the weights is kept for this; `ratios=False` skips it).
A layer is the module that owns the parameters (`blocks.0.layers.0`): its norm is
sqrt(sum of its parameters' squared norms). A new step starts when a parameter's hook fires a
second time, so a parameter that gets no gradient in a step reads NaN there.

    >>> rec = GradientRecorder(model)          # attach
    >>> fc.fit(df)                             # or any loop that calls backward()
    >>> rec.remove(); rec.grad_norms()         # {'blocks.0.layers.0': array([...steps]), ...}
"""
from __future__ import annotations

import math

import numpy as np

from ndiv.device import array_module, to_device


class GradientRecorder:
    """Record gradient statistics of `model`'s trainable parameters at every backward.

    model: an nn.Module (a forecasting model). ratios: also record update/weight ratios.
    Use as a context manager, or call remove() when done.
    """

    def __init__(self, model, ratios: bool = True):
        self.ratios = bool(ratios)
        self.params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"GradientRecorder: {type(model).__name__} has no parameter that requires grad")
        self.layers = {}
        for k, _ in self.params:
            self.layers.setdefault(k.rsplit(".", 1)[0] if "." in k else "", []).append(k)
        self.steps = []          # one dict per backward: name -> |grad|
        self.updates = []        # one dict per backward after the first: name -> (|w - w_prev|, |w_prev|)
        self._prev = {}
        self._handles = [p.register_hook(self._hook_for(k, p)) for k, p in self.params]

    def _hook_for(self, name, p):
        def hook(g):
            if not self.steps or name in self.steps[-1]:
                self.steps.append({})
                if self.ratios and len(self.steps) > 1:
                    self.updates.append({})
            self.steps[-1][name] = _norm(g)
            if self.ratios:
                w = p.data
                prev = self._prev.get(name)
                if prev is None or prev[0].shape != w.shape:
                    self._prev[name] = (w.copy(), w.copy())    # last weights, and scratch for the difference
                    return None
                last, scratch = prev
                if self.updates:
                    array_module(w).subtract(w, last, out=scratch)   # no allocation per step
                    self.updates[-1][name] = (_norm(scratch), _norm(last))
                last[...] = w
            return None
        return hook

    def remove(self) -> None:
        """Detach every hook (the recorded numbers stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._prev = {}

    @property
    def attached(self) -> bool:
        return bool(self._handles)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()

    def _members(self, per_layer, depth=None):
        if not per_layer:
            return [(k, [k]) for k, _ in self.params]
        if depth is None:
            return self.layers.items()
        groups = {}
        for k, _ in self.params:
            groups.setdefault(".".join(k.split(".")[:depth]), []).append(k)
        return groups.items()

    def grad_norms(self, per_layer: bool = True, depth: int | None = None) -> dict:
        """{layer (or parameter) name: |grad| per step, float array [n_steps]}.

        depth: group by the first `depth` parts of the names instead (2: 'blocks.0', a whole block)."""
        return {name: np.array([math.sqrt(sum(r.get(m, math.nan) ** 2 for m in members)) for r in self.steps])
                for name, members in self._members(per_layer, depth)}

    def update_ratios(self, per_layer: bool = True, depth: int | None = None) -> dict:
        """{layer (or parameter): |w_t - w_{t-1}| / |w_{t-1}| per step from the second, [n_steps - 1]}.

        Per layer the numerator and the denominator are each summed over the layer's parameters
        (the ratio of the layer's concatenated update to its concatenated weights)."""
        if not self.ratios:
            raise ValueError("GradientRecorder(ratios=False) recorded no update ratios")
        nan = (math.nan, math.nan)
        out = {}
        for name, members in self._members(per_layer, depth):
            delta = np.array([math.sqrt(sum(r.get(m, nan)[0] ** 2 for m in members)) for r in self.updates])
            base = np.array([math.sqrt(sum(r.get(m, nan)[1] ** 2 for m in members)) for r in self.updates])
            with np.errstate(divide="ignore", invalid="ignore"):
                out[name] = delta / base
        return out


def _norm(a) -> float:
    """|a|_2 as a Python float; recomputed in float64 where float32 squares overflow (a diverging fit)."""
    a = to_device(a, "cpu").ravel()
    with np.errstate(over="ignore"):
        n = float(np.linalg.norm(a))
    if math.isinf(n) and a.dtype != np.float64:          # inf from overflowing squares, not an inf entry
        n = float(np.linalg.norm(a.astype(np.float64)))
    return n

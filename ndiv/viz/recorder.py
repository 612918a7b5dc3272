"""GradientRecorder: per-layer gradient norms and update/weight ratios over a fit.

It attaches one `Tensor.register_hook` per parameter (the tape's leaf hooks, which run once per
backward on the parameter's summed gradient) and nothing else: the training loop is unchanged,
and with no recorder (or after `remove()`) no hook exists, so a fit costs what it did.

Every `every`-th backward (the 1st, the 11th, ... by default, as wandb.watch's log_freq or
Lightning's log_every_n_steps), a parameter's hook records |grad| (before gradient clipping: the
raw signal) and the update the optimizer made since the backward before: |w_now - w_prev| / |w_prev|.
For that it keeps one copy of the weights, taken at the backward before a recorded one; one fused
kernel pass (ndiv.kernels.*.grad_update_stats) then reads the gradient, the weights and the copy.
`ratios=False` keeps no copy. The other backwards cost a Python call per parameter. every=1
records every step (about 5 memory passes over the weights per step: 5-10% of an NHITS step).
A layer is the module that owns the parameters (`blocks.0.layers.0`): its norm is
sqrt(sum of its parameters' squared norms). A new backward starts when a parameter's hook fires a
second time, so a parameter that gets no gradient in a recorded step reads NaN there.

    >>> rec = GradientRecorder(model, every=1) # attach
    >>> fc.fit(df)                             # or any loop that calls backward()
    >>> rec.remove(); rec.grad_norms()         # {'blocks.0.layers.0': array([...steps]), ...}
    >>> rec.step_index                         # which backwards those are (0, 1, 2, ...)
"""
from __future__ import annotations

import math

import numpy as np

from ndiv.device import kernels_for, to_device


class GradientRecorder:
    """Record gradient statistics of `model`'s trainable parameters every `every` backwards.

    model: an nn.Module (a forecasting model). ratios: also record update/weight ratios.
    every: record backward 0, every, 2 * every, ... (default 10; 1 records every step).
    Use as a context manager, or call remove() when done.
    """

    def __init__(self, model, ratios: bool = True, every: int = 10):
        if isinstance(every, bool) or not isinstance(every, (int, np.integer)) or every < 1:
            raise ValueError(f"GradientRecorder: every must be a positive int (record every k-th backward), got {every!r}")
        self.ratios, self.every = bool(ratios), int(every)
        self.params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        if not self.params:
            raise ValueError(f"GradientRecorder: {type(model).__name__} has no parameter that requires grad")
        self.layers = {}
        for k, _ in self.params:
            self.layers.setdefault(k.rsplit(".", 1)[0] if "." in k else "", []).append(k)
        self.steps = []          # one dict per recorded backward: name -> |grad|
        self.step_index = []     # the backward (0-based) each entry of `steps` was taken at
        self.updates = []        # one dict per recorded backward after the first: name -> (|w - w_prev|, |w_prev|)
        self._backward = -1      # the backward now running
        self._seen = set()       # parameters whose hook fired in it
        self._prev = {}          # name -> the weights at the backward before the next recorded one
        self._taken = {}         # name -> the backward that copy was taken at
        self._handles = [p.register_hook(self._hook_for(k, p)) for k, p in self.params]

    def _start(self, name) -> None:
        if not self._seen or name in self._seen:          # a new backward
            self._seen = set()
            self._backward += 1
            if self._backward % self.every == 0:
                self.steps.append({})
                self.step_index.append(self._backward)
                if self.ratios and self._backward > 0:
                    self.updates.append({})
        self._seen.add(name)

    def _hook_for(self, name, p):
        def hook(g):
            self._start(name)
            n, every = self._backward, self.every
            recorded, keep = n % every == 0, self.ratios and (n + 1) % every == 0
            w, last = p.data, self._prev.get(name)
            fresh = last is not None and last.shape == w.shape and self._taken.get(name) == n - 1
            if recorded and self.ratios and fresh:
                # one fused pass: |g|, |w - last|, |last|, and last <- w
                gg, dd, ll = kernels_for(w).grad_update_stats(g, w, last)
                self.steps[-1][name] = math.sqrt(gg)
                if self.updates:
                    self.updates[-1][name] = (math.sqrt(dd), math.sqrt(ll))
                self._taken[name] = n
                return None
            if recorded:
                self.steps[-1][name] = _norm(g)
            if keep:                                       # the next backward is recorded: keep these weights
                if last is None or last.shape != w.shape:
                    self._prev[name] = w.copy()
                else:
                    last[...] = w
                self._taken[name] = n
            return None
        return hook

    def remove(self) -> None:
        """Detach every hook (the recorded numbers stay)."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._prev, self._taken = {}, {}

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

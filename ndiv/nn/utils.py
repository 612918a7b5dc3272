"""Gradient inspection helpers: per-parameter or per-layer gradient norms, and activation-gradient taps.

    >>> loss.backward()
    >>> ndiv.nn.utils.grad_norms(model)                  # {'0.weight': 0.31, '0.bias': 0.05, ...}
    >>> ndiv.nn.utils.grad_norms(model, by="module")     # {'0': 0.31, '2': 0.12}
"""
from __future__ import annotations

from collections import OrderedDict

import numpy as np

from ndiv import device as _device
from ndiv.nn.module import Module


def _norm(g, norm_type: float) -> float:
    g = _device.to_device(g, "cpu").astype(np.float64, copy=False).ravel()
    if norm_type == float("inf"):
        return float(np.abs(g).max()) if g.size else 0.0
    return float(np.linalg.norm(g, ord=norm_type)) if g.size else 0.0


def grad_norms(module: Module, norm_type: float = 2.0, by: str = "parameter") -> "OrderedDict[str, float]":
    """The norm of each parameter's .grad (by='parameter'), or of all the gradients of each module
    that owns parameters directly (by='module', e.g. one entry per Linear). Parameters without a
    gradient are skipped. Call after backward()."""
    if by not in ("parameter", "module"):
        raise ValueError(f"grad_norms: by must be 'parameter' or 'module', got {by!r}")
    out: OrderedDict[str, float] = OrderedDict()
    if by == "parameter":
        for name, p in module.named_parameters():
            if p.grad is not None:
                out[name] = _norm(p.grad, norm_type)
        return out
    for mod_name, mod in module.named_modules():
        grads = [p.grad for p in mod._parameters.values() if p is not None and p.grad is not None]
        if grads:
            norms = np.array([_norm(g, norm_type) for g in grads])
            total = float(norms.max()) if norm_type == float("inf") else float((norms**norm_type).sum() ** (1.0 / norm_type))
            out[mod_name or type(mod).__name__] = total
    return out


def total_grad_norm(module: Module, norm_type: float = 2.0) -> float:
    """The norm of all gradients together (what clip_grad_norm_ compares with max_norm)."""
    norms = np.array(list(grad_norms(module, norm_type).values()))
    if norms.size == 0:
        return 0.0
    return float(norms.max()) if norm_type == float("inf") else float((norms**norm_type).sum() ** (1.0 / norm_type))


class GradOutputRecorder:
    """Records the norm of the gradient flowing out of chosen submodules (full backward hooks).

    >>> rec = GradOutputRecorder(model, types=(nn.Linear,))
    >>> loss.backward(); rec.norms        # {'0': [0.12], '2': [0.4]} (one entry per backward)
    >>> rec.remove()
    """

    def __init__(self, module: Module, types: tuple = (), names=None, norm_type: float = 2.0):
        self.norms: OrderedDict[str, list] = OrderedDict()
        self.handles = []
        for name, m in module.named_modules():
            if m is module or (types and not isinstance(m, types)) or (names is not None and name not in names):
                continue
            self.norms[name] = []
            self.handles.append(m.register_full_backward_hook(self._hook(name, norm_type)))

    def _hook(self, name, norm_type):
        def hook(mod, grad_input, grad_output):
            gs = [g for g in grad_output if g is not None]
            self.norms[name].append(float(np.sqrt(sum(_norm(g, norm_type) ** 2 for g in gs))))
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()
        self.handles = []

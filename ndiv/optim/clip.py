"""Gradient clipping, in place on p.grad (torch.nn.utils.clip_grad_norm_ / clip_grad_value_)."""
from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from ndiv.device import array_module
from ndiv.optim.optimizer import _is_param


def _grads(parameters) -> list:
    params = [parameters] if _is_param(parameters) else list(parameters)
    return [p.grad for p in params if p.grad is not None]


def _norm(g, norm_type: float) -> float:
    """The norm_type-norm of one gradient array, as a Python float."""
    xp = array_module(g)
    if g.size == 0:  # torch raises for the +-inf norm of an empty gradient; 0 adds nothing
        return 0.0
    if norm_type == 2.0:
        flat = g.ravel()
        return math.sqrt(float(xp.vdot(flat, flat).real))  # one BLAS pass; sum |g|^2 for complex g
    if math.isinf(norm_type):
        a = xp.abs(g)
        return float(a.max() if norm_type > 0 else a.min())
    if norm_type == 0:
        return float(xp.count_nonzero(g))
    return float((xp.abs(g) ** norm_type).sum()) ** (1.0 / norm_type)


def _total(norms: list[float], norm_type: float) -> float:
    """The norm of the per-gradient norms (torch's definition, also for norm_type 0 and -inf)."""
    return _norm(np.array(norms, dtype=np.float64), norm_type) if norms else 0.0


def clip_grad_norm_(parameters: Iterable, max_norm: float, norm_type: float = 2.0,
                    error_if_nonfinite: bool = False) -> float:
    """Scale all gradients together so that their joint norm is at most max_norm.

    The total norm is the norm of the per-parameter norms (torch's definition); gradients are
    multiplied by min(1, max_norm / (total + 1e-6)) in place. Parameters without a gradient
    are skipped. Complex gradients count by their modulus |g|, as torch.

    Args:
        parameters: a parameter or an iterable of them (e.g. model.parameters()).
        max_norm: the largest allowed norm. norm_type: p of the p-norm; float('inf') for max-abs.
        error_if_nonfinite: raise RuntimeError if the total norm is NaN or infinite.
    Returns:
        the total norm before clipping, as a Python float (torch returns a 0-d tensor).

    Example:
        >>> loss.backward(); clip_grad_norm_(model.parameters(), 1.0); opt.step()  # doctest: +SKIP
    """
    grads = _grads(parameters)
    norm_type = float(norm_type)
    total = _total([_norm(g, norm_type) for g in grads], norm_type)
    if error_if_nonfinite and not math.isfinite(total):
        raise RuntimeError(
            f"The total norm of order {norm_type} for gradients from `parameters` is non-finite "
            f"({total}), so it cannot be clipped. To disable this error and scale the gradients "
            "by the non-finite norm anyway, set `error_if_nonfinite=False`")
    coef = float(max_norm) / (total + 1e-6)
    if not coef >= 1.0:  # multiplying by a clamped coefficient of 1 changes nothing: skip it
        for g in grads:
            g *= coef
    return total


def clip_grad_value_(parameters: Iterable, clip_value: float) -> None:
    """Clamp every gradient element to [-clip_value, clip_value], in place.

    Example:
        >>> loss.backward(); clip_grad_value_(model.parameters(), 0.5); opt.step()  # doctest: +SKIP
    """
    clip_value = float(clip_value)
    grads = _grads(parameters)
    for g in grads:
        if g.dtype.kind == "c":
            raise TypeError(f"clip_grad_value_: a gradient is complex ({g.dtype}), which has no "
                            "order to clamp (torch refuses too); use clip_grad_norm_, which scales by |g|")
    for g in grads:
        array_module(g).clip(g, -clip_value, clip_value, out=g)

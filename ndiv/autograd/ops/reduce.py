"""Reductions. Each backward expands the output gradient back over the reduced axes.

Tie rules (matched to torch): `max(axis)`/`min(axis)` give the gradient to the selected index
(the first occurrence, as argmax); `max()` over everything and `amax`/`amin` split it evenly
among the tied elements.
"""
from __future__ import annotations

from ndiv.autograd.function import Function
from ndiv.device import array_module


def _norm_axes(axis, ndim):
    """axis (None, int or tuple, negative allowed) -> a sorted tuple of non-negative axes."""
    if axis is None:
        return tuple(range(ndim))
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    out = []
    for a in axes:
        if not -max(ndim, 1) <= a < max(ndim, 1):
            raise ValueError(f"axis {a} is out of range for a tensor with {ndim} dimensions")
        out.append(a % max(ndim, 1))
    return tuple(sorted(set(out)))


def _expand_like(gy, x_shape, axes, keepdims):
    """Reinsert the reduced axes of gy (if not kept) so it broadcasts against x."""
    if not keepdims and axes:
        shape = list(gy.shape)
        for a in axes:
            shape.insert(a, 1)
        gy = gy.reshape(shape) if x_shape else gy
    return gy


class Sum(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        return x.sum(axis=self.axes, keepdims=keepdims)

    def backward(self, gy):
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims)
        return array_module(gy).broadcast_to(gy, self.shape)


class Mean(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        self.n = 1
        for a in self.axes:
            self.n *= x.shape[a]
        return x.mean(axis=self.axes, keepdims=keepdims)

    def backward(self, gy):
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims) / max(self.n, 1)
        return array_module(gy).broadcast_to(gy, self.shape)


class Var(Function):
    """Variance with `correction` (1: unbiased, torch's default; 0: population)."""
    def forward(self, x, axis=None, keepdims=False, correction=1):
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        n = 1
        for a in self.axes:
            n *= x.shape[a]
        self.denom = max(n - correction, 0)
        mu = x.mean(axis=self.axes, keepdims=True)
        d = x - mu
        self.save_for_backward(d)
        xp = array_module(x)
        # |d|^2: a complex input has a real variance (torch); its gradient below is 2 d / n (torch's convention)
        s = ((d * d.conj()).real if d.dtype.kind == "c" else d * d).sum(axis=self.axes, keepdims=keepdims)
        return s / self.denom if self.denom > 0 else s * xp.nan

    def backward(self, gy):
        (d,) = self.saved
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims)
        return gy * (2.0 / self.denom) * d if self.denom > 0 else gy * d * array_module(d).nan


class MaxMin(Function):
    """max or min along one axis; the gradient goes to the selected (first) index."""
    def forward(self, x, axis, keepdims=False, largest=True):
        xp = array_module(x)
        axis = _norm_axes(axis, x.ndim)[0] if x.ndim else None
        if x.ndim == 0:
            self.idx, self.axis, self.shape = None, None, x.shape
            return x.copy()
        idx = (x.argmax if largest else x.argmin)(axis=axis)
        idx = xp.expand_dims(idx, axis)
        self.idx, self.axis, self.shape, self.keepdims = idx, axis, x.shape, keepdims
        y = xp.take_along_axis(x, idx, axis)
        return y if keepdims else y.squeeze(axis)

    def backward(self, gy):
        if self.idx is None:
            return gy
        xp = array_module(gy)
        if not self.keepdims:
            gy = xp.expand_dims(gy, self.axis)
        g = xp.zeros(self.shape, gy.dtype)
        xp.put_along_axis(g, self.idx, gy, self.axis)
        return g


class AMaxMin(Function):
    """amax/amin over axes (any number); tied elements share the gradient evenly."""
    def forward(self, x, axis=None, keepdims=False, largest=True):
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        y = (x.max if largest else x.min)(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        x, y = self.saved
        mask = x == y
        count = mask.sum(axis=self.axes, keepdims=True)
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims)
        return gy * mask / count


class LogSumExp(Function):
    def forward(self, x, axis=-1, keepdims=False):
        xp = array_module(x)
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        m = x.max(axis=self.axes, keepdims=True)
        m = xp.where(xp.isfinite(m), m, 0)
        y = xp.log(xp.exp(x - m).sum(axis=self.axes, keepdims=True)) + m
        self.save_for_backward(x, y)
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        x, y = self.saved
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims)
        return gy * array_module(x).exp(x - y)


class Cumsum(Function):
    def forward(self, x, axis):
        self.axis = axis
        return array_module(x).cumsum(x, axis=axis)

    def backward(self, gy):
        xp = array_module(gy)
        return xp.flip(xp.cumsum(xp.flip(gy, self.axis), axis=self.axis), self.axis)


class Prod(Function):
    def forward(self, x, axis=None, keepdims=False):
        self.shape, self.axes, self.keepdims = x.shape, _norm_axes(axis, x.ndim), keepdims
        y = x.prod(axis=self.axes, keepdims=True)
        self.save_for_backward(x, y)
        return y if keepdims else y.reshape([n for i, n in enumerate(x.shape) if i not in self.axes])

    def backward(self, gy):
        x, y = self.saved
        xp = array_module(x)
        gy = _expand_like(gy, self.shape, self.axes, self.keepdims)
        # y / x where x != 0; the exact product of the others where x == 0
        safe = xp.where(x == 0, 1, x)
        others = xp.where(x == 0, (xp.where(x == 0, 1, x)).prod(axis=self.axes, keepdims=True) * ((x == 0).sum(axis=self.axes, keepdims=True) == 1), y / safe)
        return gy * (others.conj() if others.dtype.kind == "c" else others)  # conjugated derivative (torch)

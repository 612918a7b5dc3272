"""Ops that write or select by index: index_put (and scatter on it), sort and median.

Index arrays are raw integer arrays, already checked by the layer above (ndiv.autograd.methods).
`sort_indices` and `median_indices` compute where elements go; the values then come from
`shape.Gather`, whose backward scatters the gradient back to the selected positions.
"""
from __future__ import annotations

from ndiv.autograd.function import Function
from ndiv.autograd.ops.nn_ops import scatter_add
from ndiv.device import array_module


class IndexPut(Function):
    """out = copy of x with out[indices] = values (accumulate=False) or += values (True).

    x: any shape; indices: a tuple of integer arrays (or slices) as NumPy's advanced indexing;
    values: broadcastable to x[indices].shape. Overwritten positions pass no gradient to x;
    values get the gradient gathered from out[indices]. With repeated indices and
    accumulate=False the stored value is one of the candidates (as torch: undefined which).
    """
    def forward(self, x, values, indices, accumulate=False):
        xp = array_module(x)
        self.indices, self.accumulate = indices, accumulate
        out = x.copy()
        if accumulate:
            scatter_add(out, indices, xp.broadcast_to(values, out[indices].shape).astype(x.dtype, copy=False))
        else:
            out[indices] = values
        return out

    def backward(self, gy):
        gx = gv = None
        if self.needs_input_grad[0]:
            gx = gy
            if not self.accumulate:
                gx = gy.copy()
                gx[self.indices] = 0
        if self.needs_input_grad[1]:
            gv = gy[self.indices]  # the indexed shape: the tape sums it to values' shape
        return gx, gv


class MedianAll(Function):
    """The lower median of all elements (torch's x.median()): the element of rank (N - 1) // 2.

    NaN anywhere makes the result NaN. The gradient is shared evenly among the elements equal
    to the result (the NaNs when it is NaN), as torch does.
    """
    def forward(self, x):
        xp = array_module(x)
        flat = x.reshape(-1)
        if flat.size == 0:
            y = xp.asarray(xp.nan, dtype=x.dtype)
        else:
            y = xp.sort(flat)[(flat.size - 1) // 2]  # NaN sorts last: any NaN and ...
            if xp.isnan(flat).any():
                y = xp.asarray(xp.nan, dtype=x.dtype)  # ... the result is NaN (torch)
        self.save_for_backward(x, y)
        return xp.asarray(y, dtype=x.dtype)

    def backward(self, gy):
        x, y = self.saved
        xp = array_module(x)
        mask = xp.isnan(x) if xp.isnan(y) else (x == y)
        return gy * mask / max(int(mask.sum()), 1)


def sort_indices(x, axis, descending=False):
    """Indices that stably sort x along axis (ascending: NaN last; descending: NaN first, as torch).

    Descending sorts the reversed array ascending and reverses back: ties keep their original
    order and no value is negated (safe for unsigned and minimum integers).
    """
    xp = array_module(x)
    if not descending:
        return xp.argsort(x, axis=axis, kind="stable")
    n = x.shape[axis]
    idx = xp.argsort(xp.flip(x, axis), axis=axis, kind="stable")
    return (n - 1) - xp.flip(idx, axis)


def median_indices(x, axis):
    """[..., 1, ...] indices of the lower median along axis (keepdims); a NaN's index in rows with NaN."""
    xp = array_module(x)
    n = x.shape[axis]
    order = sort_indices(x, axis)
    k = xp.take(order, [(n - 1) // 2], axis=axis)
    if x.dtype.kind in "fc":
        nan = xp.isnan(x)
        has_nan = nan.any(axis=axis, keepdims=True)
        k = xp.where(has_nan, xp.expand_dims(nan.argmax(axis=axis), axis), k)
    return k.astype(xp.int64, copy=False)

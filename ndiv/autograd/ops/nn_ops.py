"""Primitives for the nn layers, each forward and backward on raw arrays (numpy or cupy).

    Linear      y = x @ w.T + b                  gx = gy @ w, gw = gy.T @ x, gb = sum gy
    ConvNd      y = conv(x, w) + b  (1-d, 2-d)   im2col (one strided copy per kernel tap) + one
                                                 batched matmul; backward scatters taps back
    MaxPool1d   y = max over windows             gx[argmax] += gy (first maximum wins, as torch)
    AvgPool1d   y = mean over windows            gx[window] += gy / divisor
    Embedding   y = w[idx]                       gw[idx] += gy (padding_idx row gets none)
    Dropout     y = x * mask / (1 - p)           gx = gy * mask / (1 - p)
    Split       pieces of x along an axis        gx = concatenate(gys)
    Unbind      x[0], ..., x[n-1]                gx = stack(gys)

Everything else in ndiv.nn.functional is composed from Tensor ops.
"""
from __future__ import annotations

import itertools
import math

import numpy as np

from ndiv.autograd import amp
from ndiv.autograd.function import Function
from ndiv.device import array_module, is_cuda_array, kernels_for


class Linear(Function):
    """x [..., in], w [out, in], b [out] or absent -> y [..., out].

    Inputs with more than 2 dims are multiplied as one [N, in] matrix: NumPy's batched matmul
    with a shared 2-D weight would run one small GEMM per leading index instead.
    """

    def forward(self, x, w, b=None):
        x2 = x.reshape(-1, x.shape[-1]) if x.ndim != 2 else x
        if amp.active(x2, w, k=w.shape[1]):     # bf16 factors, kept for the backward's two products
            x2, w = amp.operand(x2), amp.operand(w)
        y = amp.matmul(x2, w.T)
        if b is not None:
            y += b
        self.save_for_backward(x2, w)
        self.x_shape = x.shape
        return y.reshape(x.shape[:-1] + (w.shape[0],)) if x.ndim != 2 else y

    def backward(self, gy):
        x2, w = self.saved
        need = self.needs_input_grad
        g2 = gy.reshape(-1, gy.shape[-1]) if gy.ndim != 2 else gy
        gx = amp.matmul(g2, w).reshape(self.x_shape) if need[0] else None
        gw = gb = None
        if need[1]:
            gw = amp.matmul(g2.T, x2)
        if len(need) > 2 and need[2]:
            gb = g2.sum(axis=0)
        return gx, gw, gb


def _tap_slices(idx, dilation, stride, out_size):
    """The strided slice of the padded input that kernel tap idx multiplies, per spatial dim."""
    return tuple(
        slice(i * d, i * d + s * (o - 1) + 1, s) for i, d, s, o in zip(idx, dilation, stride, out_size)
    )


class ConvNd(Function):
    """N-d convolution (cross-correlation, as torch), N = x.ndim - 2.

    x [B, C, *S]; w [O, C/groups, *K]; b [O] or absent; stride, dilation: N ints;
    padding: N pairs (lo, hi) -> y [B, O, *S_out].
    """

    def forward(self, x, w, b=None, *, stride, padding, dilation, groups):
        xp = array_module(x)
        n = x.ndim - 2
        B, C = x.shape[:2]
        O, K = w.shape[0], w.shape[2:]
        if any(lo or hi for lo, hi in padding):
            x = xp.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in padding])
        out_size = tuple((x.shape[2 + i] - dilation[i] * (K[i] - 1) - 1) // stride[i] + 1 for i in range(n))
        if any(o <= 0 for o in out_size):
            raise ValueError(
                f"conv: the padded input {tuple(x.shape[2:])} is smaller than the dilated kernel "
                f"{tuple(dilation[i] * (K[i] - 1) + 1 for i in range(n))}"
            )
        cols = xp.empty((B, C) + tuple(K) + out_size, dtype=x.dtype)
        taps = list(itertools.product(*[range(k) for k in K]))
        for idx in taps:
            cols[(slice(None), slice(None)) + idx] = x[(slice(None), slice(None)) + _tap_slices(idx, dilation, stride, out_size)]
        G = groups
        ck, p = (C // G) * math.prod(K), math.prod(out_size)
        cols = cols.reshape(B, G, ck, p)
        wr = w.reshape(G, O // G, ck)
        y = xp.matmul(wr, cols).reshape((B, O) + out_size)
        if b is not None:
            y += b.reshape((O,) + (1,) * n)
        self.save_for_backward(cols, w)
        self.meta = (x.shape, padding, stride, dilation, G, taps, out_size)
        return y

    def backward(self, gy):
        cols, w = self.saved
        xshape, padding, stride, dilation, G, taps, out_size = self.meta
        need = self.needs_input_grad
        xp = array_module(gy)
        B, O = gy.shape[:2]
        n = len(out_size)
        gyr = gy.reshape(B, G, O // G, -1)
        gx = gw = gb = None
        if need[1]:
            gw = xp.matmul(gyr, cols.swapaxes(-1, -2)).sum(axis=0).reshape(w.shape)
        if len(need) > 2 and need[2]:
            gb = gy.sum(axis=(0,) + tuple(range(2, 2 + n)))
        if need[0]:
            C, K = xshape[1], w.shape[2:]
            gcols = xp.matmul(w.reshape(G, O // G, -1).swapaxes(-1, -2), gyr)
            gcols = gcols.reshape((B, C) + tuple(K) + out_size)
            gxp = xp.zeros(xshape, dtype=gy.dtype)
            for idx in taps:
                gxp[(slice(None), slice(None)) + _tap_slices(idx, dilation, stride, out_size)] += gcols[(slice(None), slice(None)) + idx]
            gx = gxp[(slice(None), slice(None)) + tuple(slice(lo, xshape[2 + i] - hi) for i, (lo, hi) in enumerate(padding))]
        return gx, gw, gb


def pool_out_size(L: int, k: int, s: int, p: int, d: int, ceil_mode: bool) -> int:
    """torch's pooling_output_shape: a last window that starts in the right padding is dropped."""
    num = L + 2 * p - d * (k - 1) - 1 + (s - 1 if ceil_mode else 0)
    out = num // s + 1
    if ceil_mode and (out - 1) * s >= L + p:
        out -= 1
    return out


def _pool_taps(x, k, s, p, d, out, fill):
    """x [..., L] -> (k strided views [..., out] of x padded with `fill` (left p, right as needed),
    the padded length). Tap j of output i is x_padded[i * s + j * d]."""
    xp = array_module(x)
    L = x.shape[-1]
    need = (out - 1) * s + d * (k - 1) + 1
    right = max(need - L - p, 0)
    xpad = xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(p, right)], constant_values=fill) if (p or right) else x
    return [xpad[..., j * d: j * d + s * (out - 1) + 1: s] for j in range(k)], xpad.shape[-1]


class MaxPool1d(Function):
    """x [..., L] -> y [..., L_out]; max over windows of k taps (padding counts as -inf).

    The max and its tap index come from k - 1 passes over strided views of x (no [..., k, out]
    copy, no argmax along a middle axis). The first maximal tap wins, and the first NaN (NaN is
    the maximum, as in torch)."""

    def forward(self, x, *, kernel_size, stride, padding, dilation, ceil_mode):
        k, s, p, d = kernel_size, stride, padding, dilation
        out = pool_out_size(x.shape[-1], k, s, p, d, ceil_mode)
        taps, padded_len = _pool_taps(x, k, s, p, d, out, -np.inf)
        xp = array_module(x)
        y = taps[0].copy()
        arg = xp.zeros(y.shape, dtype=xp.int8 if k <= 127 else xp.int32)
        with np.errstate(invalid="ignore", over="ignore"):  # the sum is NaN when x holds one (or +inf and -inf)
            has_nan = k > 1 and bool(xp.isnan(x.sum()))
        for j in range(1, k):
            t = taps[j]
            take = t > y
            if has_nan:
                take |= xp.isnan(t) & ~xp.isnan(y)
            xp.copyto(y, t, where=take)
            xp.copyto(arg, j, where=take)
        self.meta = (x.shape, padded_len, k, s, p, d, out)
        self.arg = arg
        return y

    def backward(self, gy):
        shape, padded_len, k, s, p, d, out = self.meta
        xp = array_module(gy)
        gxp = xp.zeros(shape[:-1] + (padded_len,), dtype=gy.dtype)
        for j in range(k):
            gxp[..., j * d: j * d + s * (out - 1) + 1: s] += xp.where(self.arg == j, gy, 0)
        return gxp[..., p: p + shape[-1]]


class AvgPool1d(Function):
    """x [..., L] -> y [..., L_out]; mean over windows of k taps (torch's divisor rules)."""

    def forward(self, x, *, kernel_size, stride, padding, ceil_mode, count_include_pad):
        k, s, p = kernel_size, stride, padding
        L = x.shape[-1]
        out = pool_out_size(L, k, s, p, 1, ceil_mode)
        taps, padded_len = _pool_taps(x, k, s, p, 1, out, 0.0)
        start = np.arange(out) * s - p
        end = np.minimum(start + k, L + p)
        if count_include_pad:
            div = end - start
        else:
            div = np.minimum(end, L) - np.maximum(start, 0)
        xp = array_module(x)
        div = xp.asarray(div.astype(x.dtype))
        self.meta = (x.shape, padded_len, k, s, p, out, div)
        total = taps[0].copy()
        for t in taps[1:]:                     # the taps in order, as a sum over the window axis
            total += t
        return total / div

    def backward(self, gy):
        shape, padded_len, k, s, p, out, div = self.meta
        xp = array_module(gy)
        g = gy / div
        gxp = xp.zeros(shape[:-1] + (padded_len,), dtype=gy.dtype)
        for j in range(k):
            gxp[..., j: j + s * (out - 1) + 1: s] += g
        return gxp[..., p: p + shape[-1]]


def scatter_add(target, idx, values):
    """target[idx] += values with repeated indices summed (numpy's add.at; cupyx on the GPU)."""
    if is_cuda_array(target):
        import cupyx
        cupyx.scatter_add(target, idx, values)
    else:
        np.add.at(target, idx, values)
    return target


class Embedding(Function):
    """weight [N, D], indices (int array, any shape) -> y [*indices.shape, D]."""

    def forward(self, w, *, indices, padding_idx=None):
        self.meta = (indices, w.shape, padding_idx)
        return w[indices]

    def backward(self, gy):
        indices, wshape, padding_idx = self.meta
        xp = array_module(gy)
        gw = xp.zeros(wshape, dtype=gy.dtype)
        scatter_add(gw, indices.reshape(-1), gy.reshape(-1, wshape[1]))
        if padding_idx is not None:
            gw[padding_idx] = 0
        return gw


class Dropout(Function):
    """y = x * keep / (1 - p), keep ~ Bernoulli(1 - p) per element, drawn inside the kernel from
    a counter-based hash of (seed, element index) (kernels/reference/dropout.py): the same seed
    gives the same mask on every device. Saves only the bit-packed mask (x.size / 8 bytes)."""

    def forward(self, x, *, p, seed):
        y, self.mask = kernels_for(x).dropout_fwd(x, p, seed)
        self.p = p
        return y

    def backward(self, gy):
        return kernels_for(gy).dropout_bwd(gy, self.mask, self.p)


class Split(Function):
    """x -> pieces of `sizes` along axis (views). Backward concatenates: one node instead of
    one GetItem per piece, whose backward would each build a zero array of x's full shape."""

    def forward(self, x, *, sizes, axis):
        self.axis = axis
        bounds = np.cumsum((0,) + tuple(sizes))
        lead = (slice(None),) * (axis % x.ndim)
        return tuple(x[lead + (slice(int(a), int(b)),)] for a, b in zip(bounds[:-1], bounds[1:]))

    def backward(self, *gys):
        return array_module(gys[0]).concatenate(gys, axis=self.axis)


class Unbind(Function):
    """x [n, ...] -> n tensors x[0], ..., x[n-1] (views). Backward stacks the n gradients."""

    def forward(self, x):
        return tuple(x[i] for i in range(x.shape[0]))

    def backward(self, *gys):
        return array_module(gys[0]).stack(gys, axis=0)


class RollSum(Function):
    """Autoformer's time-delay aggregation with one set of delays for the batch:
    v [B, L, ...], shifts int [k], weights [B, k] -> out [B, L, ...],
    out[b, t] = sum_i weights[b, i] v[b, (t + shifts[i]) mod L] (a sum of torch.roll(v, -s_i, 1)).

    Each roll is two slices, accumulated in place: no [B, k, L, ...] stack of rolled copies (654 MB
    on M4 Hourly's batch of 1024, written, read by a batched matmul, and its gradient written
    again in the backward). The batch goes in blocks of about BLOCK_BYTES, so that a block's k
    passes run in cache. The backward rolls the gradient the other way for v, and takes one dot
    product per slice for the weights. M4 Hourly's shapes ([1024, 96, 4, 32], 13 delays, one
    thread): forward 250 -> 76 ms and backward 410 -> 173 ms with 256 KiB blocks against none."""
    BLOCK_BYTES = 1 << 18

    def forward(self, v, weights, shifts=()):
        xp = array_module(v)
        self.shifts = [int(s) % v.shape[1] for s in shifts]
        self.save_for_backward(v, weights)
        out = xp.zeros_like(v)
        w = weights.reshape(weights.shape + (1,) * (v.ndim - 2))         # [B, k, 1, ...]
        for lo, hi, tmp in self._blocks(v):
            for i, s in enumerate(self.shifts):
                _roll_scaled(v[lo:hi], w[lo:hi, i:i + 1], -s, tmp[:hi - lo])
                out[lo:hi] += tmp[:hi - lo]
        return out

    def backward(self, gy):
        v, weights = self.saved
        xp = array_module(gy)
        L = v.shape[1]
        gv = xp.zeros_like(v)
        gw = xp.empty(weights.shape, weights.dtype)
        w = weights.reshape(weights.shape + (1,) * (v.ndim - 2))
        for lo, hi, tmp in self._blocks(v):
            n = hi - lo
            for i, s in enumerate(self.shifts):
                _roll_scaled(gy[lo:hi], w[lo:hi, i:i + 1], s, tmp[:n])
                gv[lo:hi] += tmp[:n]
                # a batch row's slice is contiguous: [n, m] views, one dot per row
                gw[lo:hi, i] = (xp.einsum("bm,bm->b", gy[lo:hi, :L - s].reshape(n, -1), v[lo:hi, s:].reshape(n, -1))
                                + xp.einsum("bm,bm->b", gy[lo:hi, L - s:].reshape(n, -1), v[lo:hi, :s].reshape(n, -1)))
        return gv, gw

    def _blocks(self, v):
        """(lo, hi, scratch) over the batch in blocks of about BLOCK_BYTES (at least one row)."""
        B = v.shape[0]
        rows = max(1, min(B, self.BLOCK_BYTES // max(1, v[:1].nbytes)))
        tmp = array_module(v).empty((rows,) + v.shape[1:], v.dtype)
        for lo in range(0, B, rows):
            yield lo, min(B, lo + rows), tmp


def _roll_scaled(x, w, shift, out):
    """out = w * roll(x, shift, axis=1), as two slice products (shift in [-L, L])."""
    L = x.shape[1]
    s = shift % L
    array_module(x).multiply(x[:, :L - s], w, out=out[:, s:])
    array_module(x).multiply(x[:, L - s:], w, out=out[:, :s])

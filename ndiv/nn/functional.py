"""ndiv.nn.functional (import as F): torch.nn.functional's names, arguments and results.

Most functions are composed from Tensor ops (the tape differentiates them); the few with a
hand-written backward are Functions in ndiv/autograd/ops/nn_ops.py (linear, conv, pooling,
embedding, dropout). Where a fused kernel exists or will exist (softmax, log_softmax,
layer_norm, gelu, conv1d, scaled_dot_product_attention), the composed version keeps the name
`_<fn>_composed`: it is the oracle that the fused route is tested against (elu and glu keep
their one-op NumPy Functions, elementwise.Elu and Glu, for that).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

import ndiv
from ndiv import device as _device
from ndiv.autograd.ops import elementwise as _elementwise
from ndiv.autograd.ops import nn_ops
from ndiv.autograd.ops.shape import Pad as _Pad
from ndiv.autograd.tensor import Tensor
from ndiv.random import get_rng

# -- helpers -----------------------------------------------------------------------------------


def _fused_ok(*tensors) -> bool:
    """True when the given Tensors (None skipped) hold float32/float64 arrays of one dtype on one
    device: the fused Functions (ndiv.autograd.ops.fused) then replace the composed version, on
    either device; which kernels run (Numba or CUDA) is kernels_for(x)'s decision, not this one's."""
    ts = [t for t in tensors if t is not None]
    return all(isinstance(t, Tensor) and t.dtype == ts[0].dtype and t.device == ts[0].device for t in ts) \
        and ts[0].dtype in (np.float32, np.float64)


def _fused():
    from ndiv.autograd.ops import fused
    return fused


def _ntuple(v, n: int, name: str) -> tuple:
    if isinstance(v, (tuple, list)):
        if len(v) != n:
            raise ValueError(f"{name} must be an int or a sequence of {n} ints, got {v!r}")
        return tuple(int(a) for a in v)
    return (int(v),) * n


def _const(x: Tensor, value) -> np.ndarray:
    """A raw array on x's device and in x's dtype (for masks, interpolation matrices, ...)."""
    xp = _device.array_module(x.data)
    return xp.asarray(value, dtype=x.dtype)


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum", "none"):
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def _reduce(x: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return x.mean()
    if reduction == "sum":
        return x.sum()
    return x


# -- activations -------------------------------------------------------------------------------


def relu(x: Tensor, inplace: bool = False) -> Tensor:
    return x.relu()


def relu6(x: Tensor, inplace: bool = False) -> Tensor:
    return x.clip(0.0, 6.0)


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def silu(x: Tensor, inplace: bool = False) -> Tensor:
    return x * x.sigmoid()


def softsign(x: Tensor) -> Tensor:
    return x / (x.abs() + 1.0)


def _gelu_composed(x: Tensor, approximate: str = "none") -> Tensor:
    if approximate == "tanh":
        inner = (x + x * x * x * 0.044715) * math.sqrt(2.0 / math.pi)
        return x * 0.5 * (inner.tanh() + 1.0)
    return x * 0.5 * ((x * (1.0 / math.sqrt(2.0))).erf() + 1.0)


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """GELU: x Phi(x) (approximate='none') or the tanh approximation (approximate='tanh')."""
    if approximate not in ("none", "tanh"):
        raise ValueError(f"gelu: approximate must be 'none' or 'tanh', got {approximate!r}")
    if _fused_ok(x):
        return _fused().gelu(x, approximate)
    return _gelu_composed(x, approximate)


def elu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    """x for x > 0, alpha (e^x - 1) otherwise: the fused kernel for float32/float64, else one
    NumPy op (elementwise.Elu, also the kernel's oracle)."""
    if _fused_ok(x):
        return _fused().elu(x, alpha)
    return _elementwise.Elu.apply(x, alpha=float(alpha))


_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


def selu(x: Tensor, inplace: bool = False) -> Tensor:
    return elu(x, _SELU_ALPHA) * _SELU_SCALE


def celu(x: Tensor, alpha: float = 1.0, inplace: bool = False) -> Tensor:
    return ndiv.where(x > 0, x, ((x * (1.0 / alpha)).clip(None, 0.0).exp() - 1.0) * alpha)


def leaky_relu(x: Tensor, negative_slope: float = 0.01, inplace: bool = False) -> Tensor:
    return ndiv.where(x > 0, x, x * negative_slope)


def prelu(x: Tensor, weight: Tensor) -> Tensor:
    """weight [1] or [C]; C is dim 1 of x (dim 0 for 1-d x), as in torch."""
    if weight.size > 1 and x.ndim >= 2:
        weight = weight.reshape((1, -1) + (1,) * (x.ndim - 2))
    return ndiv.where(x > 0, x, x * weight)


def softplus(x: Tensor, beta: float = 1.0, threshold: float = 20.0) -> Tensor:
    """log(1 + exp(beta x)) / beta, and x itself where beta x > threshold."""
    bx = x * beta if beta != 1.0 else x
    # clip first so the unselected branch stays finite (its gradient is masked, not nan)
    soft = (bx.clip(None, threshold).exp() + 1.0).log()
    if beta != 1.0:
        soft = soft * (1.0 / beta)
    return ndiv.where(bx > threshold, x, soft)


def hardtanh(x: Tensor, min_val: float = -1.0, max_val: float = 1.0, inplace: bool = False) -> Tensor:
    return x.clip(min_val, max_val)


def _softmax_composed(x: Tensor, dim: int) -> Tensor:
    m = x.data.max(axis=dim, keepdims=True)  # a constant shift: softmax does not depend on it
    e = (x - m).exp()
    return e / e.sum(axis=dim, keepdims=True)


def softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    """exp(x) / sum(exp(x)) along dim (required: torch's implicit dim is deprecated)."""
    if dtype is not None:
        x = x.to(dtype=dtype)
    if _fused_ok(x) and x.ndim:
        return _fused().softmax(x, dim)
    return _softmax_composed(x, dim)


def _log_softmax_composed(x: Tensor, dim: int) -> Tensor:
    shifted = x - x.data.max(axis=dim, keepdims=True)
    return shifted - shifted.exp().sum(axis=dim, keepdims=True).log()


def log_softmax(x: Tensor, dim: int, dtype=None) -> Tensor:
    if dtype is not None:
        x = x.to(dtype=dtype)
    if _fused_ok(x) and x.ndim:
        return _fused().log_softmax(x, dim)
    return _log_softmax_composed(x, dim)


def softmin(x: Tensor, dim: int, dtype=None) -> Tensor:
    return softmax(-x, dim, dtype)


def glu(x: Tensor, dim: int = -1) -> Tensor:
    """a * sigmoid(b), x = [a | b] halved along dim: the fused kernel for float32/float64, else one
    NumPy op (elementwise.Glu, also the kernel's oracle)."""
    n = x.shape[dim]
    if n % 2:
        raise ValueError(f"glu: dim {dim} of size {n} must be even")
    if _fused_ok(x):
        return _fused().glu(x, dim)
    return _elementwise.Glu.apply(x, axis=dim)


# -- linear, dropout, embedding ----------------------------------------------------------------


def linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """x [..., in] @ weight[out, in].T + bias[out] -> [..., out], as one node."""
    if x.shape[-1:] != weight.shape[-1:]:
        raise ValueError(
            f"linear: input of shape {tuple(x.shape)} must end in in_features={weight.shape[-1]} "
            f"(weight shape {tuple(weight.shape)})"
        )
    if bias is None:
        return nn_ops.Linear.apply(x, weight)
    return nn_ops.Linear.apply(x, weight, bias)


def bilinear(x1: Tensor, x2: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """y[..., o] = x1[..., i] W[o, i, j] x2[..., j] + b[o]."""
    lead = x1.shape[:-1]
    y = ndiv.einsum("ni,oij,nj->no", x1.reshape(-1, x1.shape[-1]), weight, x2.reshape(-1, x2.shape[-1]))
    y = y.reshape(lead + (weight.shape[0],))
    return y + bias if bias is not None else y


def dropout(x: Tensor, p: float = 0.5, training: bool = True, inplace: bool = False) -> Tensor:
    """Zero each element with probability p and scale the rest by 1/(1-p) (identity unless training)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    # one draw from ndiv's generator per call (manual_seed makes it repeatable); the kernel
    # derives every element's draw from it
    return nn_ops.Dropout.apply(x, p=p, seed=int(get_rng().integers(0, 2 ** 63)))


def embedding(input, weight: Tensor, padding_idx: int | None = None, max_norm=None, norm_type: float = 2.0,
              scale_grad_by_freq: bool = False, sparse: bool = False) -> Tensor:
    """weight [N, D] rows picked by integer input (any shape) -> [*input.shape, D]."""
    if max_norm is not None or scale_grad_by_freq or sparse:
        raise NotImplementedError("embedding: max_norm, scale_grad_by_freq and sparse are not supported")
    idx = input.data if isinstance(input, Tensor) else input
    xp = _device.array_module(weight.data)
    idx = xp.asarray(idx)
    if idx.dtype.kind not in "iu":
        raise TypeError(f"embedding: input must hold integer indices, got dtype {idx.dtype}")
    n = weight.shape[0]
    if idx.size and (int(idx.min()) < -n or int(idx.max()) >= n):
        raise IndexError(f"embedding: index out of range: indices span [{int(idx.min())}, {int(idx.max())}], num_embeddings={n}")
    if padding_idx is not None and padding_idx < 0:
        padding_idx += n
    return nn_ops.Embedding.apply(weight, indices=idx, padding_idx=padding_idx)


def one_hot(input, num_classes: int = -1) -> Tensor:
    idx = np.asarray(input.numpy() if isinstance(input, Tensor) else input)
    if num_classes < 0:
        num_classes = int(idx.max()) + 1
    return ndiv.tensor(np.eye(num_classes, dtype=np.int64)[idx])


# -- normalisation -----------------------------------------------------------------------------


def _layer_norm_composed(x: Tensor, normalized_shape: Sequence[int], weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    xc = x - x.mean(axis=axes, keepdims=True)
    y = xc * ((xc * xc).mean(axis=axes, keepdims=True) + eps).pow(-0.5)
    if weight is not None:
        y = y * weight
    if bias is not None:
        y = y + bias
    return y


def layer_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, bias: Tensor | None = None,
               eps: float = 1e-5) -> Tensor:
    """Normalise over the trailing dims normalized_shape (biased variance), then scale and shift."""
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if tuple(x.shape[x.ndim - len(normalized_shape):]) != normalized_shape:
        raise ValueError(
            f"layer_norm: input of shape {tuple(x.shape)} does not end in normalized_shape {normalized_shape}"
        )
    if _fused_ok(x, weight, bias) and not (weight is None and bias is not None):
        return _fused().layer_norm(x, normalized_shape, weight, bias, eps)
    return _layer_norm_composed(x, normalized_shape, weight, bias, eps)


def add_layer_norm(x: Tensor, residual: Tensor, normalized_shape, weight: Tensor | None = None,
                   bias: Tensor | None = None, eps: float = 1e-5) -> Tensor:
    """layer_norm(x + residual) as one fused node where the kernels take the inputs (the Add & Norm
    of a post-norm Transformer layer). x, residual [..., *normalized_shape], one shape -> that shape.

    >>> add_layer_norm(ndiv.randn(4, 8), ndiv.randn(4, 8), (8,)).shape
    (4, 8)
    """
    if tuple(x.shape) != tuple(residual.shape):
        raise ValueError(f"add_layer_norm: x {tuple(x.shape)} and residual {tuple(residual.shape)} must have the "
                         f"same shape (no broadcasting; expand the smaller one first)")
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    if _fused_ok(x, residual, weight, bias) and not (weight is None and bias is not None) \
            and tuple(x.shape[x.ndim - len(normalized_shape):]) == normalized_shape:
        return _fused().add_layer_norm(x, residual, normalized_shape, weight, bias, eps)
    return layer_norm(x + residual, normalized_shape, weight, bias, eps)


def rms_norm(x: Tensor, normalized_shape, weight: Tensor | None = None, eps: float | None = None) -> Tensor:
    normalized_shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
    axes = tuple(range(x.ndim - len(normalized_shape), x.ndim))
    if eps is None:
        eps = float(np.finfo(x.dtype).eps)
    y = x * ((x * x).mean(axis=axes, keepdims=True) + eps).pow(-0.5)
    return y * weight if weight is not None else y


def batch_norm(x: Tensor, running_mean, running_var, weight: Tensor | None = None, bias: Tensor | None = None,
               training: bool = False, momentum: float | None = 0.1, eps: float = 1e-5) -> Tensor:
    """x [B, C, *]: normalise per channel C over batch and spatial dims.

    training: batch statistics (biased variance), and the running stats (Tensors or arrays, or
    None) are updated in place with the unbiased variance: r = (1 - momentum) r + momentum s.
    momentum=None: a cumulative average (the caller passes momentum = 1/num_batches_tracked).
    eval: the running stats normalise.
    """
    if x.ndim < 2:
        raise ValueError(f"batch_norm: expected input with at least 2 dims [B, C, *], got shape {tuple(x.shape)}")
    C = x.shape[1]
    axes = (0,) + tuple(range(2, x.ndim))
    shape = (1, C) + (1,) * (x.ndim - 2)
    if training:
        n = x.size // C
        if n <= 1:
            raise ValueError(f"Expected more than 1 value per channel when training, got input size {tuple(x.shape)}")
        if x.dtype.kind == "f" and all(p is None or p.dtype == x.dtype for p in (weight, bias)):
            from ndiv.autograd.ops import fused
            y, mean, invstd = fused.batch_norm_train(x, weight, bias, eps)
            _update_running(running_mean, running_var, momentum, mean, (invstd ** -2.0 - eps) * (n / (n - 1)))
            return y
        mean = x.mean(axis=axes, keepdims=True)
        xc = x - mean
        var = (xc * xc).mean(axis=axes, keepdims=True)
        y = xc * (var + eps).pow(-0.5)
        _update_running(running_mean, running_var, momentum, mean.data.reshape(C), var.data.reshape(C) * (n / (n - 1)))
    else:
        if running_mean is None or running_var is None:
            raise ValueError("batch_norm: running_mean and running_var are needed when training=False")
        rm = running_mean.data if isinstance(running_mean, Tensor) else running_mean
        rv = running_var.data if isinstance(running_var, Tensor) else running_var
        inv = 1.0 / _device.array_module(rv).sqrt(rv + eps)
        y = (x - rm.reshape(shape).astype(x.dtype)) * inv.reshape(shape).astype(x.dtype)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def _update_running(running_mean, running_var, momentum, mean, unbiased_var):
    """r = (1 - momentum) r + momentum s in place, for the running stats that are not None."""
    m = 0.0 if momentum is None else momentum
    for run, stat in ((running_mean, mean), (running_var, unbiased_var)):
        if run is not None:
            arr = run.data if isinstance(run, Tensor) else run
            arr *= 1.0 - m
            arr += m * stat.astype(arr.dtype)


def group_norm(x: Tensor, num_groups: int, weight=None, bias=None, eps: float = 1e-5) -> Tensor:
    B, C = x.shape[:2]
    if C % num_groups:
        raise ValueError(f"group_norm: num_channels {C} must be divisible by num_groups {num_groups}")
    g = x.reshape(B, num_groups, -1)
    gc = g - g.mean(axis=-1, keepdims=True)
    y = (gc * ((gc * gc).mean(axis=-1, keepdims=True) + eps).pow(-0.5)).reshape(x.shape)
    shape = (1, C) + (1,) * (x.ndim - 2)
    if weight is not None:
        y = y * weight.reshape(shape)
    if bias is not None:
        y = y + bias.reshape(shape)
    return y


def normalize(x: Tensor, p: float = 2.0, dim: int = 1, eps: float = 1e-12) -> Tensor:
    if p == 2.0:
        norm = (x * x).sum(axis=dim, keepdims=True).sqrt()
    else:
        norm = x.abs().pow(p).sum(axis=dim, keepdims=True).pow(1.0 / p)
    return x / ndiv.maximum(norm, _const(x, eps))


# -- padding, convolution, pooling, resampling -------------------------------------------------


def pad(x: Tensor, pad: Sequence[int], mode: str = "constant", value: float | None = None) -> Tensor:
    """torch's F.pad: pad = (left_last, right_last, left_2nd_last, right_2nd_last, ...).

    mode: 'constant' (value, default 0; negative pads crop), 'reflect', 'replicate', 'circular'.
    """
    if len(pad) % 2 or len(pad) // 2 > x.ndim:
        raise ValueError(f"pad: expected an even number of pads, at most 2 per dim of x (ndim {x.ndim}), got {tuple(pad)}")
    k = len(pad) // 2
    pairs = [(int(pad[2 * i]), int(pad[2 * i + 1])) for i in range(k)]  # last dim first
    if mode == "constant":
        widths = [(0, 0)] * (x.ndim - k) + pairs[::-1]
        return _Pad.apply(x, pad_width=tuple(widths), value=0.0 if value is None else value)
    if mode not in ("reflect", "replicate", "circular"):
        raise ValueError(f"pad: mode must be 'constant', 'reflect', 'replicate' or 'circular', got {mode!r}")
    for i, (lo, hi) in enumerate(pairs):
        dim = x.ndim - 1 - i
        n = x.shape[dim]
        pos = np.arange(-lo, n + hi)
        if mode == "replicate":
            idx = np.clip(pos, 0, n - 1)
        elif mode == "circular":
            if lo > n or hi > n:
                raise ValueError(f"pad: circular padding ({lo}, {hi}) larger than the dim size {n}")
            idx = pos % n
        else:
            if lo >= n or hi >= n:
                raise ValueError(f"pad: reflect padding ({lo}, {hi}) must be smaller than the dim size {n}")
            period = 2 * (n - 1) if n > 1 else 1
            idx = np.abs(pos) % period
            idx = np.where(idx >= n, period - idx, idx)
        x = x[(slice(None),) * dim + (idx,)]
    return x


def _conv_padding(padding, n: int, weight_shape, dilation: tuple) -> tuple:
    if isinstance(padding, str):
        if padding == "valid":
            return ((0, 0),) * n
        if padding == "same":
            pairs = []
            for d, k in zip(dilation, weight_shape[2:]):
                total = d * (k - 1)
                pairs.append((total // 2, total - total // 2))  # the extra one on the right, as torch
            return tuple(pairs)
        raise ValueError(f"padding must be an int, a tuple, 'valid' or 'same', got {padding!r}")
    return tuple((p, p) for p in _ntuple(padding, n, "padding"))


def _convnd(n: int, x: Tensor, weight: Tensor, bias, stride, padding, dilation, groups: int) -> Tensor:
    name = f"conv{n}d"
    unbatched = x.ndim == n + 1
    if unbatched:
        x = x.unsqueeze(0)
    if x.ndim != n + 2:
        raise ValueError(f"{name}: expected input of shape [B, C, {', '.join('L' * n)}] (or unbatched), got {tuple(x.shape)}")
    if weight.ndim != n + 2:
        raise ValueError(f"{name}: expected weight [out, in/groups, {', '.join('k' * n)}], got shape {tuple(weight.shape)}")
    C = x.shape[1]
    if C % groups or weight.shape[0] % groups or weight.shape[1] * groups != C:
        raise ValueError(
            f"{name}: input has {C} channels; weight {tuple(weight.shape)} with groups={groups} expects "
            f"{weight.shape[1] * groups} (and out channels divisible by groups)"
        )
    stride = _ntuple(stride, n, "stride")
    dilation = _ntuple(dilation, n, "dilation")
    if isinstance(padding, str) and padding == "same" and any(s != 1 for s in stride):
        raise ValueError(f"{name}: padding='same' is not supported for strided convolutions (stride={stride})")
    pads = _conv_padding(padding, n, weight.shape, dilation)
    args = (x, weight) if bias is None else (x, weight, bias)
    y = nn_ops.ConvNd.apply(*args, stride=stride, padding=pads, dilation=dilation, groups=groups)
    return y.squeeze(0) if unbatched else y


def _conv1d_composed(x: Tensor, weight: Tensor, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    return _convnd(1, x, weight, bias, stride, padding, dilation, groups)


def conv1d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """x [B, C_in, L], weight [C_out, C_in/groups, k] -> [B, C_out, L_out] (cross-correlation, as torch).

    padding: int, 'valid' or 'same'. L_out = (L + 2 padding - dilation (k - 1) - 1) // stride + 1.
    """
    if (_fused_ok(x, weight, bias) and groups == 1 and _ntuple(stride, 1, "stride") == (1,) and x.ndim == 3
            and weight.ndim == 3 and weight.shape[1] == x.shape[1]):
        d = _ntuple(dilation, 1, "dilation")
        (pads,) = _conv_padding(padding, 1, weight.shape, d)
        if x.shape[2] + sum(pads) - d[0] * (weight.shape[2] - 1) >= 1:
            return _fused().conv1d_dilated(x, weight, bias, padding=pads, dilation=d[0])
    return _conv1d_composed(x, weight, bias, stride, padding, dilation, groups)


def conv2d(x: Tensor, weight: Tensor, bias: Tensor | None = None, stride=1, padding=0, dilation=1,
           groups: int = 1) -> Tensor:
    """x [B, C_in, H, W], weight [C_out, C_in/groups, kh, kw] -> [B, C_out, H_out, W_out].

    Stride 1, dilation 1, groups 1 (TimesNet's Inception block) runs the fused im2col + GEMM
    kernel; anything else the composed ConvNd (`_conv2d_composed`, the oracle)."""
    if (_fused_ok(x, weight, bias) and groups == 1 and _ntuple(stride, 2, "stride") == (1, 1)
            and _ntuple(dilation, 2, "dilation") == (1, 1) and x.ndim == 4 and weight.ndim == 4
            and weight.shape[1] == x.shape[1] and min(x.shape[2:]) >= 1):
        (top, bottom), (left, right) = _conv_padding(padding, 2, weight.shape, (1, 1))
        if x.shape[2] + top + bottom >= weight.shape[2] and x.shape[3] + left + right >= weight.shape[3]:
            return _fused().conv2d(x, weight, bias, padding=(top, bottom, left, right))
    return _conv2d_composed(x, weight, bias, stride, padding, dilation, groups)


def _conv2d_composed(x: Tensor, weight: Tensor, bias=None, stride=1, padding=0, dilation=1, groups: int = 1) -> Tensor:
    return _convnd(2, x, weight, bias, stride, padding, dilation, groups)


def _pool_args(name: str, x: Tensor, kernel_size, stride, padding, dilation=1):
    k = _ntuple(kernel_size, 1, "kernel_size")[0]
    s = k if stride is None or (isinstance(stride, (tuple, list)) and not stride) else _ntuple(stride, 1, "stride")[0]
    p = _ntuple(padding, 1, "padding")[0]
    d = _ntuple(dilation, 1, "dilation")[0]
    if p > k // 2:
        raise ValueError(f"{name}: pad should be at most half of effective kernel size, but got pad={p}, kernel_size={k}")
    if x.ndim not in (2, 3):
        raise ValueError(f"{name}: expected input [B, C, L] or [C, L], got shape {tuple(x.shape)}")
    if k < 1 or s < 1:
        raise ValueError(f"{name}: kernel_size and stride must be positive, got {k} and {s}")
    return k, s, p, d


def max_pool1d(x: Tensor, kernel_size, stride=None, padding=0, dilation=1, ceil_mode: bool = False,
               return_indices: bool = False) -> Tensor:
    """x [B, C, L] -> [B, C, L_out], the max over each window (padding counts as -inf)."""
    if return_indices:
        raise NotImplementedError("max_pool1d: return_indices is not supported")
    k, s, p, d = _pool_args("max_pool1d", x, kernel_size, stride, padding, dilation)
    return nn_ops.MaxPool1d.apply(x, kernel_size=k, stride=s, padding=p, dilation=d, ceil_mode=ceil_mode)


def avg_pool1d(x: Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
               count_include_pad: bool = True) -> Tensor:
    """x [B, C, L] -> [B, C, L_out], the mean over each window (torch's divisor rules)."""
    k, s, p, _ = _pool_args("avg_pool1d", x, kernel_size, stride, padding)
    return nn_ops.AvgPool1d.apply(x, kernel_size=k, stride=s, padding=p, ceil_mode=ceil_mode,
                                  count_include_pad=count_include_pad)


def adaptive_avg_pool1d(x: Tensor, output_size: int) -> Tensor:
    """x [B, C, L] -> [B, C, output_size], torch's start/end window rule."""
    L = x.shape[-1]
    m = np.zeros((L, output_size))
    for i in range(output_size):
        a, b = (i * L) // output_size, -((-(i + 1) * L) // output_size)
        m[a:b, i] = 1.0 / (b - a)
    return x @ _const(x, m)


def _interp_matrix(n_in: int, n_out: int, align_corners: bool, scale: float | None, cubic: bool = False) -> np.ndarray:
    """M [n_in, n_out] with y = x @ M: 1-d linear or cubic (A = -0.75) interpolation along one
    axis, with torch's source-index rule (clamped at 0 for linear only) and border clamping."""
    dst = np.arange(n_out, dtype=np.float64)
    if align_corners:
        src = dst * ((n_in - 1) / (n_out - 1)) if n_out > 1 else np.zeros(n_out)
    else:
        ratio = (1.0 / scale) if scale is not None else n_in / n_out
        src = (dst + 0.5) * ratio - 0.5
        if not cubic:
            src = np.maximum(src, 0.0)
    i0 = np.floor(src).astype(np.int64)
    t = src - i0
    cols = np.arange(n_out)
    m = np.zeros((n_in, n_out))
    if cubic:
        A = -0.75
        taps = [((A * (t + 1) - 5 * A) * (t + 1) + 8 * A) * (t + 1) - 4 * A,
                ((A + 2) * t - (A + 3)) * t * t + 1,
                ((A + 2) * (1 - t) - (A + 3)) * (1 - t) * (1 - t) + 1,
                ((A * (2 - t) - 5 * A) * (2 - t) + 8 * A) * (2 - t) - 4 * A]
        for k, w in enumerate(taps):
            np.add.at(m, (np.clip(i0 - 1 + k, 0, n_in - 1), cols), w)
        return m
    i0 = np.minimum(i0, n_in - 1)
    np.add.at(m, (i0, cols), 1.0 - t)
    np.add.at(m, (np.minimum(i0 + 1, n_in - 1), cols), t)
    return m


def _nearest_index(n_in: int, n_out: int, scale: float | None) -> np.ndarray:
    # torch computes the ratio in float32 and floors dst * ratio
    ratio = np.float32(1.0 / scale) if scale is not None else np.float32(n_in) / np.float32(n_out)
    return np.minimum(np.floor(np.arange(n_out, dtype=np.float32) * ratio).astype(np.int64), n_in - 1)


def interpolate(x: Tensor, size=None, scale_factor=None, mode: str = "nearest", align_corners: bool | None = None,
                recompute_scale_factor: bool | None = None, antialias: bool = False) -> Tensor:
    """Resample the spatial dims of x [B, C, *S] (S: 1 or 2 dims) to `size` or S * scale_factor.

    mode: 'nearest', 'linear' (3-d x), 'bilinear' or 'bicubic' (4-d x); align_corners as torch.
    """
    n = x.ndim - 2
    if n < 1:
        raise ValueError(f"interpolate: expected input [B, C, *spatial], got shape {tuple(x.shape)}")
    if (size is None) == (scale_factor is None):
        raise ValueError("interpolate: exactly one of size and scale_factor must be given")
    linear_modes = {"linear": 1, "bilinear": 2, "bicubic": 2}
    if mode in linear_modes:
        if linear_modes[mode] != n:
            raise ValueError(f"interpolate: mode {mode!r} needs {linear_modes[mode] + 2}-d input, got shape {tuple(x.shape)}")
        align_corners = bool(align_corners)
    elif mode == "nearest":
        if align_corners:
            raise ValueError("interpolate: align_corners only applies to linear modes")
    else:
        raise NotImplementedError(
            f"interpolate: mode {mode!r} is not supported (use 'nearest', 'linear', 'bilinear' or 'bicubic')"
        )
    in_sizes = x.shape[2:]
    if size is not None:
        out_sizes = _ntuple(size, n, "size")
        scales = (None,) * n
    else:
        sf = tuple(float(s) for s in scale_factor) if isinstance(scale_factor, (tuple, list)) else (float(scale_factor),) * n
        if len(sf) != n:
            raise ValueError(f"interpolate: scale_factor needs {n} values, got {scale_factor!r}")
        out_sizes = tuple(int(math.floor(i * s)) for i, s in zip(in_sizes, sf))
        scales = (None,) * n if recompute_scale_factor else sf
    for i in range(n):
        dim = 2 + i
        n_in, n_out = in_sizes[i], out_sizes[i]
        if n_in == n_out and (mode == "nearest" or align_corners or scales[i] in (None, 1.0)):
            continue  # the identity (torch's index rules map each position to itself)
        if mode == "nearest":
            x = x[(slice(None),) * dim + (_nearest_index(n_in, n_out, scales[i]),)]
        else:
            m = _const(x, _interp_matrix(n_in, n_out, align_corners, scales[i], cubic=mode == "bicubic"))
            if dim == x.ndim - 1:
                x = x @ m
            else:
                x = (x.swapaxes(dim, -1) @ m).swapaxes(dim, -1)
    return x


def unfold1d(x: Tensor, size: int, step: int) -> Tensor:
    """torch's Tensor.unfold on the last dim: x [..., L] -> [..., n_windows, size]."""
    L = x.shape[-1]
    n = (L - size) // step + 1
    idx = np.arange(n)[:, None] * step + np.arange(size)[None, :]
    return x[(Ellipsis, idx)]


# -- attention ---------------------------------------------------------------------------------


def _float_mask(mask, like: Tensor, keep_true: bool):
    """A bool mask (True = keep when keep_true) or float mask as an additive float array/Tensor."""
    if isinstance(mask, Tensor) and mask.dtype.kind == "f":
        return mask
    m = mask.data if isinstance(mask, Tensor) else mask
    xp = _device.array_module(like.data)
    m = xp.asarray(m)
    if m.dtype == np.bool_:
        drop = ~m if keep_true else m
        return xp.where(drop, xp.asarray(-np.inf, dtype=like.dtype), xp.asarray(0.0, dtype=like.dtype))
    return m.astype(like.dtype)


def _sdpa_composed(q: Tensor, k: Tensor, v: Tensor, attn_mask=None, dropout_p: float = 0.0, is_causal: bool = False,
                   scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    L, S = q.shape[-2], k.shape[-2]
    scale = 1.0 / math.sqrt(q.shape[-1]) if scale is None else scale
    scores = (q @ k.swapaxes(-1, -2)) * scale
    if is_causal:
        causal = np.tril(np.ones((L, S), dtype=bool))
        scores = scores + _float_mask(causal, q, keep_true=True)
    if attn_mask is not None:
        scores = scores + _float_mask(attn_mask, q, keep_true=True)
    w = _softmax_rows_safe(scores) if (is_causal or attn_mask is not None) else softmax(scores, -1)
    if dropout_p > 0.0:
        w = dropout(w, dropout_p, True)
    return w @ v


def _softmax_rows_safe(scores: Tensor) -> Tensor:
    """Softmax over the last dim that gives 0 (not nan) on rows masked entirely (torch >= 2.5)."""
    data = scores.data
    m = data.max(axis=-1, keepdims=True)
    xp = _device.array_module(data)
    dead = xp.isneginf(m)
    if not dead.any():
        return softmax(scores, -1)
    m = xp.where(dead, 0.0, m).astype(data.dtype)
    e = (scores - m).exp()
    s = e.sum(axis=-1, keepdims=True)
    return e / (s + dead.astype(data.dtype))


# Below this many scores per (batch, head) the score matrix is small and the composed ops win
# (measured, B32 H4 L42: flash 6.5 ms vs composed 3.9 ms fwd+bwd; L512: flash 10x faster).
FLASH_MIN_SCORES = 64 * 64


def scaled_dot_product_attention(query: Tensor, key: Tensor, value: Tensor, attn_mask=None, dropout_p: float = 0.0,
                                 is_causal: bool = False, scale: float | None = None, enable_gqa: bool = False) -> Tensor:
    """softmax(q k^T * scale + mask) v. q [..., L, E], k [..., S, E], v [..., S, Ev] -> [..., L, Ev].

    attn_mask: bool (True = may attend) or float (added), broadcastable to [..., L, S];
    is_causal: query i attends to keys j <= i; a fully masked row gives zeros.
    """
    if is_causal and attn_mask is not None:
        raise ValueError("scaled_dot_product_attention: pass either attn_mask or is_causal=True, not both")
    if (_fused_ok(query, key, value) and dropout_p == 0.0 and query.ndim == 4 and key.shape == value.shape
            and key.shape[:2] == query.shape[:2] and key.shape[3] == query.shape[3]
            and query.shape[2] * key.shape[2] > FLASH_MIN_SCORES
            and not (isinstance(attn_mask, Tensor) and attn_mask.requires_grad)):
        return _fused().flash_attention(query, key, value, attn_mask, is_causal, scale)
    return _sdpa_composed(query, key, value, attn_mask, dropout_p, is_causal, scale, enable_gqa)


# -- losses ------------------------------------------------------------------------------------


def _loss_args(name: str, input: Tensor, target, reduction: str):
    _check_reduction(reduction)
    if not isinstance(target, Tensor):
        target = ndiv.tensor(target, dtype=input.dtype)
    if tuple(input.shape) != tuple(target.shape):
        raise ValueError(
            f"{name}: input shape {tuple(input.shape)} and target shape {tuple(target.shape)} differ "
            "(torch would broadcast with a warning; ndiv asks for equal shapes)"
        )
    return target


def mse_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    d = input - _loss_args("mse_loss", input, target, reduction)
    return _reduce(d * d, reduction)


def l1_loss(input: Tensor, target, reduction: str = "mean") -> Tensor:
    return _reduce((input - _loss_args("l1_loss", input, target, reduction)).abs(), reduction)


def huber_loss(input: Tensor, target, reduction: str = "mean", delta: float = 1.0) -> Tensor:
    """0.5 d^2 where |d| < delta, else delta (|d| - delta/2)."""
    if delta <= 0:
        raise ValueError(f"huber_loss: delta must be positive, got {delta}")
    d = input - _loss_args("huber_loss", input, target, reduction)
    a = d.abs()
    return _reduce(ndiv.where(a < delta, d * d * 0.5, (a - 0.5 * delta) * delta), reduction)


def smooth_l1_loss(input: Tensor, target, reduction: str = "mean", beta: float = 1.0) -> Tensor:
    d = input - _loss_args("smooth_l1_loss", input, target, reduction)
    a = d.abs()
    if beta == 0:
        return _reduce(a, reduction)
    return _reduce(ndiv.where(a < beta, d * d * (0.5 / beta), a - 0.5 * beta), reduction)


def cross_entropy(input: Tensor, target, reduction: str = "mean") -> Tensor:
    """input [B, C] logits, target [B] class indices."""
    _check_reduction(reduction)
    t = np.asarray(target.numpy() if isinstance(target, Tensor) else target)
    logp = log_softmax(input, dim=1)
    picked = logp[np.arange(t.shape[0]), t]
    return _reduce(-picked, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target, reduction: str = "mean") -> Tensor:
    target = _loss_args("binary_cross_entropy_with_logits", input, target, reduction)
    # max(x, 0) - x t + log(1 + exp(-|x|))
    loss = input.relu() - input * target + ((-input.abs()).exp() + 1.0).log()
    return _reduce(loss, reduction)


ACTIVATIONS: dict[str, Callable] = {"relu": relu, "gelu": gelu, "tanh": tanh, "sigmoid": sigmoid, "elu": elu,
                                    "selu": selu, "silu": silu, "leaky_relu": leaky_relu, "softplus": softplus}


def logsigmoid(x: Tensor) -> Tensor:
    """log(sigmoid(x)), elementwise, finite for any finite x (x for x << 0, ~0 for x >> 0)."""
    return _elementwise.LogSigmoid.apply(x)

"""The NumPy/torch-like layer over the Functions: Tensor methods, operators and ndiv.* functions.

This layer validates and converts arguments (Python scalars, lists, torch-style `dim=`), then
calls one Function. The Functions below it take raw arrays only.
"""
from __future__ import annotations

import numpy as np

from ndiv import device as _device
from ndiv.autograd.ops import elementwise as E
from ndiv.autograd.ops import linalg as LA
from ndiv.autograd.ops import reduce as R
from ndiv.autograd.ops import shape as S
from ndiv.autograd.tensor import DEFAULT_DTYPE, Tensor, _make
from ndiv.random import get_rng

_Number = (int, float, bool, np.number)


def _const(x, like: Tensor) -> Tensor:
    """A non-Tensor operand (Python number, list, NumPy array) as a constant Tensor on like's
    device: constants follow the tensor they meet (arrays that are already on another device
    than like are an error, as with Tensors)."""
    data = x
    if not isinstance(x, np.ndarray) and not _device.is_cuda_array(x):
        data = np.asarray(x)
        if data.dtype == np.float64 and like.data.dtype.kind in "fc":
            data = data.astype(like.data.real.dtype)  # Python floats take like's precision
        elif data.dtype == np.complex128 and like.data.dtype.kind in "fc":
            data = data.astype(np.result_type(like.data.dtype, np.complex64))
    if _device.is_cuda_array(like.data) and not _device.is_cuda_array(data):
        data = _device.to_device(data, "cuda")
    elif _device.is_cuda_array(data) and not _device.is_cuda_array(like.data):
        raise RuntimeError(f"expected all operands on the same device, got {like.device} and cuda")
    return _make(data, False, None, 0)


def _check_same_device(a: Tensor, b: Tensor):
    if type(a.data) is not type(b.data) and a.device != b.device:
        raise RuntimeError(f"expected all tensors on the same device, got {a.device} and {b.device}; move one with .to()")


def _binary(fn, scalar_fn=None, reverse_scalar_fn=None):
    def op(self, other):
        if isinstance(other, Tensor):
            _check_same_device(self, other)
            return fn.apply(self, other)
        if scalar_fn is not None and isinstance(other, _Number) and not isinstance(other, np.ndarray):
            return scalar_fn(self, other)
        return fn.apply(self, _const(other, self))

    def rop(self, other):
        if reverse_scalar_fn is not None and isinstance(other, _Number):
            return reverse_scalar_fn(self, other)
        return fn.apply(_const(other, self), self)

    return op, rop


Tensor.__add__, Tensor.__radd__ = _binary(E.Add, lambda x, c: E.AddScalar.apply(x, c=c), lambda x, c: E.AddScalar.apply(x, c=c))
Tensor.__sub__, Tensor.__rsub__ = _binary(E.Sub, lambda x, c: E.AddScalar.apply(x, c=-c), lambda x, c: E.RSubScalar.apply(x, c=c))
Tensor.__mul__, Tensor.__rmul__ = _binary(E.Mul, lambda x, c: E.MulScalar.apply(x, c=c), lambda x, c: E.MulScalar.apply(x, c=c))
Tensor.__truediv__, Tensor.__rtruediv__ = _binary(E.Div, lambda x, c: E.MulScalar.apply(x, c=1.0 / c) if c != 0 else E.Div.apply(x, _const(c, x)), lambda x, c: E.RDivScalar.apply(x, c=c))
Tensor.__pow__, Tensor.__rpow__ = _binary(E.Pow, lambda x, c: E.PowScalar.apply(x, c=c), lambda x, c: E.RPowScalar.apply(x, c=c))
Tensor.__matmul__, Tensor.__rmatmul__ = _binary(LA.MatMul)
Tensor.__neg__ = lambda self: E.Neg.apply(self)
Tensor.__pos__ = lambda self: self
Tensor.__abs__ = lambda self: E.Abs.apply(self)


def _compare(name):
    def op(self, other):
        o = other.data if isinstance(other, Tensor) else other
        return _make(getattr(self.data, name)(o), False, None, 0)
    return op


for _name in ("__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"):
    setattr(Tensor, _name, _compare(_name))
Tensor.__hash__ = object.__hash__
Tensor.__invert__ = lambda self: _make(~self.data, False, None, 0)
Tensor.__and__ = lambda self, o: _make(self.data & (o.data if isinstance(o, Tensor) else o), False, None, 0)
Tensor.__or__ = lambda self, o: _make(self.data | (o.data if isinstance(o, Tensor) else o), False, None, 0)


# -- indexing ----------------------------------------------------------------------------------
def _index(index):
    """Convert a Tensor/list index to arrays; tell whether it is advanced (gather) indexing."""
    items = index if isinstance(index, tuple) else (index,)
    out, advanced = [], False
    for it in items:
        if isinstance(it, Tensor):
            it = it.data
        elif isinstance(it, list):
            it = np.asarray(it)
        if hasattr(it, "dtype") and getattr(it, "ndim", 0) >= 0 and not isinstance(it, np.generic):
            advanced = True
        out.append(it)
    return (tuple(out) if isinstance(index, tuple) else out[0]), advanced


def _getitem(self, index):
    index, advanced = _index(index)
    return S.GetItem.apply(self, index=index, advanced=advanced)


def _setitem(self, index, value):
    if self.requires_grad or self._ctx is not None:
        raise RuntimeError("in-place assignment into a tensor that is part of a graph is not supported; build a new tensor (e.g. ndiv.where)")
    index, _ = _index(index)
    self.data[index] = value.data if isinstance(value, Tensor) else value


Tensor.__getitem__ = _getitem
Tensor.__setitem__ = _setitem


# -- reductions --------------------------------------------------------------------------------
def _axis(axis, dim):
    return dim if axis is None else axis


def _keep(keepdims, keepdim):
    return bool(keepdim) if keepdim is not None else keepdims


def _sum(self, axis=None, keepdims=False, *, dim=None, keepdim=None, dtype=None):
    x = self if dtype is None else self.to(dtype=dtype)
    return R.Sum.apply(x, axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim))


def _mean(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
    return R.Mean.apply(self, axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim))


def _var(self, axis=None, keepdims=False, *, dim=None, keepdim=None, correction=None, unbiased=None, ddof=None):
    """Variance; like torch the default is unbiased (correction=1); ddof=0 as numpy works too."""
    c = 1
    for v in (correction, ddof):
        if v is not None:
            c = v
    if unbiased is not None:
        c = 1 if unbiased else 0
    return R.Var.apply(self, axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim), correction=c)


def _std(self, *args, **kwargs):
    return _var(self, *args, **kwargs).sqrt()


def _maxmin(largest):
    def op(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        """Over everything: ties share the gradient; along one axis: the first index gets it."""
        axis, keepdims = _axis(axis, dim), _keep(keepdims, keepdim)
        if self.data.size == 0:
            raise ValueError(f"{'max' if largest else 'min'}() of an empty tensor of shape {self.shape}")
        if axis is None or isinstance(axis, (tuple, list)):
            return R.AMaxMin.apply(self, axis=axis, keepdims=keepdims, largest=largest)
        return R.MaxMin.apply(self, axis=axis, keepdims=keepdims, largest=largest)
    return op


def _amaxmin(largest):
    def op(self, axis=None, keepdims=False, *, dim=None, keepdim=None):
        return R.AMaxMin.apply(self, axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim), largest=largest)
    return op


Tensor.sum = _sum
Tensor.mean = _mean
Tensor.var = _var
Tensor.std = _std
Tensor.max = _maxmin(True)
Tensor.min = _maxmin(False)
Tensor.amax = _amaxmin(True)
Tensor.amin = _amaxmin(False)
Tensor.prod = lambda self, axis=None, keepdims=False, *, dim=None, keepdim=None: R.Prod.apply(self, axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim))
Tensor.logsumexp = lambda self, axis=-1, keepdims=False, *, dim=None, keepdim=None: R.LogSumExp.apply(self, axis=_axis(axis, dim) if dim is not None else axis, keepdims=_keep(keepdims, keepdim))
Tensor.argmax = lambda self, axis=None, keepdims=False, *, dim=None, keepdim=None: _make(_device.array_module(self.data).asarray(self.data.argmax(axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim))), False, None, 0)
Tensor.argmin = lambda self, axis=None, keepdims=False, *, dim=None, keepdim=None: _make(_device.array_module(self.data).asarray(self.data.argmin(axis=_axis(axis, dim), keepdims=_keep(keepdims, keepdim))), False, None, 0)
Tensor.cumsum = lambda self, axis=None, *, dim=None: R.Cumsum.apply(self, axis=_axis(axis, dim))


# -- unary math --------------------------------------------------------------------------------
_UNARY = {"exp": E.Exp, "log": E.Log, "log1p": E.Log1p, "expm1": E.Expm1, "sqrt": E.Sqrt, "abs": E.Abs,
          "tanh": E.Tanh, "sigmoid": E.Sigmoid, "relu": E.Relu, "sin": E.Sin, "cos": E.Cos, "erf": E.Erf,
          "conj": E.Conj, "angle": E.Angle}
for _name, _fn in _UNARY.items():
    setattr(Tensor, _name, (lambda f: lambda self: f.apply(self))(_fn))
Tensor.real = property(lambda self: E.Real.apply(self))
Tensor.imag = property(lambda self: E.Imag.apply(self))
Tensor.rsqrt = lambda self: self.sqrt().__rtruediv__(1.0)
Tensor.square = lambda self: E.PowScalar.apply(self, c=2)
Tensor.sign = lambda self: _make(_device.array_module(self.data).sign(self.data), False, None, 0)


def _clip(self, min=None, max=None):
    if min is None and max is None:
        raise ValueError("clip needs min or max")
    return E.Clip.apply(self, lo=min, hi=max)


def _pow(self, exponent):
    return self.__pow__(exponent)


Tensor.clip = _clip
Tensor.clamp = _clip
Tensor.pow = _pow
Tensor.matmul = lambda self, other: self @ other


def _masked_fill(self, mask, value):
    mask = mask.data if isinstance(mask, Tensor) else mask
    return where(mask, value, self)


Tensor.masked_fill = _masked_fill


# -- shapes ------------------------------------------------------------------------------------
def _shape_arg(shape):
    if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
        return tuple(shape[0])
    return tuple(shape)


def _reshape(self, *shape):
    return S.Reshape.apply(self, shape=_shape_arg(shape))


def _permute(self, *axes):
    axes = _shape_arg(axes)
    if sorted(a % max(self.ndim, 1) for a in axes) != list(range(self.ndim)):
        raise ValueError(f"permute: {axes} is not a permutation of the {self.ndim} axes of shape {self.shape}")
    return S.Permute.apply(self, axes=tuple(a % self.ndim for a in axes))


def _transpose(self, *args):
    """transpose(): reverse all axes (numpy); transpose(d0, d1): swap two (torch); transpose(axes)."""
    if not args:
        return S.Permute.apply(self, axes=tuple(range(self.ndim))[::-1])
    if len(args) == 2 and all(isinstance(a, int) for a in args):
        return _swapaxes(self, *args)
    return _permute(self, *args)


def _swapaxes(self, a, b):
    axes = list(range(self.ndim))
    a, b = a % self.ndim, b % self.ndim
    axes[a], axes[b] = axes[b], axes[a]
    return S.Permute.apply(self, axes=tuple(axes))


def _unsqueeze(self, dim):
    dim = dim % (self.ndim + 1)
    return S.Reshape.apply(self, shape=self.shape[:dim] + (1,) + self.shape[dim:])


def _squeeze(self, dim=None):
    if dim is None:
        shape = tuple(n for n in self.shape if n != 1)
    else:
        dims = {d % self.ndim for d in ((dim,) if isinstance(dim, int) else dim)} if self.ndim else set()
        shape = tuple(n for i, n in enumerate(self.shape) if not (i in dims and n == 1))
    return S.Reshape.apply(self, shape=shape)


def _expand(self, *shape):
    shape = _shape_arg(shape)
    lead = len(shape) - self.ndim
    full = tuple(self.shape[i - lead] if (n == -1 and i >= lead) else n for i, n in enumerate(shape))
    return S.Expand.apply(self, shape=full)


def _flatten(self, start_dim=0, end_dim=-1):
    if self.ndim == 0:
        return S.Reshape.apply(self, shape=(1,))
    s, e = start_dim % self.ndim, end_dim % self.ndim
    n = 1
    for k in self.shape[s:e + 1]:
        n *= k
    return S.Reshape.apply(self, shape=self.shape[:s] + (n,) + self.shape[e + 1:])


def _repeat(self, *reps):
    """torch.Tensor.repeat: tile the tensor reps times along each axis."""
    reps = _shape_arg(reps)
    x = self.reshape((1,) * (len(reps) - self.ndim) + self.shape)
    inter = []
    for r, n in zip(reps, x.shape):
        inter += [r, n]
    x = x.reshape(tuple(v for n in x.shape for v in (1, n))).expand(*inter)
    return x.reshape(tuple(r * n for r, n in zip(reps, self.reshape((1,) * (len(reps) - self.ndim) + self.shape).shape)))


Tensor.reshape = _reshape
Tensor.view = _reshape
Tensor.permute = _permute
Tensor.transpose = _transpose
Tensor.swapaxes = _swapaxes
Tensor.unsqueeze = _unsqueeze
Tensor.squeeze = _squeeze
Tensor.expand = _expand
Tensor.expand_as = lambda self, other: _expand(self, *other.shape)
Tensor.broadcast_to = lambda self, shape: _expand(self, *shape)
Tensor.flatten = _flatten
Tensor.repeat = _repeat
Tensor.flip = lambda self, dims: S.Flip.apply(self, axis=tuple(dims) if isinstance(dims, (list, tuple)) else dims)
Tensor.roll = lambda self, shifts, dims=None: S.Roll.apply(self, shift=tuple(shifts) if isinstance(shifts, list) else shifts, axis=tuple(dims) if isinstance(dims, list) else dims)
Tensor.gather = lambda self, dim, index: gather(self, dim, index)
Tensor.topk = lambda self, k, dim=-1, largest=True, sorted=True: topk(self, k, dim, largest, sorted)
Tensor.contiguous = lambda self: self


# -- functions ---------------------------------------------------------------------------------
def tensor(data, requires_grad: bool = False, dtype=None, device: str = "cpu") -> Tensor:
    """A Tensor from a list, scalar or array. Python floats become float32 (as torch)."""
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, device=device)


def _factory(make, shape, dtype, device, requires_grad):
    data = make(_shape_arg(shape), np.dtype(dtype or DEFAULT_DTYPE))
    return Tensor(data, requires_grad=requires_grad, device=device)


def zeros(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _factory(np.zeros, shape, dtype, device, requires_grad)


def ones(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _factory(np.ones, shape, dtype, device, requires_grad)


def full(shape, fill_value, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _factory(lambda s, d: np.full(s, fill_value, d), (shape,) if isinstance(shape, int) else shape, dtype, device, requires_grad)


def empty(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    return _factory(np.empty, shape, dtype, device, requires_grad)


def _draw(draw, s, d, scale=1.0):
    """draw(shape) as dtype d; a complex dtype draws its real and imaginary parts apart (torch)."""
    if d.kind != "c":
        return draw(s).astype(d)
    z = np.empty(s, d)
    z.real, z.imag = draw(s) * scale, draw(s) * scale
    return z


def randn(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Standard normal samples from the global generator (ndiv.manual_seed); complex dtypes
    draw each part with variance 1/2 (E|z|^2 = 1), as torch.randn."""
    return _factory(lambda s, d: _draw(get_rng().standard_normal, s, d, 0.5 ** 0.5), shape, dtype, device, requires_grad)


def rand(*shape, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    """Uniform [0, 1) samples; complex dtypes draw the real and imaginary parts each in [0, 1),
    as torch.rand(..., dtype=torch.cfloat)."""
    return _factory(lambda s, d: _draw(get_rng().random, s, d), shape, dtype, device, requires_grad)


def zeros_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(_device.array_module(x.data).zeros_like(x.data, dtype=dtype), requires_grad=requires_grad)


def ones_like(x: Tensor, dtype=None, requires_grad=False) -> Tensor:
    return Tensor(_device.array_module(x.data).ones_like(x.data, dtype=dtype), requires_grad=requires_grad)


def arange(start, stop=None, step=1, dtype=None, device="cpu", requires_grad=False) -> Tensor:
    if stop is None:
        start, stop = 0, start
    data = np.arange(start, stop, step)
    if dtype is not None:
        data = data.astype(dtype)
    elif data.dtype == np.float64:
        data = data.astype(DEFAULT_DTYPE)
    return Tensor(data, requires_grad=requires_grad, device=device)


def linspace(start, stop, steps, dtype=None, device="cpu") -> Tensor:
    return Tensor(np.linspace(start, stop, steps).astype(dtype or DEFAULT_DTYPE), device=device)


def eye(n, m=None, dtype=None, device="cpu") -> Tensor:
    return Tensor(np.eye(n, m, dtype=dtype or DEFAULT_DTYPE), device=device)


def _tensors(xs, name):
    xs = list(xs)
    if not xs:
        raise ValueError(f"{name}: expected a non-empty sequence of tensors")
    first = next((x for x in xs if isinstance(x, Tensor)), None)
    if first is None:
        return [tensor(x) for x in xs]
    out = [x if isinstance(x, Tensor) else _const(x, first) for x in xs]
    for x in out[1:]:
        _check_same_device(out[0], x)
    return out


def cat(tensors, axis: int = 0, *, dim=None) -> Tensor:
    xs = _tensors(tensors, "cat")
    return S.Cat.apply(*xs, axis=dim if dim is not None else axis)


concatenate = cat


def stack(tensors, axis: int = 0, *, dim=None) -> Tensor:
    xs = _tensors(tensors, "stack")
    return S.Stack.apply(*xs, axis=dim if dim is not None else axis)


def where(condition, a, b) -> Tensor:
    """Elementwise a where condition else b; condition carries no gradient."""
    cond = condition.data if isinstance(condition, Tensor) else np.asarray(condition)
    like = a if isinstance(a, Tensor) else b if isinstance(b, Tensor) else None
    if like is None:
        return tensor(np.where(cond, a, b))
    a = a if isinstance(a, Tensor) else _const(a, like)
    b = b if isinstance(b, Tensor) else _const(b, like)
    _check_same_device(a, b)
    if _device.is_cuda_array(like.data) and not _device.is_cuda_array(cond):
        cond = _device.to_device(cond, "cuda")
    return E.Where.apply(a, b, cond=cond)


def maximum(a, b) -> Tensor:
    a, b = _tensors([a, b], "maximum")
    return E.Maximum.apply(a, b)


def minimum(a, b) -> Tensor:
    a, b = _tensors([a, b], "minimum")
    return E.Minimum.apply(a, b)


def einsum(subscripts: str, *operands) -> Tensor:
    """einsum with explicit output ('bij,bjk->bik'); gradients for every operand."""
    if "->" not in subscripts:
        raise ValueError(f"einsum: give the output subscripts explicitly, e.g. 'ij,jk->ik', got {subscripts!r}")
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    return LA.Einsum.apply(*_tensors(operands, "einsum"), subscripts=subscripts)


def cumsum(x: Tensor, axis: int = None, *, dim=None) -> Tensor:
    return R.Cumsum.apply(x, axis=_axis(axis, dim))


def gather(x: Tensor, dim: int, index) -> Tensor:
    """torch.gather: out[..., j, ...] = x[..., index[..., j, ...], ...] along dim."""
    idx = index.data if isinstance(index, Tensor) else np.asarray(index)
    if _device.is_cuda_array(x.data) and not _device.is_cuda_array(idx):
        idx = _device.to_device(idx, "cuda")
    if idx.dtype.kind not in "iu":
        raise TypeError(f"gather: index must be an integer tensor, got dtype {idx.dtype}")
    if idx.ndim != x.ndim:
        raise ValueError(f"gather: index has {idx.ndim} dimensions, input has {x.ndim}; they must match")
    return S.Gather.apply(x, index=idx, axis=dim % x.ndim)


def topk(x: Tensor, k: int, dim: int = -1, largest: bool = True, sorted: bool = True):
    """(values, indices) of the k largest (or smallest) along dim; values carry the gradient."""
    xp = _device.array_module(x.data)
    dim = dim % x.ndim
    n = x.shape[dim]
    if not 0 <= k <= n:
        raise ValueError(f"topk: k={k} is out of range for dimension {dim} of size {n}")
    key = -x.data if largest else x.data
    idx = xp.argsort(key, axis=dim, kind="stable")
    idx = xp.take(idx, xp.arange(k), axis=dim)
    return gather(x, dim, idx), _make(idx.astype(np.int64), False, None, 0)


def pad(x: Tensor, pad_width, value: float = 0.0) -> Tensor:
    """Constant pad with numpy's pad_width ((before, after) per axis); negative values crop."""
    if len(pad_width) != x.ndim:
        raise ValueError(f"pad: pad_width needs one (before, after) pair per axis ({x.ndim}), got {pad_width}")
    return S.Pad.apply(x, pad_width=tuple(tuple(int(v) for v in p) for p in pad_width), value=value)


def complex(real: Tensor, imag: Tensor) -> Tensor:  # noqa: A001 - torch's name
    return E.Complex.apply(*_tensors([real, imag], "complex"))


def _unary_fn(name):
    def fn(x):
        return getattr(x if isinstance(x, Tensor) else tensor(x), name)()
    fn.__name__ = name
    fn.__doc__ = f"Elementwise {name}(x); see Tensor.{name}."
    return fn


exp, log, log1p, expm1, sqrt, abs, tanh, sigmoid, relu, sin, cos, erf, conj, angle = (
    _unary_fn(n) for n in ("exp", "log", "log1p", "expm1", "sqrt", "abs", "tanh", "sigmoid", "relu", "sin", "cos",
                           "erf", "conj", "angle"))


def real(x: Tensor) -> Tensor:
    """Re x (torch.real): complex [...] -> real [...]."""
    return x.real


def imag(x: Tensor) -> Tensor:
    """Im x (torch.imag): complex [...] -> real [...]."""
    return x.imag


def is_tensor(x) -> bool:
    return isinstance(x, Tensor)


__all__ = ["tensor", "zeros", "ones", "full", "empty", "randn", "rand", "zeros_like", "ones_like", "arange",
           "linspace", "eye", "cat", "concatenate", "stack", "where", "maximum", "minimum", "einsum", "cumsum",
           "gather", "topk", "pad", "complex", "exp", "log", "log1p", "expm1", "sqrt", "abs", "tanh", "sigmoid",
           "relu", "sin", "cos", "erf", "conj", "angle", "real", "imag", "is_tensor"]

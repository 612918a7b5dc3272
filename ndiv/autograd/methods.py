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
from ndiv import random as _random
from ndiv.random import get_rng

_Number = (int, float, bool, np.number)


def _const(x, like: Tensor) -> Tensor:
    """A non-Tensor operand (Python number, list, NumPy array) as a constant Tensor on like's
    device: constants follow the tensor they meet (arrays that are already on another device
    than like are an error, as with Tensors). Python numbers take like's dtype when like is
    floating (so `ndiv.where(m, x, 0)` stays float32); Python floats are float32 otherwise, as
    in `ndiv.tensor`. NumPy arrays keep their dtype."""
    data = x
    if not isinstance(x, np.ndarray) and not _device.is_cuda_array(x):
        data = np.asarray(x)
        kind, like_kind = data.dtype.kind, like.data.dtype.kind
        if like_kind == "f" and kind in "biuf":
            data = data.astype(like.data.dtype)          # numbers take like's float dtype
        elif like_kind == "c" and kind in "biuf":
            data = data.astype(like.data.real.dtype)     # real numbers at like's precision
        elif like_kind in "fc" and kind == "c":
            data = data.astype(np.result_type(like.data.dtype, np.complex64))
        elif kind == "f":
            data = data.astype(DEFAULT_DTYPE)
    if _device.is_cuda_array(like.data) and not _device.is_cuda_array(data):
        data = _device.to_device(data, "cuda")
    elif _device.is_cuda_array(data) and not _device.is_cuda_array(like.data):
        raise RuntimeError(f"expected all operands on the same device, got {like.device} and cuda")
    return _make(data, False, None, 0)


def _check_same_device(a: Tensor, b: Tensor):
    if type(a.data) is not type(b.data) and a.device != b.device:
        raise RuntimeError(f"expected all tensors on the same device, got {a.device} and {b.device}; move one with .to()")


# -- type promotion, as torch does it ----------------------------------------------------------
# A scalar operand (Python or NumPy number) never widens a tensor: float32 * np.float64(2) is
# float32. A float or complex scalar, or true division, turns an integer tensor into the default
# float32. Between two tensors, an integer one takes the floating one's dtype (int64 + float32 is
# float32), and a 0-d tensor does not widen an n-d one of its own kind (float32 [n] * float64 []
# is float32); otherwise NumPy's rules, which agree with torch's (float32 + float64 is float64).
_CATEGORY = {"b": 0, "u": 1, "i": 1, "f": 2, "c": 3}


def _scalar(x: Tensor, c, true_div: bool):
    """x and the scalar c for a scalar op: c as a Python number (NumPy scalars are as weak as
    Python ones under torch's rules), x as float32 where an integer tensor meets a float."""
    t = type(c)
    if t is not float and t is not int:
        if isinstance(c, np.generic):
            c = c.item()
        t = type(c)
    if (t is float or t is complex or true_div) and x.data.dtype.kind in "biu":
        x = x.to(dtype=DEFAULT_DTYPE)
    return x, c


def _promote_pair(da, db):
    """torch.promote_types for two dtypes: the higher category's dtype, NumPy's rule within one."""
    ca, cb = _CATEGORY[da.kind], _CATEGORY[db.kind]
    if ca == cb or {ca, cb} == {2, 3}:
        return np.result_type(da, db)  # float32 + complex64 -> complex64; float64 + complex64 -> complex128
    return da if ca > cb else db


def _result_dtype(a: Tensor, b: Tensor, true_div: bool):
    da, db = a.data.dtype, b.data.dtype
    if a.data.ndim == 0 and b.data.ndim != 0:
        (dim, zero) = (db, da)
    elif b.data.ndim == 0 and a.data.ndim != 0:
        (dim, zero) = (da, db)
    else:
        out = _promote_pair(da, db) if da != db else da
        return np.dtype(DEFAULT_DTYPE) if true_div and out.kind in "biu" else out
    # torch's combine_categories: the n-d tensor decides unless the 0-d one is of a higher category
    if dim.kind == "c":
        out = dim
    elif zero.kind == "c":
        out = np.result_type(dim, np.complex64) if dim.kind == "f" else zero
    elif dim.kind == "f":
        out = dim
    elif dim.kind == "b" or zero.kind == "f":
        out = _promote_pair(dim, zero)
    else:
        out = dim
    return np.dtype(DEFAULT_DTYPE) if true_div and out.kind in "biu" else out


def _promote(a: Tensor, b: Tensor, true_div: bool = False):
    """a and b cast (differentiably) to their common dtype under torch's rules."""
    out = _result_dtype(a, b, true_div)
    return (a if a.data.dtype == out else a.to(dtype=out)), (b if b.data.dtype == out else b.to(dtype=out))


def _binary(fn, scalar_fn=None, reverse_scalar_fn=None, true_div=False):
    def op(self, other):
        if isinstance(other, Tensor):
            _check_same_device(self, other)
        elif scalar_fn is not None and isinstance(other, _Number):
            self, other = _scalar(self, other, true_div)
            return scalar_fn(self, other)
        else:
            other = _const(other, self)
        # `is not` first: the common case (same dtype) costs one identity test
        if self.data.dtype is not other.data.dtype or (true_div and self.data.dtype.kind in "biu"):
            self, other = _promote(self, other, true_div)
        return fn.apply(self, other)

    def rop(self, other):
        if reverse_scalar_fn is not None and isinstance(other, _Number):
            self, other = _scalar(self, other, true_div)
            return reverse_scalar_fn(self, other)
        other = _const(other, self)
        if self.data.dtype is not other.data.dtype or (true_div and self.data.dtype.kind in "biu"):
            other, self = _promote(other, self, true_div)
        return fn.apply(other, self)

    return op, rop


def _div_scalar(x: Tensor, c):
    if c != 0:
        return E.MulScalar.apply(x, c=1.0 / c)
    return E.Div.apply(x, _const(c, x))  # x / 0: inf, -inf or nan, as IEEE says


Tensor.__add__, Tensor.__radd__ = _binary(E.Add, lambda x, c: E.AddScalar.apply(x, c=c), lambda x, c: E.AddScalar.apply(x, c=c))
Tensor.__sub__, Tensor.__rsub__ = _binary(E.Sub, lambda x, c: E.AddScalar.apply(x, c=-c), lambda x, c: E.RSubScalar.apply(x, c=c))
Tensor.__mul__, Tensor.__rmul__ = _binary(E.Mul, lambda x, c: E.MulScalar.apply(x, c=c), lambda x, c: E.MulScalar.apply(x, c=c))
Tensor.__truediv__, Tensor.__rtruediv__ = _binary(E.Div, _div_scalar, lambda x, c: E.RDivScalar.apply(x, c=c), true_div=True)
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
        raise RuntimeError("in-place assignment into a tensor that is part of a graph is not supported; build a new tensor with ndiv.index_put(x, indices, values) or ndiv.where")
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
    """Uniform [0, 1) samples from the global generator; see ndiv.random.rand (injectable).
    Complex dtypes draw the real and imaginary parts each in [0, 1), as torch.rand(..., dtype=torch.cfloat)."""
    return _random.rand(*shape, dtype=dtype, device=device, requires_grad=requires_grad)


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


# -- indexed writes, sorting, triangles and other torch ops (issue 12, part 6) ------------------
from collections import namedtuple as _namedtuple  # noqa: E402

from ndiv.autograd.ops import indexing as I  # noqa: E402

sort_result = _namedtuple("sort", ["values", "indices"])      # torch.return_types.sort
median_result = _namedtuple("median", ["values", "indices"])  # torch.return_types.median


def _dim(x: Tensor, dim, name: str) -> int:
    """dim (negative allowed) as a non-negative axis of x; a 0-d tensor has the one axis 0."""
    n = max(x.ndim, 1)
    if isinstance(dim, bool) or not isinstance(dim, (int, np.integer)) or not -n <= dim < n:
        raise ValueError(f"{name}: dim={dim!r} is out of range for a tensor of shape {tuple(x.shape)}; "
                         f"expected an integer in [{-n}, {n - 1}]")
    return int(dim) % n


def _int_array(index, like: Tensor, name: str):
    """An index (Tensor, array, list) as a CPU integer or bool array (checked on the CPU)."""
    a = index.numpy() if isinstance(index, Tensor) else _device.to_device(index, "cpu") if _device.is_cuda_array(index) else np.asarray(index)
    if a.dtype.kind not in "iub":
        raise TypeError(f"{name}: indices must be integer (or bool) tensors, got dtype {a.dtype}")
    return a


def _on_device_of(a, like: Tensor):
    return _device.to_device(a, "cuda") if _device.is_cuda_array(like.data) else a


def _check_bounds(a, size: int, axis: int, name: str, negative: bool = True):
    if a.size and (a.max() >= size or a.min() < (-size if negative else 0)):
        bad = a.max() if a.max() >= size else a.min()
        raise IndexError(f"{name}: index {bad} is out of bounds for dimension {axis} with size {size}")


def _values(values, x: Tensor, name: str) -> Tensor:
    if isinstance(values, Tensor):
        _check_same_device(x, values)
        if values.dtype != x.dtype:
            raise TypeError(f"{name}: values have dtype {values.dtype}, the tensor has {x.dtype}; convert "
                            f"one (e.g. values.to(dtype=x.dtype)), as torch requires equal dtypes")
        return values
    return _const(np.asarray(values, dtype=x.dtype), x)


def _check_broadcasts_to(shape, target, name: str):
    try:
        ok = np.broadcast_shapes(tuple(shape), target) == target
    except ValueError:
        ok = False
    if not ok:
        raise ValueError(f"{name}: values of shape {tuple(shape)} do not broadcast to the indexed shape {target}")


def index_put(x: Tensor, indices, values, accumulate: bool = False) -> Tensor:
    """A new tensor equal to x with x[indices] = values (accumulate=False) or x[indices] += values.

    indices: a tuple (or list) of integer or bool index tensors, one per leading axis of x, as
    torch.index_put (None stands for a whole axis); they broadcast against each other, and
    values ([...] broadcastable to x[indices].shape) against the result. Gradient: x gets the
    output's gradient except at overwritten positions (accumulate=False); values get it gathered.
    With repeated indices and accumulate=False torch leaves the result undefined; here one of
    the candidates wins (do not rely on which); accumulate=True sums them.

        >>> x = ndiv.zeros(3, 2)
        >>> ndiv.index_put(x, (ndiv.tensor([0, 2]),), ndiv.ones(2)).numpy().tolist()
        [[1.0, 1.0], [0.0, 0.0], [1.0, 1.0]]
    """
    if not isinstance(indices, (tuple, list)):
        raise TypeError(f"index_put: indices must be a tuple of index tensors (one per axis), got {type(indices).__name__}")
    items, axis = [], 0
    for it in indices:
        if it is None:
            items.append(slice(None))
            axis += 1
            continue
        a = _int_array(it, x, "index_put")
        if a.dtype.kind == "b":
            if a.shape != tuple(x.shape[axis:axis + a.ndim]):
                raise ValueError(f"index_put: a bool mask of shape {a.shape} must match the tensor's shape "
                                 f"{tuple(x.shape)} at axes {axis}..{axis + a.ndim - 1}")
            items.extend(a.nonzero())
            axis += a.ndim
            continue
        if axis >= x.ndim:
            raise ValueError(f"index_put: {len(indices)} indices for a tensor of shape {tuple(x.shape)} with {x.ndim} dimensions")
        _check_bounds(a, x.shape[axis], axis, "index_put")
        items.append(a)
        axis += 1
    arrays = [a for a in items if not isinstance(a, slice)]
    try:
        np.broadcast_shapes(*[a.shape for a in arrays])
    except ValueError:
        raise ValueError(f"index_put: index tensors of shapes {[a.shape for a in arrays]} do not broadcast together") from None
    target = np.broadcast_to(np.empty((), np.int8), x.shape)[tuple(items)].shape
    v = _values(values, x, "index_put")
    _check_broadcasts_to(v.shape, target, "index_put")
    idx = tuple(it if isinstance(it, slice) else _on_device_of(it, x) for it in items)
    return I.IndexPut.apply(x, v, indices=idx, accumulate=bool(accumulate))


def _scatter(x: Tensor, dim: int, index, src, accumulate: bool, name: str) -> Tensor:
    d = _dim(x, dim, name)
    if x.ndim == 0:
        raise ValueError(f"{name}: needs a tensor with at least one dimension, got a 0-d tensor")
    idx = _int_array(index, x, name)
    if idx.dtype.kind == "b" or idx.ndim != x.ndim:
        raise ValueError(f"{name}: index must be an integer tensor with as many dimensions as the input ({x.ndim}), "
                         f"got shape {idx.shape} and dtype {idx.dtype}")
    src_shape = tuple(src.shape) if isinstance(src, Tensor) else idx.shape
    if isinstance(src, Tensor) and src.ndim != x.ndim:
        raise ValueError(f"{name}: src has {src.ndim} dimensions, the input {x.ndim}; they must match")
    for k, n in enumerate(idx.shape):
        if n > src_shape[k] or (k != d and n > x.shape[k]):
            raise ValueError(f"{name}: index shape {idx.shape} must not exceed src's {src_shape} in any dimension, "
                             f"nor the input's {tuple(x.shape)} outside dim {d}")
    _check_bounds(idx, x.shape[d], d, name, negative=False)
    if isinstance(src, Tensor) and tuple(src.shape) != idx.shape:
        src = src[tuple(slice(0, n) for n in idx.shape)]   # torch reads only src[:index.shape]
    full = list(np.indices(idx.shape, sparse=True))
    full[d] = idx
    v = _values(src, x, name)
    return I.IndexPut.apply(x, v, indices=tuple(_on_device_of(a, x) for a in full), accumulate=accumulate)


def scatter(x: Tensor, dim: int, index, src=None, *, value=None) -> Tensor:
    """torch.scatter: out = x with out[..., index[i, j, ...], ...] = src[i, j, ...] along dim
    (src: a Tensor; or value: a number written at every indexed position). Repeated targets:
    undefined which write wins (as torch); use scatter_add to sum them."""
    if (src is None) == (value is None):
        raise TypeError("scatter: give exactly one of src (a tensor) and value (a number)")
    return _scatter(x, dim, index, value if src is None else src, False, "scatter")


def scatter_add(x: Tensor, dim: int, index, src) -> Tensor:
    """torch.scatter_add: out = x with src added at index along dim; repeated targets sum."""
    return _scatter(x, dim, index, src, True, "scatter_add")


def _tri(upper: bool):
    name = "triu" if upper else "tril"

    def fn(x: Tensor, diagonal: int = 0) -> Tensor:
        if x.ndim < 2:
            raise ValueError(f"{name}: input must have at least 2 dimensions [..., M, N], got shape {tuple(x.shape)}")
        return S.Tri.apply(x, k=int(diagonal), upper=upper)
    fn.__name__ = name
    fn.__doc__ = (f"torch.{name}: keep the elements {'on and above' if upper else 'on and below'} diagonal "
                  f"`diagonal` of the last two axes [..., M, N], zero the rest (and their gradient).")
    return fn


tril, triu = _tri(False), _tri(True)


def diag(x: Tensor, diagonal: int = 0) -> Tensor:
    """torch.diag: [N] -> [N + |k|, N + |k|] with x on diagonal k; [M, N] -> the 1-D diagonal k."""
    if x.ndim not in (1, 2):
        raise ValueError(f"diag: input must be 1-D or 2-D, got shape {tuple(x.shape)}")
    return S.Diag.apply(x, k=int(diagonal))


def diff(x: Tensor, n: int = 1, dim: int = -1, prepend=None, append=None) -> Tensor:
    """torch.diff: the n-th forward difference out[i] = x[i + 1] - x[i] along dim, after
    concatenating prepend and append (same dimensions as x, same shape outside dim)."""
    if x.ndim == 0:
        raise ValueError("diff: expects a tensor with at least one dimension, got a 0-d tensor")
    d = _dim(x, dim, "diff")
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"diff: n (the order) must be a non-negative integer, got {n!r}")
    parts = []
    for label, t in (("prepend", prepend), (None, x), ("append", append)):
        if t is None:
            continue
        t = t if isinstance(t, Tensor) else _const(t, x)
        if label and (t.ndim != x.ndim or any(a != b for k, (a, b) in enumerate(zip(t.shape, x.shape)) if k != d)):
            raise ValueError(f"diff: {label} has shape {tuple(t.shape)}; it must have the input's dimensions and "
                             f"shape {tuple(x.shape)} except along dim {d}")
        parts.append(t)
    y = cat(parts, axis=d) if len(parts) > 1 else x
    lo, hi = [slice(None)] * x.ndim, [slice(None)] * x.ndim
    lo[d], hi[d] = slice(None, -1), slice(1, None)
    for _ in range(n):
        if y.dtype == np.bool_:
            y = _make(y.data[tuple(hi)] != y.data[tuple(lo)], False, None, 0)  # torch: logical xor
        else:
            y = y[tuple(hi)] - y[tuple(lo)]
    return y


def sort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False):
    """(values, indices) of x sorted along dim, as torch.sort. Always stable (ties keep their
    order; torch's stable=False order is unspecified); NaN sorts last (first when descending).
    values carry the gradient back to the positions they came from."""
    d = _dim(x, dim, "sort")
    if x.dtype.kind == "c":
        raise TypeError(f"sort: complex tensors have no order, got dtype {x.dtype}")
    if x.ndim == 0:
        v, i = sort(x.reshape(1))
        return sort_result(v.reshape(()), i.reshape(()))
    idx = I.sort_indices(x.data, d, bool(descending))
    return sort_result(S.Gather.apply(x, index=idx, axis=d), _make(idx.astype(np.int64, copy=False), False, None, 0))


def argsort(x: Tensor, dim: int = -1, descending: bool = False, stable: bool = False) -> Tensor:
    """int64 indices that sort x along dim (stable; NaN last, first when descending); see sort."""
    return sort(x, dim, descending, stable).indices


def median(x: Tensor, dim=None, keepdim: bool = False):
    """torch.median. dim=None: the lower median of all elements (a 0-d tensor; NaN if any NaN;
    tied elements share the gradient). With dim: (values, indices) of the lower median along dim
    (a row with NaN gives NaN and the first NaN's index); the selected element gets the gradient.
    Which of several equal elements is selected along dim is unspecified, as in torch."""
    if dim is None:
        if x.size == 0 and x.dtype.kind not in "fc":
            raise ValueError(f"median: an empty {x.dtype} tensor has no median")
        return I.MedianAll.apply(x)
    d = _dim(x, dim, "median")
    if x.ndim == 0:
        r = median(x.reshape(1), 0)
        return median_result(r.values.reshape(()), r.indices.reshape(()))
    if x.shape[d] == 0:
        raise ValueError(f"median: dim {d} of the input of shape {tuple(x.shape)} is empty; a median needs one element")
    k = I.median_indices(x.data, d)
    values, indices = S.Gather.apply(x, index=k, axis=d), _make(k, False, None, 0)
    if not keepdim:
        values, indices = values.squeeze(d), indices.squeeze(d)
    return median_result(values, indices)


def nan_to_num(x: Tensor, nan: float = 0.0, posinf: float | None = None, neginf: float | None = None) -> Tensor:
    """Replace NaN by nan, +inf by posinf, -inf by neginf (None: the dtype's largest / lowest
    finite value). The gradient passes where x was finite and is zero where a value was replaced."""
    if x.dtype.kind not in "fc":
        return x
    return E.NanToNum.apply(x, nan=nan, posinf=posinf, neginf=neginf)


Tensor.index_put = lambda self, indices, values, accumulate=False: index_put(self, indices, values, accumulate)
Tensor.scatter = lambda self, dim, index, src=None, *, value=None: scatter(self, dim, index, src, value=value)
Tensor.scatter_add = lambda self, dim, index, src: scatter_add(self, dim, index, src)
Tensor.tril = lambda self, diagonal=0: tril(self, diagonal)
Tensor.triu = lambda self, diagonal=0: triu(self, diagonal)
Tensor.diag = lambda self, diagonal=0: diag(self, diagonal)
Tensor.diff = lambda self, n=1, dim=-1, prepend=None, append=None: diff(self, n, dim, prepend, append)
Tensor.sort = lambda self, dim=-1, descending=False, stable=False: sort(self, dim, descending, stable)
Tensor.argsort = lambda self, dim=-1, descending=False, stable=False: argsort(self, dim, descending, stable)
Tensor.median = lambda self, dim=None, keepdim=False: median(self, dim, keepdim)
Tensor.nan_to_num = lambda self, nan=0.0, posinf=None, neginf=None: nan_to_num(self, nan, posinf, neginf)
Tensor.multinomial = lambda self, num_samples, replacement=False: _random.multinomial(self, num_samples, replacement)

__all__ += ["index_put", "scatter", "scatter_add", "tril", "triu", "diag", "diff", "sort", "argsort", "median",
            "nan_to_num"]

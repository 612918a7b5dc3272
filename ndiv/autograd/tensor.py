"""Tensor: an array with a gradient, and the tape that computes gradients.

A Tensor made by an op holds the Function that made it (`_ctx`) and its output index. The graph
is the Functions linked through their `parents`. `backward()` walks it once, in topological order,
without recursion, summing each gradient back to its input's shape in one place
(`_sum_to_shape`), and frees the graph unless `retain_graph=True`. A backward (or hook) that
returns None for an input sends it nothing, yet still releases it, so gradients from its other
paths go on; a leaf's hooks run once per backward, on the sum of its contributions.
"""
from __future__ import annotations

import numpy as np

from ndiv import device as _device
from ndiv.autograd import function as _function
from ndiv.autograd.grad_mode import _GradState
from ndiv.memory import out_buffer
from ndiv.memory import pool as _pool

float16, float32, float64 = np.float16, np.float32, np.float64
int32, int64, bool_ = np.int32, np.int64, np.bool_
complex64, complex128 = np.complex64, np.complex128
DEFAULT_DTYPE = np.float32


def _is_float(dtype) -> bool:
    return dtype.kind in "fc"


class Tensor:
    """An n-d array (numpy, or cupy on 'cuda') that can record the ops applied to it.

    >>> x = ndiv.tensor([1.0, 2.0], requires_grad=True)
    >>> (x * x).sum().backward(); x.grad
    array([2., 4.], dtype=float32)
    """

    __slots__ = ("data", "grad", "requires_grad", "_ctx", "_idx", "_hooks", "__weakref__", "__dict__")
    __array_priority__ = 1000  # numpy scalars/arrays on the left defer to Tensor's reflected ops

    def __init__(self, data, requires_grad: bool = False, dtype=None, device: str = "cpu"):
        if isinstance(data, Tensor):
            data = data.data
        from_python = not (isinstance(data, np.ndarray) or _device.is_cuda_array(data))
        if _device.check_device(device) == "cuda" or _device.is_cuda_array(data):
            data = _device.get_cupy().asarray(data, dtype=dtype)
        else:
            data = np.asarray(data, dtype=dtype)
        if dtype is None and from_python and data.dtype == np.float64:
            data = data.astype(DEFAULT_DTYPE)  # like torch: Python floats become float32
        elif dtype is None and from_python and data.dtype == np.complex128:
            data = data.astype(np.complex64)   # and Python complex numbers complex64
        self.data = data
        self.grad = None
        self._ctx = None
        self._idx = 0
        self._hooks = None
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # -- basic properties -------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def size(self) -> int:
        return self.data.size

    def numel(self) -> int:
        return self.data.size

    def dim(self) -> int:
        return self.data.ndim

    @property
    def device(self) -> str:
        return _device.device_of(self.data)

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def grad_fn(self):
        return self._ctx

    @property
    def T(self) -> "Tensor":
        return self.transpose()

    def __len__(self) -> int:
        if self.data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.data.shape[0]

    def __repr__(self) -> str:
        extra = ", requires_grad=True" if self.requires_grad else ""
        dev = ", device='cuda'" if self.device == "cuda" else ""
        body = repr(self.numpy())  # "array([1., 2.], dtype=float32)": keep what is inside array(...)
        body = body[len("array("):-1] if body.startswith("array(") else body
        return f"tensor({body}{dev}{extra})"

    def __bool__(self) -> bool:
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.data)

    def __int__(self) -> int:
        return int(self.data)

    def __array__(self, dtype=None, copy=None):
        a = self.numpy()
        return a if dtype is None else a.astype(dtype)

    def requires_grad_(self, requires_grad: bool = True) -> "Tensor":
        if requires_grad and not _is_float(self.data.dtype):
            raise TypeError(
                f"only floating-point tensors can require gradients, got dtype {self.data.dtype}; "
                "convert first, e.g. x.float()"
            )
        if not requires_grad and self._ctx is not None:
            raise RuntimeError("requires_grad can only be turned off on a leaf tensor; use .detach()")
        self.requires_grad = bool(requires_grad)
        return self

    # -- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a numpy array (copied from the GPU when on 'cuda')."""
        return _device.to_device(self.data, "cpu")

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(-1)[0].item()

    def tolist(self):
        return self.numpy().tolist()

    def detach(self) -> "Tensor":
        """The same data, cut from the graph (shares memory, like torch)."""
        return _make(self.data, False, None, 0)

    def clone(self) -> "Tensor":
        return Clone.apply(self)

    def to(self, device=None, dtype=None) -> "Tensor":
        """A copy on another device and/or dtype (self when nothing changes); differentiable."""
        if isinstance(device, (type, np.dtype)) and dtype is None:
            device, dtype = None, device
        out = self
        if dtype is not None and np.dtype(dtype) != self.data.dtype:
            out = Cast.apply(out, dtype=np.dtype(dtype))
        if device is not None and _device.check_device(device) != self.device:
            out = ToDevice.apply(out, device=_device.check_device(device))
        return out

    def cpu(self) -> "Tensor":
        return self.to("cpu")

    def cuda(self) -> "Tensor":
        return self.to("cuda")

    def float(self) -> "Tensor":
        return self.to(dtype=np.float32)

    def double(self) -> "Tensor":
        return self.to(dtype=np.float64)

    def half(self) -> "Tensor":
        return self.to(dtype=np.float16)

    def long(self) -> "Tensor":
        return self.to(dtype=np.int64)

    def int(self) -> "Tensor":
        return self.to(dtype=np.int32)

    def bool(self) -> "Tensor":
        return self.to(dtype=np.bool_)

    def type(self, dtype) -> "Tensor":
        return self.to(dtype=dtype)

    def astype(self, dtype) -> "Tensor":
        return self.to(dtype=dtype)

    # -- gradient hooks ----------------------------------------------------------------------
    def register_hook(self, hook):
        """Call hook(grad) when this tensor's gradient is computed; a returned array replaces it.

        Returns a handle with .remove().
        """
        if not self.requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that does not require grad")
        if self._ctx is None:
            if self._hooks is None:
                self._hooks = []
            hooks = self._hooks
        else:
            ctx = self._ctx
            if ctx.hooks is None:
                ctx.hooks = {}
            hooks = ctx.hooks.setdefault(self._idx, [])
        hooks.append(hook)
        return _HookHandle(hooks, hook)

    def retain_grad(self) -> None:
        """Keep .grad on this non-leaf tensor after backward (leaves always keep it)."""
        if self._ctx is None:
            return
        if self._ctx.retained is None:
            self._ctx.retained = {}
        self._ctx.retained[self._idx] = self

    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) * grad into every leaf's .grad.

        grad: array or Tensor of self's shape; may be omitted for a one-element tensor.
        """
        backward(self, grad, retain_graph)

    def zero_(self) -> "Tensor":
        self.data[...] = 0
        return self

    # Methods for the ops (add, sum, reshape, ...) are attached in ndiv/autograd/methods.py.


class _HookHandle:
    def __init__(self, hooks, hook):
        self._hooks, self._hook = hooks, hook

    def remove(self) -> None:
        if self._hook in self._hooks:
            self._hooks.remove(self._hook)


def _make(data, requires_grad, ctx, idx) -> Tensor:
    """A Tensor around an op's output (0-d numpy results come back as scalars: wrap them)."""
    if type(data) is not np.ndarray and not _device.is_cuda_array(data):
        data = np.asarray(data)
    t = Tensor.__new__(Tensor)
    t.data = data
    t.grad = None
    t.requires_grad = requires_grad
    t._ctx = ctx
    t._idx = idx
    t._hooks = None
    return t


_function._make = _make


def _sum_to_shape(g, shape):
    """Sum a broadcast gradient g back to an input's shape (the one place that does it)."""
    if g.shape == shape:
        return g
    xp = _device.array_module(g)
    lead = g.ndim - len(shape)
    if lead < 0:
        raise RuntimeError(f"gradient of shape {g.shape} cannot be reduced to input shape {shape}")
    axes = tuple(range(lead)) + tuple(i + lead for i, n in enumerate(shape) if n == 1 and g.shape[i + lead] != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    if lead:
        g = g.reshape(shape)
    if g.shape != shape:
        g = xp.broadcast_to(g, shape)
    return g


def _apply_hooks(hooks, g):
    for hook in list(hooks):
        r = hook(g)
        if r is not None:
            g = r.data if isinstance(r, Tensor) else r
    return g


_FREED = "Trying to backward through the graph a second time (or directly access saved tensors after they have already been freed); call .backward(retain_graph=True) the first time if you need to go through it again"


def backward(root: Tensor, grad=None, retain_graph: bool = False) -> None:
    """Reverse-mode sweep from root over the graph, iterative (no recursion limit)."""
    if not root.requires_grad:
        raise RuntimeError(
            "backward() on a tensor that does not require grad: no input of the computation has "
            "requires_grad=True (or it ran under ndiv.no_grad())"
        )
    if grad is None:
        if root.data.size != 1:
            raise RuntimeError(
                f"backward() without a gradient needs a one-element tensor, got shape {root.shape}; "
                "pass grad= of that shape, or reduce first (e.g. loss.sum())"
            )
        grad = _device.array_module(root.data).ones_like(root.data)
    else:
        grad = grad.data if isinstance(grad, Tensor) else grad
        xp = _device.array_module(root.data)
        grad = xp.asarray(grad, dtype=root.data.dtype)
        if grad.shape != root.shape:
            raise ValueError(f"backward(): grad has shape {grad.shape}, expected the tensor's shape {root.shape}")

    root_ctx = root._ctx
    if root_ctx is None:
        _accumulate_leaf(root, grad.copy())
        return

    # Count, for every Function, how many gradient contributions it waits for.
    deps = {root_ctx: 0}
    stack = [root_ctx]
    while stack:
        f = stack.pop()
        parents = f.parents
        if parents is None:
            raise RuntimeError(_FREED)
        for p in parents:
            c = p._ctx
            if c is not None and p.requires_grad:
                if c in deps:
                    deps[c] += 1
                else:
                    deps[c] = 1
                    stack.append(c)

    pending = {root_ctx: [None] * root_ctx.n_out}
    pending[root_ctx][root._idx] = grad
    ready = [root_ctx]
    given = set()
    # ids of the sums this sweep allocated and that only a pending slot holds: later
    # contributions are added into them in place (no new array per extra consumer)
    owned = set()
    hooked = None  # id(leaf) -> [leaf, summed gradient] for leaves with hooks: they fire once, at the end
    while ready:
        f = ready.pop()
        gys = pending.pop(f, None)
        if owned and gys is not None:
            for g in gys:
                owned.discard(id(g))            # it leaves the slot: an id may be reused later
        parents = f.parents
        if gys is None:
            # Every contribution to f's outputs was None (a backward or hook returned None):
            # nothing flows through f, as with torch's undefined gradients, but f's inputs
            # still count it as done, so gradients from other paths reach them.
            gxs = (None,) * len(parents)
        else:
            if f.hooks or f.retained:
                gys = _output_hooks(f, gys)
            if f.n_out == 1:
                gxs = f.backward(gys[0])
            else:
                xp = _device.array_module(next(g for g in gys if g is not None))
                gxs = f.backward(*[xp.zeros(s, d) if g is None else g for g, (s, d) in zip(gys, f.out_meta)])
            if type(gxs) is not tuple:
                gxs = tuple(gxs) if type(gxs) is list else (gxs,)
            if len(gxs) != len(parents):
                _check_n_grads(f, gxs, len(parents))
        if not retain_graph:
            f.parents = None
            f.saved = None
        for p, g in zip(parents, gxs):
            if not p.requires_grad:
                continue
            c = p._ctx
            if g is not None:
                if g.shape != p.data.shape:
                    g = _sum_to_shape(g, p.data.shape)
                if g.dtype != p.data.dtype:
                    if g.dtype.kind == "c" and p.data.dtype.kind != "c":
                        g = g.real  # a real input of a complex op: dL/dx is the real part (torch)
                    g = g.astype(p.data.dtype)
                if c is None:
                    if p._hooks:
                        if hooked is None:
                            hooked = {}
                        entry = hooked.get(id(p))
                        if entry is None:
                            hooked[id(p)] = [p, g]
                        else:
                            entry[1] = _add(entry[1], g)
                        continue
                    if id(g) in given or g.base is not None:
                        g = g.copy()  # a leaf's .grad must not alias another's: optimizers write in place
                    given.add(id(g))
                    _accumulate_leaf(p, g)
                    continue
                slot = pending.get(c)
                if slot is None:
                    slot = pending[c] = [None] * c.n_out
                prev = slot[p._idx]
                if prev is None:
                    slot[p._idx] = g
                elif id(prev) in owned and type(prev) is type(g):
                    prev += g                   # an array (ndim > 0): the same object, added into
                else:
                    prev = slot[p._idx] = _add(prev, g)
                    if prev.ndim:               # a 0-d sum comes back as a scalar: not in place
                        owned.add(id(prev))
            elif c is None:
                continue
            deps[c] -= 1
            if deps[c] == 0:
                ready.append(c)
    if hooked is not None:
        # torch runs a leaf's hooks once per backward, on the sum of its contributions
        for p, g in hooked.values():
            if id(g) in given or g.base is not None:
                g = g.copy()
            given.add(id(g))
            _accumulate_leaf(p, g)


def _check_n_grads(f, gxs, n_inputs) -> None:
    """A backward must return one gradient per Tensor input; extra trailing Nones are allowed."""
    if len(gxs) < n_inputs or any(g is not None for g in gxs[n_inputs:]):
        raise RuntimeError(
            f"function {type(f).__name__}.backward returned an incorrect number of gradients "
            f"(expected {n_inputs}, one per Tensor input, got {len(gxs)}); return None for an "
            "input that needs no gradient"
        )


def _output_hooks(f, gys):
    gys = list(gys)
    for idx in range(len(gys)):
        if gys[idx] is None:
            continue
        if f.hooks and idx in f.hooks:
            gys[idx] = _apply_hooks(f.hooks[idx], gys[idx])
        if f.retained and idx in f.retained:
            t = f.retained[idx]
            t.grad = gys[idx] if t.grad is None else t.grad + gys[idx]
    return gys


def _accumulate_leaf(p: Tensor, g) -> None:
    """Add this backward's whole gradient g for leaf p into p.grad, after p's hooks (once)."""
    if p._hooks:
        g = _apply_hooks(p._hooks, g)
    # out of place: g may be the very array another input received (e.g. both sides of x + x)
    p.grad = g if p.grad is None else _add(p.grad, g)


def _add(a, b):
    if _pool.enabled and a.shape == b.shape and a.dtype == b.dtype and type(a) is np.ndarray:
        out = out_buffer(np, a.shape, a.dtype, a.nbytes)
        if out is not None:
            return np.add(a, b, out=out)
    return a + b


from ndiv.autograd.ops.basic import Cast, Clone, ToDevice  # noqa: E402  (ops need Tensor first)

"""Module: the base of every layer and model, with torch.nn.Module's names and behaviour.

Parameters, buffers and submodules live twice: in the ordered registries `_parameters`,
`_buffers`, `_modules` (which decide names and order, as in torch) and in the instance
`__dict__`, so `self.weight` is a plain attribute read (torch goes through a slow __getattr__).
`__setattr__` keeps the two in step.

`__call__` runs `forward` directly unless a hook is registered on this module (one flag test),
because small forecasting models are made of many small calls.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import Any, Callable, Iterator

import numpy as np

from ndiv import device as _device
from ndiv.autograd.function import Function
from ndiv.autograd.tensor import Tensor
from ndiv.nn.parameter import Buffer, Parameter

_handle_ids = itertools.count()


class RemovableHandle:
    """Returned by register_*_hook; `.remove()` unregisters the hook."""

    def __init__(self, module: "Module", hooks: dict, key: int):
        self._module, self._hooks, self.id = module, hooks, key

    def remove(self) -> None:
        self._hooks.pop(self.id, None)
        self._module._update_has_hooks()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.remove()


class _IncompatibleKeys(tuple):
    """(missing_keys, unexpected_keys), like torch's NamedTuple of the same name."""

    def __new__(cls, missing_keys, unexpected_keys):
        return super().__new__(cls, (missing_keys, unexpected_keys))

    missing_keys = property(lambda self: self[0])
    unexpected_keys = property(lambda self: self[1])

    def __repr__(self):
        if not self[0] and not self[1]:
            return "<All keys matched successfully>"
        return f"_IncompatibleKeys(missing_keys={self[0]}, unexpected_keys={self[1]})"


class Module:
    """Base class of layers and models. Subclasses set attributes in __init__ and define forward.

    >>> class Net(Module):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.fc = Linear(3, 2)
    ...     def forward(self, x):          # x [B, 3] -> [B, 2]
    ...         return self.fc(x).relu()
    >>> [n for n, _ in Net().named_parameters()]
    ['fc.weight', 'fc.bias']
    """

    training: bool

    def __init__(self, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"Module.__init__() takes no arguments, got {args} {kwargs}")
        d = self.__dict__
        d["training"] = True
        d["_parameters"] = OrderedDict()
        d["_buffers"] = OrderedDict()
        d["_non_persistent_buffers"] = set()
        d["_modules"] = OrderedDict()
        d["_forward_pre_hooks"] = OrderedDict()
        d["_forward_hooks"] = OrderedDict()
        d["_forward_hooks_with_kwargs"] = set()
        d["_backward_hooks"] = OrderedDict()
        d["_has_hooks"] = False

    # -- calling -----------------------------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'Module [{type(self).__name__}] is missing the required "forward" function')

    def __call__(self, *args, **kwargs):
        if not self._has_hooks:
            return self.forward(*args, **kwargs)
        return self._call_with_hooks(args, kwargs)

    def _call_with_hooks(self, args, kwargs):
        for hook in list(self._forward_pre_hooks.values()):
            r = hook(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        state = None
        if self._backward_hooks and _grad_enabled():
            state = _BackwardHookState(self)
            args = state.wrap_inputs(args)
        out = self.forward(*args, **kwargs)
        for key, hook in list(self._forward_hooks.items()):
            r = hook(self, args, kwargs, out) if key in self._forward_hooks_with_kwargs else hook(self, args, out)
            if r is not None:
                out = r
        if state is not None:
            out = state.wrap_outputs(out)
        return out

    # -- hooks -------------------------------------------------------------------------------
    def _update_has_hooks(self) -> None:
        self.__dict__["_has_hooks"] = bool(self._forward_pre_hooks or self._forward_hooks or self._backward_hooks)

    def _add_hook(self, hooks: dict, hook: Callable) -> RemovableHandle:
        if not callable(hook):
            raise TypeError(f"hook must be callable, got {type(hook).__name__}")
        key = next(_handle_ids)
        hooks[key] = hook
        self._update_has_hooks()
        return RemovableHandle(self, hooks, key)

    def register_forward_pre_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, args) -> None or new args; runs before forward."""
        return self._add_hook(self._forward_pre_hooks, hook)

    def register_forward_hook(self, hook: Callable, *, with_kwargs: bool = False) -> RemovableHandle:
        """hook(module, args, output) -> None or a new output (with_kwargs: hook(module, args, kwargs, output))."""
        handle = self._add_hook(self._forward_hooks, hook)
        if with_kwargs:
            self._forward_hooks_with_kwargs.add(handle.id)
        return handle

    def register_full_backward_hook(self, hook: Callable) -> RemovableHandle:
        """hook(module, grad_input, grad_output) -> None or a new grad_input tuple.

        grad_input holds one array (or None) per positional Tensor argument of forward,
        grad_output one per Tensor output; as in torch, the hook runs once the gradients with
        respect to all the module's inputs are computed.
        """
        return self._add_hook(self._backward_hooks, hook)

    # -- registration ------------------------------------------------------------------------
    def __setattr__(self, name: str, value: Any) -> None:
        d = self.__dict__
        if "_parameters" not in d:
            raise AttributeError(f"cannot assign {name!r} before Module.__init__() call")
        params, modules, buffers = d["_parameters"], d["_modules"], d["_buffers"]
        if isinstance(value, Parameter):
            modules.pop(name, None)
            buffers.pop(name, None)
            params[name] = value
        elif isinstance(value, Module):
            params.pop(name, None)
            buffers.pop(name, None)
            modules[name] = value
        elif isinstance(value, Buffer):
            params.pop(name, None)
            modules.pop(name, None)
            self.register_buffer(name, value, persistent=value.persistent)
            return
        elif name in params:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as parameter {name!r} (ndiv.nn.Parameter or None expected)")
            params[name] = None
        elif name in modules:
            if value is not None:
                raise TypeError(f"cannot assign {type(value).__name__} as child module {name!r} (ndiv.nn.Module or None expected)")
            modules[name] = None
        elif name in buffers:
            if value is not None and not isinstance(value, Tensor):
                raise TypeError(f"cannot assign {type(value).__name__} as buffer {name!r} (Tensor or None expected)")
            buffers[name] = value
        d[name] = value

    def __delattr__(self, name: str) -> None:
        for reg in ("_parameters", "_buffers", "_modules"):
            self.__dict__[reg].pop(name, None)
        self._non_persistent_buffers.discard(name)
        object.__delattr__(self, name)

    def register_buffer(self, name: str, tensor, persistent: bool = True) -> None:
        """Register a non-learnable Tensor (e.g. BatchNorm's running_mean) saved in state_dict."""
        if not isinstance(name, str) or not name or "." in name:
            raise KeyError(f"buffer name must be a non-empty string without '.', got {name!r}")
        if tensor is not None and not isinstance(tensor, Tensor):
            tensor = Tensor(tensor)
        if name in self._parameters or name in self._modules:
            raise KeyError(f"attribute {name!r} already exists as a parameter or module")
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)
        self.__dict__[name] = tensor

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise TypeError(f"cannot assign {type(param).__name__} as parameter {name!r} (ndiv.nn.Parameter or None expected)")
        self._parameters[name] = param
        self.__dict__[name] = param

    def add_module(self, name: str, module: "Module | None") -> None:
        if module is not None and not isinstance(module, Module):
            raise TypeError(f"{type(module).__name__} is not a Module subclass")
        self._modules[name] = module
        self.__dict__[name] = module

    register_module = add_module

    def get_submodule(self, target: str) -> "Module":
        mod = self
        for item in target.split(".") if target else []:
            if item not in mod._modules:
                raise AttributeError(f"{type(mod).__name__} has no submodule {item!r} (in {target!r})")
            mod = mod._modules[item]
        return mod

    def get_parameter(self, target: str) -> Parameter:
        mod_path, _, name = target.rpartition(".")
        mod = self.get_submodule(mod_path)
        if name not in mod._parameters:
            raise AttributeError(f"{type(mod).__name__} has no parameter {name!r}")
        return mod._parameters[name]

    # -- traversal ---------------------------------------------------------------------------
    def named_modules(self, memo=None, prefix: str = "", remove_duplicate: bool = True):
        if memo is None:
            memo = set()
        if remove_duplicate:
            if id(self) in memo:
                return
            memo.add(id(self))
        yield prefix, self
        for name, m in self._modules.items():
            if m is not None:
                yield from m.named_modules(memo, f"{prefix}.{name}" if prefix else name, remove_duplicate)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_children(self):
        seen = set()
        for name, m in self._modules.items():
            if m is not None and id(m) not in seen:
                seen.add(id(m))
                yield name, m

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def _named_members(self, attr: str, prefix: str, recurse: bool, remove_duplicate: bool = True):
        seen = set()
        mods = self.named_modules(prefix=prefix, remove_duplicate=remove_duplicate) if recurse else [(prefix, self)]
        for mod_prefix, mod in mods:
            for name, v in getattr(mod, attr).items():
                if v is None or (remove_duplicate and id(v) in seen):
                    continue
                seen.add(id(v))
                yield (f"{mod_prefix}.{name}" if mod_prefix else name), v

    def named_parameters(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        """(name, Parameter) pairs, torch's names and order; a shared parameter appears once."""
        return self._named_members("_parameters", prefix, recurse, remove_duplicate)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        for _, p in self.named_parameters(recurse=recurse):
            yield p

    def named_buffers(self, prefix: str = "", recurse: bool = True, remove_duplicate: bool = True):
        return self._named_members("_buffers", prefix, recurse, remove_duplicate)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        for _, b in self.named_buffers(recurse=recurse):
            yield b

    # -- state -------------------------------------------------------------------------------
    def state_dict(self, destination=None, prefix: str = "", keep_vars: bool = False) -> "OrderedDict[str, Any]":
        """name -> array (the live data, not a copy, like torch), parameters then buffers per module.

        keep_vars=True gives the Parameter/Tensor objects instead of their arrays.
        """
        if destination is None:
            destination = OrderedDict()
        for name, p in self._parameters.items():
            if p is not None:
                destination[prefix + name] = p if keep_vars else p.data
        for name, b in self._buffers.items():
            if b is not None and name not in self._non_persistent_buffers:
                destination[prefix + name] = b if keep_vars else b.data
        for name, m in self._modules.items():
            if m is not None:
                m.state_dict(destination, prefix + name + ".", keep_vars)
        return destination

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False) -> _IncompatibleKeys:
        """Copy arrays (numpy, cupy, Tensors, or CPU torch tensors) into the parameters and buffers.

        Values are copied in place, in each parameter's dtype and device, so optimizers that hold
        the parameters keep working. strict=True raises on missing or unexpected keys; a shape
        mismatch always raises. Returns (missing_keys, unexpected_keys).
        """
        if not hasattr(state_dict, "keys"):
            raise TypeError(f"load_state_dict expects a mapping of name -> array, got {type(state_dict).__name__}")
        own = self.state_dict(keep_vars=True)
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        errors = []
        if strict:
            if unexpected:
                errors.append("Unexpected key(s) in state_dict: " + ", ".join(f'"{k}"' for k in unexpected) + ".")
            if missing:
                errors.append("Missing key(s) in state_dict: " + ", ".join(f'"{k}"' for k in missing) + ".")
        values = {}
        for k, t in own.items():
            if k not in state_dict:
                continue
            v = _to_array(state_dict[k], k)
            if tuple(v.shape) != tuple(t.shape):
                errors.append(
                    f"size mismatch for {k}: copying a param with shape {tuple(v.shape)} from checkpoint, "
                    f"the shape in current model is {tuple(t.shape)}."
                )
                continue
            values[k] = v
        if errors:
            raise RuntimeError(f"Error(s) in loading state_dict for {type(self).__name__}:\n\t" + "\n\t".join(errors))
        for k, v in values.items():
            t = own[k]
            v = _device.to_device(v, t.device) if _device.device_of(v) != t.device else v
            if assign:
                t.data = v.astype(t.data.dtype, copy=True)
            elif t.data.ndim == 0:
                t.data = _device.array_module(t.data).asarray(v, dtype=t.data.dtype).copy()
            else:
                t.data[...] = v
        return _IncompatibleKeys(missing, unexpected)

    # -- modes, gradients, devices -----------------------------------------------------------
    def train(self, mode: bool = True) -> "Module":
        if not isinstance(mode, bool):
            raise ValueError(f"training mode is expected to be boolean, got {mode!r}")
        for m in self.modules():
            m.__dict__["training"] = mode
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's .grad (to None by default, like torch >= 2.0)."""
        for p in self.parameters():
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def apply(self, fn: Callable[["Module"], None]) -> "Module":
        """Call fn on every submodule (children first) and on self, e.g. a custom init."""
        for m in self.children():
            m.apply(fn)
        fn(self)
        return self

    def to(self, device=None, dtype=None) -> "Module":
        """Move parameters and buffers in place; dtype converts only floating-point tensors.

        Accepts to('cuda'), to(np.float64), to('float64'), to(device=..., dtype=...).
        A floating dtype leaves complex tensors as they are (torch's double()/float(); torch's
        to(float64) would drop their imaginary parts); a complex dtype converts the floating
        and the complex tensors, as torch's to(complex128).
        """
        if dtype is None and device is not None and not _is_device(device) and _is_dtype(device):
            device, dtype = None, device
        if device is not None:
            device = _device.check_device(device)
        if dtype is not None:
            dtype = np.dtype(dtype)
            if dtype.kind not in "fc":
                raise TypeError(f"Module.to only accepts floating point or complex dtypes, got {dtype}")
        kinds = "fc" if dtype is not None and dtype.kind == "c" else "f"

        def convert(data):
            if device is not None and _device.device_of(data) != device:
                data = _device.to_device(data, device)
            if dtype is not None and data.dtype.kind in kinds and data.dtype != dtype:
                data = data.astype(dtype)
            return data

        for m in self.modules():
            for t in itertools.chain(m._parameters.values(), m._buffers.values()):
                if t is None:
                    continue
                t.data = convert(t.data)
                if t.grad is not None:
                    t.grad = convert(t.grad)
        return self

    def double(self) -> "Module":
        return self.to(dtype=np.float64)

    def float(self) -> "Module":
        return self.to(dtype=np.float32)

    def half(self) -> "Module":
        return self.to(dtype=np.float16)

    def cpu(self) -> "Module":
        return self.to(device="cpu")

    def cuda(self) -> "Module":
        return self.to(device="cuda")

    # -- repr --------------------------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = []
        extra = self.extra_repr()
        if extra:
            lines = extra.split("\n")
        for name, m in self._modules.items():
            mod_str = repr(m).replace("\n", "\n  ")
            lines.append(f"({name}): {mod_str}")
        main = type(self).__name__ + "("
        if lines:
            if len(lines) == 1 and not self._modules:
                main += lines[0]
            else:
                main += "\n  " + "\n  ".join(lines) + "\n"
        return main + ")"

    def __getstate__(self):
        return self.__dict__.copy()

    def __setstate__(self, state):
        self.__dict__.update(state)


def _is_device(x) -> bool:
    return isinstance(x, str) and (x in ("cpu", "cuda") or x.startswith("cuda:"))


def _is_dtype(x) -> bool:
    try:
        np.dtype(x)
        return True
    except TypeError:
        return False


def _to_array(v, key: str):
    if isinstance(v, Tensor):
        return v.data
    if type(v) is np.ndarray or _device.is_cuda_array(v):
        return v
    if type(v).__module__.startswith("torch"):  # a torch tensor from torch's state_dict()
        return v.detach().cpu().numpy()
    try:
        return np.asarray(v)
    except Exception as e:
        raise TypeError(f"state_dict[{key!r}]: expected an array, got {type(v).__name__} ({e})") from None


def _grad_enabled() -> bool:
    from ndiv.autograd.grad_mode import _GradState
    return _GradState.enabled


# -- full backward hooks ---------------------------------------------------------------------
# As in torch: the module's Tensor inputs and outputs pass through identity Functions. The
# outputs' identity records grad_output; the inputs' identity receives every grad_input at once
# and calls the hooks, whose return value may replace grad_input.

class _BackwardHookState:
    __slots__ = ("module", "grad_output", "n_inputs", "input_mask")

    def __init__(self, module: Module):
        self.module = module
        self.grad_output = None
        self.n_inputs = 0
        self.input_mask = ()

    def wrap_inputs(self, args):
        self.input_mask = tuple(isinstance(a, Tensor) for a in args)
        tensors = [a for a in args if isinstance(a, Tensor)]
        if not any(t.requires_grad for t in tensors):
            return args
        self.n_inputs = len(tensors)
        wrapped = iter(_as_tuple(_InputHook.apply(*tensors, state=self)))
        return tuple(next(wrapped) if m else a for a, m in zip(args, self.input_mask))

    def wrap_outputs(self, out):
        single = isinstance(out, Tensor)
        outs = (out,) if single else out
        if not isinstance(outs, tuple):
            return out
        mask = [isinstance(o, Tensor) and o.requires_grad for o in outs]
        if not any(mask):
            return out
        wrapped = iter(_as_tuple(_OutputHook.apply(*[o for o, m in zip(outs, mask) if m], state=self)))
        new = tuple(next(wrapped) if m else o for o, m in zip(outs, mask))
        return new[0] if single else new

    def call_hooks(self, grad_input):
        for hook in list(self.module._backward_hooks.values()):
            r = hook(self.module, grad_input, self.grad_output)
            if r is not None:
                r = r if isinstance(r, tuple) else (r,)
                if len(r) != len(grad_input):
                    raise RuntimeError(
                        f"backward hook returned {len(r)} gradients, expected {len(grad_input)} (one per input)"
                    )
                grad_input = tuple(g.data if isinstance(g, Tensor) else g for g in r)
        return grad_input


def _as_tuple(x):
    return x if isinstance(x, tuple) else (x,)


class _OutputHook(Function):
    def forward(self, *xs, state):
        self.state = state
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gys):
        state = self.state
        state.grad_output = gys
        if state.n_inputs == 0:  # no input needs a gradient: torch calls the hook here, grad_input all None
            state.call_hooks(tuple(None for m in state.input_mask if m))
        return gys if len(gys) > 1 else gys[0]


class _InputHook(Function):
    def forward(self, *xs, state):
        self.state = state
        return xs if len(xs) > 1 else xs[0]

    def backward(self, *gxs):
        gxs = tuple(g if need else None for g, need in zip(gxs, self.needs_input_grad))
        gxs = self.state.call_hooks(gxs)
        return gxs if len(gxs) > 1 else gxs[0]

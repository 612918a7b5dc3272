"""Optimizer: the shared bookkeeping of every ndiv optimizer, with torch.optim's semantics.

An optimizer holds `param_groups` (a list of dicts: "params" plus that group's options, e.g.
its own "lr") and `state` (per-parameter buffers such as Adam's "exp_avg"). A subclass only
writes `step()`: one pass over the groups that updates each `p.data` in place from `p.grad`.

Parameters are duck-typed: anything with `.data` (a numpy or cupy array) and `.grad` (an array
of the same shape, or None) works, which is what ndiv.nn.Parameter and ndiv.Tensor give.
Updates are written against `array_module(p.data)`, so the same code runs on CuPy arrays.

Complex parameters are updated as torch.optim does: on their real view (`_view_as_real`, torch's
`view_as_real`: [...] complex -> [..., 2] real, the same memory), so Adam's second moment is
g_re^2 and g_im^2 per part, not g^2. Their state arrays stay complex, of p's shape and dtype,
as torch's, so state dicts carry over.

    opt = ndiv.optim.SGD([{"params": body.parameters()},
                          {"params": head.parameters(), "lr": 1e-2}], lr=1e-3, momentum=0.9)
    loss.backward(); opt.step(); opt.zero_grad()
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, MutableMapping
from typing import Any

import numpy as np

from ndiv.device import array_module, is_cuda_array

# Keys a param group may carry besides the optimizer's own options: "params", named
# parameters, a user label, and the keys that lr schedulers write (so groups round-trip).
_EXTRA_GROUP_KEYS = frozenset({"params", "param_names", "name", "initial_lr", "max_lr", "min_lr",
                               "max_momentum", "base_momentum"})


def _is_param(x) -> bool:
    """A parameter is anything with an array `.data` and a `.grad` slot (Tensor, Parameter)."""
    return hasattr(x, "grad") and hasattr(x, "data") and not isinstance(x, (dict, np.ndarray))


class ParamState(MutableMapping):
    """`optimizer.state`: per-parameter dicts, keyed by the parameter's identity.

    Behaves like torch's `defaultdict(dict)` keyed by tensor (`opt.state[p]["exp_avg"]`), but
    never hashes the parameter itself, so it works whatever `Tensor.__eq__`/`__hash__` do.
    """

    def __init__(self):
        self._d: dict[int, tuple[Any, dict]] = {}

    def __getitem__(self, p) -> dict:
        entry = self._d.get(id(p))
        if entry is None:  # defaultdict(dict): reading a new parameter makes its empty state
            entry = self._d[id(p)] = (p, {})
        return entry[1]

    def __setitem__(self, p, value: dict) -> None:
        self._d[id(p)] = (p, value)  # the entry holds p, so its id is never reused meanwhile

    def __delitem__(self, p) -> None:
        del self._d[id(p)]

    def __contains__(self, p) -> bool:
        return id(p) in self._d

    def __iter__(self) -> Iterator:
        return (p for p, _ in self._d.values())

    def __len__(self) -> int:
        return len(self._d)

    def __repr__(self) -> str:
        return f"ParamState({len(self)} parameters)"


def _copy_value(v):
    """A detached copy of one state value: arrays are copied, numbers and None kept."""
    if isinstance(v, np.ndarray) or is_cuda_array(v):
        return v.copy()
    return v


def _value_like(v, like, key: str, index: int):
    """Cast a loaded state array to the parameter's dtype and device, checking its shape."""
    host = v.get() if is_cuda_array(v) else np.asarray(v)  # also numpy-izes a torch tensor
    if host.shape != like.shape:
        raise ValueError(
            f"load_state_dict: state[{index}][{key!r}] has shape {host.shape}, but parameter "
            f"{index} has shape {like.shape}; the state dict belongs to other parameters")
    xp = array_module(like)
    dtype = like.dtype if np.issubdtype(host.dtype, np.inexact) else host.dtype
    if host.dtype.kind == "c" and like.dtype.kind != "c":
        raise ValueError(f"load_state_dict: state[{index}][{key!r}] is complex ({host.dtype}), but "
                         f"parameter {index} is real ({like.dtype}); the state dict belongs to other parameters")
    return xp.array(host, dtype=dtype, copy=True)


class Optimizer:
    """Base class: param groups, state, zero_grad, state_dict; subclasses write `step`.

    Args:
        params: an iterable of parameters, of (name, parameter) pairs, or of dicts
            (param groups: {"params": [...], "lr": ...}; missing options take `defaults`).
        defaults: the optimizer's options and their default values.
    """

    def __init__(self, params: Iterable, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.state = ParamState()
        self.param_groups: list[dict[str, Any]] = []
        if _is_param(params) or isinstance(params, np.ndarray) or is_cuda_array(params):
            raise TypeError(
                f"{type(self).__name__}: params must be an iterable of parameters or of param "
                f"group dicts, got a single {type(params).__name__}; wrap it in a list: [p]")
        if isinstance(params, (set, frozenset)):
            raise TypeError(f"{type(self).__name__}: parameters must be an ordered collection "
                            "(list, tuple, generator); a set's order changes between runs")
        if isinstance(params, (dict, str)) or not isinstance(params, Iterable):
            raise TypeError(f"{type(self).__name__}: params must be an iterable of parameters "
                            f"or of param group dicts, got {type(params).__name__}")
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__}: optimizer got an empty parameter list")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    # -- param groups ------------------------------------------------------------------------
    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Add a group of parameters with its own options (e.g. unfrozen layers, another lr)."""
        name = type(self).__name__
        if not isinstance(param_group, dict):
            raise TypeError(f"{name}: param_group must be a dict, got {type(param_group).__name__}")
        if "params" not in param_group:
            raise ValueError(f"{name}: param_group has no 'params' key (got keys {sorted(param_group)})")
        group = dict(param_group)
        params = group["params"]
        if _is_param(params):
            params = [params]
        elif isinstance(params, set):
            raise TypeError(f"{name}: parameters must be an ordered collection (list, tuple, "
                            "generator); a set's order changes between runs")
        params = list(params)
        if params and all(isinstance(p, tuple) and len(p) == 2 for p in params):
            group["param_names"] = [n for n, _ in params]
            params = [p for _, p in params]
        for p in params:
            if not _is_param(p):
                raise TypeError(f"{name} can only optimize parameters (objects with .data and "
                                f".grad, e.g. ndiv.nn.Parameter), but one of the params is a "
                                f"{type(p).__name__}")
            if getattr(p, "is_leaf", True) is False:
                raise ValueError(f"{name}: can't optimize a non-leaf Tensor (one computed from "
                                 "others); optimize the leaf parameters it was computed from")
        group["params"] = params

        unknown = set(group) - set(self.defaults) - _EXTRA_GROUP_KEYS
        if unknown:
            raise ValueError(f"{name}: unknown option(s) {sorted(unknown)} in param group "
                             f"{len(self.param_groups)}; valid options: {sorted(self.defaults)}")
        for key, default in self.defaults.items():
            group.setdefault(key, default)
        self._validate(group)

        ids = [id(p) for p in params]
        if len(set(ids)) != len(ids):
            raise ValueError(f"{name}: a parameter appears twice in param group "
                             f"{len(self.param_groups)}; it would be updated twice per step")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if not seen.isdisjoint(ids):
            raise ValueError(f"{name}: some parameters appear in more than one parameter group")
        self.param_groups.append(group)

    def _validate(self, group: dict[str, Any]) -> None:
        """Raise ValueError for an option out of range (subclasses add their own checks)."""
        _check(group["lr"] >= 0, "Invalid learning rate", "lr", group["lr"], "lr >= 0")

    # -- the training loop -------------------------------------------------------------------
    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset every parameter's gradient: to None (default, frees memory) or to zeros."""
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                if set_to_none:
                    p.grad = None
                else:
                    p.grad[...] = 0

    def step(self, closure: Callable[[], Any] | None = None):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define step")

    @staticmethod
    def _eval_closure(closure):
        """Run closure() (which recomputes the loss and calls backward) with grad enabled."""
        if closure is None:
            return None
        from ndiv.autograd.grad_mode import set_grad_enabled  # lazy: optim sits above autograd

        with set_grad_enabled(True):
            return closure()

    # -- checkpoints -------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """{"state": {index: {name: array or number}}, "param_groups": [{options, "params":
        [index, ...]}]}, as torch.optim: parameters are numbered in group order. Arrays are
        copies (later steps do not change a saved dict); every value is an array, a number, a
        bool, a tuple or None, so it converts to safetensors + JSON."""
        index: dict[int, int] = {}
        groups = []
        for group in self.param_groups:
            packed = {k: v for k, v in group.items() if k != "params"}
            packed["params"] = [index.setdefault(id(p), len(index)) for p in group["params"]]
            groups.append(packed)
        state = {index[id(p)]: {k: _copy_value(v) for k, v in s.items()}
                 for p, s in self.state.items() if id(p) in index and s}
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Load a dict from `state_dict()` (or from torch.optim's, converted or not): options
        per group and state per parameter, cast to each parameter's dtype and device.
        State keys may be ints or strings (a JSON round trip turns them into strings)."""
        name = type(self).__name__
        if not isinstance(state_dict, dict) or not {"state", "param_groups"} <= set(state_dict):
            raise ValueError(f"{name}.load_state_dict: expected a dict with keys 'state' and "
                             f"'param_groups', got {type(state_dict).__name__}"
                             + (f" with keys {sorted(state_dict)}" if isinstance(state_dict, dict) else ""))
        saved_groups = state_dict["param_groups"]
        if len(saved_groups) != len(self.param_groups):
            raise ValueError(f"{name}.load_state_dict: loaded state dict has a different number of "
                             f"parameter groups ({len(saved_groups)}) than the optimizer "
                             f"({len(self.param_groups)})")
        for i, (g, s) in enumerate(zip(self.param_groups, saved_groups)):
            if len(g["params"]) != len(s["params"]):
                raise ValueError(f"{name}.load_state_dict: loaded state dict contains a parameter "
                                 f"group that doesn't match the size of optimizer's group: group {i} "
                                 f"has {len(s['params'])} parameters saved, {len(g['params'])} here")
        id_map = {int(saved): p for g, s in zip(self.param_groups, saved_groups)
                  for saved, p in zip(s["params"], g["params"])}

        state = ParamState()
        for key, entry in state_dict["state"].items():
            k = int(key)
            if k not in id_map:
                raise ValueError(f"{name}.load_state_dict: state for parameter {k}, which no "
                                 f"param group lists (params are numbered 0..{len(id_map) - 1})")
            p = id_map[k]
            state[p] = {sk: self._load_value(sk, v, p.data, k) for sk, v in entry.items()}
        self.state = state

        new_groups = []
        for g, s in zip(self.param_groups, saved_groups):
            ng = {k: (tuple(v) if isinstance(self.defaults.get(k), tuple) else v)
                  for k, v in s.items() if k not in ("params", "param_names")}
            ng["params"] = g["params"]
            if "param_names" in g:
                ng["param_names"] = g["param_names"]
            new_groups.append(ng)
        self.param_groups = new_groups

    @staticmethod
    def _load_value(key: str, v, like, index: int):
        if v is None:
            return None
        if key == "step":  # a count; torch keeps it as a 0-d float tensor
            return int(round(float(v)))
        if isinstance(v, (int, float, bool)):
            return v
        return _value_like(v, like, key, index)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {g[k]}" for k in sorted(g) if k not in ("params", "param_names")]
        return "\n".join(lines + [")"])


def _view_as_real(a):
    """A complex array as a real [..., 2] view of the same memory (torch.view_as_real); a real
    array as it is. In-place updates of the view update the complex array."""
    if a.dtype.kind != "c":
        return a
    if a.flags.c_contiguous:
        return a.reshape(a.shape + (1,)).view(a.real.dtype)  # [..., 1] complex -> [..., 2] real
    xp = array_module(a)
    half = a.dtype.itemsize // 2
    return xp.lib.stride_tricks.as_strided(a.real, shape=a.shape + (2,), strides=a.strides + (half,))


def _check(ok: bool, what: str, arg: str, value, expected: str) -> None:
    """Raise torch's message ("Invalid learning rate: -1") plus the argument and its range."""
    if not ok:
        raise ValueError(f"{what}: {value} ({arg}={value!r}, expected {expected})")


def _grad(p, maximize: bool):
    """p.grad, negated for maximize; a new array only when maximize."""
    return -p.grad if maximize else p.grad

"""Containers: Sequential, ModuleList, ModuleDict, Identity (torch's names and indexing)."""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterable, Iterator, Mapping

from ndiv.nn.activation import ReLU
from ndiv.nn.linear import Linear
from ndiv.nn.module import Module


class Identity(Module):
    """Returns its input unchanged (accepts and ignores any constructor arguments, like torch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


class Sequential(Module):
    """Modules applied in order: Sequential(Linear(3, 4), ReLU()) or Sequential(OrderedDict(...)).

    Submodules are named "0", "1", ... (or by the OrderedDict keys), as in torch. A Linear with a
    bias followed by a ReLU (neither with hooks) runs as one fused node (fused.linear_act: the
    bias and the activation in one pass over the GEMM's output, the mask and the bias gradient in
    one pass backward); the result is the two modules' result.
    """

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], OrderedDict):
            for name, m in args[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(args):
                self.add_module(str(i), m)

    def forward(self, x):
        mods = list(self._modules.values())
        i, n = 0, len(mods)
        while i < n:
            m = mods[i]
            if i + 1 < n and type(m) is Linear and type(mods[i + 1]) is ReLU and _fusable(m, mods[i + 1], x):
                from ndiv.autograd.ops.fused import linear_act
                x = linear_act(x, m.weight, m.bias)
                i += 2
            else:
                x = m(x)
                i += 1
        return x

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return type(self)(OrderedDict(list(self._modules.items())[idx]))
        return list(self._modules.values())[_index(idx, len(self))]

    def __setitem__(self, idx: int, module: Module) -> None:
        key = list(self._modules)[_index(idx, len(self))]
        self.add_module(key, module)

    def __delitem__(self, idx) -> None:
        keys = list(self._modules)
        for key in (keys[idx] if isinstance(idx, slice) else [keys[_index(idx, len(self))]]):
            delattr(self, key)
        # renumber, as torch does, so names stay "0".."n-1"
        mods = list(self._modules.values())
        for key in list(self._modules):
            delattr(self, key)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self)), module)
        return self


def _fusable(linear, relu, x) -> bool:
    """Linear -> ReLU may run fused: a bias, no hooks on either, a float input of the weight's dtype."""
    w = linear.weight
    return (linear.bias is not None and not linear._has_hooks and not relu._has_hooks and linear.in_features > 0
            and getattr(x, "dtype", None) == w.dtype and x.dtype.kind == "f")


class ModuleList(Module):
    """A list of Modules whose parameters are registered (names "0", "1", ...)."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return ModuleList(list(self._modules.values())[idx])
        return self._modules[str(_index(idx, len(self)))]

    def __setitem__(self, idx: int, module: Module) -> None:
        self.add_module(str(_index(idx, len(self))), module)

    def __delitem__(self, idx) -> None:
        mods = list(self._modules.values())
        del mods[idx]
        for key in list(self._modules):
            delattr(self, key)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        return self.extend(modules)

    def append(self, module: Module) -> "ModuleList":
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        mods = list(self._modules.values())
        mods.insert(index, module)
        for key in list(self._modules):
            delattr(self, key)
        for i, m in enumerate(mods):
            self.add_module(str(i), m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleList has no forward: iterate over it and call each module")


class ModuleDict(Module):
    """An ordered dict of Modules whose parameters are registered under their keys."""

    def __init__(self, modules: Mapping[str, Module] | Iterable[tuple[str, Module]] | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        delattr(self, key)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def items(self):
        return self._modules.items()

    def values(self):
        return self._modules.values()

    def pop(self, key: str) -> Module:
        m = self._modules[key]
        delattr(self, key)
        return m

    def clear(self) -> None:
        for key in list(self._modules):
            delattr(self, key)

    def update(self, modules) -> None:
        items = modules.items() if hasattr(modules, "items") else modules
        for key, m in items:
            self.add_module(key, m)

    def forward(self, *args, **kwargs):
        raise NotImplementedError("ModuleDict has no forward: index it and call the module")


def _index(idx: int, n: int) -> int:
    idx = int(idx)
    if not -n <= idx < n:
        raise IndexError(f"index {idx} is out of range for a container of {n} modules")
    return idx + n if idx < 0 else idx

"""Parameter: a Tensor that a Module registers as learnable (requires_grad=True by default)."""
from __future__ import annotations

from ndiv.autograd.tensor import Tensor


class Parameter(Tensor):
    """A leaf Tensor that Module.__setattr__ registers in `_parameters`.

    >>> p = Parameter(np.zeros((3, 2), np.float32)); p.requires_grad
    True
    """

    def __init__(self, data=None, requires_grad: bool = True):
        if data is None:
            data = []
        Tensor.__init__(self, data.detach() if isinstance(data, Tensor) else data)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + Tensor.__repr__(self)

    def __reduce_ex__(self, protocol):  # deepcopy/pickle keep the subclass and the flag
        return (Parameter, (self.data.copy(), self.requires_grad))


class Buffer(Tensor):
    """Marks a Tensor to register as a buffer when assigned to a Module attribute (torch >= 2.5).

    Buffers travel with `to()` and appear in `state_dict()` unless `persistent=False`.
    """

    def __init__(self, data, persistent: bool = True):
        Tensor.__init__(self, data.detach() if isinstance(data, Tensor) else data)
        self.persistent = persistent

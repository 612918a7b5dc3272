"""Copies, casts and device moves. Each backward undoes the forward's change of kind."""
from __future__ import annotations

from ndiv import device as _device
from ndiv.autograd.function import Function


class Clone(Function):
    """y = copy of x."""
    def forward(self, x):
        return x.copy()

    def backward(self, gy):
        return gy


class Cast(Function):
    """y = x.astype(dtype); the gradient is cast back to x's dtype (by the tape)."""
    def forward(self, x, dtype):
        return x.astype(dtype)

    def backward(self, gy):
        return gy


class ToDevice(Function):
    """y = x moved to 'cpu' or 'cuda'; the gradient moves back."""
    def forward(self, x, device):
        self.src = _device.device_of(x)
        return _device.to_device(x, device)

    def backward(self, gy):
        return _device.to_device(gy, self.src)

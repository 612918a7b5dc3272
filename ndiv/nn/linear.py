"""Linear layers: Linear, Bilinear, Flatten, Unflatten (torch's names, shapes and default init)."""
from __future__ import annotations

import math

import numpy as np

from ndiv.autograd.tensor import DEFAULT_DTYPE
from ndiv.nn import functional as F
from ndiv.nn import init
from ndiv.nn.module import Module
from ndiv.nn.parameter import Parameter


def _empty(*shape, dtype=None) -> Parameter:
    return Parameter(np.empty(shape, dtype=np.dtype(dtype or DEFAULT_DTYPE)))


class Linear(Module):
    """y = x @ weight.T + bias. x [..., in_features] -> [..., out_features].

    weight [out, in] ~ U(-1/sqrt(in), 1/sqrt(in)) (kaiming_uniform with a=sqrt(5)), bias likewise.
    in_features=0 is allowed, as in torch: weight [out, 0] is in the state_dict, the bias is 0 and
    the output is the bias broadcast to [..., out_features].

    >>> Linear(3, 2)(ndiv.randn(4, 3)).shape
    (4, 2)
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = _empty(out_features, in_features, dtype=dtype)
        self.bias = _empty(out_features, dtype=dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()
        if device is not None:
            self.to(device=device)

    def reset_parameters(self) -> None:
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = self.weight.shape[1]
            bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        if self.in_features == 0 and x.shape[-1] == 0:     # an empty sum: the bias alone
            zeros = x.sum(-1, keepdim=True).expand(*x.shape[:-1], self.out_features)   # keeps x in the graph
            return zeros if self.bias is None else zeros + self.bias
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class Bilinear(Module):
    """y[..., o] = x1 W[o] x2 + b[o]. x1 [..., in1], x2 [..., in2] -> [..., out]."""

    def __init__(self, in1_features: int, in2_features: int, out_features: int, bias: bool = True, device=None, dtype=None):
        super().__init__()
        self.in1_features, self.in2_features, self.out_features = in1_features, in2_features, out_features
        self.weight = _empty(out_features, in1_features, in2_features, dtype=dtype)
        self.bias = _empty(out_features, dtype=dtype) if bias else None
        if not bias:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        bound = 1 / math.sqrt(self.weight.shape[1])
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x1, x2):
        return F.bilinear(x1, x2, self.weight, self.bias)


class Flatten(Module):
    """Flatten dims start_dim..end_dim (default 1..-1): [B, C, L] -> [B, C*L]."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self) -> str:
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Split dim into unflattened_size: Unflatten(1, (C, L)) maps [B, C*L] -> [B, C, L]."""

    def __init__(self, dim: int, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        d = self.dim % x.ndim
        return x.reshape(x.shape[:d] + self.unflattened_size + x.shape[d + 1:])

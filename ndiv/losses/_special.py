"""Special functions the log-likelihoods need, as autograd Functions on raw arrays.

    lgamma(x)  = log |Gamma(x)|      d/dx = digamma(x)
    digamma(x) = d/dx lgamma(x)      d/dx = polygamma(1, x)  (trigamma)

Values come from scipy.special on NumPy arrays and cupyx.scipy.special on CuPy arrays.

    >>> import ndiv
    >>> x = ndiv.tensor([1.0, 4.5], dtype="float64", requires_grad=True)
    >>> lgamma(x).sum().backward()
    >>> x.grad.round(6)
    array([-0.577216,  1.388871])
"""
from __future__ import annotations

import numpy as np

from ndiv.autograd.function import Function
from ndiv.device import array_module


def _special(x):
    if array_module(x) is np:
        import scipy.special as sp
        return sp
    import cupyx.scipy.special as sp
    return sp


def _cast(y, x):
    """scipy computes float32 input in float64 for some functions: keep the input's dtype."""
    return y.astype(x.dtype, copy=False)


class LGamma(Function):
    """y = lgamma(x) = log|Gamma(x)|; dy/dx = digamma(x)."""
    def forward(self, x):
        self.save_for_backward(x)
        return _cast(_special(x).gammaln(x), x)

    def backward(self, gy):
        (x,) = self.saved
        return gy * _cast(_special(x).digamma(x), x)


class Digamma(Function):
    """y = digamma(x); dy/dx = polygamma(1, x)."""
    def forward(self, x):
        self.save_for_backward(x)
        return _cast(_special(x).digamma(x), x)

    def backward(self, gy):
        (x,) = self.saved
        return gy * _cast(_special(x).polygamma(1, x), x)


def lgamma(x):
    """log|Gamma(x)| of a Tensor, elementwise, differentiable."""
    return LGamma.apply(x)


def digamma(x):
    """digamma(x) of a Tensor, elementwise, differentiable."""
    return Digamma.apply(x)

"""Elementwise ops, one Function each: forward and its derivative side by side.

Binary ops broadcast as NumPy does and return gradients in the broadcast shape; the tape sums
them back to each input's shape. Complex inputs follow torch's convention (the gradient is
dL/dRe + i dL/dIm), hence the conj() in mul, div and the matmuls.
"""
from __future__ import annotations

from ndiv.autograd.function import Function
from ndiv.device import array_module
from ndiv.memory import out_buffer, pool


def _binary_out(ufunc, a, b):
    """ufunc(a, b) into a pooled buffer when the pool is on and no broadcasting is involved."""
    if pool.enabled and a.shape == b.shape and a.dtype == b.dtype:
        xp = array_module(a)
        out = out_buffer(xp, a.shape, a.dtype, a.nbytes)
        if out is not None:
            return ufunc(a, b, out=out)
    return ufunc(a, b)


def _conj(x):
    return x.conj() if x.dtype.kind == "c" else x


def _shapes_error(op, a, b, e):
    return ValueError(f"{op}: shapes {tuple(a.shape)} and {tuple(b.shape)} do not broadcast ({e})")


# -- binary ------------------------------------------------------------------------------------
class Add(Function):
    def forward(self, a, b):
        try:
            return _binary_out(array_module(a).add, a, b)
        except ValueError as e:
            raise _shapes_error("add", a, b, e) from None

    def backward(self, gy):
        return gy, gy


class Sub(Function):
    def forward(self, a, b):
        try:
            return _binary_out(array_module(a).subtract, a, b)
        except ValueError as e:
            raise _shapes_error("sub", a, b, e) from None

    def backward(self, gy):
        return gy, (-gy if self.needs_input_grad[1] else None)


class Mul(Function):
    def forward(self, a, b):
        try:
            y = _binary_out(array_module(a).multiply, a, b)
        except ValueError as e:
            raise _shapes_error("mul", a, b, e) from None
        self.save_for_backward(a, b)
        return y

    def backward(self, gy):
        a, b = self.saved
        mul = array_module(gy).multiply
        ga = _binary_out(mul, gy, _conj(b)) if self.needs_input_grad[0] else None
        gb = _binary_out(mul, gy, _conj(a)) if self.needs_input_grad[1] else None
        return ga, gb


class Div(Function):
    def forward(self, a, b):
        try:
            y = a / b
        except ValueError as e:
            raise _shapes_error("div", a, b, e) from None
        self.save_for_backward(b, y)
        return y

    def backward(self, gy):
        b, y = self.saved
        ga = gy / _conj(b)
        gb = -ga * _conj(y) if self.needs_input_grad[1] else None
        return (ga if self.needs_input_grad[0] else None), gb


class Pow(Function):
    """y = a ** b, both tensors (a > 0 where b's gradient is needed)."""
    def forward(self, a, b):
        y = a ** b
        self.save_for_backward(a, b, y)
        return y

    def backward(self, gy):
        a, b, y = self.saved
        xp = array_module(a)
        ga = gy * b * a ** (b - 1) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            gb = gy * y * xp.log(xp.where(a > 0, a, 1))  # d/db a^b = a^b log a; 0 where a <= 0
        return ga, gb


class Maximum(Function):
    """max(a, b); ties split the gradient in halves (as torch.maximum)."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return array_module(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.saved
        w = (a > b) + 0.5 * (a == b)
        return gy * w, gy * (1 - w)


class Minimum(Function):
    """min(a, b); ties split the gradient in halves (as torch.minimum)."""
    def forward(self, a, b):
        self.save_for_backward(a, b)
        return array_module(a).minimum(a, b)

    def backward(self, gy):
        a, b = self.saved
        w = (a < b) + 0.5 * (a == b)
        return gy * w, gy * (1 - w)


class Where(Function):
    """where(cond, a, b): cond is a plain boolean array (no gradient)."""
    def forward(self, a, b, cond):
        self.cond = cond
        return array_module(a).where(cond, a, b)

    def backward(self, gy):
        zero = gy.dtype.type(0)
        xp = array_module(gy)
        ga = xp.where(self.cond, gy, zero) if self.needs_input_grad[0] else None
        gb = xp.where(self.cond, zero, gy) if self.needs_input_grad[1] else None
        return ga, gb


# -- with a Python scalar ----------------------------------------------------------------------
class AddScalar(Function):
    def forward(self, x, c):
        return x + c

    def backward(self, gy):
        return gy


class MulScalar(Function):
    def forward(self, x, c):
        self.c = c
        return x * c

    def backward(self, gy):
        return gy * self.c


class RSubScalar(Function):
    """y = c - x."""
    def forward(self, x, c):
        return c - x

    def backward(self, gy):
        return -gy


class RDivScalar(Function):
    """y = c / x."""
    def forward(self, x, c):
        y = c / x
        self.save_for_backward(x, y)
        return y

    def backward(self, gy):
        x, y = self.saved
        return -gy * y / x


class PowScalar(Function):
    """y = x ** c for a Python number c."""
    def forward(self, x, c):
        self.c = c
        self.save_for_backward(x)
        if c == 2:
            return x * x
        return x ** c

    def backward(self, gy):
        (x,) = self.saved
        c = self.c
        if c == 2:
            return gy * (x + x)
        if c == 1:
            return gy
        return gy * (c * x ** (c - 1))


class RPowScalar(Function):
    """y = c ** x for a Python number c > 0."""
    def forward(self, x, c):
        y = c ** x
        self.c = c
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y * array_module(y).log(self.c)


# -- unary -------------------------------------------------------------------------------------
class Neg(Function):
    def forward(self, x):
        return -x

    def backward(self, gy):
        return -gy


class Exp(Function):
    def forward(self, x):
        y = array_module(x).exp(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).log(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / x


class Log1p(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).log1p(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / (1 + x)


class Expm1(Function):
    def forward(self, x):
        y = array_module(x).expm1(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * (y + 1)


class Sqrt(Function):
    def forward(self, x):
        y = array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy / (2 * y)


class Abs(Function):
    """|x|; the derivative at 0 is 0 (torch's sign(0) = 0). Complex x: x/|x|."""
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).abs(x)

    def backward(self, gy):
        (x,) = self.saved
        xp = array_module(x)
        if x.dtype.kind == "c":
            ax = xp.abs(x)
            return gy * xp.where(ax > 0, x / xp.where(ax > 0, ax, 1), 0)
        return gy * xp.sign(x)


class Tanh(Function):
    def forward(self, x):
        y = array_module(x).tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * (1 - y * y)


class Sigmoid(Function):
    def forward(self, x):
        xp = array_module(x)
        # exp of -|x| never overflows: sigmoid(x) = e^min(x,0) / (1 + e^-|x|)
        e = xp.exp(-xp.abs(x))
        y = xp.where(x >= 0, 1, e) / (1 + e)
        y = y.astype(x.dtype, copy=False)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * y * (1 - y)



class LogSigmoid(Function):
    """log(sigmoid(x)) = min(x, 0) - log1p(exp(-|x|)), finite for any finite x; d/dx = sigmoid(-x)."""
    def forward(self, x):
        xp = array_module(x)
        e = xp.exp(-xp.abs(x))
        self.save_for_backward(x, e)
        return (xp.minimum(x, 0) - xp.log1p(e)).astype(x.dtype, copy=False)

    def backward(self, gy):
        x, e = self.saved
        return gy * (array_module(x).where(x >= 0, e, 1) / (1 + e))

class Relu(Function):
    """max(x, 0); relu'(0) = 0 as in torch."""
    def forward(self, x):
        xp = array_module(x)
        out = out_buffer(xp, x.shape, x.dtype, x.nbytes) if pool.enabled else None
        y = xp.maximum(x, 0, out=out)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        xp = array_module(gy)
        out = out_buffer(xp, gy.shape, gy.dtype, gy.nbytes) if pool.enabled else None
        return xp.multiply(gy, y > 0, out=out)


class Clip(Function):
    """clip(x, lo, hi); the gradient passes where lo <= x <= hi (torch.clamp's rule)."""
    def forward(self, x, lo, hi):
        self.save_for_backward(x)
        self.lo, self.hi = lo, hi
        return array_module(x).clip(x, lo, hi)

    def backward(self, gy):
        (x,) = self.saved
        m = True
        if self.lo is not None:
            m = x >= self.lo
        if self.hi is not None:
            m = m & (x <= self.hi)
        return gy * m



class NanToNum(Function):
    """NaN -> nan, +inf -> posinf, -inf -> neginf (None: the dtype's largest/lowest finite value).
    The gradient passes where x is finite and is zero where a value was replaced (torch's rule)."""
    def forward(self, x, nan=0.0, posinf=None, neginf=None):
        xp = array_module(x)
        self.save_for_backward(x)
        return xp.nan_to_num(x, nan=nan, posinf=posinf, neginf=neginf)

    def backward(self, gy):
        (x,) = self.saved
        return gy * array_module(x).isfinite(x)

class Sin(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).sin(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy * array_module(x).cos(x)


class Cos(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).cos(x)

    def backward(self, gy):
        (x,) = self.saved
        return -gy * array_module(x).sin(x)


class Erf(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return special(x).erf(x)

    def backward(self, gy):
        (x,) = self.saved
        xp = array_module(x)
        return gy * (2 / xp.sqrt(xp.pi)) * xp.exp(-x * x)


class Real(Function):
    def forward(self, z):
        return z.real.copy()

    def backward(self, gy):
        return gy + 0j


class Imag(Function):
    def forward(self, z):
        return z.imag.copy()

    def backward(self, gy):
        return gy * 1j


class Complex(Function):
    """z = re + i im from two real arrays."""
    def forward(self, re, im):
        return re + 1j * im

    def backward(self, gz):
        return gz.real, gz.imag


class Conj(Function):
    def forward(self, z):
        return z.conj()

    def backward(self, gy):
        return gy.conj()


def special(x):
    """scipy.special for numpy arrays, cupyx.scipy.special for cupy arrays."""
    if array_module(x).__name__ == "cupy":
        import cupyx.scipy.special as sp
        return sp
    import scipy.special as sp
    return sp

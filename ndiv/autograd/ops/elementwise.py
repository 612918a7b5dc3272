"""Elementwise ops, one Function each: forward and its derivative side by side.

Binary ops broadcast as NumPy does and return gradients in the broadcast shape; the tape sums
them back to each input's shape. Complex inputs follow torch's convention: the gradient of a
real loss L is dL/dRe + i dL/dIm, so a holomorphic f passes gy * conj(f'(z)) back (the conj()
below is a no-op on real arrays). Ops that need an order (relu, clip, maximum, minimum) refuse
complex input, as torch does.
"""
from __future__ import annotations

import contextlib

import numpy as np

from ndiv.autograd.function import Function
from ndiv.device import array_module
from ndiv.memory import out_buffer, pool


def _ignore_overflow(xp):
    """NumPy's errstate(over='ignore') (CuPy raises no floating-point warnings)."""
    return np.errstate(over="ignore") if xp is np else contextlib.nullcontext()


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


def _real_only(op, *xs):
    """TypeError for complex input to an op that compares values (complex numbers have no order)."""
    for x in xs:
        if x.dtype.kind == "c":
            raise TypeError(f"{op}: complex input (dtype {x.dtype}) has no order; apply {op} to "
                            "x.real, x.imag or x.abs() instead")


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
        ga = gy * _conj(b * a ** (b - 1)) if self.needs_input_grad[0] else None
        gb = None
        if self.needs_input_grad[1]:
            # d/db a^b = a^b log a; 0 where a <= 0 (real) or a == 0 (complex), as torch
            ok = a != 0 if a.dtype.kind == "c" else a > 0
            gb = gy * _conj(y * xp.log(xp.where(ok, a, 1)))
        return ga, gb


class Maximum(Function):
    """max(a, b); ties split the gradient in halves (as torch.maximum)."""
    def forward(self, a, b):
        _real_only("maximum", a, b)
        self.save_for_backward(a, b)
        return array_module(a).maximum(a, b)

    def backward(self, gy):
        a, b = self.saved
        w = (a > b) + 0.5 * (a == b)
        return gy * w, gy * (1 - w)


class Minimum(Function):
    """min(a, b); ties split the gradient in halves (as torch.minimum)."""
    def forward(self, a, b):
        _real_only("minimum", a, b)
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
        return gy * self.c.conjugate()  # every Python and NumPy number has conjugate()


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
        return -gy * _conj(y / x)


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
            return gy * _conj(x + x)
        if c == 1:
            return gy
        return gy * _conj(c * x ** (c - 1))


class RPowScalar(Function):
    """y = c ** x for a Python number c > 0."""
    def forward(self, x, c):
        y = c ** x
        self.c = c
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * _conj(y) * array_module(y).log(self.c)


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
        return gy * _conj(y)


class Log(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).log(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / _conj(x)


class Log1p(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).log1p(x)

    def backward(self, gy):
        (x,) = self.saved
        return gy / _conj(1 + x)


class Expm1(Function):
    def forward(self, x):
        y = array_module(x).expm1(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * _conj(y + 1)


class Sqrt(Function):
    def forward(self, x):
        y = array_module(x).sqrt(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy / _conj(2 * y)


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
        xp = array_module(x)
        y = _complex_tanh(x) if x.dtype.kind == "c" and xp is np else xp.tanh(x)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * _conj(1 - y * y)


def _complex_tanh(z, chunk=1 << 14):
    """tanh of a complex array from real array ops (Kahan's form, as glibc's ctanh): NumPy's
    complex tanh calls libm once per element (76 ns each here). With t = tan(Im z), s = sinh(Re z),
    b = 1 + t^2:
        tanh z = (b s sqrt(1 + s^2) + i t) / (1 + b s^2),
    exact where Re z = 0 (tan) and free of cancellation near the poles; past |Re z| = 22 (9 in
    single precision) it is sign(Re z) + i 4 sin(Im z) cos(Im z) e^(-2 |Re z|), as glibc's. The
    array goes in chunks of `chunk` elements, so that the temporaries stay in cache: FEDformer's
    Fourier cross-attention on M4 Hourly ([1024, 8, 48, 48], one thread): complex64 1438 -> 218 ms,
    complex128 906 -> 436 ms."""
    flat = np.ascontiguousarray(z).reshape(-1)
    out = np.empty(flat.shape, z.dtype)
    for lo in range(0, flat.size, chunk):
        _complex_tanh_into(flat[lo:lo + chunk], out[lo:lo + chunk])
    return out.reshape(z.shape)


def _complex_tanh_into(z, out):
    real_t = z.real.dtype
    a, y = z.real, z.imag
    big = real_t.type(9.0 if real_t == np.float32 else 22.0)
    with np.errstate(all="ignore"):
        far = np.abs(a) >= big
        t = np.tan(y)
        sh = np.sinh(np.where(far, 0, a).astype(real_t, copy=False))   # a nan stays
        beta = 1 + t * t
        den = 1 + beta * sh * sh
        re = beta * sh * np.sqrt(1 + sh * sh) / den
        im = np.where(y == 0, y, t / den)            # a real z stays real (also nan + 0i, as libm)
        if far.any():
            e = np.exp(-np.abs(a[far]))
            af, yf = a[far], y[far]
            # a finite Re z with an infinite or nan Im z: nan (C99's ctanh); Re z = +-inf: +-1
            re[far] = np.where(np.isfinite(yf) | np.isinf(af), np.copysign(real_t.type(1), af), np.nan)
            im[far] = np.where(np.isinf(af) & ~np.isfinite(yf), 0, 4 * np.sin(yf) * np.cos(yf) * e * e)
    out.real, out.imag = re, im


class Sigmoid(Function):
    def forward(self, x):
        xp = array_module(x)
        if x.dtype.kind == "c":  # the same split on Re z: |e^w| = e^Re w <= 1 never overflows
            neg = x.real < 0
            e = xp.exp(xp.where(neg, x, -x))
            y = xp.where(neg, e / (1 + e), 1 / (1 + e))
        else:
            # 1 / (1 + e^-x) in x's dtype, in place (torch's formula): e^-x overflows to inf for
            # x < -88 (float32), which gives the right limit 0; nan stays nan
            y = xp.negative(x, out=xp.empty(x.shape, x.dtype))     # an array even for 0-d x
            with _ignore_overflow(xp):
                xp.exp(y, out=y)
            y += 1
            xp.reciprocal(y, out=y)
        y = y.astype(x.dtype, copy=False)
        self.save_for_backward(y)
        return y

    def backward(self, gy):
        (y,) = self.saved
        return gy * _conj(y * (1 - y))


class Elu(Function):
    """elu(x) = x for x > 0, alpha (e^x - 1) otherwise, in one op (torch's F.elu); the gradient
    is 1 for x > 0 and alpha e^x otherwise, as torch's (a nan input: nan forward and backward, as
    torch's vectorized loop). The NumPy route for dtypes without the fused kernel (fused.ELU)."""
    def forward(self, x, alpha=1.0):
        _real_only("elu", x)
        xp = array_module(x)
        neg = xp.minimum(x, 0, out=xp.empty(x.shape, x.dtype))   # e^x of the clipped input: no overflow
        xp.expm1(neg, out=neg)
        neg *= x.dtype.type(alpha)
        y = xp.where(x > 0, x, neg)
        self.save_for_backward(x)
        self.alpha = alpha
        return y

    def backward(self, gy):
        (x,) = self.saved
        xp = array_module(gy)
        slope = xp.minimum(x, 0, out=xp.empty(x.shape, x.dtype))
        xp.exp(slope, out=slope)
        slope *= x.dtype.type(self.alpha)
        slope = xp.where(x > 0, x.dtype.type(1), slope)
        slope *= gy
        return slope


class Glu(Function):
    """glu(x) = a * sigmoid(b) for x = [a | b] split in halves along `axis` (torch's F.glu); the
    gradient of both halves is written into one array (no zero-filled array per half)."""
    def forward(self, x, axis=-1):
        _real_only("glu", x)
        xp = array_module(x)
        axis = axis % x.ndim
        n = x.shape[axis] // 2
        a = x[(slice(None),) * axis + (slice(0, n),)]
        s = Sigmoid.forward(self, x[(slice(None),) * axis + (slice(n, 2 * n),)])
        self.saved = (a, s)
        self.axis = axis
        return xp.multiply(a, s)

    def backward(self, gy):
        a, s = self.saved
        xp = array_module(gy)
        ga = gy * s
        gb = ga * a                            # gy * a * s (1 - s)
        gb *= 1 - s
        return xp.concatenate([ga, gb], axis=self.axis)



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
        _real_only("relu", x)
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
        _real_only("clip", x)
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
        return gy * _conj(array_module(x).cos(x))


class Cos(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return array_module(x).cos(x)

    def backward(self, gy):
        (x,) = self.saved
        return -gy * _conj(array_module(x).sin(x))


class Erf(Function):
    def forward(self, x):
        self.save_for_backward(x)
        return special(x).erf(x)

    def backward(self, gy):
        (x,) = self.saved
        xp = array_module(x)
        return gy * (2 / xp.sqrt(xp.pi)) * _conj(xp.exp(-x * x))


class Real(Function):
    """Re z: complex [...] -> real [...] of the matching precision (a real z passes through)."""
    def forward(self, z):
        self.dtype = z.dtype
        return z.real.copy()

    def backward(self, gy):
        return gy.astype(self.dtype) if self.dtype.kind == "c" else gy  # dL/dRe + i * 0


class Imag(Function):
    """Im z: complex [...] -> real [...]; torch refuses real z, and so does this."""
    def forward(self, z):
        if z.dtype.kind != "c":
            raise TypeError(f"imag: needs a complex tensor, got dtype {z.dtype} (its imaginary "
                            "part would be zero); convert with ndiv.complex(x, zeros_like(x))")
        self.dtype = z.dtype
        return z.imag.copy()

    def backward(self, gy):
        g = array_module(gy).zeros(gy.shape, self.dtype)
        g.imag = gy                                 # 0 + i dL/dIm
        return g


class Complex(Function):
    """z = re + i im from two real arrays of one dtype (broadcast): float32 -> complex64,
    float64 -> complex128, as torch.complex."""
    def forward(self, re, im):
        for name, x in (("real", re), ("imag", im)):
            if x.dtype.kind != "f":
                raise TypeError(f"complex: {name} must be a floating-point tensor, got dtype {x.dtype}")
        if re.dtype != im.dtype:
            raise TypeError(f"complex: real and imag must have the same dtype, got {re.dtype} and "
                            f"{im.dtype}; cast one with .to()")
        xp = array_module(re)
        try:
            shape = xp.broadcast_shapes(re.shape, im.shape)
        except ValueError as e:
            raise _shapes_error("complex", re, im, e) from None
        z = xp.empty(shape, xp.result_type(re.dtype, xp.complex64))
        z.real, z.imag = re, im
        return z

    def backward(self, gz):
        return gz.real, gz.imag


class Conj(Function):
    def forward(self, z):
        return z.conj()

    def backward(self, gy):
        return gy.conj()


class Angle(Function):
    """arg z = atan2(Im z, Re z): complex [...] -> real [...] (real z: 0 or pi, zero gradient).
    Complex z: the gradient is gy * i z / |z|^2, 0 at z = 0 (torch's angle_backward)."""
    def forward(self, z):
        self.save_for_backward(z)
        xp = array_module(z)
        y = xp.angle(z)
        return y.astype(z.real.dtype, copy=False)

    def backward(self, gy):
        (z,) = self.saved
        xp = array_module(z)
        if z.dtype.kind != "c":
            return xp.zeros_like(gy)
        a2 = (z * z.conj()).real
        return gy * xp.where(a2 > 0, 1j * z / xp.where(a2 > 0, a2, 1), 0)


def special(x):
    """scipy.special for numpy arrays, cupyx.scipy.special for cupy arrays."""
    if array_module(x).__name__ == "cupy":
        import cupyx.scipy.special as sp
        return sp
    import scipy.special as sp
    return sp

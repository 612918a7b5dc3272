"""Scalar activations for the Numba kernels, chosen by type at compile time.

float64: math.exp / math.tanh (libm, exact to the last bits; the gradcheck and oracle dtype).
float32: branch-free polynomial forms that LLVM vectorizes (8 lanes on AVX2); erf, and from it
GELU's normal CDF and density, likewise (float64 keeps math.erf). libm's scalar
tanhf costs ~18 ns here and expf ~4 ns, which would dominate an LSTM step; these cost ~0.4 ns,
with a maximum error of ~2.4e-7 (tanh, absolute) and ~2 ulp (exp), below float32's resolution
for the 1e-5 tolerance of the tests. Non-finite inputs give what libm gives: exp(nan) = nan,
exp(-inf) = 0, exp(inf) = inf, tanh(nan) = nan, tanh(+-inf) = +-1 (tests/kernels/test_kernels.py).
"""
from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic, overload

from ndiv.kernels.config import FASTMATH

_f32 = np.float32


def fast_exp(x):  # pragma: no cover - replaced by its overload inside jitted code
    return math.exp(x)


def fast_tanh(x):  # pragma: no cover
    return math.tanh(x)


def fast_sigmoid(x):  # pragma: no cover
    return 1.0 / (1.0 + math.exp(-x))


def fast_erf(x):  # pragma: no cover
    return math.erf(x)


def fast_expm1(x):  # pragma: no cover
    return math.expm1(x)


def gelu_cdf(x):  # pragma: no cover - Phi(x) = (1 + erf(x / sqrt 2)) / 2, the standard normal CDF
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def gelu_pdf(x):  # pragma: no cover - phi(x) = exp(-x^2 / 2) / sqrt(2 pi)
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


@intrinsic
def _int32_bits_as_float32(typingctx, n):
    """Reinterpret the bits of an int32 as a float32 (builds 2**k for exp without ldexp)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


# Cephes expf: exp(x) = 2**n * p(r), r = x - n*ln2 in [-ln2/2, ln2/2], p of degree 7.
_LOG2E, _LN2_HI, _LN2_LO = _f32(1.44269504088896341), _f32(0.693359375), _f32(-2.12194440e-4)
_P0, _P1, _P2 = _f32(1.9875691500e-4), _f32(1.3981999507e-3), _f32(8.3334519073e-3)
_P3, _P4, _P5 = _f32(4.1665795894e-2), _f32(1.6666665459e-1), _f32(5.0000001201e-1)
_EXP_LO, _EXP_HI = _f32(-87.33654), _f32(88.0)   # 2**(n+127) must stay a normal float
# Eigen's rational tanh for float32: odd degree-13 numerator over even degree-6 denominator.
_TANH_CLAMP = _f32(7.90531110763549805)
_A13, _A11, _A9 = _f32(-2.76076847742355e-16), _f32(2.00018790482477e-13), _f32(-8.60467152213735e-11)
_A7, _A5, _A3, _A1 = _f32(5.12229709037114e-08), _f32(1.48572235717979e-05), _f32(6.37261928875436e-04), _f32(4.89352455891786e-03)
_B6, _B4, _B2, _B0 = _f32(1.19825839466702e-06), _f32(1.18534705686654e-04), _f32(2.26843463243900e-03), _f32(4.89352518554385e-03)
_HALF, _ONE = _f32(0.5), _f32(1.0)
# erf for float32, two branch-free pieces (both computed, one selected: the loop vectorizes):
#   |x| < 1:  erf(x) = x + x * P(x^2), P of degree 6 (the constant term is 2/sqrt(pi) - 1, so the
#             rounding errors scale with the small correction, not with erf);
#   |x| >= 1: erf(x) = sign(x) * (1 - exp(Q(|x|))), Q of degree 9 ~ log(erfc(t)) on [1, 3.95]
#             (past 3.92, erf rounds to 1 in float32).
# Coefficients fitted for ndiv in float64 (Lawson's weighted minimax on a dense grid: P relative,
# Q weighted by erfc(t)); evaluated in float32 the result is within 1.5 ulp of math.erf over
# [-6, 6] (tests/kernels/test_gelu_erf.py). Abramowitz-Stegun 7.1.26 (1.5e-7 absolute) is
# hundreds of ulp off near 0.
_ERF_P = (_f32(0.12837916612625122), _f32(-0.3761262595653534), _f32(0.11283600330352783),
          _f32(-0.02685444802045822), _f32(0.005189541261643171), _f32(-0.0008020888781175017),
          _f32(7.889266998972744e-05))
_ERF_Q = (_f32(0.00012530139065347612), _f32(-1.1292039155960083), _f32(-0.6341959834098816),
          _f32(-0.10696166008710861), _f32(0.0238366536796093), _f32(-0.00336035480722785),
          _f32(0.00010179267701460049), _f32(6.433362432289869e-05), _f32(-1.2451700968085788e-05),
          _f32(7.844554943403637e-07))
_ERF_T_MAX = _f32(3.95)
# expm1 for float32: e^x - 1 loses the relative precision of a small x (e^-1e-4 - 1 is off by 6e-4
# relative), so |x| < 1/2 takes the Taylor polynomial of degree 8 (truncation below 2e-8 relative);
# both are computed and one selected, as for erf.
_EXPM1_C = tuple(_f32(1.0 / math.factorial(k)) for k in range(2, 9))
_RSQRT2_32, _RSQRT2PI_32 = _f32(1.0 / math.sqrt(2.0)), _f32(1.0 / math.sqrt(2.0 * math.pi))

_JIT = dict(inline="always", fastmath=set(FASTMATH), error_model="numpy")


@overload(fast_exp, jit_options=_JIT)
def _ov_exp(x):
    if x == types.float32:
        def exp32(x):
            xc = min(max(x, _EXP_LO), _EXP_HI)
            n = np.floor(xc * _LOG2E + _HALF)              # float floor: vectorizes, int64 does not
            r = xc - n * _LN2_HI - n * _LN2_LO
            p = ((((_P0 * r + _P1) * r + _P2) * r + _P3) * r + _P4) * r + _P5
            p = p * r * r + r + _ONE
            y = p * _int32_bits_as_float32(np.int32(n + 127) << 23)
            y = y if x <= _EXP_HI else _f32(np.inf)    # also exp(inf) = inf
            y = y if x > _EXP_LO else _f32(0.0)        # also exp(-inf) = 0
            return y if x == x else x                  # exp(nan) = nan (the clamps above lose it)
        return exp32
    return lambda x: math.exp(x)


@overload(fast_tanh, jit_options=_JIT)
def _ov_tanh(x):
    if x == types.float32:
        def tanh32(x):
            xc = min(max(x, -_TANH_CLAMP), _TANH_CLAMP)
            x2 = xc * xc
            p = ((((((_A13 * x2 + _A11) * x2 + _A9) * x2 + _A7) * x2 + _A5) * x2 + _A3) * x2 + _A1) * xc
            q = ((_B6 * x2 + _B4) * x2 + _B2) * x2 + _B0
            # exactly +-1 past the clamp (the polynomial stops 4 ulp short): gelu(-inf) = -inf * 0
            # is then nan as in torch; nan fails the test and stays nan
            return p / q if not abs(x) >= _TANH_CLAMP else (_ONE if x > 0 else -_ONE)
        return tanh32
    return lambda x: math.tanh(x)


@overload(fast_erf, jit_options=_JIT)
def _ov_erf(x):
    if x == types.float32:
        p0, p1, p2, p3, p4, p5, p6 = _ERF_P
        q0, q1, q2, q3, q4, q5, q6, q7, q8, q9 = _ERF_Q

        def erf32(x):
            s = x * x
            small = x + x * ((((((p6 * s + p5) * s + p4) * s + p3) * s + p2) * s + p1) * s + p0)
            t = min(abs(x), _ERF_T_MAX)
            q = ((((((((q9 * t + q8) * t + q7) * t + q6) * t + q5) * t + q4) * t + q3) * t + q2) * t + q1) * t + q0
            big = _ONE - fast_exp(q)
            big = big if x >= 0 else -big                 # erf(+-inf) = +-1 through the clamp
            y = small if abs(x) < _ONE else big
            return y if x == x else x                     # erf(nan) = nan (the clamp loses it)
        return erf32
    return lambda x: math.erf(x)


@overload(fast_expm1, jit_options=_JIT)
def _ov_expm1(x):
    if x == types.float32:
        c2, c3, c4, c5, c6, c7, c8 = _EXPM1_C

        def expm1_32(x):
            small = x + x * x * (c2 + x * (c3 + x * (c4 + x * (c5 + x * (c6 + x * (c7 + x * c8))))))
            big = fast_exp(x) - _ONE                      # nan, +-inf: exp's (nan, inf, -1)
            return small if abs(x) < _HALF else big
        return expm1_32
    return lambda x: math.expm1(x)


@overload(gelu_cdf, jit_options=_JIT)
def _ov_gelu_cdf(x):
    if x == types.float32:
        return lambda x: _HALF + _HALF * fast_erf(x * _RSQRT2_32)
    return lambda x: 0.5 * (1.0 + math.erf(x * (1.0 / math.sqrt(2.0))))


@overload(gelu_pdf, jit_options=_JIT)
def _ov_gelu_pdf(x):
    if x == types.float32:
        return lambda x: fast_exp(-_HALF * x * x) * _RSQRT2PI_32
    return lambda x: math.exp(-0.5 * x * x) * (1.0 / math.sqrt(2.0 * math.pi))


@overload(fast_sigmoid, jit_options=_JIT)
def _ov_sigmoid(x):
    if x == types.float32:
        return lambda x: _HALF + _HALF * fast_tanh(_HALF * x)
    return lambda x: 1.0 / (1.0 + math.exp(-x))

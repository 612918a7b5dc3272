"""bfloat16 matrix products on the CPU (ndiv's `precision="bf16-mixed"`): twin of
ndiv/kernels/reference/bf16.py.

NumPy's bundled OpenBLAS has no bfloat16 GEMM; oneMKL does (`cblas_gemm_bf16bf16f32`: bf16
factors, float32 accumulation and output; AMX or AVX512-BF16 where the CPU has them). MKL is an
optional extra (`pip install "ndiv[bf16]"`, the `mkl` wheel) loaded through ctypes on first use;
`mkl_status()` says whether it is there. The float32 -> bf16 rounding is a Numba kernel (one pass,
round to nearest even, NaN kept), so a product costs two conversions and one bf16 GEMM.
Measured here (one thread, float32 [M, K] @ [K, N]): 1024x512x512 NumPy 3.42 ms, MKL bf16 0.72 ms
(+0.16 ms conversion); 12288x128x512 11.97 vs 3.74 (+0.34) ms.
"""
from __future__ import annotations

import ctypes
import glob
import os
import sys
import threading

import numba
import numpy as np

from ndiv.kernels.config import njit

_ROW_MAJOR, _NO_TRANS, _TRANS = 101, 111, 112
_lock = threading.Lock()
_mkl = None            # the loaded library, or the reason it could not be loaded (str)


def _candidates():
    """Where the `mkl` wheel puts libmkl_rt (the environment's lib/), then the loader's path."""
    env = os.environ.get("NDIV_MKL_RT")
    if env:
        return [env]
    found = []
    for prefix in dict.fromkeys((sys.prefix, sys.base_prefix, os.path.dirname(os.path.dirname(sys.executable)))):
        found += sorted(glob.glob(os.path.join(prefix, "lib", "libmkl_rt.so*")), reverse=True)
    return found + ["libmkl_rt.so.3", "libmkl_rt.so.2", "libmkl_rt.so"]


def _load():
    global _mkl
    with _lock:
        if _mkl is not None:
            return _mkl
        errors = []
        for path in _candidates():
            try:
                lib = ctypes.CDLL(path)
                fn = lib.cblas_gemm_bf16bf16f32_64       # ILP64 entry: 64-bit sizes whatever the layer
            except (OSError, AttributeError) as e:
                errors.append(f"{path}: {e}")
                continue
            i64, f32, ptr = ctypes.c_int64, ctypes.c_float, ctypes.c_void_p
            fn.argtypes = [ctypes.c_int] * 3 + [i64] * 3 + [f32, ptr, i64, ptr, i64, f32, ptr, i64]
            fn.restype = None
            lib.MKL_Set_Num_Threads_Local.argtypes = [ctypes.c_int]
            lib.MKL_Set_Num_Threads_Local.restype = ctypes.c_int
            _mkl = lib
            return lib
        _mkl = ("oneMKL (libmkl_rt with cblas_gemm_bf16bf16f32) was not found: "
                + "; ".join(errors[:3]))
        return _mkl


def mkl_status():
    """(True, path) when MKL's bf16 GEMM is loadable, else (False, the reason)."""
    lib = _load()
    return (True, lib._name) if not isinstance(lib, str) else (False, lib)


@njit()
def _round(bits, out):
    """out[i] = bf16 bits of the float32 whose bits are bits[i] (both 1-d contiguous); one thread
    (the loop vectorizes: 0.5 ms for 2M elements, against 3-12 ms for the GEMMs it feeds)."""
    for i in range(bits.shape[0]):
        b = bits[i]
        rounded = (b + np.uint32(0x7FFF) + ((b >> np.uint32(16)) & np.uint32(1))) >> np.uint32(16)
        quiet = (b >> np.uint32(16)) | np.uint32(0x0040)            # a NaN stays a NaN
        out[i] = np.uint16(quiet if (b & np.uint32(0x7FFFFFFF)) > np.uint32(0x7F800000) else rounded)


def to_bf16(a):
    """float32 [...] (any strides) -> uint16 [...] C-contiguous bfloat16 bits (see the reference)."""
    bits = np.ascontiguousarray(a, dtype=np.float32).reshape(-1).view(np.uint32)
    out = np.empty(bits.shape, np.uint16)
    _round(bits, out)
    return out.reshape(a.shape)


def _threads():
    return numba.get_num_threads()


def _bf16_operand(x):
    """x [R, C] float32 -> (bits, trans, ld): a transposed C-contiguous array (x.T contiguous)
    is rounded in its own layout and handed to MKL with the transpose flag, not copied."""
    if not x.flags.c_contiguous and x.T.flags.c_contiguous:
        return to_bf16(x.T), _TRANS, x.shape[0]
    return to_bf16(x), _NO_TRANS, x.shape[1]


def prepare(x):
    """The bf16 form of a float32 matrix, to reuse across several products (a weight in forward
    and backward). Pass it to gemm_bf16 in place of the array."""
    return Prepared(*_bf16_operand(x), x.shape)


class Prepared:
    __slots__ = ("bits", "trans", "ld", "shape")

    def __init__(self, bits, trans, ld, shape):
        self.bits, self.trans, self.ld, self.shape = bits, trans, ld, shape

    @property
    def T(self):
        """The transposed matrix, sharing the same bits."""
        return Prepared(self.bits, _TRANS + _NO_TRANS - self.trans, self.ld, self.shape[::-1])


def gemm_bf16(a, b, out=None):
    """a [M, K] @ b [K, N] -> float32 [M, N]: a and b (float32 arrays of any strides, or prepare()d)
    rounded to bfloat16, products accumulated in float32 by MKL; into out (C-contiguous float32
    [M, N]) when given."""
    lib = _load()
    if isinstance(lib, str):
        raise RuntimeError(f"bf16 matmul needs oneMKL: {lib}. Install it with pip install \"ndiv[bf16]\"")
    pa = a if isinstance(a, Prepared) else prepare(a)
    pb = b if isinstance(b, Prepared) else prepare(b)
    (m, k), (k2, n) = pa.shape, pb.shape
    if k != k2:
        raise ValueError(f"gemm_bf16: shapes {pa.shape} and {pb.shape} are not aligned")
    if out is not None and (out.shape != (m, n) or out.dtype != np.float32 or not out.flags.c_contiguous):
        raise ValueError(f"gemm_bf16: out must be a C-contiguous float32 array of shape {(m, n)}")
    c = np.empty((m, n), np.float32) if out is None else out
    if m and n:
        if k == 0:
            c[...] = 0
        else:
            lib.MKL_Set_Num_Threads_Local(_threads())
            lib.cblas_gemm_bf16bf16f32_64(_ROW_MAJOR, pa.trans, pb.trans, m, n, k, 1.0, pa.bits.ctypes.data,
                                          max(pa.ld, 1), pb.bits.ctypes.data, max(pb.ld, 1), 0.0, c.ctypes.data,
                                          max(n, 1))
    return c

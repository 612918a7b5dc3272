"""Compile and cache the CUDA sources of ndiv.kernels.cuda (NVRTC, through CuPy's RawModule).

Every source is plain CUDA C++ written against two type names: `T`, how the arrays are stored,
and `A`, the accumulator (float for float32/float16/bfloat16, double for float64), with `ld(T)
-> A` and `st(A) -> T` between them and EXP/LOG/TANH/SQRT/ERF/EXPM1 in A. Half types are stored as
`unsigned short` and converted with one PTX instruction each, so no source includes a CUDA header
(NVRTC then needs no include path, and `nvcc -ptx` checks the same text).

A module is compiled once per process for each (source, dtype, defines) on its first use; CuPy is
imported then, never when ndiv or this package is imported.
"""
from __future__ import annotations

import numpy as np

from ndiv.device import get_cupy

_F32 = """typedef float A;
__device__ __forceinline__ A EXP(A x) { return expf(x); }
__device__ __forceinline__ A LOG(A x) { return logf(x); }
__device__ __forceinline__ A TANH(A x) { return tanhf(x); }
__device__ __forceinline__ A SQRT(A x) { return sqrtf(x); }
__device__ __forceinline__ A ERF(A x) { return erff(x); }
__device__ __forceinline__ A EXPM1(A x) { return expm1f(x); }
#define NEG_INF __int_as_float(0xff800000)
"""
_F64 = """typedef double A;
__device__ __forceinline__ A EXP(A x) { return exp(x); }
__device__ __forceinline__ A LOG(A x) { return log(x); }
__device__ __forceinline__ A TANH(A x) { return tanh(x); }
__device__ __forceinline__ A SQRT(A x) { return sqrt(x); }
__device__ __forceinline__ A ERF(A x) { return erf(x); }
__device__ __forceinline__ A EXPM1(A x) { return expm1(x); }
#define NEG_INF ((double)__int_as_float(0xff800000))
"""
PRELUDES = {
    "float32": _F32 + """typedef float T;
__device__ __forceinline__ A ld(T x) { return x; }
__device__ __forceinline__ T st(A x) { return x; }
""",
    "float64": _F64 + """typedef double T;
__device__ __forceinline__ A ld(T x) { return x; }
__device__ __forceinline__ T st(A x) { return x; }
""",
    "float16": _F32 + """typedef unsigned short T;
__device__ __forceinline__ A ld(T x) { float f; asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(x)); return f; }
__device__ __forceinline__ T st(A x) { T h; asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(x)); return h; }
""",
    "bfloat16": _F32 + """typedef unsigned short T;
__device__ __forceinline__ A ld(T x) { return __uint_as_float(((unsigned int)x) << 16); }
__device__ __forceinline__ T st(A x) { T h; asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(h) : "f"(x)); return h; }
""",
}

# Block-wide reductions shared by the row kernels (blockDim.x a multiple of 32, at most 1024).
REDUCE = """
__device__ __forceinline__ A warp_sum(A v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
// max that keeps a nan (fmax drops it), as NumPy's max and torch's do
__device__ __forceinline__ A max_nan(A a, A b) { return (b > a || b != b) ? b : a; }
__device__ __forceinline__ A warp_max(A v) {
    for (int o = 16; o > 0; o >>= 1) v = max_nan(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
// every thread gets the result; sh holds 32 values and is free again on return
__device__ A block_sum(A v, A* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : (A)0;
    return warp_sum(v);
}
__device__ A block_max(A v, A* sh) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = (blockDim.x + 31) >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    v = lane < nw ? sh[lane] : NEG_INF;
    return warp_max(v);
}
"""

_MODULES: dict = {}


def dtype_name(dtype) -> str:
    """'float32', 'float64', 'float16' or 'bfloat16' (ml_dtypes' numpy type) for a kernel's prelude."""
    name = dtype if isinstance(dtype, str) else np.dtype(dtype).name   # 'bfloat16' needs no ml_dtypes
    if name not in PRELUDES:
        raise TypeError(f"ndiv.kernels.cuda: dtype {name} is not supported; use float32 or float64 "
                        f"(attention also takes float16 and bfloat16)")
    return name


def accumulator(dtype):
    """The numpy dtype of A for storage dtype `dtype` (float64 stays float64, the rest float32)."""
    return np.dtype(np.float64 if dtype_name(dtype) == "float64" else np.float32)


def full_source(source: str, dtype, defines: dict | None = None) -> str:
    """The exact text NVRTC compiles: prelude for dtype, #defines, then the kernel source."""
    lines = [f"#define {k} {v}" for k, v in sorted((defines or {}).items())]
    return PRELUDES[dtype_name(dtype)] + "\n".join(lines) + "\n" + source


def function(source: str, name: str, dtype, defines: dict | None = None):
    """The compiled kernel `name` of source for dtype (and defines), compiled once per process."""
    key = (id(source), dtype_name(dtype), tuple(sorted((defines or {}).items())))
    mod = _MODULES.get(key)
    if mod is None:
        cp = get_cupy()
        mod = _MODULES[key] = cp.RawModule(code=full_source(source, dtype, defines), options=("--std=c++17",))
    return mod.get_function(name)


def launch(kernel, n: int, args, threads: int = 256):
    """kernel over n elements, one thread each (a grid-stride loop in the kernel covers the rest)."""
    if n <= 0:
        return
    blocks = min((n + threads - 1) // threads, 65535 * 8)
    kernel((blocks,), (threads,), args)


def i32(x) -> np.int32:
    return np.int32(x)


def i64(x) -> np.int64:
    return np.int64(x)

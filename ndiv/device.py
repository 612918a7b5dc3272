"""The one place that decides the device of an array and which kernels run on it.

`array_module(x)` answers numpy or cupy from the array's type, without importing CuPy to find
out; `kernels_for(x)` answers the matching kernel package (ndiv.kernels.cpu or .cuda).
"""
from __future__ import annotations

import numpy as np

_CUPY = None


def get_cupy():
    """Import CuPy on first use, with one clear error when it (or a GPU) is missing."""
    global _CUPY
    if _CUPY is None:
        try:
            import cupy
            cupy.cuda.runtime.getDeviceCount()
        except Exception as e:  # ImportError, or CUDARuntimeError without a driver/GPU
            raise RuntimeError(
                "device='cuda' needs CuPy and an NVIDIA GPU: install ndiv[cuda12] or ndiv[cuda13] "
                f"(cupy-cuda12x / cupy-cuda13x) on a machine with a CUDA driver ({type(e).__name__}: {e})"
            ) from None
        _CUPY = cupy
    return _CUPY


def is_cuda_array(x) -> bool:
    return type(x).__module__.startswith("cupy")


def array_module(x):
    """numpy for numpy arrays and scalars, cupy for cupy arrays."""
    if type(x) is np.ndarray or not is_cuda_array(x):
        return np
    return get_cupy()


def device_of(x) -> str:
    return "cuda" if is_cuda_array(x) else "cpu"


def kernels_for(x):
    """The kernel package for x's device: ndiv.kernels.cpu (Numba) or ndiv.kernels.cuda (CuPy)."""
    if array_module(x) is np:
        from ndiv.kernels import cpu
        return cpu
    from ndiv.kernels import cuda
    return cuda


def check_device(device: str) -> str:
    if device in ("cpu", "cuda"):
        return device
    if isinstance(device, str) and device.startswith("cuda:"):
        return "cuda"
    raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")


def to_device(data, device: str):
    """Move a raw array to 'cpu' (numpy) or 'cuda' (cupy)."""
    device = check_device(device)
    if device == "cpu":
        return data.get() if is_cuda_array(data) else data
    cp = get_cupy()
    return cp.asarray(data)

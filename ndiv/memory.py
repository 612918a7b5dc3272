"""A memory pool for CPU op outputs and gradients, reused across training steps.

Why: NumPy allocates each large array (>= ~128 KiB) with mmap and returns it with munmap, so
every training step pays the page faults of all its large outputs again. The pool keeps those
buffers and hands a buffer out again once nothing refers to it any more: a buffer is free
exactly when the pool's own list holds its only reference (views keep their base alive, so a
buffer still seen through a view is never reused). No tensor needs to tell the pool it died.

    ndiv.memory.pool.enable()      # or ndiv.memory.pool.enabled = True
    ... train ...
    ndiv.memory.pool.stats()       # {'allocations': ..., 'reuses': ..., 'bytes_reused': ..., 'peak_bytes': ...}

CuPy arrays use CuPy's own pool; this one serves numpy only. Off by default (see README for
the measurement that decided it).

`retained_heap()` is the default remedy for the same page faults, during a fit: on Linux with
glibc it raises malloc's mmap and trim thresholds (mallopt) so that freed large arrays stay in
the heap and the next step's allocations reuse them without faulting, and gives the free memory
back to the system (malloc_trim) when the fit ends. BiTCN's step on AirPassengers (1024 windows
of 16 channels) went from 53 to 32 ms with it. It also turns off NumPy's transparent-huge-page
advice for the fit (see retained_heap). NDIV_RETAIN_HEAP=0 turns it off.
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import os
import sys
import threading

import numpy as np

_getrefcount = sys.getrefcount


def _free_refcount() -> int:
    """The reference count a pooled buffer shows when only the pool's list holds it."""
    lst = [np.empty(1)]
    for arr in lst:
        return _getrefcount(arr)
    return 3  # pragma: no cover


class MemoryPool:
    """Caches numpy buffers of at least `min_bytes`, keyed by (shape, dtype)."""

    def __init__(self, enabled: bool = False, min_bytes: int = 1 << 16):
        self.enabled = enabled
        self.min_bytes = min_bytes
        self._free_rc = _free_refcount()
        self._buffers: dict = {}
        self._lock = threading.Lock()  # threads share the pool: one hands out a buffer at a time
        self.reset_stats()

    def enable(self, on: bool = True) -> None:
        self.enabled = on
        if not on:
            self.clear()

    def disable(self) -> None:
        self.enable(False)

    def reset_stats(self) -> None:
        self.allocations = 0       # fresh buffers made by the pool
        self.reuses = 0            # requests served from a cached buffer
        self.bytes_reused = 0
        self.bytes_held = sum(a.nbytes for lst in getattr(self, "_buffers", {}).values() for a in lst)
        self.peak_bytes = self.bytes_held  # bytes of all buffers the pool keeps (in use or free)

    def stats(self) -> dict:
        return {"enabled": self.enabled, "allocations": self.allocations, "reuses": self.reuses,
                "bytes_reused": self.bytes_reused, "bytes_held": self.bytes_held, "peak_bytes": self.peak_bytes}

    def clear(self) -> None:
        """Forget every cached buffer (buffers still in use stay valid: they are plain arrays)."""
        with self._lock:
            self._buffers.clear()
        self.bytes_held = 0

    def empty(self, shape, dtype):
        """An uninitialised numpy array of shape and dtype, from the cache when one is free."""
        with self._lock:
            return self._empty(shape, np.dtype(dtype))

    def _empty(self, shape, dtype):
        key = (shape, dtype)
        lst = self._buffers.get(key)
        if lst is None:
            lst = self._buffers[key] = []
        free_rc = self._free_rc
        for arr in lst:
            if _getrefcount(arr) == free_rc:
                self.reuses += 1
                self.bytes_reused += arr.nbytes
                return arr
        arr = np.empty(shape, dtype)
        lst.append(arr)
        self.allocations += 1
        self.bytes_held += arr.nbytes
        if self.bytes_held > self.peak_bytes:
            self.peak_bytes = self.bytes_held
        return arr


pool = MemoryPool()


def out_buffer(xp, shape, dtype, nbytes: int):
    """A pooled output buffer for an op on numpy data, or None to let NumPy allocate.

    nbytes: the size of the result, so that small results skip the pool at no cost.
    """
    if not pool.enabled or nbytes < pool.min_bytes or xp is not np:
        return None
    return pool.empty(shape, dtype)


def pooled_matmul(a, b):
    """a @ b for a [..., K] and a matrix b [K, N], into a pooled buffer when the pool is on and
    both are numpy arrays (else a plain a @ b)."""
    if pool.enabled and type(a) is np.ndarray and type(b) is np.ndarray and b.ndim == 2 and a.ndim >= 2 \
            and a.shape[-1] == b.shape[0]:
        shape = a.shape[:-1] + b.shape[1:]
        dtype = np.result_type(a.dtype, b.dtype)
        out = out_buffer(np, shape, dtype, int(np.prod(shape)) * dtype.itemsize)
        if out is not None:
            return np.matmul(a, b, out=out)
    return a @ b


# -- glibc heap policy during fits -----------------------------------------------------------------
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
# arrays below 512 MiB come from the heap, not from fresh mmaps; free memory at the heap's top is
# kept up to 2 GiB. TFT on M4 Hourly (activations of 75 MB), 3 steps at one thread: a fit 42.7 ->
# 29.1 s and 24.5 -> 13.8 s of system time against 64 MiB / 512 MiB, peak RSS +2%; VanillaTransformer
# 29.6 -> 28.1 s, NHITS unchanged.
_MMAP_THRESHOLD = 512 << 20
_TRIM_THRESHOLD = 2048 << 20
_heap = {"depth": 0, "libc": None, "lock": threading.Lock()}


def _glibc():
    if _heap["libc"] is None:
        _heap["libc"] = False
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
                libc.mallopt, libc.malloc_trim    # glibc (musl has neither)
                _heap["libc"] = libc
            except (OSError, AttributeError):
                pass
    return _heap["libc"]


def _numpy_hugepage_switch():
    """NumPy's switch for madvise(MADV_HUGEPAGE) on arrays of 4 MiB and more (Linux), or None."""
    try:
        from numpy._core.multiarray import _set_madvise_hugepage
    except ImportError:  # pragma: no cover - NumPy 1.x
        try:
            from numpy.core.multiarray import _set_madvise_hugepage
        except ImportError:
            return None
    return _set_madvise_hugepage


@contextlib.contextmanager
def retained_heap():
    """Inside: freed arrays below 512 MiB stay in glibc's heap for the next allocation (no page
    faults per training step), and NumPy stops asking for transparent huge pages. On exit of the
    outermost one: glibc's defaults back (dynamic thresholds: 128 KiB mmap, 128 KiB trim),
    malloc_trim(0), and NumPy's huge-page setting as it was. NDIV_RETAIN_HEAP=0 turns both off;
    the malloc part is a no-op off glibc, and NumPy's setting is left alone when the user set
    NUMPY_MADVISE_HUGEPAGE. Nested and concurrent fits share one setting (counted).

    Why no huge pages: with the kernel's THP defrag at "madvise" (this project's machines), a page
    fault in a madvised region compacts memory synchronously. A step's large fresh arrays then spend
    most of their time in the kernel: Informer on M4 Hourly took 13.5 s a step with 87 s of system
    time against 6.8 s and 22 s without (tools/profile_model.py, one thread)."""
    on = os.environ.get("NDIV_RETAIN_HEAP", "1") != "0"
    libc = _glibc() if on else False
    switch = _numpy_hugepage_switch() if on and "NUMPY_MADVISE_HUGEPAGE" not in os.environ else None
    if not libc and switch is None:
        yield
        return
    with _heap["lock"]:
        if _heap["depth"] == 0:
            if libc:
                libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD)
                libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
            _heap["hugepage"] = switch(False) if switch is not None else None
        _heap["depth"] += 1
    try:
        yield
    finally:
        with _heap["lock"]:
            _heap["depth"] -= 1
            if _heap["depth"] == 0:
                if libc:
                    libc.mallopt(_M_MMAP_THRESHOLD, 128 << 10)
                    libc.mallopt(_M_TRIM_THRESHOLD, 128 << 10)
                    libc.malloc_trim(0)
                prev = _heap.pop("hugepage", None)
                if prev is not None:
                    _numpy_hugepage_switch()(prev)

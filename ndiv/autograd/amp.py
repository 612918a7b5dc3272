"""Mixed precision on the CPU: matrix products in bfloat16, everything else in float32.

    with ndiv.autocast("cpu", dtype="bfloat16"):     # as torch.autocast; per thread, like no_grad
        loss = loss_fn(model(x), y)
        loss.backward()

Inside, the matrix products of float32 CPU arrays (nn.Linear, the fused Linear + ReLU, `@` with a
2-d right operand, the LSTM/GRU/RNN input and recurrent products; inner size >= MIN_K) round
both factors to bfloat16 and accumulate in float32 (oneMKL's bf16 GEMM, see ndiv/kernels/cpu/bf16.py), in forward and in
backward. Unlike torch's autocast, every result stays float32: parameters, gradients, optimizer
state, reductions, activations and losses are float32 as without autocast; only the GEMMs'
inputs lose mantissa bits (8 instead of 24). Float64 and complex products are never touched, so
gradcheck inside autocast checks the float64 arithmetic as outside.
Models take it as NeuralForecast's `precision="bf16-mixed"`, for their training steps.
"""
from __future__ import annotations

import threading

import numpy as np

from ndiv.memory import pooled_matmul


class _Local(threading.local):
    enabled = False


_state = _Local()


def is_autocast_enabled() -> bool:
    return _state.enabled


# A product whose inner size K is below this stays float32: rounding both factors costs about as
# much as the bf16 GEMM saves there (measured: [24576, 8] @ [8, 128] 1.03 ms float32, 0.91 bf16).
MIN_K = 16


def active(*arrays, k: int = MIN_K) -> bool:
    """Whether a product of these arrays, of inner size k, runs in bf16: inside autocast, float32
    NumPy arrays, k >= MIN_K."""
    if not _state.enabled or k < MIN_K:
        return False
    return all(type(a) is np.ndarray and a.dtype == np.float32 for a in arrays)


def check_available() -> None:
    """Raise, with what to install, when MKL's bf16 GEMM cannot be loaded."""
    from ndiv.kernels.cpu.bf16 import mkl_status
    ok, why = mkl_status()
    if not ok:
        raise RuntimeError(f"bfloat16 matrix products need oneMKL, which ndiv loads from the `mkl` wheel: {why}. "
                           "Install it with pip install \"ndiv[bf16]\", or train in float32 (precision=32)")


class autocast:
    """Context manager (and decorator): bfloat16 matrix products on the CPU (see the module)."""

    def __init__(self, device_type: str = "cpu", dtype="bfloat16", enabled: bool = True):
        if device_type != "cpu":
            raise ValueError(f"autocast: ndiv runs bf16 matrix products on the CPU only, got device_type={device_type!r}; "
                             "on a GPU train in float32")
        name = getattr(dtype, "name", None) or str(dtype)
        if name.replace("torch.", "") not in ("bfloat16", "bf16"):
            raise ValueError(f"autocast: dtype must be 'bfloat16', got {dtype!r} (float16 GEMMs are not offered on the CPU)")
        self.enabled = bool(enabled)
        if self.enabled:
            check_available()

    def __enter__(self):
        self.prev = _state.enabled
        _state.enabled = self.enabled
        return self

    def __exit__(self, *exc):
        _state.enabled = self.prev
        return False

    def __call__(self, fn):
        import functools

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            with autocast(dtype="bfloat16", enabled=self.enabled):
                return fn(*args, **kwargs)
        return wrapper


_bf16 = None      # ndiv.kernels.cpu.bf16 once an operand was prepared (no import on the float32 path)


def operand(x):
    """x [R, C] rounded to bf16 once (ndiv.kernels.cpu.bf16.prepare), for the forward's product
    and the backward's two; callers decide with active() first."""
    global _bf16
    from ndiv.kernels.cpu import bf16
    _bf16 = bf16
    return bf16.prepare(x)


def matmul(a, b):
    """a [M, K] @ b [K, N], 2-d arrays or operand()s: bf16 factors when an operand was prepared
    (so a backward runs its products in its forward's precision, as torch), else BLAS float32."""
    if _bf16 is not None and (isinstance(a, _bf16.Prepared) or isinstance(b, _bf16.Prepared)):
        return _bf16.gemm_bf16(a, b)
    return pooled_matmul(a, b)                          # float32 BLAS, into a pooled buffer

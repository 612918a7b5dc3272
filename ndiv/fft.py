"""ndiv.fft: rfft / irfft along one axis, with gradients (torch's complex-gradient convention)."""
from __future__ import annotations

from ndiv.autograd.ops.linalg import Irfft, Rfft
from ndiv.autograd.tensor import Tensor


def rfft(x: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """Real input [..., L] -> complex [..., n//2 + 1] (n defaults to L)."""
    _check_norm(norm)
    return Rfft.apply(x, n=n, axis=dim, norm=norm or "backward")


def irfft(x: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """Complex input [..., m] -> real [..., n] (n defaults to 2 (m - 1))."""
    _check_norm(norm)
    if x.dtype.kind != "c":
        from ndiv.autograd.methods import complex as _complex, zeros_like
        x = _complex(x, zeros_like(x))
    return Irfft.apply(x, n=n, axis=dim, norm=norm or "backward")


def _check_norm(norm):
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f"norm must be 'backward', 'ortho' or 'forward', got {norm!r}")

"""ndiv.fft: fft / ifft and rfft / irfft along one axis, with gradients (torch's complex-gradient
convention: the gradient of a complex tensor is dL/dRe + i dL/dIm).

    >>> x = ndiv.randn(2, 8, dtype="float64", requires_grad=True)
    >>> y = ndiv.fft.fft(x)                      # complex128 [2, 8]
    >>> (y.real ** 2 + y.imag ** 2).sum().backward()
"""
from __future__ import annotations

from ndiv.autograd.ops.linalg import Fft, Irfft, Rfft
from ndiv.autograd.tensor import Tensor


def fft(x: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """Real or complex input [..., L] -> complex [..., n] (n defaults to L; x is cropped or
    zero-padded to n). norm: 'backward' (no scaling, default), 'ortho' (1/sqrt(n)), 'forward' (1/n)."""
    _check(x, n, dim, norm, "fft")
    return Fft.apply(x, n=n, axis=dim, norm=norm or "backward", inverse=False)


def ifft(x: Tensor, n: int | None = None, dim: int = -1, norm: str | None = None) -> Tensor:
    """Inverse of fft: real or complex [..., L] -> complex [..., n]; 'backward' scales by 1/n."""
    _check(x, n, dim, norm, "ifft")
    return Fft.apply(x, n=n, axis=dim, norm=norm or "backward", inverse=True)


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


def _check(x, n, dim, norm, name):
    _check_norm(norm)
    if not -max(x.ndim, 1) <= dim < max(x.ndim, 1) or x.ndim == 0:
        raise ValueError(f"{name}: dim={dim} is out of range for a tensor of shape {tuple(x.shape)}; give an existing axis")
    if n is not None and (not isinstance(n, int) or n < 1):
        raise ValueError(f"{name}: n must be a positive integer (the number of points), got {n!r}")
    if x.dtype.kind not in "fc":
        raise TypeError(f"{name}: expected a floating-point or complex tensor, got dtype {x.dtype}; convert first, e.g. x.double()")


def _check_norm(norm):
    if norm not in (None, "backward", "ortho", "forward"):
        raise ValueError(f"norm must be 'backward', 'ortho' or 'forward', got {norm!r}")

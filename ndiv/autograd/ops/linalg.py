"""Matrix products and einsum; the FFTs (rfft, irfft, fft, ifft) along one axis.

Complex operands follow torch's convention: grad = dL/dRe + i dL/dIm, so the adjoint of a
product uses the conjugate of the other factor.
"""
from __future__ import annotations

from ndiv.autograd import amp
from ndiv.autograd.function import Function
from ndiv.autograd.ops.elementwise import _conj
from ndiv.device import array_module
from ndiv.memory import pooled_matmul


def _mm(a, b):
    """a @ b, into a pooled buffer when the pool is on and b is a matrix."""
    return pooled_matmul(a, b)


def _swap_last(x):
    return x.swapaxes(-1, -2)


class MatMul(Function):
    """a @ b with NumPy's matmul rules (1-d operands, batch broadcasting)."""
    def forward(self, a, b):
        if b.ndim == 2 and a.ndim >= 2 and a.shape[-1] == b.shape[0] and amp.active(a, b, k=b.shape[0]):
            # bf16 factors (inside ndiv.autocast): [..., K] @ [K, N] as one 2-d product
            self.bf16 = (amp.operand(a.reshape(-1, a.shape[-1])), amp.operand(b), a.shape)
            return amp.matmul(self.bf16[0], self.bf16[1]).reshape(a.shape[:-1] + b.shape[1:])
        self.bf16 = None
        try:
            y = _mm(a, b)
        except ValueError:
            raise ValueError(
                f"matmul: shapes {tuple(a.shape)} and {tuple(b.shape)} are not aligned "
                f"(the last axis of the first must equal the {'only' if b.ndim == 1 else 'second-to-last'} axis of the second)"
            ) from None
        self.save_for_backward(a, b)
        return y

    def backward(self, gy):
        if self.bf16 is not None:
            pa, pb, a_shape = self.bf16
            g2 = gy.reshape(-1, gy.shape[-1])
            return (amp.matmul(g2, pb.T).reshape(a_shape) if self.needs_input_grad[0] else None,
                    amp.matmul(pa.T, g2) if self.needs_input_grad[1] else None)
        a, b = self.saved
        xp = array_module(gy)
        if not gy.flags.c_contiguous:
            gy = xp.ascontiguousarray(gy)  # BLAS needs real strides (a summed loss gives a broadcast view)
        if a.ndim == 1 or b.ndim == 1:  # promote vectors to matrices, then drop the added axes
            a2 = a[None, :] if a.ndim == 1 else a
            b2 = b[:, None] if b.ndim == 1 else b
            g2 = gy[..., None] if b.ndim == 1 else gy
            g2 = xp.expand_dims(g2, -2) if a.ndim == 1 else g2
            ga = gb = None
            if self.needs_input_grad[0]:
                ga = g2 @ _swap_last(_conj(b2))
                ga = ga[..., 0, :] if a.ndim == 1 else ga   # the tape sums any batch axes
            if self.needs_input_grad[1]:
                gb = _swap_last(_conj(a2)) @ g2
                gb = gb[..., 0] if b.ndim == 1 else gb
            return ga, gb
        ga = _mm(gy, _swap_last(_conj(b))) if self.needs_input_grad[0] and b.ndim == 2 else (
            gy @ _swap_last(_conj(b)) if self.needs_input_grad[0] else None)
        if self.needs_input_grad[1]:
            if a.ndim >= 2 and b.ndim == 2:
                # [..., M, K]^T @ [..., M, N] summed over the batch: one GEMM on the flattened batch
                a2 = a.reshape(-1, a.shape[-1])
                gb = _mm(_conj(a2).T, gy.reshape(-1, gy.shape[-1]))
            else:
                gb = _swap_last(_conj(a)) @ gy
        else:
            gb = None
        return ga, gb


class Einsum(Function):
    """einsum over explicit subscripts 'ij,jk->ik' (no ellipsis); one gradient einsum per input."""
    def forward(self, *xs, subscripts):
        xp = array_module(xs[0])
        ins, out = subscripts.replace(" ", "").split("->")
        self.ins, self.out = ins.split(","), out
        if len(self.ins) != len(xs):
            raise ValueError(f"einsum: {subscripts!r} names {len(self.ins)} operands, got {len(xs)}")
        for sub in self.ins:
            if len(set(sub)) != len(sub) or "." in sub:
                raise ValueError(f"einsum: operand subscripts {sub!r}: repeated indices and '...' are not supported")
        self.save_for_backward(*xs)
        return xp.einsum(subscripts, *xs, optimize=len(xs) > 2)

    def backward(self, gy):
        xs = self.saved
        xp = array_module(gy)
        grads = []
        for i, (x, sub) in enumerate(zip(xs, self.ins)):
            if not self.needs_input_grad[i]:
                grads.append(None)
                continue
            others = [_conj(o) for j, o in enumerate(xs) if j != i]
            other_subs = [s for j, s in enumerate(self.ins) if j != i]
            # letters of x that appear nowhere else were summed away: broadcast them back
            known = set(self.out).union(*other_subs)
            missing = [c for c in sub if c not in known]
            g = xp.einsum(",".join([self.out] + other_subs) + "->" + "".join(c for c in sub if c in known), gy, *others, optimize=True)
            if missing:  # put size-1 axes where the summed-away letters were, then broadcast
                g = g.reshape([1 if c in missing else x.shape[k] for k, c in enumerate(sub)])
                g = xp.broadcast_to(g, x.shape)
            grads.append(g)
        return tuple(grads)


class Rfft(Function):
    """Real-to-complex FFT along axis (n, norm as numpy/torch)."""
    def forward(self, x, n=None, axis=-1, norm="backward"):
        xp = array_module(x)
        self.n_in, self.axis, self.norm = x.shape[axis], axis, norm
        self.n = n if n is not None else x.shape[axis]
        y = xp.fft.rfft(x, n=self.n, axis=axis, norm=norm)
        return y.astype(xp.complex64 if x.dtype == xp.float32 else y.dtype, copy=False)

    def backward(self, gy):
        xp = array_module(gy)
        n, axis = self.n, self.axis
        # dL/dx_t = Re(sum_k g_k e^{+2 pi i k t / n}): halve the bins that irfft counts twice; the
        # norm's factor goes into the same weights (one pass), in gy's precision (complex64 stays)
        scale = {"backward": n, "ortho": n ** 0.5, "forward": 1.0}[self.norm]
        w = xp.full(gy.shape[axis], 0.5 * scale, dtype=gy.real.dtype)
        w[0] = scale
        if n % 2 == 0:
            w[-1] = scale
        shape = [1] * gy.ndim
        shape[axis] = -1
        g = xp.fft.irfft(gy * w.reshape(shape), n=n, axis=axis)
        return _fit(g, self.n_in, axis).astype(gy.real.dtype, copy=False)


class Irfft(Function):
    """Complex-to-real inverse FFT along axis; the output has n real points."""
    def forward(self, z, n=None, axis=-1, norm="backward"):
        xp = array_module(z)
        self.m, self.axis, self.norm = z.shape[axis], axis, norm
        self.n = n if n is not None else 2 * (z.shape[axis] - 1)
        y = xp.fft.irfft(z, n=self.n, axis=axis, norm=norm)
        return y.astype(xp.float32 if z.dtype == xp.complex64 else y.dtype, copy=False)

    def backward(self, gy):
        xp = array_module(gy)
        n, axis = self.n, self.axis
        g = xp.fft.rfft(gy, n=n, axis=axis)  # [.., n//2 + 1]
        k = g.shape[axis]
        scale = {"backward": 1.0 / n, "ortho": n ** -0.5, "forward": 1.0}[self.norm]
        w = xp.full(k, 2.0 * scale, dtype=g.real.dtype)      # the norm's factor in the same pass
        w[0] = scale
        if n % 2 == 0:
            w[-1] = scale
        shape = [1] * g.ndim
        shape[axis] = -1
        g *= w.reshape(shape)
        # the imaginary parts of the DC (and Nyquist) bins do not reach the output
        idx = [slice(None)] * g.ndim
        idx[axis] = 0
        g[tuple(idx)] = g[tuple(idx)].real
        if n % 2 == 0:
            idx[axis] = k - 1
            g[tuple(idx)] = g[tuple(idx)].real
        g = _fit(g, self.m, axis)
        return g.astype(xp.complex64 if gy.dtype == xp.float32 else g.dtype, copy=False)



class Fft(Function):
    """Complex FFT (inverse=False) or inverse FFT along axis of a real or complex input.

    Both are linear maps; the gradient (torch's dL/dRe + i dL/dIm) is the adjoint, the opposite
    transform with the dual norm ('backward' <-> 'forward'), then the crop/pad of n undone.
    A real input gets the real part.
    """
    def forward(self, x, n=None, axis=-1, norm="backward", inverse=False):
        xp = array_module(x)
        self.n_in, self.axis, self.norm, self.inverse = x.shape[axis], axis, norm, inverse
        self.real_in, self.dtype = x.dtype.kind != "c", x.dtype
        y = (xp.fft.ifft if inverse else xp.fft.fft)(x, n=n, axis=axis, norm=norm)
        single = x.dtype in (xp.float32, xp.complex64)
        return y.astype(xp.complex64 if single else xp.complex128, copy=False)

    def backward(self, gy):
        xp = array_module(gy)
        dual = {"backward": "forward", "ortho": "ortho", "forward": "backward"}[self.norm]
        g = _fit((xp.fft.fft if self.inverse else xp.fft.ifft)(gy, axis=self.axis, norm=dual), self.n_in, self.axis)
        return (g.real if self.real_in else g).astype(self.dtype, copy=False)

def _fit(g, size, axis):
    """Crop or zero-pad g along axis to size (the gradient of an FFT's implicit pad/crop)."""
    xp = array_module(g)
    cur = g.shape[axis]
    if cur == size:
        return g
    if cur > size:
        idx = [slice(None)] * g.ndim
        idx[axis] = slice(0, size)
        return g[tuple(idx)]
    pad = [(0, 0)] * g.ndim
    pad[axis] = (0, size - cur)
    return xp.pad(g, pad)

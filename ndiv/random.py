"""The global random generator, and the sampling functions that draw from it.

`ndiv.manual_seed(seed)` makes randn, rand, randint, multinomial, nn.init and dropout repeatable.
The draws carry no gradient.

Injecting draws. A parity test against torch cannot reproduce torch's random stream; it can
hand torch's draws to ndiv instead. Inside `inject(...)` the next calls of `ndiv.randint`,
`ndiv.multinomial` and `ndiv.rand` return the given arrays, in order, without touching the
generator. Each array is checked against the call (shape, integer or float kind, range); a call
with no array left, or an array left unused when the block ends, is an error:

    >>> import numpy as np, ndiv
    >>> with ndiv.random.inject(randint=[np.array([[3, 0], [1, 1]])]):
    ...     idx = ndiv.randint(4, (2, 2))        # e.g. Informer's torch.randint(L_K, (L_Q, k))
    >>> idx.numpy().tolist()
    [[3, 0], [1, 1]]
"""
from __future__ import annotations

import contextlib
from collections import deque

import numpy as np

from ndiv.autograd.tensor import DEFAULT_DTYPE, Tensor

_RNG = np.random.default_rng()
_INJECTED: dict | None = None  # name -> deque of arrays, while an inject() block is open
_KINDS = ("randint", "multinomial", "rand")


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that ndiv.randn, rand, randint, multinomial, nn.init and dropout draw from."""
    global _RNG
    _RNG = np.random.default_rng(seed)
    return _RNG


def get_rng() -> np.random.Generator:
    return _RNG


@contextlib.contextmanager
def inject(randint=(), multinomial=(), rand=()):
    """Serve the next randint / multinomial / rand calls from these arrays (numpy, ndiv or CPU
    torch tensors), in order. Blocks nest: the innermost serves, the outer resumes after it."""
    global _INJECTED
    outer = _INJECTED
    _INJECTED = {name: deque(np.asarray(a.numpy() if hasattr(a, "numpy") else a) for a in arrays)
                 for name, arrays in zip(_KINDS, (randint, multinomial, rand))}
    mine = _INJECTED
    try:
        yield
    finally:
        _INJECTED = outer
    left = {name: len(q) for name, q in mine.items() if q}
    if left:
        raise RuntimeError(f"ndiv.random.inject: arrays left unused at the end of the block: {left}; "
                           "give exactly one array per call")


def _injected(name: str, shape: tuple, integer: bool, low, high, where: str):
    """The next injected array for `name`, checked; None when no inject() block is open."""
    if _INJECTED is None:
        return None
    queue = _INJECTED[name]
    if not queue:
        raise RuntimeError(f"ndiv.random.inject: {name} was called ({where}) with no injected array left; "
                           f"pass one more array in inject({name}=[...])")
    a = queue.popleft()
    if a.shape != tuple(shape):
        raise ValueError(f"ndiv.random.inject: the injected {name} array has shape {a.shape}, the call ({where}) "
                         f"draws shape {tuple(shape)}")
    if integer and a.dtype.kind not in "iu":
        raise TypeError(f"ndiv.random.inject: the injected {name} array must hold integers, got dtype {a.dtype}")
    if not integer and a.dtype.kind != "f":
        raise TypeError(f"ndiv.random.inject: the injected {name} array must hold floats, got dtype {a.dtype}")
    if a.size and (a.min() < low or a.max() >= high):
        raise ValueError(f"ndiv.random.inject: the injected {name} array has values in [{a.min()}, {a.max()}], "
                         f"outside [{low}, {high}) of the call ({where})")
    return a


def _shape(size, name: str) -> tuple:
    if size is None:
        raise TypeError(f"{name}: missing the size argument, e.g. {name}(..., (3, 4))")
    shape = (size,) if isinstance(size, (int, np.integer)) else tuple(size)
    if any(not isinstance(n, (int, np.integer)) or n < 0 for n in shape):
        raise ValueError(f"{name}: size must be non-negative integers, got {size!r}")
    return shape


def rand(*size, dtype=None, device: str = "cpu", requires_grad: bool = False) -> Tensor:
    """Uniform samples in [0, 1) of shape size (ints or one tuple), as torch.rand."""
    shape = tuple(size[0]) if len(size) == 1 and isinstance(size[0], (tuple, list)) else tuple(size)
    dtype = np.dtype(dtype or DEFAULT_DTYPE)
    data = _injected("rand", shape, False, 0.0, 1.0, f"rand{shape}")
    if data is None and dtype.kind == "c":  # torch.rand(..., dtype=cfloat): both parts in [0, 1)
        data = np.empty(shape, dtype)
        data.real, data.imag = _RNG.random(shape), _RNG.random(shape)
    data = _RNG.random(shape) if data is None else data
    return Tensor(data.astype(dtype), requires_grad=requires_grad, device=device)


def randint(low, high=None, size=None, *, dtype=None, device: str = "cpu") -> Tensor:
    """Integers uniform in [low, high) of shape size, as torch.randint: randint(high, size) or
    randint(low, high, size). dtype defaults to int64."""
    if size is None and isinstance(high, (tuple, list)):
        low, high, size = 0, low, high
    elif high is None:
        low, high = 0, low
    shape = _shape(size, "randint")
    if not high > low:
        raise ValueError(f"randint: high must be greater than low, got low={low}, high={high}")
    data = _injected("randint", shape, True, low, high, f"randint({low}, {high}, {shape})")
    data = _RNG.integers(low, high, size=shape) if data is None else data
    return Tensor(data.astype(dtype or np.int64), device=device)


def multinomial(input, num_samples: int, replacement: bool = False) -> Tensor:
    """Category indices drawn from the rows of input ([C] or [B, C] non-negative weights, not
    necessarily normalized) -> int64 [num_samples] or [B, num_samples], as torch.multinomial.
    Without replacement a row yields distinct categories (sequential draws, renormalized)."""
    device = input.device if isinstance(input, Tensor) else "cpu"
    p = np.asarray(input.numpy() if isinstance(input, Tensor) else input, dtype=np.float64)
    if p.ndim not in (1, 2):
        raise ValueError(f"multinomial: input must be 1-D [C] or 2-D [B, C] weights, got shape {p.shape}")
    if not isinstance(num_samples, (int, np.integer)) or num_samples < 1:
        raise ValueError(f"multinomial: num_samples must be a positive integer, got {num_samples!r}")
    rows = p.reshape(-1, p.shape[-1])
    if not np.isfinite(rows).all() or (rows < 0).any():
        raise ValueError("multinomial: the weights must be finite and non-negative")
    if (rows.sum(axis=1) <= 0).any():
        raise ValueError("multinomial: every row of weights must have a positive sum")
    if not replacement and (num_samples > (rows > 0).sum(axis=1)).any():
        raise ValueError(f"multinomial: cannot draw num_samples={num_samples} distinct categories without replacement "
                         f"from a row with fewer non-zero weights ({int((rows > 0).sum(axis=1).min())}); pass replacement=True")
    shape = p.shape[:-1] + (num_samples,)
    data = _injected("multinomial", shape, True, 0, p.shape[-1], f"multinomial of {p.shape} weights")
    if data is not None:
        got = data.reshape(rows.shape[0], num_samples)
        if (np.take_along_axis(rows, got, axis=1) <= 0).any():
            raise ValueError("ndiv.random.inject: an injected multinomial sample picks a category of zero weight")
        if not replacement and any(len(set(r.tolist())) < num_samples for r in got):
            raise ValueError("ndiv.random.inject: an injected multinomial row repeats a category, but replacement=False")
    else:
        if replacement:  # inverse CDF; a zero-weight category has an empty interval
            cdf = np.cumsum(rows, axis=1) / rows.sum(axis=1, keepdims=True)
            u = _RNG.random((rows.shape[0], num_samples))
            last = rows.shape[1] - 1 - np.argmax(rows[:, ::-1] > 0, axis=1)
            data = np.stack([np.minimum(np.searchsorted(c, r, side="right"), m) for c, r, m in zip(cdf, u, last)])
        else:  # Gumbel top-k: the same law as drawing one at a time and renormalizing
            with np.errstate(divide="ignore"):
                keys = np.log(rows) + _RNG.gumbel(size=rows.shape)
            data = np.argsort(-keys, axis=1, kind="stable")[:, :num_samples]
    return Tensor(np.asarray(data, dtype=np.int64).reshape(shape), device=device)

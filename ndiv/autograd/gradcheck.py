"""gradcheck: analytic gradients against central differences, in float64.

The output is reduced to a scalar by a fixed random projection v (so every output element
matters); the analytic gradient of <v, fn(x)> comes from backward(), the numeric one from
central differences of the same scalar, element by element (or, for large inputs, along random
directions u: v^T J u). A mismatch raises GradcheckError naming the op, the input and the worst
element.

    >>> x = ndiv.randn(3, 4, dtype="float64", requires_grad=True)
    >>> ndiv.autograd.gradcheck(lambda t: t.tanh().sum(axis=0), [x])
    True
"""
from __future__ import annotations

import numpy as np

from ndiv import device as _device
from ndiv.autograd.grad_mode import no_grad
from ndiv.autograd.tensor import Tensor


class GradcheckError(AssertionError):
    """Analytic and numeric gradients disagree."""


def _describe(fn, out) -> str:
    owner = getattr(fn, "__self__", None)
    name = owner.__name__ if isinstance(owner, type) else getattr(fn, "__qualname__", repr(fn))
    ops, stack, seen = [], [t._ctx for t in out if t._ctx is not None], set()
    while stack:
        f = stack.pop()
        if id(f) in seen:
            continue
        seen.add(id(f))
        ops.append(type(f).__name__)
        stack.extend(p._ctx for p in (f.parents or ()) if p._ctx is not None)
    return f"{name} (graph: {', '.join(dict.fromkeys(reversed(ops)))})" if ops else name


def _outputs(res):
    return [res] if isinstance(res, Tensor) else [r for r in res if isinstance(r, Tensor)]


def gradcheck(fn, inputs, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              max_elements: int = 4096, n_directions: int = 8, seed: int = 0) -> bool:
    """Check the gradients of fn(*inputs) for every input with requires_grad, in float64.

    fn: callable of Tensors -> Tensor (or a tuple of Tensors); inputs: Tensors (float64 or
    complex128 where they require gradients) or other arguments passed as they are. A complex
    input is perturbed along its real and its imaginary part: the analytic gradient must be
    dL/dRe + i dL/dIm (torch's convention), and a complex output enters the projection as
    <Re v, Re y> + <Im v, Im y>. Returns True or raises GradcheckError with the worst element named.
    """
    rng = np.random.default_rng(seed)
    inputs = list(inputs)
    diff = [i for i, x in enumerate(inputs) if isinstance(x, Tensor) and x.requires_grad]
    if not diff:
        raise ValueError("gradcheck: no input has requires_grad=True")
    for i in diff:
        dt = inputs[i].dtype
        if dt.kind == "f" and dt != np.float64:
            raise ValueError(f"gradcheck: input {i} has dtype {dt}; use float64 (x.double())")
        if dt.kind == "c" and dt != np.complex128:
            raise ValueError(f"gradcheck: input {i} has dtype {dt}; use complex128 (x.to(ndiv.complex128))")

    outs = _outputs(fn(*inputs))
    what = _describe(fn, outs)
    vs = []
    for o in outs:
        xp = _device.array_module(o.data)
        v = rng.standard_normal(o.shape)
        if o.dtype.kind == "c":
            v = v + 1j * rng.standard_normal(o.shape)
        vs.append(xp.asarray(v))

    def scalar(with_grad):
        res = _outputs(fn(*inputs))
        total = 0.0
        for o, v in zip(res, vs):
            if o.dtype.kind == "c":
                total = (o.real * v.real).sum() + (o.imag * v.imag).sum() + total
            else:
                total = (o * v.astype(o.dtype)).sum() + total
        return total if with_grad else float(total.item() if isinstance(total, Tensor) else total)

    for i in diff:
        inputs[i].grad = None
    loss = scalar(True)
    if not isinstance(loss, Tensor) or not loss.requires_grad:
        raise GradcheckError(f"gradcheck: the output of {what} does not depend on any input with requires_grad")
    loss.backward()
    analytic = {i: inputs[i].grad for i in diff}

    with no_grad():
        for i in diff:
            x = inputs[i]
            xp = _device.array_module(x.data)
            a = analytic[i]
            a = xp.zeros(x.shape, x.dtype) if a is None else a
            a = _device.to_device(a, "cpu")
            parts = [("", 1.0)] + ([("imag ", 1j)] if x.dtype.kind == "c" else [])
            for label, unit in parts:
                a_part = a.real if unit == 1.0 else a.imag
                if x.size <= max_elements:
                    num = np.zeros(x.shape)
                    flat = x.data.reshape(-1)  # a view when contiguous; else perturb a copy
                    if not np.shares_memory(flat, x.data) if xp is np else False:
                        x.data = x.data.copy()
                        flat = x.data.reshape(-1)
                    for k in range(x.size):
                        old = flat[k]
                        flat[k] = old + eps * unit
                        fp = scalar(False)
                        flat[k] = old - eps * unit
                        fm = scalar(False)
                        flat[k] = old
                        num.reshape(-1)[k] = (fp - fm) / (2 * eps)
                    err = np.abs(a_part - num) - (atol + rtol * np.abs(num))
                    if (err > 0).any() or not np.isfinite(a_part).all():
                        k = np.unravel_index(int(np.nanargmax(np.where(np.isfinite(err), err, np.inf))), x.shape)
                        raise GradcheckError(
                            f"gradcheck failed for {what}: input {i} (shape {x.shape}) {label}gradient at index "
                            f"{tuple(int(j) for j in k)}: analytic {a_part[k]:.8g} vs numeric {num[k]:.8g} "
                            f"(atol={atol}, rtol={rtol})")
                else:
                    orig = x.data.copy()
                    for _ in range(n_directions):
                        u = rng.standard_normal(x.shape)
                        x.data = orig + xp.asarray(eps * unit * u)
                        fp = scalar(False)
                        x.data = orig - xp.asarray(eps * unit * u)
                        fm = scalar(False)
                        x.data = orig
                        num = (fp - fm) / (2 * eps)
                        ana = float((a_part * u).sum())
                        if abs(ana - num) > atol + rtol * abs(num):
                            raise GradcheckError(
                                f"gradcheck failed for {what}: input {i} (shape {x.shape}) {label}directional "
                                f"derivative: analytic {ana:.8g} vs numeric {num:.8g} (atol={atol}, rtol={rtol})")
    return True

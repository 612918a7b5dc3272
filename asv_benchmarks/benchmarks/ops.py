"""Per-op overhead, forward + backward, ndiv against torch eager on the same data.

Each case times one call of `self.step`: clear the inputs' gradients, run the op, backprop a
fixed upstream gradient. Small shapes ([64x64], [32x128]@[128x128]) measure the per-op cost
of the tape (DESIGN: torch pays 22-28 us there, the NumPy work itself 2-6 us); medium shapes
([512x512], [256x512]@[512x512]) measure the array work. tools/overhead.py is the quick
stand-alone version of the same table.
"""
from __future__ import annotations

import numpy as np

from . import BACKENDS, limit_threads, require_torch, seeded

SHAPES = ["64x64", "512x512"]


def _shape(s: str) -> tuple[int, ...]:
    return tuple(int(n) for n in s.split("x"))


class _OpCase:
    """A backend-parametrized case: subclasses write ndiv_step(*arrays) and torch_step(torch, *arrays).

    `inputs(*params)` returns the NumPy inputs (all of them get requires_grad) and the upstream
    gradient (None: the output is a scalar). The same arrays feed both backends.
    """

    param_names = ["backend", "shape"]
    params = (BACKENDS, SHAPES)

    def inputs(self, shape):
        s = _shape(shape)
        return [seeded(*s, seed=0), seeded(*s, seed=1)], np.ones(s, np.float32)

    def setup(self, backend, *params):
        arrays, grad = self.inputs(*params)
        if backend == "torch":
            torch = require_torch()
            xs = [torch.tensor(a, requires_grad=True) for a in arrays]
            g = None if grad is None else torch.tensor(grad)
            op = self.torch_op
        else:
            import ndiv
            limit_threads()
            xs = [ndiv.tensor(a, requires_grad=True) for a in arrays]
            g = grad
            op = self.ndiv_op

        def step():
            for x in xs:
                x.grad = None
            op(*xs).backward(g)

        self.step = step
        step()  # first call outside the timing: lazy imports, allocator warm-up


class Add(_OpCase):
    def ndiv_op(self, a, b):
        return a + b

    torch_op = ndiv_op

    def time_add(self, backend, shape):
        self.step()


class ReLU(_OpCase):
    def inputs(self, shape):
        arrays, g = super().inputs(shape)
        return arrays[:1], g

    def ndiv_op(self, a):
        return a.relu()

    torch_op = ndiv_op

    def time_relu(self, backend, shape):
        self.step()


class Sum(_OpCase):
    def inputs(self, shape):
        arrays, _ = super().inputs(shape)
        return arrays[:1], None

    def ndiv_op(self, a):
        return a.sum()

    torch_op = ndiv_op

    def time_sum(self, backend, shape):
        self.step()


class MatMul(_OpCase):
    """[M, K] @ [K, N]; the upstream gradient is ones [M, N] (no extra op in the timing)."""

    params = (BACKENDS, ["32x128x128", "256x512x512"])

    def inputs(self, shape):
        m, k, n = _shape(shape)
        return [seeded(m, k, seed=0), seeded(k, n, seed=1)], np.ones((m, n), np.float32)

    def ndiv_op(self, x, w):
        return x @ w

    torch_op = ndiv_op

    def time_matmul(self, backend, shape):
        self.step()


class ComposedSoftmax(_OpCase):
    """softmax written as five ops (max, sub, exp, sum, div) over the last axis: a chain of small
    ops, the pattern the tape's per-op cost matters most for. The fused kernel is in kernels.py."""

    def inputs(self, shape):
        arrays, g = super().inputs(shape)
        return arrays[:1], g

    def ndiv_op(self, x):
        e = (x - x.max(axis=-1, keepdims=True)).exp()
        return e / e.sum(axis=-1, keepdims=True)

    def torch_op(self, x):
        e = (x - x.amax(dim=-1, keepdim=True)).exp()
        return e / e.sum(dim=-1, keepdim=True)

    def time_softmax_composed(self, backend, shape):
        self.step()


class MLPStep:
    """One training step of a 3-layer MLP: batch 32, 24 -> 512 -> 512 -> 12, ReLU, MSE, SGD.

    ndiv: ndiv.nn.Linear / ReLU / Sequential, ndiv.nn.functional.mse_loss, ndiv.optim.SGD;
    torch: the same modules of torch.nn and torch.optim, the same initial weights.
    """

    param_names = ["backend"]
    params = (BACKENDS,)
    sizes = dict(batch=32, n_in=24, hidden=512, n_out=12)

    def setup(self, backend):
        self.step = build_mlp_step(backend, **self.sizes)
        self.step()

    def time_mlp_step(self, backend):
        self.step()


def _mlp_weights(n_in, hidden, n_out):
    dims = [(n_in, hidden), (hidden, hidden), (hidden, n_out)]
    return [(seeded(o, i, seed=10 + k, scale=i ** -0.5), seeded(o, seed=20 + k, scale=0.01))
            for k, (i, o) in enumerate(dims)]


def build_mlp_step(backend: str, batch: int, n_in: int, hidden: int, n_out: int, lr: float = 1e-3):
    """A zero-argument callable that runs one MLP training step (zero_grad, forward, MSE,
    backward, SGD step) on fixed data [batch, n_in] -> [batch, n_out]. Shared with memory_pool.py."""
    weights = _mlp_weights(n_in, hidden, n_out)
    x, y = seeded(batch, n_in, seed=1), seeded(batch, n_out, seed=2)
    if backend == "torch":
        torch = require_torch()
        nn, F, optim, tensor = torch.nn, torch.nn.functional, torch.optim, torch.tensor
    else:
        import ndiv
        import ndiv.nn as nn
        import ndiv.nn.functional as F
        import ndiv.optim as optim
        limit_threads()
        tensor = ndiv.tensor
    net = nn.Sequential(nn.Linear(n_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                        nn.Linear(hidden, n_out))
    net.load_state_dict({f"{2 * k}.{name}": tensor(arr) for k, (w, b) in enumerate(weights)
                         for name, arr in (("weight", w), ("bias", b))})
    opt = optim.SGD(net.parameters(), lr=lr)
    X, Y = tensor(x), tensor(y)

    def step():
        opt.zero_grad()
        loss = F.mse_loss(net(X), Y)
        loss.backward()
        opt.step()
        return loss

    return step

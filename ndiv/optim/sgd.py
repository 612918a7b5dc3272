"""SGD with momentum, dampening, Nesterov momentum and L2 weight decay (torch.optim.SGD)."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ndiv.device import array_module
from ndiv.optim.optimizer import Optimizer, _check, _grad


class SGD(Optimizer):
    """Stochastic gradient descent, step for step torch.optim.SGD:

        g = grad (+ weight_decay * p);  buf = g at the first step, then momentum * buf + (1 - dampening) * g
        p -= lr * (g + momentum * buf if nesterov else buf)          (buf = g without momentum)

    Args: params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False,
        maximize=False (ascend the objective instead).
    State per parameter: "momentum_buffer" (same shape as p), only when momentum != 0.

    Example:
        >>> opt = SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True)  # doctest: +SKIP
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, momentum: float = 0.0,
                 dampening: float = 0.0, weight_decay: float = 0.0, nesterov: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, momentum=momentum, dampening=dampening,
                                      weight_decay=weight_decay, nesterov=nesterov, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        _check(group["momentum"] >= 0, "Invalid momentum value", "momentum", group["momentum"], ">= 0")
        _check(group["weight_decay"] >= 0, "Invalid weight_decay value", "weight_decay",
               group["weight_decay"], ">= 0")
        if group["nesterov"] and (group["momentum"] <= 0 or group["dampening"] != 0):
            raise ValueError("Nesterov momentum requires a momentum and zero dampening "
                             f"(got momentum={group['momentum']}, dampening={group['dampening']})")

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr, wd, mom = group["lr"], group["weight_decay"], group["momentum"]
            damp, nesterov, maximize = group["dampening"], group["nesterov"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.data)
                g = _grad(p, maximize)
                if wd != 0:  # g + wd * p into a new array: p.grad itself stays untouched
                    g = xp.add(g, xp.multiply(p.data, wd))
                if mom != 0:
                    state = self.state[p]
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = xp.array(g, copy=True)  # an array even for 0-d
                    else:
                        buf *= mom
                        buf += g if damp == 0 else xp.multiply(g, 1 - damp)
                    if nesterov:
                        g = xp.multiply(buf, mom) + g
                    else:
                        g = buf
                upd = xp.multiply(g, lr)
                xp.subtract(p.data, upd, out=p.data)
        return loss

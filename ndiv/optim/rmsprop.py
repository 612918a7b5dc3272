"""RMSprop (torch.optim.RMSprop): scale steps by a running RMS of the gradient."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ndiv.device import array_module
from ndiv.optim.optimizer import Optimizer, _check, _grad, _view_as_real


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), step for step torch.optim.RMSprop:

        g = grad (+ weight_decay * p);  v = alpha * v + (1 - alpha) * g * g
        d = sqrt(v - mean_g**2) + eps if centered (mean_g = running mean of g) else sqrt(v) + eps
        p -= lr * buf, buf = momentum * buf + g / d   if momentum > 0   else   p -= lr * g / d

    Args: params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0, momentum=0, centered=False,
        maximize=False.
    State per parameter: "step", "square_avg" (+ "momentum_buffer", "grad_avg" when used).
    A complex p is updated on its real view, as torch (v holds g_re^2 and g_im^2).

    Example:
        >>> opt = RMSprop(model.parameters(), lr=1e-3, momentum=0.9, centered=True)  # doctest: +SKIP
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, alpha: float = 0.99, eps: float = 1e-8,
                 weight_decay: float = 0.0, momentum: float = 0.0, centered: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, alpha=alpha, eps=eps, weight_decay=weight_decay,
                                      momentum=momentum, centered=centered, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        _check(group["eps"] >= 0, "Invalid epsilon value", "eps", group["eps"], ">= 0")
        _check(group["momentum"] >= 0, "Invalid momentum value", "momentum", group["momentum"], ">= 0")
        _check(group["weight_decay"] >= 0, "Invalid weight_decay value", "weight_decay",
               group["weight_decay"], ">= 0")
        _check(group["alpha"] >= 0, "Invalid alpha value", "alpha", group["alpha"], ">= 0")

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr, alpha, eps, wd = group["lr"], group["alpha"], group["eps"], group["weight_decay"]
            mom, centered, maximize = group["momentum"], group["centered"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.data)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["square_avg"] = xp.zeros_like(p.data)
                state["step"] += 1
                pd = _view_as_real(p.data)          # p.data itself, or a complex p's real view
                g = _view_as_real(_grad(p, maximize))
                if wd != 0:
                    g = xp.add(g, xp.multiply(pd, wd))
                v = _view_as_real(state["square_avg"])
                v *= alpha                          # v = alpha * v + (1 - alpha) * g * g
                tmp = xp.empty_like(pd)             # an array, also for 0-d p (ufuncs give scalars)
                xp.multiply(g, 1 - alpha, out=tmp)
                tmp *= g
                v += tmp
                if centered:
                    ga = state.get("grad_avg")
                    if ga is None:
                        ga = state["grad_avg"] = xp.zeros_like(p.data)
                    ga = _view_as_real(ga)
                    xp.subtract(g, ga, out=tmp)     # ga.lerp_(g, 1 - alpha)
                    tmp *= 1 - alpha
                    ga += tmp
                    xp.multiply(ga, ga, out=tmp)
                    xp.subtract(v, tmp, out=tmp)
                    xp.sqrt(tmp, out=tmp)
                else:
                    xp.sqrt(v, out=tmp)
                tmp += eps                          # tmp = denominator
                xp.divide(g, tmp, out=tmp)
                if mom > 0:
                    buf = state.get("momentum_buffer")
                    if buf is None:
                        buf = state["momentum_buffer"] = xp.zeros_like(p.data)
                    buf = _view_as_real(buf)
                    buf *= mom
                    buf += tmp
                    tmp = xp.multiply(buf, lr)
                else:
                    tmp *= lr
                pd -= tmp
        return loss

"""Adagrad (torch.optim.Adagrad): per-coordinate steps shrinking with the summed squared gradient."""
from __future__ import annotations

from collections.abc import Callable, Iterable

from ndiv.device import array_module
from ndiv.optim.optimizer import Optimizer, _check, _grad, _view_as_real


class Adagrad(Optimizer):
    """Adagrad (Duchi et al., 2011), step for step torch.optim.Adagrad:

        g = grad (+ weight_decay * p);  s += g * g
        p -= lr / (1 + (t - 1) * lr_decay) * g / (sqrt(s) + eps)

    Args: params, lr=1e-2, lr_decay=0, weight_decay=0, initial_accumulator_value=0,
        eps=1e-10, maximize=False.
    State per parameter: "step" and "sum" (p's shape, filled with initial_accumulator_value),
    made when the parameter joins the optimizer, as torch does. A complex p is updated on its
    real view and its "sum" starts at value + i value, as torch.

    Example:
        >>> opt = Adagrad(model.parameters(), lr=0.1, initial_accumulator_value=0.1)  # doctest: +SKIP
    """

    def __init__(self, params: Iterable, lr: float = 1e-2, lr_decay: float = 0.0,
                 weight_decay: float = 0.0, initial_accumulator_value: float = 0.0,
                 eps: float = 1e-10, *, maximize: bool = False):
        super().__init__(params, dict(lr=lr, lr_decay=lr_decay, weight_decay=weight_decay,
                                      initial_accumulator_value=initial_accumulator_value,
                                      eps=eps, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        _check(group["lr_decay"] >= 0, "Invalid lr_decay value", "lr_decay", group["lr_decay"], ">= 0")
        _check(group["weight_decay"] >= 0, "Invalid weight_decay value", "weight_decay",
               group["weight_decay"], ">= 0")
        _check(group["initial_accumulator_value"] >= 0, "Invalid initial_accumulator_value value",
               "initial_accumulator_value", group["initial_accumulator_value"], ">= 0")
        _check(group["eps"] >= 0, "Invalid epsilon value", "eps", group["eps"], ">= 0")

    def add_param_group(self, param_group):
        super().add_param_group(param_group)
        group = self.param_groups[-1]
        for p in group["params"]:
            self._init_state(p, group)

    def _init_state(self, p, group):
        xp = array_module(p.data)
        state = self.state[p]
        state["step"] = 0
        init = group["initial_accumulator_value"]
        state["sum"] = xp.full_like(p.data, complex(init, init) if p.data.dtype.kind == "c" else init)
        return state

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._eval_closure(closure)
        for group in self.param_groups:
            lr, lr_decay, wd, eps = group["lr"], group["lr_decay"], group["weight_decay"], group["eps"]
            maximize = group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.data)
                state = self.state[p]
                if not state:  # e.g. after load_state_dict of a dict without this parameter
                    state = self._init_state(p, group)
                state["step"] = t = state["step"] + 1
                pd = _view_as_real(p.data)          # p.data itself, or a complex p's real view
                g = _view_as_real(_grad(p, maximize))
                if wd != 0:
                    g = xp.add(g, xp.multiply(pd, wd))
                clr = lr / (1 + (t - 1) * lr_decay)
                s = _view_as_real(state["sum"])
                tmp = xp.empty_like(pd)             # an array, also for 0-d p (ufuncs give scalars)
                xp.multiply(g, g, out=tmp)
                s += tmp
                xp.sqrt(s, out=tmp)
                tmp += eps
                xp.divide(g, tmp, out=tmp)
                tmp *= clr
                pd -= tmp
        return loss

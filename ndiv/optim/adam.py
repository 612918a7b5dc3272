"""Adam and AdamW (torch.optim.Adam / AdamW): adaptive moments with bias correction."""
from __future__ import annotations

import math

import numpy as np
from collections.abc import Callable, Iterable

from ndiv.device import array_module
from ndiv.optim.optimizer import Optimizer, _check, _grad, _view_as_real


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), step for step torch.optim.Adam:

        g = grad (+ weight_decay * p, L2; AdamW instead shrinks p *= 1 - lr * weight_decay)
        m = beta1 * m + (1 - beta1) * g;   v = beta2 * v + (1 - beta2) * g * g   (v_max = max(v_max, v))
        p -= lr / (1 - beta1**t) * m / (sqrt(v) / sqrt(1 - beta2**t) + eps)

    Args: params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False,
        maximize=False.
    State per parameter: "step" (int), "exp_avg", "exp_avg_sq" (and "max_exp_avg_sq" with
    amsgrad), arrays of p's shape, made at the parameter's first gradient. A complex p is
    updated on its real view, as torch: v holds g_re^2 and g_im^2 in its real and imaginary parts.

    Example:
        >>> opt = Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.99))  # doctest: +SKIP
    """

    _decoupled = False  # AdamW: weight decay acts on p directly, not through the gradient

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                                      amsgrad=amsgrad, maximize=maximize))

    def _validate(self, group):
        super()._validate(group)
        betas = group["betas"]
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"Invalid betas: {betas!r} (expected a pair (beta1, beta2), each in [0, 1))")
        group["betas"] = tuple(betas)
        for i, b in enumerate(betas):
            _check(0.0 <= b < 1.0, f"Invalid beta parameter at index {i}", f"betas[{i}]", b, "0 <= beta < 1")
        _check(group["eps"] >= 0, "Invalid epsilon value", "eps", group["eps"], ">= 0")
        _check(group["weight_decay"] >= 0, "Invalid weight_decay value", "weight_decay",
               group["weight_decay"], ">= 0")

    def step(self, closure: Callable | None = None):
        """One update of every parameter that has a gradient; returns closure()'s loss if given."""
        loss = self._eval_closure(closure)
        for gi, group in enumerate(self.param_groups):
            if self._flat_step(gi, group):
                continue
            lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
            wd, amsgrad, maximize = group["weight_decay"], group["amsgrad"], group["maximize"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                xp = array_module(p.data)
                state = self.state[p]
                if not state:
                    state["step"] = 0
                    state["exp_avg"] = xp.zeros_like(p.data)
                    state["exp_avg_sq"] = xp.zeros_like(p.data)
                state["step"] = t = state["step"] + 1
                m, v = _view_as_real(state["exp_avg"]), _view_as_real(state["exp_avg_sq"])
                pd = _view_as_real(p.data)        # p.data itself, or a complex p's real view

                g = _view_as_real(_grad(p, maximize))
                if wd != 0:
                    if self._decoupled:
                        pd *= 1 - lr * wd
                    else:
                        g = xp.add(g, xp.multiply(pd, wd))
                tmp = xp.empty_like(pd)           # an array, also for 0-d p (ufuncs give scalars)
                xp.subtract(g, m, out=tmp)        # m.lerp_(g, 1 - beta1), as torch computes it
                tmp *= 1 - beta1
                m += tmp
                v *= beta2                        # v = beta2 * v + (1 - beta2) * g * g
                xp.multiply(g, 1 - beta2, out=tmp)
                tmp *= g
                v += tmp
                if amsgrad:
                    vmax = state.get("max_exp_avg_sq")
                    if vmax is None:
                        vmax = state["max_exp_avg_sq"] = xp.zeros_like(p.data)
                    vmax = _view_as_real(vmax)
                    xp.maximum(vmax, v, out=vmax)
                    v = vmax
                step_size = lr / (1 - beta1 ** t)
                xp.sqrt(v, out=tmp)               # tmp = denominator
                tmp /= math.sqrt(1 - beta2 ** t)
                tmp += eps
                xp.divide(m, tmp, out=tmp)
                tmp *= step_size
                pd -= tmp
        return loss


    # -- the same update on one flat buffer per group ---------------------------------------
    # Small models have many small parameters, and the per-parameter loop above costs ~12 NumPy
    # calls each. When every parameter of a group is a NumPy array of one dtype and has a
    # gradient, the moments live in flat arrays (each state entry is a view into them), the
    # parameters and gradients are gathered into flat buffers, the update is ~10 calls on those,
    # and each p.data is written back in place: ~2 calls per parameter instead of ~12.
    # Elementwise, the arithmetic is exactly the loop's (complex groups: on the real views).

    def _flat_step(self, gi: int, group: dict) -> bool:
        params = group["params"]
        if group["amsgrad"] or len(params) < 2:
            return False
        dtype = None
        for p in params:
            if p.grad is None or type(p.data) is not np.ndarray:
                return False
            if dtype is None:
                dtype = p.data.dtype
            elif p.data.dtype != dtype:
                return False
        flat = self._flat.get(gi) if hasattr(self, "_flat") else None
        if flat is None or not self._flat_valid(flat, params):
            flat = self._flat_build(gi, params, dtype)
        P, M, V, G, views = flat
        steps = {self.state[p]["step"] for p in params}
        if len(steps) != 1:
            return False
        lr, (beta1, beta2), eps = group["lr"], group["betas"], group["eps"]
        wd, maximize = group["weight_decay"], group["maximize"]
        np.concatenate([p.data.reshape(-1) for p in params], out=P)
        np.concatenate([p.grad.reshape(-1) for p in params], out=G)
        if maximize:
            np.negative(G, out=G)
        if wd != 0:
            if self._decoupled:
                P *= 1 - lr * wd
            else:
                G += P * wd
        t = steps.pop() + 1
        for p in params:
            self.state[p]["step"] = t
        P, M, V, G = (_view_as_real(a) for a in (P, M, V, G))  # the update acts per real part
        tmp = np.subtract(G, M)
        tmp *= 1 - beta1
        M += tmp
        V *= beta2
        np.multiply(G, 1 - beta2, out=tmp)
        tmp *= G
        V += tmp
        np.sqrt(V, out=tmp)
        tmp /= math.sqrt(1 - beta2 ** t)
        tmp += eps
        np.divide(M, tmp, out=tmp)
        tmp *= lr / (1 - beta1 ** t)
        P -= tmp
        for p, (pv, _, _) in zip(params, views):
            np.copyto(p.data, pv)          # in place: references to p.data stay valid
        return True

    def _flat_valid(self, flat, params) -> bool:
        P, M, V, G, views = flat
        if len(views) != len(params):
            return False
        for p, (pv, mv, vv) in zip(params, views):
            st = self.state[p]
            if p.data.shape != pv.shape or st.get("exp_avg") is not mv or st.get("exp_avg_sq") is not vv:
                return False
        return True

    def _flat_build(self, gi: int, params, dtype):
        """Flat buffers for the group; the moments move into them (values kept)."""
        n = sum(p.data.size for p in params)
        P, M, V, G = (np.zeros(n, dtype) for _ in range(4))
        views, off = [], 0
        for p in params:
            k, shape = p.data.size, p.data.shape
            st = self.state[p]
            if not st:
                st["step"] = 0
            pv, mv, vv = (a[off:off + k].reshape(shape) for a in (P, M, V))
            if "exp_avg" in st:
                mv[...] = st["exp_avg"]
                vv[...] = st["exp_avg_sq"]
            st["exp_avg"], st["exp_avg_sq"] = mv, vv
            views.append((pv, mv, vv))
            off += k
        if not hasattr(self, "_flat"):
            self._flat = {}
        self._flat[gi] = (P, M, V, G, views)
        return self._flat[gi]


class AdamW(Adam):
    """AdamW (Loshchilov & Hutter, 2019): Adam with decoupled weight decay, p *= 1 - lr * wd
    before the Adam update, as torch.optim.AdamW. Same arguments as Adam, but
    weight_decay=1e-2 by default.

    Example:
        >>> opt = AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)  # doctest: +SKIP
    """

    _decoupled = True

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 1e-2, amsgrad: bool = False, *,
                 maximize: bool = False):
        super().__init__(params, lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                         amsgrad=amsgrad, maximize=maximize)

"""ISQF, the Incremental (Spline) Quantile Function (Park et al. 2022), as NeuralForecast's
DistributionLoss('ISQF') (from GluonTS): a monotone quantile function made of linear splines
between quantile knots and exponential tails, trained by its closed-form CRPS.

    distr_args = (spline_knots [B, h, N, Q-1, P], spline_heights [.., Q-1, P], beta_l [B, h, N],
                  beta_r [B, h, N], qk_y [.., Q], qk_x [.., Q], loc, scale)
    -log_prob(y) = softplus(crps((y - loc) / scale)) + log(scale)   (torch's AffineTransform)

Q = number of quantile knots (the loss's quantiles, sorted), P = num_pieces. The formulas are
NeuralForecast's (BaseISQF) on ndiv Tensors, so autograd gives their gradient; sampling
evaluates the quantile function at uniform levels on NumPy.
"""
from __future__ import annotations

import numpy as np

import ndiv
import ndiv.nn.functional as F
from ndiv.autograd.tensor import Tensor
from ndiv.losses.distributions import _const, _np

TOL = 1e-4


def _spline(knots: Tensor, qk: Tensor, qk_plus: Tensor, tol: float = TOL):
    """Spline knot positions sk and their spacing delta_sk [.., Q-1, P] between quantile knots qk, qk_plus."""
    p = knots.shape[-1]
    delta = (F.softmax(knots, dim=-1) + tol) / (1 + p * tol)
    x = ndiv.cat([delta[..., :1] * 0.0, delta.cumsum(-1)[..., :-1]], dim=-1)
    qk, qk_plus = qk.unsqueeze(-1), qk_plus.unsqueeze(-1)
    return x * (qk_plus - qk) + qk, delta * (qk_plus - qk)


class ISQF:
    """The ISQF distribution of y = loc + scale * z (z: the base ISQF)."""

    def __init__(self, spline_knots, spline_heights, beta_l, beta_r, qk_y, qk_x, loc, scale):
        self.num_qk, self.num_pieces = qk_y.shape[-1], spline_knots.shape[-1]
        self.beta_l, self.beta_r = beta_l, beta_r
        self.loc, self.scale = loc, scale
        qk_x = _const(qk_x, qk_y)
        self.qk_x, self.qk_x_plus, self.qk_x_l, self.qk_x_r = qk_x[..., :-1], qk_x[..., 1:], qk_x[..., 0], qk_x[..., -1]
        self.qk_y, self.qk_y_plus, self.qk_y_l, self.qk_y_r = qk_y[..., :-1], qk_y[..., 1:], qk_y[..., 0], qk_y[..., -1]
        self.sk_y, self.delta_sk_y = _spline(spline_heights, self.qk_y, self.qk_y_plus)
        self.sk_x, self.delta_sk_x = _spline(spline_knots, self.qk_x, self.qk_x_plus)
        if self.num_pieces > 1:
            self.sk_x_plus = ndiv.cat([self.sk_x[..., 1:], self.qk_x_plus.unsqueeze(-1)], dim=-1)
        else:
            self.sk_x_plus = self.qk_x_plus.unsqueeze(-1)
        # tails q(a) = a_l log(a) + b_l (left), a_r log(1 - a) + b_r (right)
        self.tail_al = 1.0 / beta_l
        self.tail_bl = -self.tail_al * self.qk_x_l.log() + self.qk_y_l
        self.tail_ar = 1.0 / -beta_r
        self.tail_br = -self.tail_ar * (1.0 - self.qk_x_r).log() + self.qk_y_r

    # -- the loss -----------------------------------------------------------------------------
    def log_prob(self, y) -> Tensor:
        """-softplus(CRPS of the standardized y) - log(scale) [B, h, N]."""
        y = _const(y, self.qk_y)
        z = (y - self.loc) / self.scale
        scale = self.scale.abs() if isinstance(self.scale, Tensor) else np.abs(self.scale)
        log_scale = scale.log() if isinstance(scale, Tensor) else np.log(scale)
        return -F.softplus(self.crps_base(z)) - log_scale

    def crps_base(self, z: Tensor) -> Tensor:
        return self._crps_tail(z, True) + self._crps_tail(z, False) + self._crps_spline(z)

    def _cdf_tail(self, z, left):
        if left:
            a, b, qk_x = self.tail_al, self.tail_bl, self.qk_x_l
        else:
            a, b, qk_x = self.tail_ar, self.tail_br, 1.0 - self.qk_x_r
        alpha = ndiv.minimum((z - b) / a, qk_x.log()).exp()
        return alpha if left else 1.0 - alpha

    def _crps_tail(self, z, left):
        alpha = self._cdf_tail(z, left)
        if left:
            a, b, qk_x, qk_y = self.tail_al, self.tail_bl, self.qk_x_l, self.qk_y_l
            term1 = (z - b) * (qk_x ** 2 - qk_x * 2 + alpha * 2)
            term2 = qk_x ** 2 * a * (-qk_x.log() + 0.5)
            inside = qk_x * a * (qk_x.log() - 1) + alpha * (-z + b + a)
            return term1 + term2 + ndiv.where((z < qk_y).data, inside, 0.0) * 2
        a, b, qk_x, qk_y = self.tail_ar, self.tail_br, self.qk_x_r, self.qk_y_r
        term1 = (z - b) * (-1.0 - qk_x ** 2 + alpha * 2)
        term2 = a * ((qk_x + 1) ** 2 * -0.5 + (qk_x ** 2 - 1) * (1.0 - qk_x).log() + alpha * 2)
        right = ndiv.where((z > qk_y).data, (1.0 - alpha) * (z - b), a * (1.0 - qk_x) * (1.0 - qk_x).log())
        return term1 + term2 + right * 2

    def _quantile_spline_at_knots(self):
        """The spline's value at every spline knot sk_x: [.., Q-1, P] (GluonTS's knots_eval)."""
        alpha = self.sk_x.unsqueeze(-1)                                   # [.., Q-1, P, 1]
        sk_x, dx, dy = (t.unsqueeze(-2) for t in (self.sk_x, self.delta_sk_x, self.delta_sk_y))
        val = ndiv.maximum(ndiv.minimum((alpha - sk_x) / dx, 1.0), 0.0)
        return self.qk_y.unsqueeze(-1) + (val * dy).sum(axis=-1)

    def _cdf_spline(self, z):
        """The level alpha of z within each spline [.., Q-1], clamped to [qk_x, qk_x_plus]."""
        z1 = z.unsqueeze(-1)
        if self.num_pieces > 1:
            below = (self._quantile_spline_at_knots().data < z1.unsqueeze(-1).data)        # [.., Q-1, P]
            below_next = np.concatenate([below[..., 1:], np.zeros(below[..., :1].shape, bool)], axis=-1)
            only = (below & ~below_next).astype(z.dtype)
            below_next = below_next.astype(z.dtype)
            sum_dy = (self.delta_sk_y * below_next).sum(axis=-1)
            frac = (self.delta_sk_x * only / self.delta_sk_y).sum(axis=-1)
            sk_x_s0 = (self.sk_x * only).sum(axis=-1)
            alpha = sk_x_s0 + (z1 - self.qk_y - sum_dy) * frac
        else:
            alpha = self.qk_x + (z1 - self.qk_y) / (self.qk_y_plus - self.qk_y) * (self.qk_x_plus - self.qk_x)
        return ndiv.minimum(ndiv.maximum(alpha, self.qk_x), self.qk_x_plus)

    def _crps_spline(self, z):
        qk_x, qk_x_plus, qk_y = self.qk_x, self.qk_x_plus, self.qk_y
        sk_x, sk_x_plus, dx, dy = self.sk_x, self.sk_x_plus, self.delta_sk_x, self.delta_sk_y
        z1 = z.unsqueeze(-1)
        qk_x_plus1 = qk_x_plus.unsqueeze(-1)
        alpha = self._cdf_spline(z)
        alpha1 = alpha.unsqueeze(-1)
        r = ndiv.minimum(ndiv.maximum(alpha1, sk_x), sk_x_plus)
        coeff1 = (sk_x_plus ** 3 * (-2 / 3) + sk_x * sk_x_plus ** 2 + sk_x_plus ** 2 - sk_x ** 3 * (1 / 3)
                  - sk_x * sk_x_plus * 2 - r ** 2 + sk_x * r * 2)
        coeff2 = ndiv.maximum(alpha1, sk_x_plus) * -2 + sk_x_plus ** 2 + qk_x_plus1 * 2 - qk_x_plus1 ** 2
        result = ((qk_x_plus ** 2 - qk_x ** 2) * (z1 - qk_y) + (qk_x_plus - alpha) * (qk_y - z1) * 2
                  + (dy / dx * coeff1).sum(axis=-1) + (dy * coeff2).sum(axis=-1))
        return result.sum(axis=-1)

    # -- sampling (NumPy, no gradient) ----------------------------------------------------------
    def quantile(self, alpha: np.ndarray) -> np.ndarray:
        """The quantile function at levels alpha [S, B, h, N] -> y [S, B, h, N]."""
        g = lambda t: _np(t)[None]                                        # noqa: E731  add the sample axis
        qk_x, qk_x_plus, qk_x_l = g(self.qk_x), g(self.qk_x_plus), g(self.qk_x_l)
        left = g(self.tail_al) * np.log(alpha) + g(self.tail_bl)
        right = g(self.tail_ar) * np.log(1 - alpha) + g(self.tail_br)
        q = np.where(alpha < qk_x_l, left, right)
        a = alpha[..., None, None]                                        # [S, .., 1, 1]
        val = np.clip((a - g(self.sk_x)) / g(self.delta_sk_x), 0.0, 1.0)
        spline = g(self.qk_y) + (val * g(self.delta_sk_y)).sum(-1)        # [S, .., Q-1]
        for k in range(self.num_qk - 1):
            inside = (qk_x[..., k] <= alpha) & (alpha < qk_x_plus[..., k])
            q = np.where(inside, spline[..., k], q)
        return _np(self.loc) + _np(self.scale) * q

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        beta_l = _np(self.beta_l)
        alpha = rng.random((num_samples,) + beta_l.shape).astype(beta_l.dtype)
        return self.quantile(alpha).astype(beta_l.dtype)

    @property
    def mean(self) -> Tensor:
        """The mean of 1000 samples (NeuralForecast's empirical mean; a fixed seed here)."""
        return ndiv.tensor(self.sample(np.random.default_rng(0), 1000).mean(axis=0))


def isqf_param_names(num_qk: int, num_pieces: int) -> list[str]:
    k = (num_qk - 1) * num_pieces
    return ([f"-spline_knot_{i + 1}" for i in range(k)] + [f"-spline_height_{i + 1}" for i in range(k)]
            + ["-beta_l", "-beta_r"] + [f"-quantile_knot_{i + 1}" for i in range(num_qk)])


def isqf_domain_map(y_hat: Tensor, quantiles: np.ndarray, num_pieces: int, tol: float = TOL):
    """[B, h, N * n_outputs] -> the ISQF arguments (NeuralForecast's isqf_domain_map)."""
    num_qk = len(quantiles)
    kp = (num_qk - 1) * num_pieces
    n_out = 2 * kp + 2 + num_qk
    x = y_hat.reshape(y_hat.shape[0], y_hat.shape[1], -1, n_out)
    knots, heights = x[..., :kp], x[..., kp:2 * kp]
    beta_l, beta_r, qk = x[..., 2 * kp], x[..., 2 * kp + 1], x[..., 2 * kp + 2:]
    qk_y = ndiv.cat([qk[..., :1], F.softplus(qk[..., 1:]) + tol], dim=-1).cumsum(-1)
    batch = tuple(knots.shape[:-1])
    qk_x = ndiv.tensor(np.broadcast_to(np.asarray(quantiles, dtype=y_hat.dtype), batch + (num_qk,)).copy(),
                       device=y_hat.device)
    return (knots.reshape(batch + (num_qk - 1, num_pieces)), heights.reshape(batch + (num_qk - 1, num_pieces)),
            F.softplus(beta_l) + tol, F.softplus(beta_r) + tol, qk_y, qk_x)


def isqf_scale_decouple(output, loc=None, scale=None):
    """Pass loc and scale [B, 1, N] through (0 and 1 when absent)."""
    beta_l = output[2]
    loc = np.zeros(beta_l.shape, beta_l.dtype) if loc is None else loc
    scale = np.ones(beta_l.shape, beta_l.dtype) if scale is None else scale
    return tuple(output) + (loc, scale)

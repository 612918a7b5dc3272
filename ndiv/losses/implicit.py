"""Implicit quantile losses, NeuralForecast's IQLoss and HuberIQLoss: the network forecasts any
quantile q, which enters through the loss's own small network (an IQN cosine embedding).

The loss is an ndiv.nn.Module: its layers are trained with the model (a model registers its loss
as the submodule `loss`, so `model.parameters()` and the saved weights include them).

    domain_map(y_hat [B, h, N]) -> [B, h, N]:
        tau [B, h, N, 1]: training mode: drawn from Beta(concentration1, concentration0) per
            entry (ndiv's generator, seeded by the model's random_seed); eval mode: the fixed
            quantile (0.5, or update_quantile([q]))
        y_hat * (1 + quantile_layer(tau)) -> output_layer            (NeuralForecast's formula)
    loss(y=, y_hat=, mask=): the (Huber) quantile loss at the tau of the last domain_map.

Prediction: without level/quantiles the median ('_ql0.5'); predict(level=/quantiles=) forecasts
NeuralForecast's grid of quantiles 0.01 ... 0.99 and takes the requested quantiles over it (as
NeuralForecast's core does, so they do not cross).

Differences from NeuralForecast, on purpose: the quantiles are drawn in training mode and fixed in
eval mode (NeuralForecast switches on whether predict has run once, so a model refit after a
predict trains on the median only), so validation scores the median forecast.

    >>> import numpy as np, ndiv
    >>> loss = IQLoss(cos_embedding_dim=8).eval()            # eval: the median
    >>> loss.domain_map(ndiv.zeros(2, 3, 1)).shape, loss.output_names
    ((2, 3, 1), ['_ql0.5'])
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv import nn
from ndiv.autograd.tensor import Tensor
from ndiv.losses.point import HuberQLoss, QuantileLoss, quantile_column
from ndiv.random import get_rng

# the quantiles NeuralForecast forecasts to answer predict(level=/quantiles=) for an implicit loss
IQ_GRID = (0.01, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95, 0.99)


class QuantileLayer(nn.Module):
    """IQN's quantile embedding: tau [..., 1] -> MLP(cos(pi * tau * [0, 1, ..., dim - 1])) [..., num_output]."""

    def __init__(self, num_output: int, cos_embedding_dim: int = 128):
        super().__init__()
        self.output_layer = nn.Sequential(nn.Linear(cos_embedding_dim, cos_embedding_dim), nn.PReLU(),
                                          nn.Linear(cos_embedding_dim, num_output))
        self.cos_embedding_dim = cos_embedding_dim

    def forward(self, tau: Tensor) -> Tensor:
        integers = np.arange(self.cos_embedding_dim, dtype=tau.dtype)
        return self.output_layer((tau * (integers * math.pi)).cos())


class _Implicit(nn.Module):
    """The quantile network and sampling IQLoss and HuberIQLoss share (a mixin before the loss)."""

    implicit_quantiles = True

    def _init_implicit(self, cos_embedding_dim, concentration0, concentration1):
        for name, v in (("cos_embedding_dim", cos_embedding_dim), ("concentration0", concentration0),
                        ("concentration1", concentration1)):
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or v <= 0:
                raise ValueError(f"{type(self).__name__}: {name} must be a positive number, got {v!r}")
        self.cos_embedding_dim = int(cos_embedding_dim)
        self.concentration0, self.concentration1 = float(concentration0), float(concentration1)
        self.fixed_q = 0.5
        self.quantile_layer = QuantileLayer(num_output=1, cos_embedding_dim=self.cos_embedding_dim)
        self.output_layer = nn.Sequential(nn.Linear(1, 1), nn.PReLU())

    def update_quantile(self, q=(0.5,)):
        """Forecast quantile q[0] in eval mode (NeuralForecast's); output name '_ql{q}'."""
        self.fixed_q = float(q[0])
        self.q = self.fixed_q
        self.output_names = [f"_ql{q[0]}"]

    def _sample_quantiles(self, shape: tuple) -> np.ndarray:
        """tau [*shape, 1] ~ Beta(concentration1, concentration0) (torch's Beta argument order)."""
        return get_rng().beta(self.concentration1, self.concentration0, size=tuple(shape) + (1,))

    def domain_map(self, y_hat: Tensor) -> Tensor:
        """[B, h, N] -> [B, h, N], the forecast of quantile tau (drawn in training, fixed in eval)."""
        if self.training:
            tau = self._sample_quantiles(tuple(y_hat.shape)).astype(y_hat.dtype)
            self.q = tau[..., 0]
        else:
            tau = np.full(tuple(y_hat.shape) + (1,), self.fixed_q, dtype=y_hat.dtype)
            self.q = self.fixed_q
        tau = ndiv.tensor(tau, device=y_hat.device)
        emb = self.quantile_layer(tau)                                       # [B, h, N, 1]
        return self.output_layer(y_hat.unsqueeze(-1) * (emb + 1.0)).squeeze(-1)

    def predict_output_names(self, quantiles=None, has_level: bool = False, who: str = "the model") -> list[str]:
        """None: the fixed quantile ('_ql0.5', the name NeuralForecast's predict gives it after its
        update_quantile); else one column per requested quantile."""
        if quantiles is None:
            return [f"_ql{self.fixed_q}"]
        return [quantile_column(q, has_level) for q in quantiles]

    def predict_quantiles(self, y_hat: Tensor, quantiles, inverse) -> np.ndarray:
        """The requested quantiles [B, h, N, Q] of the forecasts at IQ_GRID (NeuralForecast's way:
        the grid's forecasts need not be monotone, their quantiles are). y_hat: the network
        output [B, h, N]; inverse: a scaled forecast Tensor -> NumPy array in the data's scale."""
        was, fixed = self.training, self.fixed_q
        self.eval()
        try:
            grid = []
            for q in IQ_GRID:
                self.fixed_q = q
                grid.append(inverse(self.domain_map(y_hat)))
        finally:
            self.fixed_q, self.q = fixed, fixed
            self.train(was)
        return np.moveaxis(np.quantile(np.stack(grid, axis=-1), list(quantiles), axis=-1), 0, -1)

    def __call__(self, *args, **kwargs):
        return self._loss_call(*args, **kwargs)


class IQLoss(_Implicit, QuantileLoss):
    """Implicit quantile loss: the pinball loss at a quantile the loss network receives.

    Args:
        cos_embedding_dim: size of the cosine embedding of the quantile.
        concentration0, concentration1: the Beta distribution training quantiles are drawn from
            (NeuralForecast's names: Beta(concentration1, concentration0); 1, 1 is uniform).
        horizon_weight: optional array [h], a weight per forecast step.
    """

    def __init__(self, cos_embedding_dim: int = 64, concentration0: float = 1.0, concentration1: float = 1.0,
                 horizon_weight=None):
        nn.Module.__init__(self)
        QuantileLoss.__init__(self, q=0.5, horizon_weight=horizon_weight)
        self._init_implicit(cos_embedding_dim, concentration0, concentration1)

    _loss_call = QuantileLoss.__call__

    def __repr__(self):
        return "IQLoss()"


class HuberIQLoss(_Implicit, HuberQLoss):
    """Implicit Huberized quantile loss: HuberQLoss at a quantile the loss network receives
    (arguments as IQLoss, and delta, the Huber threshold). output_names '_q0.5_d{delta}' until
    update_quantile, as NeuralForecast; the forecast column is '_ql0.5' (predict_output_names)."""

    def __init__(self, cos_embedding_dim: int = 64, concentration0: float = 1.0, concentration1: float = 1.0,
                 delta: float = 1.0, horizon_weight=None):
        nn.Module.__init__(self)
        HuberQLoss.__init__(self, q=0.5, delta=delta, horizon_weight=horizon_weight)
        self._init_implicit(cos_embedding_dim, concentration0, concentration1)

    _loss_call = HuberQLoss.__call__

    def __repr__(self):
        return "HuberIQLoss()"

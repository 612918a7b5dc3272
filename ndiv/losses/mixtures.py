"""Mixture losses, NeuralForecast's GMM, PMM and NBMM: K Gaussian, Poisson or negative binomial
components per forecast, trained by the mixture's negative log-likelihood.

They follow DistributionLoss's flow in the model base (see distribution_loss.py): the network
outputs n_outputs * K values per target (n_outputs = 2 for GMM/NBMM, 1 for PMM, + 1 with
weighted=True: the mixture weights' logits), and

    output = loss.domain_map(net_out)        # [B, h, N * n_outputs * K] -> n_outputs x [B, h, N, K]
    distr_args = loss.scale_decouple(output, loc=y_loc, scale=y_scale)   # y_loc/y_scale [B, 1, N]
    loss(y=y, distr_args=distr_args, mask=mask)                          # 0-d Tensor
    samples, mean, quants = loss.sample(distr_args, rng=rng)             # NumPy [B, h, N, S|1|Q]

Output names as NeuralForecast: ['', '-median', '-lo-90', ...] and, with return_params, the
parameters per component in order (GMM: '-mu-1', '-std-1', '-mu-2', ...; with weighted, '-weight-k'
after each component's).

    >>> import numpy as np, ndiv
    >>> loss = GMM(n_components=2, level=[80])
    >>> loss.outputsize_multiplier, loss.output_names
    (4, ['', '-median', '-lo-80', '-hi-80'])
    >>> args = loss.scale_decouple(loss.domain_map(ndiv.zeros(1, 3, 4)))
    >>> round(loss(y=np.zeros((1, 3, 1)), distr_args=args).item(), 4)       # -log N(0; 0, softplus(0))
    0.5524
"""
from __future__ import annotations

import numpy as np

import ndiv
import ndiv.nn.functional as F
from ndiv.autograd.tensor import Tensor
from ndiv.losses.distribution_loss import DistributionLoss
from ndiv.losses.distributions import NegativeBinomial, Normal, Poisson, _const, _np
from ndiv.losses.point import _raw, level_to_outputs, quantiles_to_outputs, weighted_mean


class Mixture:
    """A mixture of K components of one family: weights [B, h, N, K] (summing to 1 or not: they
    are normalized), component a distribution with parameters [B, h, N, K]."""

    def __init__(self, weights: Tensor, component):
        self.component = component
        probs = weights / weights.sum(axis=-1, keepdims=True)
        eps = float(np.finfo(probs.dtype).eps)
        # torch's Categorical(probs): logits = log(clamp(probs, eps, 1 - eps)); then log_softmax
        self.log_weights = F.log_softmax(probs.clip(eps, 1 - eps).log(), dim=-1)
        self.probs = probs

    @property
    def mean(self) -> Tensor:
        return (self.probs * self.component.mean).sum(axis=-1)

    def component_log_prob(self, y) -> Tensor:
        """log p_k(y) [B, h, N, K] of y [B, h, N]."""
        y = _const(y, self.probs)
        return self.component.log_prob(y.unsqueeze(-1))

    def log_prob(self, y) -> Tensor:
        """log sum_k w_k p_k(y): [B, h, N]."""
        return (self.component_log_prob(y) + self.log_weights).logsumexp(-1)

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        """[num_samples, B, h, N]: a component drawn by its weight, then a draw from it."""
        probs = _np(self.probs)
        draws = self.component.sample(rng, num_samples)                         # [S, B, h, N, K]
        u = rng.random((num_samples,) + probs.shape[:-1] + (1,))
        k = (np.cumsum(probs, axis=-1) < u).sum(axis=-1, keepdims=True)
        k = np.minimum(k, probs.shape[-1] - 1)
        return np.take_along_axis(draws, k, axis=-1)[..., 0]


class _MixtureLoss(DistributionLoss):
    """What GMM, PMM and NBMM share: names, sizes, domain_map, the loss and sampling."""

    family = ""                 # the component family's name, for messages
    component_params: tuple = ()  # parameter name stems per component, e.g. ('mu', 'std')

    def __init__(self, n_components, level, quantiles, num_samples, return_params, weighted,
                 batch_correlation=False, horizon_correlation=False):
        if not isinstance(n_components, (int, np.integer)) or isinstance(n_components, bool) or n_components < 1:
            raise ValueError(f"{type(self).__name__}: n_components must be a positive integer, got {n_components!r}")
        qs, names = level_to_outputs(list(level))
        if quantiles is not None:   # NeuralForecast's mixtures keep the given order (no sort)
            qs, names = quantiles_to_outputs(list(quantiles))
        self.quantiles = np.asarray(qs, dtype=np.float64)
        self.distribution = type(self).__name__
        self.n_components = int(n_components)
        self.num_samples = num_samples
        self.return_params = return_params
        self.weighted = bool(weighted)
        self.batch_correlation = batch_correlation
        self.horizon_correlation = horizon_correlation
        self.horizon_weight = None
        self.rho = None
        stems = self.component_params + (("weight",) if self.weighted else ())
        self.param_names = [f"-{p}-{k}" for k in range(1, self.n_components + 1) for p in stems]
        self.n_outputs = len(stems)
        self.outputsize_multiplier = self.n_outputs * self.n_components
        self.output_names = [""] + names + (self.param_names if return_params else [])
        self.has_predicted = False

    def __repr__(self):
        return f"{type(self).__name__}(n_components={self.n_components})"

    def domain_map(self, y_hat: Tensor):
        """[B, h, N * n_outputs * K] -> n_outputs Tensors [B, h, N, K] (NeuralForecast's reshape and
        tensor_split: each series' outputs are n_outputs consecutive blocks of K)."""
        m = self.outputsize_multiplier
        if y_hat.shape[2] % m:
            raise ValueError(f"{self!r}: the model output has {y_hat.shape[2]} channels, not a multiple of its "
                             f"{m} outputs per series")
        out = y_hat.reshape(y_hat.shape[0], y_hat.shape[1], -1, m)
        k = self.n_components
        return tuple(out[..., i * k:(i + 1) * k] for i in range(self.n_outputs))

    @staticmethod
    def _per_component(loc, scale):
        """loc/scale [B, 1, N] -> [B, 1, N, 1], to broadcast over the components."""
        if loc is not None and loc.ndim == 3:
            loc, scale = loc[..., None], scale[..., None]
        return loc, scale

    def _split_weights(self, output):
        """(params..., weights) -> params, softmax(weights) or None."""
        if self.weighted:
            return output[:-1], F.softmax(output[-1], dim=-1)
        return output, None

    def _with_weights(self, params, weights):
        return tuple(params) + ((weights,) if self.weighted else ())

    def get_distribution(self, distr_args) -> Mixture:
        params = distr_args[:len(self.component_params)]
        if self.weighted:
            weights = distr_args[-1]
        else:
            weights = ndiv.full(tuple(params[0].shape), 1 / self.n_components, dtype=params[0].dtype,
                                device=params[0].device)
        return Mixture(weights, self.component(*params))

    def __call__(self, y, distr_args, mask=None) -> Tensor:
        """Masked mean negative log-likelihood of y [B, h, N] under the mixture. With
        batch_correlation (horizon_correlation), each component's log-likelihood is summed over
        the windows (steps) before mixing, as NeuralForecast does."""
        distr = self.get_distribution(distr_args)
        log_prob = distr.component_log_prob(y)                                   # [B, h, N, K]
        if self.batch_correlation:
            log_prob = log_prob.sum(axis=0, keepdims=True)
        if self.horizon_correlation:
            log_prob = log_prob.sum(axis=1, keepdims=True)
        nll = -(log_prob + distr.log_weights).logsumexp(-1)
        if mask is None:
            return nll.mean()
        return weighted_mean(nll, np.broadcast_to(_raw(mask), np.broadcast_shapes(nll.shape, _raw(mask).shape)))


class GMM(_MixtureLoss):
    """Gaussian mixture: K Normal(mu_k, std_k) components.

    Args:
        n_components: K.
        level / quantiles: the intervals to output, as DistributionLoss (quantiles kept in order).
        num_samples: samples per forecast for its mean and quantiles.
        return_params: also output each component's parameters ('-mu-k', '-std-k'[, '-weight-k']).
        batch_correlation / horizon_correlation: share each component across windows / steps.
        weighted: learn the mixture weights (else 1/K each).
    """

    component_params = ("mu", "std")
    component = Normal

    def __init__(self, n_components: int = 1, level=(80, 90), quantiles=None, num_samples: int = 1000,
                 return_params: bool = False, batch_correlation: bool = False, horizon_correlation: bool = False,
                 weighted: bool = False):
        super().__init__(n_components, level, quantiles, num_samples, return_params, weighted, batch_correlation,
                         horizon_correlation)

    def scale_decouple(self, output, loc=None, scale=None, eps: float = 0.2):
        """std = softplus; given the window's loc/scale: mu * scale + loc, (std + eps) * scale."""
        (means, stds), weights = self._split_weights(output)
        stds = F.softplus(stds)
        loc, scale = self._per_component(loc, scale)
        if loc is not None and scale is not None:
            means = means * scale + loc
            stds = (stds + eps) * scale
        return self._with_weights((means, stds), weights)


class PMM(_MixtureLoss):
    """Poisson mixture: K Poisson(lambda_k) components (arguments as GMM; n_components defaults
    to 10 and the parameters are named '-lambda-k'[, '-weight-k'])."""

    component_params = ("lambda",)
    component = Poisson

    def __init__(self, n_components: int = 10, level=(80, 90), quantiles=None, num_samples: int = 1000,
                 return_params: bool = False, batch_correlation: bool = False, horizon_correlation: bool = False,
                 weighted: bool = False):
        super().__init__(n_components, level, quantiles, num_samples, return_params, weighted, batch_correlation,
                         horizon_correlation)

    def scale_decouple(self, output, loc=None, scale=None):
        """lambda = softplus(lambda * scale + loc) + 1e-3 (without loc/scale: softplus + 1e-3)."""
        (lambdas,), weights = self._split_weights(output)
        loc, scale = self._per_component(loc, scale)
        if loc is not None and scale is not None:
            lambdas = lambdas * scale + loc
        return self._with_weights((F.softplus(lambdas) + 1e-3,), weights)


class NBMM(_MixtureLoss):
    """Negative binomial mixture: K NegativeBinomial(total_count_k, probs_k) components
    (arguments as GMM without the correlations; parameters '-total_count-k', '-probs-k'[, '-weight-k'])."""

    component_params = ("total_count", "probs")
    component = NegativeBinomial

    def __init__(self, n_components: int = 1, level=(80, 90), quantiles=None, num_samples: int = 1000,
                 return_params: bool = False, weighted: bool = False):
        super().__init__(n_components, level, quantiles, num_samples, return_params, weighted)

    def scale_decouple(self, output, loc=None, scale=None, eps: float = 0.2):
        """mu, alpha = softplus + 1e-8; given loc: mu * loc and alpha / (loc + 1) (NeuralForecast
        scales by the window's loc, not its scale); total_count = 1 / alpha,
        probs = mu alpha / (1 + mu alpha) + 1e-8."""
        (mu, alpha), weights = self._split_weights(output)
        mu = F.softplus(mu) + 1e-8
        alpha = F.softplus(alpha) + 1e-8
        loc, scale = self._per_component(loc, scale)
        if loc is not None and scale is not None:
            mu = mu * loc
            alpha = alpha / (loc + 1.0)
        total_count = 1.0 / alpha
        probs = mu * alpha / (mu * alpha + 1.0) + 1e-8
        return self._with_weights((total_count, probs), weights)

"""DistributionLoss: a parametric forecast distribution trained by negative log-likelihood.

The network outputs `outputsize_multiplier` = n_params values per target; the flow in the
model base is NeuralForecast's:

    output = loss.domain_map(net_out)                 # [B, h, n_params * N] -> n_params x [B, h, N]
    distr_args = loss.scale_decouple(output, loc=y_loc, scale=y_scale)   # y_loc/y_scale [B, 1, N]
    train:   loss(y=original_outsample_y, distr_args=distr_args, mask=outsample_mask)  # 0-d Tensor
    predict: samples, mean, quants = loss.sample(distr_args, rng=rng)  # NumPy [B, h, N, S|1|Q]
             forecast columns: mean, then quants (and distr_args with return_params=True),
             named model + each of loss.output_names: ['', '-median', '-lo-90', ..., '-hi-90']
             (other quantiles: sample(..., quantiles=q), named by predict_output_names(q))

    >>> import numpy as np, ndiv
    >>> loss = DistributionLoss("Normal", level=[80])
    >>> loss.output_names, loss.outputsize_multiplier
    (['', '-median', '-lo-80', '-hi-80'], 2)
    >>> out = loss.domain_map(ndiv.zeros(1, 3, 2))
    >>> args = loss.scale_decouple(out, loc=np.zeros((1, 1, 1)), scale=np.ones((1, 1, 1)))
    >>> round(float(loss(y=np.zeros((1, 3, 1)), distr_args=args).item()), 4)   # -log N(0; 0, softplus(0) + 0.2)
    0.8059
"""
from __future__ import annotations

import numpy as np

from ndiv.autograd.tensor import Tensor
from ndiv.losses.distributions import DISTRIBUTIONS, SCALE_DECOUPLES
from ndiv.losses.isqf import ISQF, isqf_domain_map, isqf_param_names, isqf_scale_decouple

DISTRIBUTIONS = {**DISTRIBUTIONS, "ISQF": ISQF}
SCALE_DECOUPLES = {**SCALE_DECOUPLES, "ISQF": isqf_scale_decouple}
from ndiv.losses.point import _raw, level_to_outputs, quantile_column, quantiles_to_outputs, weighted_mean


class DistributionLoss:
    """Negative log-likelihood of a parametric distribution, and its prediction intervals.

    Args:
        distribution: 'Normal', 'StudentT', 'Poisson', 'NegativeBinomial', 'Bernoulli' (y in {0, 1})
            or 'Tweedie' (give rho, its variance power in (1, 2): DistributionLoss('Tweedie', rho=1.5)),
            or 'ISQF' (num_pieces=5 spline pieces between the quantiles, which are its knots).
        level: interval levels for the output columns, e.g. [80, 90].
        quantiles: alternatively, quantiles (sorted; overrides level).
        num_samples: samples drawn per forecast to estimate its mean and quantiles.
        return_params: also output the distribution's parameters (columns '-loc', '-scale', ...).
        horizon_weight: optional array [h], a weight per forecast step.
    """

    is_distribution_output = True

    def __init__(self, distribution: str, level=(80, 90), quantiles=None, num_samples: int = 1000,
                 return_params: bool = False, horizon_weight=None, **distribution_kwargs):
        if distribution not in DISTRIBUTIONS:
            raise ValueError(f"DistributionLoss: distribution={distribution!r} is not available; use one of "
                             f"{list(DISTRIBUTIONS)}")
        self.rho = None
        self.num_pieces = distribution_kwargs.pop("num_pieces", 5) if distribution == "ISQF" else None
        if distribution == "ISQF" and return_params:
            raise ValueError("DistributionLoss('ISQF') does not support return_params=True (as NeuralForecast)")
        if distribution == "Tweedie":
            if "rho" not in distribution_kwargs:
                raise ValueError("DistributionLoss('Tweedie') needs rho, its variance power between 1 and 2, "
                                 "e.g. DistributionLoss('Tweedie', rho=1.5)")
            self.rho = float(distribution_kwargs.pop("rho"))
            if not 1 < self.rho < 2:
                raise ValueError(f"DistributionLoss('Tweedie'): rho={self.rho} must be between 1 and 2 (exclusive)")
            if return_params:
                raise ValueError("DistributionLoss('Tweedie') does not support return_params=True (as NeuralForecast)")
        if distribution_kwargs:
            raise ValueError(f"DistributionLoss: unexpected arguments {sorted(distribution_kwargs)} for {distribution}")
        qs, names = level_to_outputs(list(level))
        if quantiles is not None:
            qs, names = quantiles_to_outputs(sorted(quantiles))
        self.quantiles = np.asarray(qs, dtype=np.float64)
        self.distribution = distribution
        self._base_distribution = DISTRIBUTIONS[distribution]
        self._scale_decouple = SCALE_DECOUPLES[distribution]
        self.param_names = (isqf_param_names(len(self.quantiles), self.num_pieces) if distribution == "ISQF"
                            else list(self._base_distribution.param_names))
        self.num_samples = num_samples
        self.return_params = return_params
        self.horizon_weight = None if horizon_weight is None else np.asarray(horizon_weight, np.float64).ravel()
        self.output_names = [""] + names + (self.param_names if return_params else [])
        self.outputsize_multiplier = len(self.param_names)
        self.has_predicted = False

    def __repr__(self):
        return f"DistributionLoss({self.distribution!r})"

    def domain_map(self, y_hat: Tensor):
        """[B, h, n_params * N] -> tuple of n_params Tensors [B, h, N] (consecutive blocks of N);
        Tweedie: (y_hat, rho)."""
        if self.distribution == "Tweedie":
            return (y_hat, self.rho)
        if self.distribution == "ISQF":
            return isqf_domain_map(y_hat, np.sort(self.quantiles), self.num_pieces)
        k = self.outputsize_multiplier
        if y_hat.shape[2] % k:
            raise ValueError(f"DistributionLoss({self.distribution!r}): the model output has {y_hat.shape[2]} "
                             f"channels, not a multiple of its {k} parameters")
        n = y_hat.shape[2] // k
        return tuple(y_hat[:, :, i * n:(i + 1) * n] for i in range(k))

    def scale_decouple(self, output, loc=None, scale=None):
        """Raw outputs -> distribution parameters on the data's scale (NeuralForecast's
        *_scale_decouple). loc, scale: [B, 1, N] arrays or Tensors (revin's are Tensors)."""
        return self._scale_decouple(output, loc=loc, scale=scale)

    def get_distribution(self, distr_args):
        """The distribution object (mean, log_prob, sample) for these parameters."""
        return self._base_distribution(*distr_args)

    def sample(self, distr_args, num_samples: int | None = None, rng: np.random.Generator | None = None,
               quantiles=None):
        """Draw samples and summarize them (no gradient).

        Returns NumPy arrays: samples [B, h, N, num_samples], sample_mean [B, h, N, 1] and
        quants [B, h, N, Q] (linear interpolation, as torch.quantile), Q = len(quantiles).
        rng: a numpy Generator (default: seeded with 1, so repeated calls repeat).
        quantiles: the quantiles to estimate (default: the loss's own); a prediction passes
        them here rather than through update_quantile, so the loss keeps no per-call state.
        """
        num_samples = self.num_samples if num_samples is None else num_samples
        rng = np.random.default_rng(1) if rng is None else rng
        quantiles = self.quantiles if quantiles is None else np.asarray(quantiles, dtype=np.float64)
        samples = self.get_distribution(distr_args).sample(rng, num_samples)     # [S, B, h, N]
        samples = np.moveaxis(samples, 0, -1)
        sample_mean = samples.mean(axis=-1, keepdims=True)
        quants = np.moveaxis(np.quantile(samples, quantiles, axis=-1), 0, -1).astype(samples.dtype)
        return samples, sample_mean, quants

    def predict_output_names(self, quantiles=None, has_level: bool = False, who: str = "the model") -> list[str]:
        """The column suffixes of a forecast: the mean (''), one per quantile and, with
        return_params, the parameters; as NeuralForecast names them. quantiles None: the loss's
        own (e.g. ['', '-median', '-lo-90', '-hi-90']); else those of predict(level=) (has_level:
        '-lo-90', '-median', '-hi-90') or predict(quantiles=) ('_ql0.1'), in ascending order."""
        if quantiles is None:
            return list(self.output_names)
        names = [""] + [quantile_column(q, has_level) for q in quantiles]
        return names + (self.param_names if self.return_params else [])

    def update_quantile(self, q=None):
        """Predict other quantiles (NeuralForecast's): q list -> outputs ['', '_ql{q}', ...];
        q None after a change -> back to the median."""
        if q is not None:
            self.quantiles = np.asarray(q, dtype=np.float64)
            self.output_names = [""] + [f"_ql{qi}" for qi in q] + (self.param_names if self.return_params else [])
            self.has_predicted = True
        elif self.has_predicted:
            self.quantiles = np.array([0.5])
            self.output_names = ["", "-median"] + (self.param_names if self.return_params else [])

    def _compute_weights(self, y, mask):
        mask = np.ones(np.shape(_raw(y))) if mask is None else _raw(mask)
        if self.horizon_weight is None:
            return mask
        if mask.shape[1] != len(self.horizon_weight):
            raise ValueError(f"DistributionLoss: horizon_weight has {len(self.horizon_weight)} entries but the "
                             f"forecast has h={mask.shape[1]} steps")
        return mask * self.horizon_weight.reshape((1, -1) + (1,) * (mask.ndim - 2))

    def __call__(self, y, distr_args, mask=None) -> Tensor:
        """Masked mean negative log-likelihood of y [B, h, N] (on the original scale)."""
        nll = -self.get_distribution(distr_args).log_prob(y)
        return weighted_mean(nll, self._compute_weights(y, mask))

"""The parametric distributions of DistributionLoss: log-likelihood on Tensors, sampling on NumPy.

Each class takes its parameters as Tensors of one broadcast shape [B, h, N] (torch.distributions'
parameterization), has `mean` (a Tensor), `log_prob(y)` (a Tensor, differentiable in the
parameters; formulas as torch.distributions writes them) and `sample(rng, num_samples)`
(NumPy [num_samples, B, h, N], no gradient, from a numpy Generator).

    >>> import numpy as np, ndiv
    >>> d = Normal(ndiv.tensor([0.0]), ndiv.tensor([2.0]))
    >>> round(d.log_prob(np.array([1.0])).item(), 6)          # log N(1; 0, 2^2)
    -1.737086
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv.autograd.tensor import Tensor
from ndiv.losses._special import lgamma


def _np(x):
    """A Tensor's values as a NumPy array on the CPU (sampling runs there)."""
    if isinstance(x, Tensor):
        x = x.data
    return x.get() if hasattr(x, "get") else np.asarray(x)


def _const(y, like: Tensor) -> Tensor:
    if isinstance(y, Tensor):
        return y
    return ndiv.tensor(np.asarray(y).astype(like.dtype, copy=False), device=like.device)


class Normal:
    """Normal(loc, scale)."""
    param_names = ["-loc", "-scale"]

    def __init__(self, loc: Tensor, scale: Tensor):
        self.loc, self.scale = loc, scale

    @property
    def mean(self) -> Tensor:
        return self.loc

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.loc)
        z = (y - self.loc) / self.scale
        return z * z * -0.5 - self.scale.log() - math.log(math.sqrt(2 * math.pi))

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        loc, scale = np.broadcast_arrays(_np(self.loc), _np(self.scale))
        return rng.normal(loc, scale, size=(num_samples,) + loc.shape).astype(loc.dtype)


class StudentT:
    """StudentT(df, loc, scale)."""
    param_names = ["-df", "-loc", "-scale"]

    def __init__(self, df: Tensor, loc: Tensor, scale: Tensor):
        self.df, self.loc, self.scale = df, loc, scale

    @property
    def mean(self) -> Tensor:
        """loc (NaN where df <= 1, as torch)."""
        return ndiv.where(self.df.data > 1, self.loc, float("nan"))

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.loc)
        z = (y - self.loc) / self.scale
        log_z = (self.scale.log() + self.df.log() * 0.5 + 0.5 * math.log(math.pi)
                 + lgamma(self.df * 0.5) - lgamma((self.df + 1.0) * 0.5))
        return (self.df + 1.0) * -0.5 * (z * z / self.df).log1p() - log_z

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        df, loc, scale = np.broadcast_arrays(_np(self.df), _np(self.loc), _np(self.scale))
        t = rng.standard_t(df, size=(num_samples,) + df.shape)
        return (loc + scale * t).astype(loc.dtype)


class Poisson:
    """Poisson(rate); y may be any value >= 0 (NeuralForecast relaxes the integer support)."""
    param_names = ["-loc"]

    def __init__(self, rate: Tensor):
        self.rate = rate

    @property
    def mean(self) -> Tensor:
        return self.rate

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.rate)
        # torch's xlogy(y, rate): 0 where y = 0 (rate > 0 here, so y * log(rate) is that already)
        return ndiv.where(y.data == 0, 0.0, y * self.rate.log()) - self.rate - lgamma(y + 1.0)

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        rate = _np(self.rate)
        return rng.poisson(rate, size=(num_samples,) + rate.shape).astype(rate.dtype)


class NegativeBinomial:
    """NegativeBinomial(total_count, probs): successes before total_count failures, success
    probability probs; mean total_count * probs / (1 - probs). probs are clamped to
    [eps, 1 - eps] of their dtype, as torch's logits are."""
    param_names = ["-total_count", "-logits"]

    def __init__(self, total_count: Tensor, probs: Tensor):
        self.total_count = total_count
        eps = float(np.finfo(probs.dtype).eps)
        self.probs = probs.clip(eps, 1 - eps)

    @property
    def logits(self) -> Tensor:
        return self.probs.log() - (-self.probs).log1p()

    @property
    def mean(self) -> Tensor:
        return self.total_count * self.probs / (1.0 - self.probs)

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.probs)
        log_unnormalized = self.total_count * (-self.probs).log1p() + y * self.probs.log()
        log_normalization = lgamma(y + 1.0) + lgamma(self.total_count) - lgamma(self.total_count + y)
        log_normalization = ndiv.where((self.total_count + y).data == 0, 0.0, log_normalization)
        return log_unnormalized - log_normalization

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        # torch's construction: a Gamma(total_count, scale = p / (1 - p)) rate, then Poisson
        n, p = np.broadcast_arrays(_np(self.total_count), _np(self.probs))
        lam = rng.gamma(n, p / (1 - p), size=(num_samples,) + n.shape)
        return rng.poisson(lam).astype(p.dtype)


class Bernoulli:
    """Bernoulli(probs): y in {0, 1}. probs are clamped to [eps, 1 - eps] of their dtype in the
    log-likelihood, as torch's logits are."""
    param_names = ["-logits"]

    def __init__(self, probs: Tensor):
        self.probs = probs

    @property
    def mean(self) -> Tensor:
        return self.probs

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.probs)
        bad = np.isfinite(_np(y)) & (_np(y) != 0) & (_np(y) != 1)
        if bad.any():
            raise ValueError(f"DistributionLoss('Bernoulli'): y must be 0 or 1, got {_np(y)[bad][:3].tolist()} "
                             "(torch rejects them too); use Normal/StudentT for real-valued targets")
        eps = float(np.finfo(self.probs.dtype).eps)
        p = self.probs.clip(eps, 1 - eps)
        return y * p.log() + (1.0 - y) * (-p).log1p()

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        p = _np(self.probs)
        return (rng.random((num_samples,) + p.shape) < p).astype(p.dtype)


class Tweedie:
    """Tweedie(log_mu, rho), NeuralForecast's: the compound Poisson-Gamma with mean exp(log_mu),
    variance power rho in (1, 2) and dispersion 1. log_prob is NeuralForecast's quasi-likelihood
    y mu^(1 - rho) / (1 - rho) - mu^(2 - rho) / (2 - rho) (without the y-only normalizer)."""
    param_names = ["-log_mu"]

    def __init__(self, log_mu: Tensor, rho: float):
        if not 1 < rho < 2:
            raise ValueError(f"Tweedie: rho={rho} must be between 1 and 2 (exclusive)")
        self.log_mu, self.rho = log_mu, float(rho)

    @property
    def mean(self) -> Tensor:
        return self.log_mu.exp()

    def log_prob(self, y) -> Tensor:
        y = _const(y, self.log_mu)
        rho = self.rho
        a = y * (self.log_mu * (1 - rho)).exp() / (1 - rho)
        b = (self.log_mu * (2 - rho)).exp() / (2 - rho)
        return a - b

    def sample(self, rng: np.random.Generator, num_samples: int) -> np.ndarray:
        # NeuralForecast's construction: N ~ Poisson(mu^(2-rho) / (2-rho)), then
        # Gamma(N alpha, rate beta) with alpha = (2-rho)/(rho-1), beta = mu^(1-rho)/(rho-1); its
        # N + 1e-5 keeps the Gamma's shape positive, so a draw with N = 0 is a tiny positive value
        mu = np.exp(_np(self.log_mu).astype(np.float64))
        rho = self.rho
        rate = mu ** (2 - rho) / (2 - rho)
        alpha = (2 - rho) / (rho - 1)
        beta = mu ** (1 - rho) / (rho - 1)
        n = rng.poisson(np.broadcast_to(rate, (num_samples,) + mu.shape)) + 1e-5
        return rng.gamma(n * alpha, 1.0 / beta).astype(_np(self.log_mu).dtype)


DISTRIBUTIONS = {"Bernoulli": Bernoulli, "Normal": Normal, "Poisson": Poisson, "StudentT": StudentT,
                 "NegativeBinomial": NegativeBinomial, "Tweedie": Tweedie}


# ----------------------------------------------------------------------------- scale decouple
# NeuralForecast's: map the network's raw outputs into each parameter's domain and, given the
# window's target statistics (loc, scale), put them on the data's scale, so the network works
# in the scaled space while the likelihood is evaluated on the original y.
def _softplus(x):
    import ndiv.nn.functional as F
    return F.softplus(x)


def normal_scale_decouple(output, loc=None, scale=None, eps: float = 0.2):
    mean, std = output
    std = _softplus(std)
    if loc is not None and scale is not None:
        mean = mean * scale + loc
        std = (std + eps) * scale
    return (mean, std)


def student_scale_decouple(output, loc=None, scale=None, eps: float = 0.1):
    df, mean, tscale = output
    tscale = _softplus(tscale)
    if loc is not None and scale is not None:
        mean = mean * scale + loc
        tscale = (tscale + eps) * scale
    df = _softplus(df) + 3.0
    return (df, mean, tscale)


def poisson_scale_decouple(output, loc=None, scale=None):
    (rate,) = output
    if loc is not None and scale is not None:
        rate = rate * scale + loc
    return (_softplus(rate) + 1e-10,)


def nbinomial_scale_decouple(output, loc=None, scale=None):
    mu, alpha = output
    mu = _softplus(mu) + 1e-8
    alpha = _softplus(alpha) + 1e-8          # alpha = 1 / total_count
    if loc is not None and scale is not None:
        mu = mu * scale + loc
        alpha = alpha / (scale + 1.0)
    total_count = 1.0 / alpha
    probs = mu * alpha / (mu * alpha + 1.0) + 1e-8
    return (total_count, probs)


def bernoulli_scale_decouple(output, loc=None, scale=None):
    """probs = sigmoid(output); loc and scale are not used (NeuralForecast's)."""
    (probs,) = output
    return (probs.sigmoid(),)


def tweedie_scale_decouple(output, loc=None, scale=None):
    """log_mu = clip(softplus(output), 1e-9, 37) (+ log(loc) given the window's loc, clipped
    again); rho passes through (NeuralForecast's)."""
    log_mu, rho = output
    log_mu = _softplus(log_mu).clip(1e-9, 37)
    if loc is not None and scale is not None:
        log_mu = (log_mu + loc.log() if isinstance(loc, Tensor) else log_mu + np.log(loc)).clip(1e-9, 37)
    return (log_mu, rho)


SCALE_DECOUPLES = {"Bernoulli": bernoulli_scale_decouple, "Normal": normal_scale_decouple,
                   "Poisson": poisson_scale_decouple, "StudentT": student_scale_decouple,
                   "NegativeBinomial": nbinomial_scale_decouple, "Tweedie": tweedie_scale_decouple}

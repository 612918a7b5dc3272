"""Losses: NeuralForecast's point, quantile and distribution losses on ndiv Tensors.

    from ndiv.losses import MAE, MQLoss, DistributionLoss
    loss = MQLoss(level=[80, 90])            # 5 outputs: median and two intervals
    loss(y=y, y_hat=loss.domain_map(out), mask=mask)   # 0-d Tensor, differentiable in out

Each loss exposes what the model base needs: `outputsize_multiplier`, `output_names`,
`is_distribution_output`, `domain_map`; DistributionLoss also `scale_decouple`, `sample` and
`get_distribution` (see ndiv/losses/distribution_loss.py for the training/prediction flow).

NeuralForecast 3.3's losses, by file: point.py (MAE ... MASE, HuberLoss, TukeyLoss, QuantileLoss,
HuberQLoss, MQLoss, HuberMQLoss), implicit.py (IQLoss, HuberIQLoss: nn.Modules with their own
quantile network), distribution_loss.py + distributions.py + isqf.py (DistributionLoss: Normal,
StudentT, Poisson, NegativeBinomial, Bernoulli, Tweedie, ISQF), mixtures.py (GMM, PMM, NBMM).
`ndiv.losses.pytorch` is an alias of this module (NeuralForecast's import path).
"""
from ndiv.losses.distribution_loss import DistributionLoss
from ndiv.losses.distributions import Bernoulli, NegativeBinomial, Normal, Poisson, StudentT, Tweedie
from ndiv.losses.implicit import HuberIQLoss, IQLoss
from ndiv.losses.mixtures import GMM, NBMM, PMM
from ndiv.losses.point import (MAE, MAPE, MASE, MSE, RMSE, SMAPE, BasePointLoss, HuberLoss, HuberMQLoss, HuberQLoss,
                               MQLoss, QuantileLoss, TukeyLoss,
                               check_quantiles, level_to_outputs, level_to_quantiles, quantile_column,
                               quantiles_to_level, quantiles_to_outputs, weighted_mean)

from ndiv.config import record_init_args

_ALL = (MAE, MSE, RMSE, MAPE, SMAPE, MASE, HuberLoss, TukeyLoss, QuantileLoss, HuberQLoss, IQLoss, HuberIQLoss, MQLoss,
        HuberMQLoss, DistributionLoss, GMM, PMM, NBMM)
for _cls in (BasePointLoss,) + _ALL:
    record_init_args(_cls)  # Forecaster.save writes each loss as its class name and arguments

# The losses a saved Forecaster may name: Forecaster.load looks a name up here and nowhere else.
LOSSES = {cls.__name__: cls for cls in _ALL}

__all__ = ["LOSSES",
           "MAE", "MSE", "RMSE", "MAPE", "SMAPE", "MASE", "HuberLoss", "TukeyLoss", "QuantileLoss", "HuberQLoss",
           "MQLoss", "HuberMQLoss", "IQLoss", "HuberIQLoss", "DistributionLoss", "GMM", "PMM", "NBMM",
           "BasePointLoss", "Normal", "StudentT", "Poisson", "NegativeBinomial", "Bernoulli", "Tweedie",
           "level_to_outputs",
           "quantiles_to_outputs", "level_to_quantiles", "quantiles_to_level", "check_quantiles", "quantile_column",
           "weighted_mean"]

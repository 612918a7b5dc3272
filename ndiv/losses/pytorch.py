"""`ndiv.losses.pytorch`: the name NeuralForecast scripts import losses from.

    from ndiv.losses.pytorch import MAE, MQLoss, DistributionLoss   # as `from neuralforecast.losses.pytorch import ...`

The same classes as `ndiv.losses` (no torch involved); NeuralForecast's losses that ndiv does not
have (FreDF, relMSE, Accuracy, sCRPS) raise ImportError here, naming the module.
"""
from ndiv.losses import *  # noqa: F401,F403  (re-exported: this module is an alias)
from ndiv.losses import __all__  # noqa: F401

"""The forecasting models, one file each, on the shared BaseModel.

`MODELS` maps each model's name to its class (the CLI and Forecaster.load use it).
"""
from ndiv.models.base import BaseModel
from ndiv.models.mlp import MLP

MODELS = {cls.__name__: cls for cls in (MLP,)}

__all__ = ["BaseModel", "MODELS", *MODELS]

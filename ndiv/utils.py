"""NeuralForecast's `neuralforecast.utils` names that scripts import: PredictionIntervals
(ndiv/conformal.py)."""
from ndiv.conformal import PredictionIntervals  # noqa: F401

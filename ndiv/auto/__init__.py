"""Auto* models: hyperparameter search on optuna, trials on a backend (local processes, Dask, Ray).

    >>> from ndiv.auto import AutoNHITS
    >>> fc = Forecaster(models=[AutoNHITS(h=12, num_samples=8, backend="local")], freq="MS").fit(df)

`Auto<Model>` exists for every model of ndiv.models.MODELS that has a row in spaces.SPACES
(NeuralForecast's default search space for it); add the row to give a new model its Auto class.
The backends (ndiv.auto.backends) also run Forecaster's fits of many models and cross-validation
windows (ndiv.auto.parallel), and `Partitioned(model, n_partitions)` fits one copy of a model per
partition of many series, each partition a task on the backend (ndiv.auto.partitioned). optuna, dask[distributed] and ray are optional extras
(pip install 'ndiv[auto]', 'ndiv[dask]', 'ndiv[ray]'): ndiv imports without them and says which
extra to install when one is used.
"""
from ndiv.auto import spaces
from ndiv.auto.backends import Backend, DaskBackend, InProcessBackend, LocalBackend, RayBackend, get_backend
from ndiv.auto.base_auto import BaseAuto, make_auto
from ndiv.auto.partitioned import Partitioned
from ndiv.models import MODELS

AUTO_MODELS = {f"Auto{name}": make_auto(cls) for name, cls in MODELS.items() if name in spaces.SPACES}
globals().update(AUTO_MODELS)

__all__ = ["BaseAuto", "AUTO_MODELS", "Backend", "LocalBackend", "InProcessBackend", "DaskBackend", "RayBackend",
           "get_backend", "make_auto", "Partitioned", "spaces", *AUTO_MODELS]

"""ndiv: neural forecasting on a NumPy autodiff tensor, with Numba and CuPy kernels.

    >>> import ndiv
    >>> x = ndiv.tensor([1.0, 2.0, 3.0], requires_grad=True)
    >>> (x ** 2).sum().backward()
    >>> x.grad
    array([2., 4., 6.], dtype=float32)
"""
from ndiv.autograd import Function, Tensor, enable_grad, gradcheck, is_grad_enabled, no_grad, set_grad_enabled  # noqa: F401
from ndiv.autograd.methods import (  # noqa: F401
    abs, angle, arange, cat, complex, concatenate, conj, cos, cumsum, einsum, empty, erf, exp, expm1, eye, full,
    gather, imag, is_tensor, linspace, log, log1p, maximum, minimum, ones, ones_like, pad, rand, randn, real, relu,
    sigmoid, sin, sqrt, stack, tanh, tensor, topk, where, zeros, zeros_like,
)
from ndiv.autograd.tensor import bool_, complex64, complex128, float16, float32, float64, int32, int64  # noqa: F401
from ndiv.autograd.methods import (  # noqa: F401
    argsort, diag, diff, index_put, median, nan_to_num, scatter, scatter_add, sort, tril, triu,
)
from ndiv.random import manual_seed, multinomial, randint  # noqa: F401
from ndiv import fft  # noqa: F401
from ndiv.serialization import load, save  # noqa: F401
from ndiv.threads import get_num_threads, set_num_threads  # noqa: F401
from ndiv.autograd.amp import autocast, is_autocast_enabled  # noqa: F401

__version__ = "0.1.0"

# NeuralForecast: the same class as Forecaster, under NeuralForecast's name (NF scripts run with
# only their import line changed)
_LAZY = {"Forecaster": ("ndiv.forecaster", "Forecaster"), "NeuralForecast": ("ndiv.forecaster", "Forecaster"),
         "from_neuralforecast": ("ndiv._nf_folder", "from_neuralforecast"),
         "PredictionIntervals": ("ndiv.conformal", "PredictionIntervals")}
_SUBMODULES = {"nn", "optim", "losses", "data", "models", "metrics", "datasets", "kernels", "memory", "cli", "conformal",
               "utils"}


def __getattr__(name):
    """Submodules and Forecaster (NeuralForecast) load on first use, so `import ndiv` stays light."""
    import importlib
    if name in _LAZY:
        mod, attr = _LAZY[name]
        return getattr(importlib.import_module(mod), attr)
    if name in _SUBMODULES:
        return importlib.import_module(f"ndiv.{name}")
    raise AttributeError(f"module 'ndiv' has no attribute {name!r}")

"""NBEATS: stacks of MLP blocks with backcast/forecast residual links, each block projecting on
an identity, trend or seasonality basis (NeuralForecast's NBEATS)."""
from __future__ import annotations

import warnings

import numpy as np

from ndiv import nn
from ndiv.models._checks import MLP_UNITS, N_BLOCKS, NON_NEGATIVE_INT, POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._stacks import build_blocks, doubly_residual

ACTIVATIONS = ("ReLU", "Softplus", "Tanh", "SELU", "LeakyReLU", "PReLU", "Sigmoid")
STACK_TYPES = ("identity", "trend", "seasonality")


def block_layers(n_in: int, mlp_units, n_theta: int, activation: str, dropout_prob: float) -> nn.Sequential:
    """NeuralForecast's block MLP, index for index (so its weights load): Linear(n_in, u[0][0]),
    then for each [a, b] in mlp_units Linear(a, b), activation (, Dropout), then
    Linear(u[-1][1], n_theta). As in NF, the first two Linears have no activation between them,
    and one activation module serves every layer (a PReLU's weight is shared)."""
    act = getattr(nn, activation)()
    layers = [nn.Linear(n_in, mlp_units[0][0])]
    for n_a, n_b in mlp_units:
        layers += [nn.Linear(n_a, n_b), act]
        if dropout_prob > 0:
            layers.append(nn.Dropout(p=dropout_prob))
    return nn.Sequential(*layers, nn.Linear(mlp_units[-1][1], n_theta))


# the size options of NBEATS's and NHITS's blocks (see ndiv/models/_checks.py)
BLOCK_RULES = dict(mlp_units=MLP_UNITS, n_blocks=N_BLOCKS)


def check_block_options(name: str, stack_types, n_blocks, mlp_units, activation, dropout_prob_theta):
    """The options NBEATS and NHITS share that depend on each other (their sizes are in
    BLOCK_RULES), checked with messages that say what is expected."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"{name}: activation must be one of {list(ACTIVATIONS)}, got {activation!r}")
    if len(n_blocks) != len(stack_types):
        raise ValueError(f"{name}: n_blocks needs one entry per stack ({len(stack_types)} stack_types), got {list(n_blocks)}")
    if not 0.0 <= dropout_prob_theta < 1.0:
        raise ValueError(f"{name}: dropout_prob_theta must be in [0, 1), got {dropout_prob_theta!r}")


# -- trend bases: [length, n_basis] each, NeuralForecast's definitions --------------------------

def _legendre(length, n):
    from numpy.polynomial.legendre import Legendre
    x = np.linspace(-1, 1, length)
    return np.stack([Legendre.basis(i)(x) for i in range(n)], axis=1)


def _chebyshev(length, n):
    from numpy.polynomial.chebyshev import Chebyshev
    x = np.linspace(-1, 1, length)
    return np.stack([Chebyshev.basis(i)(x) for i in range(n)], axis=1)


def _polynomial(length, n):
    return np.stack([(np.arange(length, dtype=float) / length) ** i for i in range(n)], axis=1)


def _changepoint(length, n):
    x = np.linspace(0, 1, length)[:, None]
    return np.maximum(0, x - np.linspace(0, 1, n + 1)[1:][None, :])


def _piecewise_linear(length, n):
    x, knots = np.linspace(0, 1, length), np.linspace(0, 1, n + 1)
    out = np.zeros((length, n))
    for i in range(1, n):                    # column 0 stays zero, as in NF
        out[:, i] = np.maximum(0, np.minimum((x - knots[i - 1]) / (knots[i] - knots[i - 1]),
                                             (knots[i + 1] - x) / (knots[i + 1] - knots[i])))
    return out


def _linear_hat(length, n):
    x, centers = np.linspace(0, 1, length)[:, None], np.linspace(0, 1, n)[None, :]
    return np.maximum(0, 1 - np.abs(x - centers) * (n - 1))


def _spline(length, n):
    from scipy.interpolate import BSpline
    if n < 4:
        raise ValueError(f"NBEATS: basis='spline' needs n_basis >= 3 (4 cubic B-splines), got n_basis={n - 1}")
    knots = np.concatenate(([0, 0, 0], np.linspace(0, 1, n - 2), [1, 1, 1]))
    return BSpline(knots, np.eye(n), 3)(np.linspace(0, 1, length))


TREND_BASES = {"legendre": _legendre, "polynomial": _polynomial, "changepoint": _changepoint,
               "piecewise_linear": _piecewise_linear, "linear_hat": _linear_hat, "spline": _spline,
               "chebyshev": _chebyshev}


def _fixed(values: np.ndarray) -> nn.Parameter:
    """A basis matrix: NF keeps it as a Parameter with requires_grad=False (in the state_dict)."""
    return nn.Parameter(values.astype(np.float32), requires_grad=False)


class IdentityBasis(nn.Module):
    """theta [B, L + h * n_out] -> backcast [B, L], forecast [B, h, n_out] (the theta itself)."""

    def __init__(self, backcast_size: int, forecast_size: int, out_features: int = 1):
        super().__init__()
        self.backcast_size, self.forecast_size, self.out_features = backcast_size, forecast_size, out_features
        self.n_theta = backcast_size + forecast_size * out_features

    def forward(self, theta):
        forecast = theta[:, self.backcast_size:]
        return theta[:, :self.backcast_size], forecast.reshape(forecast.shape[0], -1, self.out_features)


class _ProjectionBasis(nn.Module):
    """theta [B, P + P * n_out] -> backcast [B, L] = theta_b @ backcast_basis [P, L],
    forecast [B, h, n_out] = forecast_basis.T [h, P] @ theta_f [B, P, n_out]."""

    def __init__(self, backcast_basis: np.ndarray, forecast_basis: np.ndarray, out_features: int):
        super().__init__()
        self.out_features = out_features
        self.backcast_basis = _fixed(backcast_basis)       # [P, L]
        self.forecast_basis = _fixed(forecast_basis)       # [P, h]
        self.n_theta = backcast_basis.shape[0] * (1 + out_features)

    def forward(self, theta):
        p = self.forecast_basis.shape[0]
        backcast = theta[:, :p] @ self.backcast_basis                               # [B, L]
        theta_f = theta[:, p:].reshape(theta.shape[0], p, self.out_features)        # [B, P, n_out]
        forecast = (theta_f.swapaxes(1, 2) @ self.forecast_basis).swapaxes(1, 2)    # [B, h, n_out]
        return backcast, forecast


class TrendBasis(_ProjectionBasis):
    """A trend: n_basis + 1 functions of time (polynomial by default), for backcast and forecast."""

    def __init__(self, n_basis: int, backcast_size: int, forecast_size: int, out_features: int = 1,
                 basis: str = "polynomial"):
        make = TREND_BASES[basis]
        super().__init__(make(backcast_size, n_basis + 1).T, make(forecast_size, n_basis + 1).T, out_features)


class SeasonalityBasis(_ProjectionBasis):
    """Fourier terms: cos and sin at frequencies 0 and k / harmonics (k = harmonics .. harmonics * h / 2),
    time measured in forecast lengths (the backcast runs backwards from the window's end)."""

    def __init__(self, harmonics: int, backcast_size: int, forecast_size: int, out_features: int = 1):
        freq = np.append(0.0, np.arange(harmonics, harmonics / 2 * forecast_size, dtype=float) / harmonics)[None, :]
        back = -2 * np.pi * (np.arange(backcast_size, dtype=float)[:, None] / forecast_size) * freq   # [L, F]
        fore = 2 * np.pi * (np.arange(forecast_size, dtype=float)[:, None] / forecast_size) * freq    # [h, F]
        super().__init__(np.concatenate([np.cos(back).T, np.sin(back).T]),
                         np.concatenate([np.cos(fore).T, np.sin(fore).T]), out_features)


class NBEATSBlock(nn.Module):
    """residual [B, L] -> MLP -> theta [B, n_theta] -> basis -> (backcast [B, L], forecast [B, h, n_out])."""

    def __init__(self, input_size: int, n_theta: int, mlp_units, basis: nn.Module, dropout_prob: float,
                 activation: str):
        super().__init__()
        self.layers = block_layers(input_size, mlp_units, n_theta, activation, dropout_prob)
        self.basis = basis

    def forward(self, insample_y):
        return self.basis(self.layers(insample_y))


class NBEATS(BaseModel):
    """NBEATS: a deep stack of MLP blocks with doubly residual links. Each block reads what the
    blocks before it left unexplained of the (reversed) window, projects it on its stack's
    basis, and subtracts its backcast; the forecast is the last value plus every block's forecast.

    Args: h (int) horizon; input_size (int) window length L;
        stack_types (list of 'identity' | 'trend' | 'seasonality'); n_blocks (list of int) blocks per stack;
        mlp_units (list of [in, out]) the hidden Linear layers of every block;
        n_harmonics (int) seasonality: harmonics per forecast length;
        n_basis (int), basis (str) trend: n_basis + 1 functions of kind basis ('polynomial',
        'legendre', 'chebyshev', 'changepoint', 'piecewise_linear', 'linear_hat', 'spline');
        n_polynomials: deprecated and ignored (as in NeuralForecast; use n_basis);
        dropout_prob_theta (float) dropout after each hidden activation (NeuralForecast raises for
        values > 0; here it works as in NHITS); activation (str) one of ACTIVATIONS;
        shared_weights (bool) the blocks of a stack share one set of weights;
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.
        No exogenous variables.

    References: Oreshkin et al. (2020), "N-BEATS: Neural basis expansion analysis for
        interpretable time series forecasting".

    >>> model = NBEATS(h=12, input_size=24, mlp_units=[[64, 64], [64, 64]], max_steps=200)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=1024,
                    inference_windows_batch_size=-1, scaler_type="identity")
    OPTION_RULES = dict(BLOCK_RULES, n_harmonics=POSITIVE_INT, n_basis=NON_NEGATIVE_INT)

    def __init__(self, h, input_size, n_harmonics=2, n_polynomials=None, n_basis=2, basis="polynomial",
                 stack_types=("identity", "trend", "seasonality"), n_blocks=(1, 1, 1),
                 mlp_units=((512, 512),) * 3, dropout_prob_theta=0.0, activation="ReLU", shared_weights=False,
                 **kwargs):
        if h == 1 and ("seasonality" in stack_types or "trend" in stack_types):
            raise ValueError("NBEATS: h=1 does not work with 'seasonality' or 'trend' stacks; "
                             "use stack_types=['identity', ...] or a longer horizon")
        super().__init__(h=h, input_size=input_size, **kwargs)
        check_block_options("NBEATS", stack_types, n_blocks, mlp_units, activation, dropout_prob_theta)
        bad = [s for s in stack_types if s not in STACK_TYPES]
        if bad:
            raise ValueError(f"NBEATS: stack_types must be among {list(STACK_TYPES)}, got {bad}")
        if "trend" in stack_types and basis not in TREND_BASES:
            raise ValueError(f"NBEATS: basis must be one of {sorted(TREND_BASES)}, got {basis!r}")
        if n_polynomials is not None:
            warnings.warn("NBEATS: n_polynomials is deprecated and ignored; the trend stack uses n_basis and basis",
                          DeprecationWarning, stacklevel=2)
        n_out = self.loss.outputsize_multiplier
        def make_block(stack, _):
            if stack == "seasonality":
                basis_module = SeasonalityBasis(n_harmonics, input_size, h, n_out)
            elif stack == "trend":
                basis_module = TrendBasis(n_basis, input_size, h, n_out, basis=basis)
            else:
                basis_module = IdentityBasis(input_size, h, n_out)
            return NBEATSBlock(input_size, basis_module.n_theta, mlp_units, basis_module, dropout_prob_theta, activation)

        self.blocks = build_blocks(stack_types, n_blocks, shared_weights, make_block)

    def forward(self, windows_batch):
        """insample_y, insample_mask [B, L, 1] -> forecast [B, h, n_out]."""
        return doubly_residual(self.blocks, windows_batch, lambda block, residuals: block(residuals))

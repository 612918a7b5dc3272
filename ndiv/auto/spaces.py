"""Search spaces: NeuralForecast's default Auto* configurations, one table row per model.

A space is a dict {hyperparameter: value or distribution}. The distributions are NF's Ray Tune
ones under the same names (choice, randint, loguniform, uniform, quniform) and are drawn with
optuna exactly as NF's optuna backend translates them (`BaseAuto._ray_config_to_optuna`):

    choice(values)          -> trial.suggest_categorical
    randint(lo, hi)         -> trial.suggest_int(lo, hi)           (both ends included, as NF's optuna)
    loguniform(lo, hi)      -> trial.suggest_float(lo, hi, log=True)
    uniform(lo, hi)         -> trial.suggest_float(lo, hi)
    quniform(lo, hi, q)     -> trial.suggest_float(lo, hi, step=q) (an int when lo, hi and q are ints)
    hmult([1, 2, 3])        -> choice([h, 2h, 3h])                 (NF's input_size_multiplier)

To give a new model its Auto class, add one row to SPACES (its NF `default_config`, read from
neuralforecast/auto.py): ndiv.auto builds `Auto<Model>` for every model of ndiv.models.MODELS that
has a row here. tests/auto/test_spaces.py compares every row with NF's own default_config.
"""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class choice:
    values: list

    def suggest(self, trial, name, h):
        if all(isinstance(v, (int, float, str, bool, type(None))) for v in self.values):
            return trial.suggest_categorical(name, list(self.values))
        # lists (NHITS's kernel sizes): optuna stores categorical values that are JSON scalars
        i = trial.suggest_categorical(name, [repr(v) for v in self.values])
        return self.values[[repr(v) for v in self.values].index(i)]


@dataclass(frozen=True)
class randint:
    lower: int
    upper: int

    def suggest(self, trial, name, h):
        return trial.suggest_int(name, self.lower, self.upper)


@dataclass(frozen=True)
class loguniform:
    lower: float
    upper: float

    def suggest(self, trial, name, h):
        return trial.suggest_float(name, self.lower, self.upper, log=True)


@dataclass(frozen=True)
class uniform:
    lower: float
    upper: float

    def suggest(self, trial, name, h):
        return trial.suggest_float(name, self.lower, self.upper)


@dataclass(frozen=True)
class quniform:
    lower: float
    upper: float
    q: float

    def suggest(self, trial, name, h):
        v = trial.suggest_float(name, self.lower, self.upper, step=self.q)
        ints = all(float(x).is_integer() for x in (self.lower, self.upper, self.q))
        return int(round(v)) if ints and math.isfinite(v) else v


@dataclass(frozen=True)
class hmult:
    """NF's `input_size_multiplier`: a choice among multiples of the horizon h."""
    multipliers: list

    def suggest(self, trial, name, h):
        return trial.suggest_categorical(name, [h * m for m in self.multipliers])


DISTRIBUTIONS = (choice, randint, loguniform, uniform, quniform, hmult)

# The pieces most of NF's default configs share (spelled out per row where a model differs).
_LR = loguniform(1e-4, 1e-1)
_SCALER = choice([None, "robust", "standard"])
_BATCH = choice([32, 64, 128, 256])
_WINDOWS = choice([128, 256, 512, 1024])
_SEED = randint(1, 20)
_STEP = choice([1, "h"])  # "h": the horizon. NF's get_default_config adds step_size = choice([1, h]) to the windows models


def _windows(input_size=(1, 2, 3, 4, 5), max_steps=quniform(500, 1500, 100), windows=True, **own) -> dict:
    """A windows-based model's NF default config: its own keys, then the shared ones."""
    return {**own, "learning_rate": own.pop("learning_rate", _LR), "scaler_type": own.pop("scaler_type", _SCALER),
            "max_steps": max_steps, "batch_size": own.pop("batch_size", _BATCH),
            **({"windows_batch_size": own.pop("windows_batch_size", _WINDOWS)} if windows else {}),
            "random_seed": _SEED, "input_size": hmult(list(input_size)), "step_size": _STEP}


def _recurrent(**own) -> dict:
    """NF's RNN-family default config (AutoRNN, AutoLSTM, AutoGRU, AutoTCN)."""
    return {**own, "learning_rate": _LR, "max_steps": choice([500, 1000]), "batch_size": choice([16, 32]),
            "random_seed": _SEED, "input_size": hmult([-1, 4, 16, 64]), "inference_input_size": hmult([-1])}


_RNN = dict(encoder_hidden_size=choice([16, 32, 64, 128]), encoder_n_layers=randint(1, 4),
            context_size=choice([5, 10, 50]), decoder_hidden_size=choice([16, 32, 64, 128]))
_TRANSFORMER = dict(hidden_size=choice([64, 128, 256]), n_head=choice([4, 8]))

# NeuralForecast 3.3's Auto<Model>.get_default_config(h), one row per model (neuralforecast/auto.py).
# Multivariate rows: n_series is given by the user (AutoX(h, n_series=...)), as in NF.
SPACES: dict[str, dict] = {
    "RNN": _recurrent(**_RNN),
    "LSTM": _recurrent(**_RNN),
    "GRU": _recurrent(**_RNN),
    "TCN": _recurrent(encoder_hidden_size=choice([16, 32, 64, 128]), context_size=choice([5, 10, 50]),
                      decoder_hidden_size=choice([32, 64])),
    "MLP": _windows(hidden_size=choice([256, 512, 1024]), num_layers=randint(2, 6), max_steps=choice([500, 1000])),
    "NBEATS": _windows(max_steps=choice([500, 1000])),
    "NBEATSx": _windows(max_steps=choice([500, 1000])),
    "NHITS": _windows(n_pool_kernel_size=choice([[2, 2, 1], [1, 1, 1], [2, 2, 2], [4, 4, 4], [8, 4, 1], [16, 8, 1]]),
                      n_freq_downsample=choice([[168, 24, 1], [24, 12, 1], [180, 60, 1], [60, 8, 1], [40, 20, 1],
                                                [1, 1, 1]])),
    "DLinear": _windows(moving_avg_window=choice([11, 25, 51])),
    "NLinear": _windows(),
    "TiDE": _windows(hidden_size=choice([256, 512, 1024]), decoder_output_dim=choice([8, 16, 32]),
                     temporal_decoder_dim=choice([32, 64, 128]), num_encoder_layers=choice([1, 2, 3]),
                     num_decoder_layers=choice([1, 2, 3]), temporal_width=choice([4, 8, 16]),
                     dropout=choice([0.0, 0.1, 0.2, 0.3, 0.5]), layernorm=choice([True, False]),
                     learning_rate=loguniform(1e-5, 1e-2)),
    "DeepNPTS": _windows(hidden_size=choice([16, 32, 64]), dropout=uniform(0.0, 0.99), n_layers=choice([1, 2, 4])),
    "BiTCN": _windows(hidden_size=choice([16, 32]), dropout=uniform(0.0, 0.99), max_steps=choice([500, 1000, 2000])),
    "PatchTST": _windows(input_size=(1, 2, 3), hidden_size=choice([16, 128, 256]), n_heads=choice([4, 16]),
                         patch_len=choice([16, 24]), revin=choice([False, True]),
                         max_steps=choice([500, 1000, 5000])),
    "TFT": _windows(hidden_size=choice([64, 128, 256]), n_head=choice([4, 8]), max_steps=choice([500, 1000, 2000])),
    "DeepAR": _windows(lstm_hidden_size=choice([32, 64, 128, 256]), lstm_n_layers=randint(1, 4),
                       lstm_dropout=uniform(0.0, 0.5), scaler_type=choice(["robust", "minmax1"]),
                       max_steps=choice([500, 1000, 2000])),
    "Informer": _windows(**_TRANSFORMER, max_steps=choice([500, 1000, 2000])),
    "Autoformer": _windows(**_TRANSFORMER, max_steps=choice([500, 1000, 2000])),
    "VanillaTransformer": _windows(**_TRANSFORMER, max_steps=choice([500, 1000, 2000])),
    "FEDformer": _windows(hidden_size=choice([64, 128, 256]), max_steps=choice([500, 1000, 2000])),
    "TimesNet": _windows(hidden_size=choice([32, 64, 128]), conv_hidden_size=choice([32, 64, 128]),
                         scaler_type=choice(["robust", "standard"]), max_steps=choice([500, 1000, 2000]),
                         batch_size=choice([32, 64, 128]), windows_batch_size=choice([32, 64, 128, 256])),
    "iTransformer": _windows(hidden_size=choice([64, 128, 256]), n_heads=choice([4, 8]),
                             max_steps=choice([500, 1000, 2000]), windows=False),
    "MLPMultivariate": _windows(hidden_size=choice([256, 512, 1024]), num_layers=randint(2, 6),
                                max_steps=choice([500, 1000]), windows=False),
    "TSMixer": _windows(input_size=(1, 2, 3, 4), n_block=choice([1, 2, 4, 6, 8]), learning_rate=loguniform(1e-4, 1e-2),
                        ff_dim=choice([32, 64, 128]), scaler_type=choice(["identity", "robust", "standard"]),
                        max_steps=choice([500, 1000, 2000]), dropout=uniform(0.0, 0.99), windows=False),
    "StemGNN": _windows(input_size=(1, 2, 3, 4), n_stacks=choice([2]), multi_layer=choice([3, 5, 7]),
                        max_steps=choice([500, 1000, 2000]), windows=False),
}


def resolve(space: dict, h: int) -> dict:
    """The space with `h` put in for the "h" of a choice (step_size's choice [1, h])."""
    out = {}
    for k, v in space.items():
        if isinstance(v, choice) and "h" in v.values:
            v = choice([h if m == "h" else m for m in v.values])
        out[k] = v
    return out


def suggest(space: dict, trial, h: int) -> dict:
    """One configuration drawn from `space` by an optuna trial (fixed values pass through)."""
    return {k: (v.suggest(trial, k, h) if isinstance(v, DISTRIBUTIONS) else v) for k, v in resolve(space, h).items()}


def candidates(space: dict, key: str, h: int):
    """The values `key` can take in `space` (a list), or None when it is a continuous range."""
    v = resolve(space, h).get(key)
    if isinstance(v, choice):
        return list(v.values)
    if isinstance(v, hmult):
        return [h * m for m in v.multipliers]
    if isinstance(v, randint):
        return list(range(v.lower, v.upper + 1))
    return None if isinstance(v, DISTRIBUTIONS) or key not in space else [v]

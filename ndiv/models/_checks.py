"""Model options checked once, when the model is built, before any layer or any training step.

Each option has a Rule: a predicate and the words for what it expects. The options every model
shares are checked by `check_shared` (called by BaseModel.__init__); a model declares its own size
options in a class table, `OPTION_RULES = dict(hidden_size=POSITIVE_INT, ...)`, checked by
`check_model_options` from the arguments it was built with. Every error names the model, the
option, the value and what is expected:

    >>> from ndiv.models import NHITS
    >>> NHITS(h=4, input_size=8, mlp_units=[[0, 512]])
    Traceback (most recent call last):
    ValueError: NHITS: mlp_units must be a list of [in, out] lists of positive integers (e.g. [[512, 512], [512, 512]]), got [[0, 512]]

The accepted values are NeuralForecast's (valid_batch_size=None, inference_windows_batch_size=-1
or None, gradient_clip_val=None or 0, random_seed=None), so an NF configuration is never refused.
PyTorch Lightning's trainer options, which NF forwards to its Trainer, are accepted; the ones
that change what training computes warn once (`check_trainer_kwargs`) rather than vanish.
"""
from __future__ import annotations

import math
import os
import sys
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np


def is_int(v) -> bool:
    """An integer and not a bool (True is an int in Python, never a size here)."""
    return isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_))


def is_number(v) -> bool:
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            and math.isfinite(v))


class Rule(NamedTuple):
    """`ok(value)` says whether the value is accepted; `expects` completes '<option> must be ...'."""
    ok: Callable[[Any], bool]
    expects: str
    error: type = ValueError

    def check(self, model: str, option: str, value) -> None:
        if not self.ok(value):
            raise self.error(f"{model}: {option} must be {self.expects}, got {value!r}")


def _mlp_units(v) -> bool:
    return (isinstance(v, (list, tuple)) and len(v) > 0
            and all(isinstance(u, (list, tuple)) and len(u) == 2 and all(is_int(x) and x >= 1 for x in u)
                    for u in v))


POSITIVE_INT = Rule(lambda v: is_int(v) and v >= 1, "a positive integer")
NON_NEGATIVE_INT = Rule(lambda v: is_int(v) and v >= 0, "an integer >= 0")
BOOL = Rule(lambda v: isinstance(v, (bool, np.bool_)), "True or False")
POSITIVE_NUMBER = Rule(lambda v: is_number(v) and v > 0, "a finite number > 0")
POSITIVE_INT_OR_NONE = Rule(lambda v: v is None or (is_int(v) and v >= 1), "a positive integer or None")
PROBABILITY = Rule(lambda v: is_number(v) and 0.0 <= v < 1.0, "a probability in [0, 1)")
POSITIVE_ODD_INT = Rule(lambda v: is_int(v) and v >= 1 and v % 2 == 1, "a positive odd integer")
MLP_UNITS = Rule(_mlp_units, "a list of [in, out] lists of positive integers (e.g. [[512, 512], [512, 512]])")
N_BLOCKS = Rule(lambda v: isinstance(v, (list, tuple)) and len(v) > 0 and all(is_int(x) and x >= 0 for x in v)
                and sum(v) >= 1, "a list of integers >= 0, one per stack, with at least one block in all")
DICT_OR_NONE = Rule(lambda v: v is None or isinstance(v, dict), "a dict or None", TypeError)
STR_OR_NONE = Rule(lambda v: v is None or isinstance(v, str), "a string or None", TypeError)
EXOG_LIST = Rule(lambda v: v is None or (isinstance(v, (list, tuple)) and all(isinstance(c, str) for c in v)),
                 "a list of column names or None", TypeError)
BOOL_OR_NONE = Rule(lambda v: v is None or isinstance(v, (bool, np.bool_)), "True, False or None")

# The options BaseModel declares (SHARED_DEFAULTS), with NeuralForecast's accepted values.
SHARED_RULES = dict(
    max_steps=POSITIVE_INT,
    batch_size=POSITIVE_INT,
    val_check_steps=POSITIVE_INT,
    step_size=POSITIVE_INT,
    learning_rate=POSITIVE_NUMBER,
    num_lr_decays=Rule(is_int, "an integer (<= 0: no decay)"),
    early_stop_patience_steps=Rule(is_int, "an integer (<= 0: no early stopping)"),
    windows_batch_size=POSITIVE_INT_OR_NONE,
    valid_batch_size=Rule(lambda v: v is None or (is_int(v) and v >= 1),
                          "a positive integer or None (None: batch_size)"),
    # NF: a negative value means all windows at once; 0 would never finish a batch
    inference_windows_batch_size=Rule(lambda v: v is None or (is_int(v) and v != 0),
                                      "a positive integer, -1 (all windows at once) or None (windows_batch_size)"),
    # Lightning: None or 0 is no clipping; a negative norm would flip every gradient
    gradient_clip_val=Rule(lambda v: v is None or (is_number(v) and v >= 0),
                           "a finite number > 0, or None/0 for no clipping"),
    random_seed=Rule(lambda v: v is None or is_int(v), "an integer in [0, 2**32) or None", TypeError),
    start_padding_enabled=BOOL,
    exclude_insample_y=BOOL_OR_NONE,        # NF types these Union[bool, None]; None is False
    drop_last_loader=BOOL_OR_NONE,
    dedupe_windows=BOOL,
    restore_best_weights=BOOL,
    enable_progress_bar=BOOL_OR_NONE,
    n_series=POSITIVE_INT_OR_NONE,
    futr_exog_list=EXOG_LIST,
    hist_exog_list=EXOG_LIST,
    stat_exog_list=EXOG_LIST,
    alias=STR_OR_NONE,
    optimizer_kwargs=DICT_OR_NONE,
    lr_scheduler_kwargs=DICT_OR_NONE,
)


def check_loss(model: str, option: str, loss) -> None:
    """An ndiv loss instance (None is the default): a class, or another library's loss, gets a
    TypeError that says what to pass."""
    from ndiv.losses import BasePointLoss, DistributionLoss
    if loss is None or isinstance(loss, (BasePointLoss, DistributionLoss)):
        return
    if isinstance(loss, type):
        raise TypeError(f"{model}: {option}={loss.__name__} is a class; pass an instance, "
                        f"{option}={loss.__name__}()")
    raise TypeError(f"{model}: {option} must be an ndiv loss such as ndiv.losses.MAE() (from ndiv.losses), "
                    f"got {type(loss).__module__}.{type(loss).__name__}")


def _check_class(model: str, option: str, value, base: type, what: str) -> None:
    if value is not None and not (isinstance(value, type) and issubclass(value, base)):
        raise TypeError(f"{model}: {option} must be a subclass of {what} (the class, not an instance), "
                        f"or None for the default, got {value!r}")


def check_shared(model: str, opts: dict) -> None:
    """Check BaseModel's options (`opts`: SHARED_DEFAULTS merged with the model's DEFAULTS and the
    user's values). Raises ValueError/TypeError naming the model, the option and the value."""
    for option, rule in SHARED_RULES.items():
        rule.check(model, option, opts[option])
    seed = opts["random_seed"]
    if seed is not None and not 0 <= seed < 2 ** 32:
        raise ValueError(f"{model}: random_seed must be an integer in [0, 2**32) or None, got {seed!r}")
    check_loss(model, "loss", opts["loss"])
    check_loss(model, "valid_loss", opts["valid_loss"])
    import ndiv.optim
    _check_class(model, "optimizer", opts["optimizer"], ndiv.optim.Optimizer, "ndiv.optim.Optimizer")
    _check_class(model, "lr_scheduler", opts["lr_scheduler"], ndiv.optim.lr_scheduler.LRScheduler,
                 "ndiv.optim.lr_scheduler.LRScheduler")
    from ndiv.data.windows import availability_fractions
    try:
        availability_fractions(opts["training_data_availability_threshold"])
    except ValueError as e:
        raise ValueError(f"{model}: {e}") from None


def check_model_options(model: str, rules: dict, given: dict) -> None:
    """Check a model's own options against its OPTION_RULES table; `given` holds the arguments
    the model was built with (the defaults are valid by construction)."""
    for option, rule in rules.items():
        if option in given:
            rule.check(model, option, given[option])


# PyTorch Lightning's Trainer options that NeuralForecast forwards (its **trainer_kwargs), with
# a test of the values that leave training as ndiv runs it (None: every value does). ndiv has no
# Trainer: options whose value changes the computation warn once, the others are accepted silently.
_PRECISION_32 = {None, 32, "32", "32-true"}
_PRECISION_BF16 = {"bf16-mixed", "bf16"}  # Lightning's names for bf16 autocast: ndiv's GEMMs in bfloat16
TRAINER_KWARGS: dict = {
    "accelerator": None,                 # mapped to device= by BaseModel
    "devices": None, "logger": None, "enable_checkpointing": None, "enable_model_summary": None,
    "deterministic": None, "num_sanity_val_steps": None, "log_every_n_steps": None, "benchmark": None,
    "inference_mode": None, "default_root_dir": None, "profiler": None, "detect_anomaly": None,
    "use_distributed_sampler": None, "num_nodes": None, "strategy": None, "barebones": None,
    "precision": lambda v: v in _PRECISION_32 or v in _PRECISION_BF16,
    "callbacks": lambda v: not v,
    "accumulate_grad_batches": lambda v: v in (None, 1),
    "gradient_clip_algorithm": lambda v: v in (None, "norm"),
    "limit_train_batches": lambda v: v in (None, 1.0),
    "limit_val_batches": lambda v: v in (None, 1.0),
    "val_check_interval": lambda v: v is None,
    "check_val_every_n_epoch": lambda v: v is None,
    "min_steps": lambda v: v in (None, -1),
    "min_epochs": lambda v: v is None,
    "max_time": lambda v: v is None,
    "fast_dev_run": lambda v: v in (None, False),
    "overfit_batches": lambda v: v in (None, 0, 0.0),
    "reload_dataloaders_every_n_epochs": None,
    # NF's own option for torch's DataLoader: workers and pinning change nothing
    "dataloader_kwargs": lambda v: not v or set(v) <= {"num_workers", "pin_memory", "persistent_workers",
                                                       "prefetch_factor", "multiprocessing_context"},
}


def check_trainer_kwargs(model: str, kwargs: dict) -> None:
    """Warn (UserWarning, once per option) for Lightning options whose value would change what
    NeuralForecast computes, since ndiv does not run Lightning and ignores them."""
    for option, neutral in TRAINER_KWARGS.items():
        if option in kwargs and neutral is not None and not neutral(kwargs[option]):
            warnings.warn(f"{model}: {option}={kwargs[option]!r} is a PyTorch Lightning option that ndiv ignores "
                          "(ndiv runs its own float32 training loop), so results can differ from NeuralForecast's; "
                          "remove it to silence this warning", UserWarning, stacklevel=_caller_level())


def _caller_level() -> int:
    """The stacklevel of the first frame outside the ndiv package: the user's model call."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(root):
        frame, level = frame.f_back, level + 1
    return level

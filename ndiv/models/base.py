"""BaseModel: what every forecasting model shares, written once.

A model file subclasses BaseModel and holds its architecture only: `__init__` builds layers,
`forward(windows_batch)` maps NeuralForecast's window dict to a forecast [B, h, n_out]
(univariate) or [B, h, n_series * n_out] (multivariate). Everything else lives here, with
NeuralForecast's names and semantics: the hyperparameters and their defaults, the training loop
(window sampling, temporal scaling, Adam + StepLR with `num_lr_decays`, validation every
`val_check_steps`, early stopping, gradient clipping, a non-finite-loss stop), and prediction
over windows with the inverse scaling and the loss's output columns.

Shared options (and NeuralForecast's names for them) are declared once in SHARED_DEFAULTS; a
model overrides the defaults that NeuralForecast gives it in its class attribute DEFAULTS, and
`help(Model)` shows the merged signature (`__init_subclass__` builds it).
"""
from __future__ import annotations

import inspect
import math
import sys
import time

import numpy as np

import ndiv
import ndiv.optim
from ndiv import nn
from ndiv.autograd import amp
from ndiv.data import TemporalNorm, TrainWindowSampler, create_windows, normalize_windows, parse_windows
from ndiv.config import record_init_args
from ndiv.device import check_device, to_device
from ndiv.memory import retained_heap
from ndiv.models.common._modules import CAT_EMB_DIM_STRATEGIES, cat_embeddings, embed_stream, resolve_cat_emb_dim
from ndiv.models import _recurrent
from ndiv.models._checks import (POSITIVE_INT, TRAINER_KWARGS, check_model_options, check_shared,
                                 check_trainer_kwargs, _PRECISION_BF16)
from ndiv.random import manual_seed

# NeuralForecast's BaseModel options, with the defaults most of its models use.
SHARED_DEFAULTS = dict(
    loss=None,                      # None: MAE()
    valid_loss=None,                # None: the training loss
    max_steps=1000,
    learning_rate=1e-3,
    num_lr_decays=-1,               # > 0: halve the lr num_lr_decays times, evenly over max_steps
    early_stop_patience_steps=-1,   # > 0: stop after that many validation checks without improvement
    restore_best_weights=False,     # True: end the fit with the weights of the best validation check
    val_check_steps=100,
    batch_size=32,                  # series per step
    valid_batch_size=None,
    windows_batch_size=1024,        # windows per step
    inference_windows_batch_size=-1,
    start_padding_enabled=False,
    training_data_availability_threshold=0.0,
    step_size=1,
    scaler_type="identity",
    futr_exog_list=None,
    hist_exog_list=None,
    stat_exog_list=None,
    cat_exog_list=None,             # the exogenous columns (of the three lists) that are categorical
    categorical_cardinalities=None,  # {column: number of categories} for every cat_exog_list column
    cat_emb_dim="fastai",           # embedding width: 'fastai', 'sqrt', 'half' or an int
    exclude_insample_y=False,
    n_series=None,                  # multivariate models: the number of series
    random_seed=1,
    drop_last_loader=False,
    alias=None,
    optimizer=None,                 # an ndiv.optim.Optimizer subclass (default Adam)
    optimizer_kwargs=None,
    lr_scheduler=None,              # an ndiv.optim.lr_scheduler class (default StepLR)
    lr_scheduler_kwargs=None,
    gradient_clip_val=None,         # Lightning's trainer option: clip the global grad norm
    enable_progress_bar=None,       # None: a bar on a terminal for fits longer than ~2 s
    dedupe_windows=True,            # compute repeated windows once (see DESIGN.md); off with dropout
    device="cpu",                   # 'cuda' trains and predicts on the GPU (CuPy); NF's accelerator='gpu' too
)



class BaseModel(nn.Module):
    """The shared base of every ndiv forecasting model (NeuralForecast's BaseModel)."""

    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = False
    EXOGENOUS_CAT = False  # NF's flag: the model embeds categorical exogenous columns (cat_exog_list)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS: dict = {}
    OPTION_RULES: dict = {}  # the model's own options -> _checks.Rule, checked before its layers are built
    _validation_callback = None  # called with (step, valid_loss) after each validation check (ndiv.auto)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        record_init_args(cls)
        own = inspect.signature(cls.__init__)
        params = [p for p in own.parameters.values() if p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        names = {p.name for p in params}
        defaults = {**SHARED_DEFAULTS, **cls.DEFAULTS}
        shared = [inspect.Parameter(k, inspect.Parameter.KEYWORD_ONLY, default=v)
                  for k, v in defaults.items() if k not in names]
        params = [p if p.kind != p.KEYWORD_ONLY else p.replace(kind=p.POSITIONAL_OR_KEYWORD) for p in params]
        cls.__signature__ = inspect.Signature(params[1:] + shared)  # without self
        cls.__init__.__signature__ = inspect.Signature(params + shared)

    def __init__(self, h: int, input_size: int, **kwargs):
        super().__init__()
        name = type(self).__name__
        trainer = {k: v for k, v in kwargs.items() if k in TRAINER_KWARGS}
        unknown = set(kwargs) - set(SHARED_DEFAULTS) - set(trainer)
        if "max_epochs" in unknown:
            raise ValueError(f"{name}: max_epochs is not supported, use max_steps")
        if unknown:
            raise TypeError(f"{name}: unknown option{'s' if len(unknown) > 1 else ''} {sorted(unknown)}; "
                            f"see help(ndiv.models.{name}) for the accepted ones")
        for k, v in (("h", h), ("input_size", input_size)):
            POSITIVE_INT.check(name, k, v)
        opts = {**SHARED_DEFAULTS, **self.DEFAULTS, **{k: v for k, v in kwargs.items() if k not in trainer}}
        check_shared(name, opts)
        check_model_options(name, self.OPTION_RULES, self.__dict__.get("_init_config", {}))
        check_trainer_kwargs(name, trainer)
        # precision='bf16-mixed': the training steps' matrix products in bfloat16 (ndiv.autocast)
        self.bf16_mixed = trainer.get("precision") in _PRECISION_BF16
        accelerator = trainer.get("accelerator")
        if accelerator is not None:
            if accelerator not in ("cpu", "gpu", "cuda", "auto"):
                raise ValueError(f"{name}: accelerator must be 'cpu', 'gpu' or 'auto', got {accelerator!r}")
            opts["device"] = "cuda" if accelerator in ("gpu", "cuda") else opts["device"]
        self.device = check_device(opts["device"])
        self.h, self.input_size = int(h), int(input_size)

        from ndiv.losses import MAE  # the losses import nn; keep the model import light
        self.loss = opts["loss"] if opts["loss"] is not None else MAE()
        self.valid_loss = opts["valid_loss"] if opts["valid_loss"] is not None else self.loss
        for k in ("futr_exog_list", "hist_exog_list", "stat_exog_list"):
            setattr(self, k, list(opts[k] or []))
        for kind, flag in (("futr", self.EXOGENOUS_FUTR), ("hist", self.EXOGENOUS_HIST), ("stat", self.EXOGENOUS_STAT)):
            if getattr(self, f"{kind}_exog_list") and not flag:
                raise ValueError(f"{name} does not support {kind} exogenous variables "
                                 f"({kind}_exog_list={getattr(self, f'{kind}_exog_list')}); remove them")
        self._check_categorical(name, opts)
        for kind in ("hist", "futr", "stat"):
            setattr(self, f"{kind}_cat_exog_list", [c for c in self.cat_exog_list if c in getattr(self, f"{kind}_exog_list")])
        if self.MULTIVARIATE and opts["n_series"] is None:
            raise ValueError(f"{name} is a multivariate model: set n_series to the number of series in your data")
        self.n_series = opts["n_series"] if self.MULTIVARIATE else 1

        for k in ("max_steps", "learning_rate", "num_lr_decays", "early_stop_patience_steps", "val_check_steps",
                  "windows_batch_size", "start_padding_enabled", "training_data_availability_threshold",
                  "step_size", "scaler_type", "exclude_insample_y", "random_seed", "drop_last_loader", "alias",
                  "optimizer", "optimizer_kwargs", "lr_scheduler", "lr_scheduler_kwargs", "gradient_clip_val",
                  "enable_progress_bar", "dedupe_windows", "restore_best_weights"):
            setattr(self, k, opts[k])
        if self.random_seed is None:  # NeuralForecast (Lightning's seed_everything(None)) seeds 0
            self.random_seed = 0
        self.batch_size = max(opts["batch_size"], self.n_series) if self.MULTIVARIATE else opts["batch_size"]
        self.valid_batch_size = self.batch_size if opts["valid_batch_size"] is None else opts["valid_batch_size"]
        iwbs = opts["inference_windows_batch_size"]
        self.inference_windows_batch_size = self.windows_batch_size if iwbs is None else iwbs
        self.lr_decay_steps = max(self.max_steps // self.num_lr_decays, 1) if self.num_lr_decays > 0 else 10 ** 8
        self.hparams = {"h": self.h, "input_size": self.input_size, **{k: v for k, v in kwargs.items()}}

        # categorical columns bypass the temporal scaler (NF's _get_temporal_exogenous_cols)
        n_scaled = (1 + len(self.hist_exog_list) - len(self.hist_cat_exog_list)
                    + len(self.futr_exog_list) - len(self.futr_cat_exog_list))
        self.scaler = TemporalNorm(scaler_type=self.scaler_type, dim=1, num_features=n_scaled)
        self.val_size = self.test_size = 0
        self.train_trajectories: list = []
        self.valid_trajectories: list = []
        # NeuralForecast seeds before the model builds its layers: same seed, same weights
        manual_seed(self.random_seed)
        # NF's per-column embedding tables (empty ModuleLists without categorical columns) and the
        # effective exogenous widths the models size their layers from: continuous + embeddings
        for kind in ("hist", "futr", "stat"):
            cats = getattr(self, f"{kind}_cat_exog_list")
            setattr(self, f"{kind}_cat_embeddings",
                    cat_embeddings(cats, self.categorical_cardinalities, self.cat_emb_dim))
            setattr(self, f"{kind}_exog_size", len(getattr(self, f"{kind}_exog_list")) - len(cats)
                    + sum(resolve_cat_emb_dim(self.cat_emb_dim, self.categorical_cardinalities[c]) for c in cats))

    def _check_categorical(self, name: str, opts: dict) -> None:
        """cat_exog_list, categorical_cardinalities and cat_emb_dim, checked as NF's
        `_check_categorical_exog` (ValueError/TypeError naming the option and what to do)."""
        cats, cards, dim = opts["cat_exog_list"], opts["categorical_cardinalities"], opts["cat_emb_dim"]
        if cats is not None and not (isinstance(cats, (list, tuple)) and all(isinstance(c, str) for c in cats)):
            raise TypeError(f"{name}: cat_exog_list must be a list of column names or None, got {cats!r}")
        self.cat_exog_list = list(cats or [])
        if cards is not None and not isinstance(cards, dict):
            raise TypeError(f"{name}: categorical_cardinalities must be a dict {{column: number of categories}}, "
                            f"got {cards!r}")
        self.categorical_cardinalities = dict(cards or {})
        self.cat_emb_dim = dim
        if not self.cat_exog_list:
            return
        if not self.EXOGENOUS_CAT:
            raise ValueError(f"{name} does not support categorical exogenous variables "
                             f"(cat_exog_list={self.cat_exog_list}); remove them")
        dup = sorted({c for c in self.cat_exog_list if self.cat_exog_list.count(c) > 1})
        if dup:
            raise ValueError(f"{name}: cat_exog_list names {dup} more than once; list each column once")
        listed = self.hist_exog_list + self.futr_exog_list + self.stat_exog_list
        unknown = [c for c in self.cat_exog_list if c not in listed]
        if unknown:
            raise ValueError(f"{name}: categorical columns {unknown} (cat_exog_list) must also be listed in "
                             "hist_exog_list, futr_exog_list or stat_exog_list; add them to the list of their kind")
        missing = [c for c in self.cat_exog_list if c not in self.categorical_cardinalities]
        if missing:
            raise ValueError(f"{name}: categorical_cardinalities has no entry for {missing}; give the number "
                             f"of categories of each, e.g. categorical_cardinalities={{{missing[0]!r}: 10}}")
        for c in self.cat_exog_list:
            k = self.categorical_cardinalities[c]
            if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
                raise ValueError(f"{name}: categorical_cardinalities[{c!r}] must be a positive int, got {k!r}")
        if isinstance(dim, (int, np.integer)) and not isinstance(dim, bool):
            if dim < 1:
                raise ValueError(f"{name}: cat_emb_dim must be 'fastai', 'sqrt', 'half' or a positive int, got {dim!r}")
        elif dim not in CAT_EMB_DIM_STRATEGIES:
            raise ValueError(f"{name}: cat_emb_dim must be 'fastai', 'sqrt', 'half' or a positive int, got {dim!r}")

    def __repr__(self):
        return self.alias or type(self).__name__

    # -- the pieces the loop uses ------------------------------------------------------------
    def _tensors(self, batch: dict) -> dict:
        """The model's input dict as Tensors, NeuralForecast's keys; the categorical
        exogenous columns become their embeddings (with gradient, NF's _embed_stream)."""
        out = {}
        for k in ("insample_y", "insample_mask"):
            v = batch.get(k)
            out[k] = None if v is None else ndiv.tensor(np.ascontiguousarray(v, dtype=np.float32), device=self.device)
        for kind in ("futr", "hist", "stat"):   # categorical columns -> their embeddings (NF's _embed_stream)
            v = batch.get(f"{kind}_exog")
            temporal_mv = self.MULTIVARIATE and kind != "stat" and v is not None
            if temporal_mv:                     # [W, X, T, N] -> [W, T, N, X]: embed the feature axis
                v = np.moveaxis(v, 1, -1)
            out[f"{kind}_exog"] = None if v is None else embed_stream(
                v, getattr(self, f"{kind}_exog_list"), getattr(self, f"{kind}_cat_exog_list"),
                getattr(self, f"{kind}_cat_embeddings"), self.device)
            if temporal_mv:                     # back to NF's multivariate layout [W, X', T, N]
                out[f"{kind}_exog"] = out[f"{kind}_exog"].permute(0, 3, 1, 2)
        if self.exclude_insample_y:
            out["insample_y"] = out["insample_y"] * 0.0
        return out

    def _loss(self, loss_fn, output, batch, y_loc, y_scale, original: bool):
        """loss_fn on one batch. Point losses compare in the scaled space during training
        (original=False) and in the data's scale during validation (original=True)."""
        dev = self.device
        mask = ndiv.tensor(batch["outsample_mask"].astype(np.float32), device=dev)
        if self.loss.is_distribution_output:
            distr_args = self.loss.scale_decouple(output=output, loc=y_loc, scale=y_scale)
            y = ndiv.tensor(batch["original_outsample_y"][..., None] if batch["original_outsample_y"].ndim == 2
                            else batch["original_outsample_y"], device=dev)
            if loss_fn.is_distribution_output:
                return loss_fn(y=y, distr_args=distr_args, mask=mask)
            _, mean, quants = self.loss.sample(distr_args=distr_args, rng=self._rng)
            y_hat = quants if self._wants_quantiles(loss_fn) else mean[..., 0]
            return loss_fn(y=y, y_hat=ndiv.tensor(y_hat, device=dev), mask=mask)
        if original:
            output = _inverse(self.scaler, output, y_loc, y_scale)
            y = batch["original_outsample_y"]
            y = ndiv.tensor(y[..., None] if y.ndim == 2 else y, device=dev)
            insample = _inverse(self.scaler, ndiv.tensor(batch["insample_y"], device=dev), y_loc, y_scale)
            return loss_fn(y=y, y_hat=output, mask=mask, y_insample=insample)
        return loss_fn(y=ndiv.tensor(batch["outsample_y"], device=dev), y_hat=output, mask=mask,
                       y_insample=ndiv.tensor(batch["insample_y"], device=dev))

    def _window_spec(self, step: str) -> tuple:
        """(input_size, h, hist_exog_list, futr_exog_list) of the windows that step 'train', 'val'
        or 'predict' cuts; the recurrent mode widens them (ndiv/models/_recurrent.py)."""
        if self.RECURRENT:
            return _recurrent.window_spec(self, step)
        return self.input_size, self.h, self.hist_exog_list, self.futr_exog_list

    def _network(self, batch: dict, step: str):
        """The network's raw output [B, h, n_out] on a parsed batch of step 'train' or 'val'
        (recurrent mode: teacher-forced in training, one step at a time in validation)."""
        if self.RECURRENT:
            return _recurrent.network(self, batch, step)
        return self(self._tensors(batch))

    def _scaled_exog(self) -> list:
        """The temporal exogenous columns the window scaler scales: not the categorical ones."""
        cats = set(self.hist_cat_exog_list + self.futr_cat_exog_list)
        return [c for c in self.hist_exog_list + self.futr_exog_list if c not in cats]

    @staticmethod
    def _wants_quantiles(loss_fn) -> bool:
        return loss_fn.outputsize_multiplier > 1

    def _has_sample_randomness(self) -> bool:
        """Dropout or batch statistics make repeated windows differ: then no dedupe."""
        for m in self.modules():
            if isinstance(m, nn.Dropout) and m.p > 0:
                return True
            if type(m).__name__.startswith("BatchNorm"):
                return True
        return False

    def _make_optimizer(self):
        params = list(self.parameters())
        opt_cls = self.optimizer or ndiv.optim.Adam
        opt = opt_cls(params, lr=self.learning_rate, **{k: v for k, v in (self.optimizer_kwargs or {}).items() if k != "lr"})
        if self.lr_scheduler is not None:
            sched = self.lr_scheduler(opt, **{k: v for k, v in (self.lr_scheduler_kwargs or {}).items() if k != "optimizer"})
        else:
            sched = ndiv.optim.lr_scheduler.StepLR(opt, step_size=self.lr_decay_steps, gamma=0.5)
        return opt, sched

    # -- training ----------------------------------------------------------------------------
    def fit_dataset(self, dataset, val_size: int = 0, test_size: int = 0) -> "BaseModel":
        """Train on a TimeSeriesDataset, keeping the last val_size (validation) and test_size
        (held out) steps of every series out of the training windows."""
        self._check_data(dataset)
        self.to(self.device)
        self.val_size, self.test_size = int(val_size), int(test_size)
        if self.early_stop_patience_steps > 0 and self.val_size == 0:
            raise ValueError(f"{self}: early_stop_patience_steps={self.early_stop_patience_steps} needs "
                             "a validation set: pass val_size > 0 to fit")
        if self.restore_best_weights and self.val_size == 0:
            raise ValueError(f"{self}: restore_best_weights=True keeps the weights of the best validation check and "
                             "needs a validation set: pass val_size > 0 to fit")
        if self.drop_last_loader and not self.MULTIVARIATE:  # NF's loaders would then be empty
            for what, size in (("batch_size", self.batch_size), ("valid_batch_size", self.valid_batch_size)):
                if dataset.n_series < size and (what == "batch_size" or self.val_size > 0):
                    raise ValueError(f"{self}: drop_last_loader=True drops every batch: {what}={size} is more than "
                                     f"the {dataset.n_series} series; lower {what} or set drop_last_loader=False")
        if self.bf16_mixed:
            if self.device != "cpu":
                raise ValueError(f"{self}: precision='bf16-mixed' runs the matrix products in bfloat16 on the CPU "
                                 f"(oneMKL); on device={self.device!r} train with precision=32")
            amp.check_available()
        manual_seed(self.random_seed)
        self._rng = np.random.default_rng(self.random_seed)
        win_input, win_h, win_hist, win_futr = self._window_spec("train")
        sampler = TrainWindowSampler(
            dataset, input_size=win_input, h=win_h, batch_size=self.batch_size,
            windows_batch_size=self.windows_batch_size, step_size=self.step_size, val_size=self.val_size,
            test_size=self.test_size, start_padding_enabled=self.start_padding_enabled,
            multivariate=self.MULTIVARIATE,
            training_data_availability_threshold=self.training_data_availability_threshold,
            random_seed=self.random_seed, drop_last=self.drop_last_loader)
        opt, sched = self._make_optimizer()
        dedupe = self.dedupe_windows and not self._has_sample_randomness() and not self.MULTIVARIATE
        bar = _Progress(self.max_steps, str(self), self.enable_progress_bar)
        self.train()
        self.train_trajectories, self.valid_trajectories = [], []
        with retained_heap():      # freed step arrays stay in the heap: no page faults per step
            self._train_loop(dataset, sampler, opt, sched, bar, win_hist, win_futr, dedupe)
        bar.close()
        self.eval()
        return self

    def _train_loop(self, dataset, sampler, opt, sched, bar, win_hist, win_futr, dedupe) -> None:
        """fit_dataset's steps: sample, forward, loss, backward, optimizer; validation checks and
        early stopping every val_check_steps."""
        best, bad_checks, best_state = math.inf, 0, None
        for step in range(1, self.max_steps + 1):
            batch = sampler.sample(scaler=self.scaler, hist_exog_list=win_hist,
                                   futr_exog_list=win_futr, stat_exog_list=self.stat_exog_list,
                                   temporal_exog_scaled=self._scaled_exog(), dedupe=dedupe)
            y_loc, y_scale = _loc_scale(self.scaler, self.device)
            with amp.autocast("cpu", enabled=self.bf16_mixed):
                output = self.loss.domain_map(self._network(batch, "train"))
                loss = self._loss(self.loss, output, batch, y_loc, y_scale, original=False)
                value = loss.item()
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"{self}: the training loss became {value} at step {step}; lower learning_rate, try "
                        "scaler_type='robust' or 'standard', or check the data for extreme values")
                opt.zero_grad()
                loss.backward()
            if self.gradient_clip_val:
                ndiv.optim.clip_grad_norm_(self.parameters(), self.gradient_clip_val)
            opt.step()
            sched.step()
            self.train_trajectories.append((step, value))
            bar.update(step, value)
            if self.val_size > 0 and step % self.val_check_steps == 0:
                valid = self.validate(dataset)
                self.valid_trajectories.append((step, valid))
                if self._validation_callback is not None:   # ndiv.auto's pruner: raises to stop
                    self._validation_callback(step, valid)
                if valid < best:
                    best, bad_checks = valid, 0
                    if self.restore_best_weights:
                        best_state = {k: v.copy() for k, v in self.state_dict().items()}
                elif self.early_stop_patience_steps > 0:
                    bad_checks += 1
                    if bad_checks >= self.early_stop_patience_steps:
                        break
        if best_state is not None:      # the papers' checkpoint reload (Lightning's ModelCheckpoint)
            self.load_state_dict(best_state)

    def _check_data(self, dataset):
        name = str(self)
        for kind in ("futr", "hist"):
            missing = [c for c in getattr(self, f"{kind}_exog_list") if c not in dataset.temporal_cols]
            if missing:
                raise ValueError(f"{name}: {kind}_exog_list names {missing}, which are not columns of df "
                                 f"(its exogenous columns: {dataset.temporal_cols[1:-1]})")
        missing = [c for c in self.stat_exog_list if c not in dataset.static_cols]
        if missing:
            raise ValueError(f"{name}: stat_exog_list names {missing}, not columns of static_df "
                             f"(its columns: {dataset.static_cols}); pass static_df with them")
        self._check_multivariate(dataset)

    def _check_multivariate(self, dataset, who: str = "") -> None:
        """A multivariate model needs its n_series series, all ending at the same date (a batch
        stacks them right-aligned: series ending at other dates would mix dates silently)."""
        if not self.MULTIVARIATE:
            return
        name = f"{self}{who}"
        if dataset.n_series != self.n_series:
            raise ValueError(f"{name}: the model was built with n_series={self.n_series} but the data has "
                             f"{dataset.n_series} series; a multivariate model forecasts all its series at once: "
                             f"build it with n_series={dataset.n_series} or pass the {self.n_series} series")
        last = dataset.last_ds
        if len(last) and (last != last[0]).any():
            i = int(np.flatnonzero(last != last[0])[0])
            raise ValueError(f"{name}: a multivariate model needs its series aligned on the same dates, but series "
                             f"{str(dataset.uids[0])!r} ends at {last[0]} and series {str(dataset.uids[i])!r} at {last[i]}; "
                             "give every series the same last date (series may start at different dates)")

    @ndiv.no_grad()
    def validate(self, dataset) -> float:
        """The valid_loss over the validation windows, in the data's scale (window-weighted)."""
        was_training = self.training
        self.eval()
        total, count = 0.0, 0
        for batch in self._windows(dataset, "val"):
            y_loc, y_scale = _as_tensors(batch["y_loc"], batch["y_scale"], self.device)
            output = self.loss.domain_map(self._network(batch, "val"))
            value = self._loss(self.valid_loss, output, batch, y_loc, y_scale, original=True).item()
            n = len(batch["insample_y"])
            total, count = total + value * n, count + n
        self.train(was_training)
        avg = total / max(count, 1)
        return avg if math.isfinite(avg) else math.inf

    def _windows(self, dataset, step: str, step_size: int = 1, test_size: int | None = None):
        """Scaled, parsed windows of every series for 'val' or 'predict', in batches of
        valid_batch_size series and inference_windows_batch_size windows. Each batch carries
        its own statistics y_loc, y_scale [W, 1, N] (nothing is stored on the model or its
        scaler, so concurrent calls on one model do not mix). test_size: the steps after the
        last window start (default: self.test_size, as set by fit_dataset)."""
        test_size = self.test_size if test_size is None else test_size
        n = dataset.n_series
        series_batches = [np.arange(n)] if self.MULTIVARIATE else [
            np.arange(i, min(i + self.valid_batch_size, n)) for i in range(0, n, self.valid_batch_size)]
        if step == "val" and self.drop_last_loader and not self.MULTIVARIATE and n % self.valid_batch_size:
            series_batches = series_batches[:-1]    # NF's validation loader drops the last batch too
        cols = dataset.temporal_cols
        input_size, h, hist_exog_list, futr_exog_list = self._window_spec(step)
        for idx in series_batches:
            b = dataset.batch(idx)
            windows, static, final = create_windows(
                b, step, input_size=input_size, h=h, step_size=self.step_size,
                val_size=self.val_size, test_size=test_size, predict_step_size=step_size,
                multivariate=self.MULTIVARIATE)
            wbs = self.inference_windows_batch_size
            wbs = len(final) if wbs is None or wbs < 0 else wbs
            for start in range(0, len(final), max(wbs, 1)):
                chosen = final[start:start + wbs]
                sample = np.ascontiguousarray(windows[chosen])
                st = None if static is None else (static if self.MULTIVARIATE else static[chosen])
                original = sample[:, input_size:, 0].copy()
                sample, x_shift, x_scale = normalize_windows(sample, cols, self.scaler, h,
                                                             self._scaled_exog(), return_stats=True)
                out = parse_windows(sample, cols, input_size=input_size, h=h, static=st,
                                    static_cols=dataset.static_cols, hist_exog_list=hist_exog_list,
                                    futr_exog_list=futr_exog_list, stat_exog_list=self.stat_exog_list,
                                    multivariate=self.MULTIVARIATE)
                out.update(original_outsample_y=original, series_idx=idx,
                           y_loc=x_shift[:, :, 0], y_scale=x_scale[:, :, 0])
                yield out

    @ndiv.no_grad()
    def predict_dataset(self, dataset, step_size: int = 1, test_size: int | None = None,
                        quantiles=None) -> np.ndarray:
        """Forecasts for the prediction windows of every series.

        dataset: with test_size steps (default: self.test_size) after the last window start;
        the forecast windows start every step_size steps. quantiles: sorted floats in (0, 1)
        that a DistributionLoss estimates instead of its own (from predict(level=/quantiles=));
        MQLoss gives its trained outputs when they include them, and a point loss raises
        ValueError (see the loss's predict_output_names). Returns float32
        [n_windows_total, h, n_outputs] (univariate, series-major) or
        [n_windows, h, n_series, n_outputs] (multivariate); the outputs are named by
        self.loss.predict_output_names(quantiles).

        Samples come from a generator seeded with random_seed at every call (NeuralForecast
        reseeds at predict): the same call gives the same forecast, also from several threads.
        """
        self.loss.predict_output_names(quantiles, who=str(self))    # a point loss raises here
        self._check_multivariate(dataset, " (predict)")
        self.eval()
        self.to(self.device)
        rng = np.random.default_rng(self.random_seed)
        outs = []
        for batch in self._windows(dataset, "predict", step_size=step_size, test_size=test_size):
            y_loc, y_scale = _as_tensors(batch["y_loc"], batch["y_scale"], self.device)
            if self.RECURRENT:   # one step at a time, per-step samples (ndiv/models/_recurrent.py)
                outs.append(_recurrent.predict(self, batch, y_loc, y_scale, rng, quantiles))
                continue
            net_out = self(self._tensors(batch))
            output = self.loss.domain_map(net_out)
            if quantiles is not None and getattr(self.loss, "implicit_quantiles", False):   # IQLoss
                y_hat = self.loss.predict_quantiles(
                    net_out, quantiles, lambda o: _inverse(self.scaler, o, y_loc, y_scale).numpy())
            elif self.loss.is_distribution_output:
                distr_args = self.loss.scale_decouple(output=output, loc=y_loc, scale=y_scale)
                _, mean, quants = self.loss.sample(distr_args=distr_args, rng=rng, quantiles=quantiles)
                parts = [to_device(mean, "cpu"), to_device(quants, "cpu")]                 # [B, h, N, 1], [.., Q]
                if self.loss.return_params:  # NF: torch.stack(distr_args, dim=-1) -> [B, h, N, P]
                    params = np.stack([to_device(a.data, "cpu") for a in distr_args], axis=-1)
                    parts.append(params.reshape(params.shape[:3] + (-1,)))   # mixtures: [.., K, P] -> K * P
                y_hat = np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=-1)
            else:
                y_hat = _inverse(self.scaler, output, y_loc, y_scale).numpy()
                if hasattr(self.loss, "sort_quantiles"):                                  # MQLoss: no crossings
                    y_hat = self.loss.sort_quantiles(y_hat)
            if y_hat.ndim == 3:
                y_hat = y_hat[..., None]                                                  # [B, h, N, K]
            if not self.MULTIVARIATE:
                y_hat = y_hat[:, :, 0]                                                    # [B, h, K]
            outs.append(y_hat.astype(np.float32))
        return np.concatenate(outs, axis=0)


def snapshot_state(model: nn.Module) -> list:
    """Everything training changes in `model`, to put back with restore_state: a copy of every
    parameter's and buffer's array (one extra copy of the weights) with its grad, and each
    submodule's attributes (training flag, val_size, trajectories, the sampler's generator, ...)."""
    saved = []
    for m in model.modules():
        attrs = {k: dict(v) if k in ("_parameters", "_buffers", "_modules") else v for k, v in m.__dict__.items()}
        tensors = [(t, t.data.copy(), t.grad) for t in (*m._parameters.values(), *m._buffers.values())
                   if t is not None]
        saved.append((m, attrs, tensors))
    return saved


def restore_state(model: nn.Module, saved: list) -> None:
    """Put `model` back as snapshot_state(model) found it (the same arrays, device and grads)."""
    for m, attrs, tensors in saved:
        m.__dict__.clear()
        m.__dict__.update(attrs)
        for t, data, grad in tensors:
            t.data, t.grad = data, grad


def _loc_scale(norm: TemporalNorm, device: str = "cpu"):
    """The target's (loc, scale) [B, 1, N] of the scaler's last transform (Tensors; with revin
    they carry the learnable affine terms). Training only: predictions take theirs from the batch."""
    return _as_tensors(norm.x_shift[:, :, 0], norm.x_scale[:, :, 0], device)


def _as_tensors(shift, scale, device: str = "cpu"):
    """(loc, scale) [B, 1, N] as Tensors on device (revin's already are, with their gradient)."""
    if not isinstance(shift, ndiv.Tensor):
        shift, scale = ndiv.tensor(shift, device=device), ndiv.tensor(scale, device=device)
    return shift, scale


def _inverse(norm: TemporalNorm, y_hat, loc, scale):
    """y_hat [B, h, N] or [B, h, N, Q] back to the data's scale; loc, scale [B, 1, N]."""
    if y_hat.ndim == 4:
        loc, scale = loc.unsqueeze(-1), scale.unsqueeze(-1)
    return norm.inverse_transform(y_hat, loc, scale)


class _Progress:
    """A progress bar for fits longer than ~2 s: tqdm when installed, else one line of text.
    Silent when stderr is not a terminal, or with enable_progress_bar=False."""

    def __init__(self, total: int, name: str, enabled):
        self.total, self.name = total, name
        self.enabled = sys.stderr.isatty() if enabled is None else bool(enabled)
        self.start = time.perf_counter()
        self.bar = None
        self.last = 0.0

    def update(self, step: int, loss: float) -> None:
        if not self.enabled:
            return
        now = time.perf_counter()
        if self.bar is None and now - self.start < 2.0 and step < self.total:
            return
        if self.bar is None:
            try:
                from tqdm.auto import tqdm
                self.bar = tqdm(total=self.total, desc=self.name, initial=step)
            except ImportError:
                self.bar = False
        if self.bar:
            self.bar.n = step
            self.bar.set_postfix(train_loss=f"{loss:.4g}", refresh=False)
            self.bar.refresh()
        elif now - self.last > 0.5 or step == self.total:
            self.last = now
            sys.stderr.write(f"\r{self.name}: step {step}/{self.total} train_loss={loss:.4g}")
            sys.stderr.flush()

    def close(self) -> None:
        if self.bar:
            self.bar.close()
        elif self.bar is False:
            sys.stderr.write("\n")


"""BaseAuto: a model that searches its own hyperparameters (NeuralForecast's BaseAuto on optuna).

    >>> fc = Forecaster(models=[AutoNHITS(h=12, num_samples=8)], freq="MS")
    >>> fc.fit(df)          # the search on a validation split, then a refit of the best config
    >>> fc.models[0].results  # one row per trial: state, loss, config
    >>> fc.predict()          # column AutoNHITS

fit_dataset (what Forecaster.fit and cross_validation call) keeps the last val_size steps of each
series for validation (NF: h when val_size is 0), asks optuna's sampler (TPE, seeded) for
`concurrent_trials` configurations at a time, runs them as trials on the backend (search.run_trial),
tells optuna their validation losses in trial order (so the same seed gives the same search on
any backend and any number of workers), and refits the best configuration here. Each trial
reports its validation checks to the optuna pruner, which stops hopeless trials.
"""
from __future__ import annotations

import copy
import inspect
import math
import time

from ndiv import nn
from ndiv.auto import spaces
from ndiv.auto.backends import WorkerLost, get_backend
from ndiv.auto.search import run_trial
from ndiv.models.base import BaseModel


def _optuna():
    try:
        import optuna
    except ImportError as e:
        raise ImportError('ndiv.auto\'s hyperparameter search needs optuna: pip install "ndiv[auto]"') from e
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


class _Probe:
    """A stand-in optuna trial that returns the lowest/first value of every suggestion (to read
    a config callable's fixed entries before the search, as NF's MockTrial)."""

    def suggest_categorical(self, name, choices):
        return list(choices)[0]

    def suggest_int(self, name, low, high, **kw):
        return low

    def suggest_float(self, name, low, high, **kw):
        return low

    suggest_uniform = suggest_loguniform = suggest_float


class BaseAuto(BaseModel):
    """Hyperparameter search for the model class `cls_model` (set by each Auto<Model>).

    Args (NeuralForecast's names):
        h: horizon. loss, valid_loss: the model's losses (default MAE; valid_loss: loss).
        config: None (NF's default space for the model, ndiv.auto.spaces.SPACES), a dict
            {name: fixed value, ndiv.auto.spaces distribution or optuna distribution}, or a callable
            config(trial) -> dict as NF's optuna backend. h, loss and valid_loss are not config keys.
        search_alg: an optuna sampler (default TPESampler(seed=seed)). num_samples: trials.
        cpus: worker processes of backend='local' (default: all cores). gpus: > 0 trains the
            trials on the GPU (device='cuda').
        refit_with_val: refit the best config with the validation split kept out (NF).
        verbose: print one line per trial. alias: the output column name (default AutoX).
        backend: 'local' (processes here), 'dask' (the current Client), a dask Client or scheduler
            address, 'ray' (or 'ray://...'), an ndiv.auto.Backend, or None (in this process).
        pruner: an optuna pruner (default MedianPruner()), or False for no pruning.
        concurrent_trials: trials drawn and run at once (the search depends on it, not on the
            number of workers). seed: the default sampler's seed.
        time_budget: seconds after which no new trials start (NF). callbacks: optuna callbacks,
            each called as callback(study, trial) after a trial is told (NF's optuna backend).
        n_series: multivariate models only (the number of series), as NF's AutoX(h, n_series).
    Attributes after fit: model (the refit best model), results (a DataFrame, one row per
    trial: number, state, loss, train_loss, seconds, error, config/<name>...), study (optuna).
    """
    cls_model: type = None
    default_config: dict = {}

    def __init_subclass__(cls, **kwargs):   # not BaseModel's: an Auto's signature is its own
        super(BaseModel, cls).__init_subclass__(**kwargs)

    def __init__(self, h, loss=None, valid_loss=None, config=None, search_alg=None, num_samples=10, cpus=None,
                 gpus=None, refit_with_val=False, verbose=False, alias=None, backend="local", pruner=None,
                 concurrent_trials=4, seed=1, n_series=None, time_budget=None, callbacks=None):
        nn.Module.__init__(self)
        cls = self.cls_model
        name = type(self).__name__
        if cls is None:
            raise TypeError("BaseAuto is abstract: use an Auto<Model> class (ndiv.auto.AutoNHITS, ...)")
        from ndiv.models._checks import POSITIVE_INT
        POSITIVE_INT.check(name, "h", h)
        POSITIVE_INT.check(name, "num_samples", num_samples)
        POSITIVE_INT.check(name, "concurrent_trials", concurrent_trials)
        if config is None:
            config = dict(self.default_config)
        if not (isinstance(config, dict) or callable(config)):
            raise TypeError(f"{name}: config must be a dict or a callable config(trial) -> dict, got {config!r}")
        fixed = self._fixed_entries(config, h)
        for k in ("h", "loss", "valid_loss"):
            if fixed.get(k) is not None:
                raise ValueError(f"{name}: config sets {k!r}; pass {k}= to {name} instead of config[{k!r}]")
        if cls.MULTIVARIATE and n_series is None and fixed.get("n_series") is None:
            raise ValueError(f"{name}: {cls.__name__} is multivariate: pass n_series= (the number of series)")
        from ndiv.losses import MAE
        self.h, self.config, self.search_alg, self.num_samples = int(h), config, search_alg, int(num_samples)
        self.loss = loss if loss is not None else MAE()
        self.valid_loss = valid_loss if valid_loss is not None else self.loss
        self.cpus, self.gpus, self.verbose, self.alias, self.backend = cpus, gpus, verbose, alias, backend
        self.pruner, self.concurrent_trials, self.seed, self.n_series = pruner, int(concurrent_trials), seed, n_series
        self.time_budget, self.callbacks = time_budget, callbacks
        # NF: a config with early stopping refits with its validation split
        self.refit_with_val = bool(refit_with_val) or "early_stop_patience_steps" in fixed
        self.device = "cpu"
        self.model, self.results, self.study = None, None, None
        # what Forecaster reads before fit: taken from the config's fixed entries
        for k in ("futr_exog_list", "hist_exog_list", "stat_exog_list", "cat_exog_list"):
            setattr(self, k, list(fixed.get(k) or []))
        self.categorical_cardinalities = dict(fixed.get("categorical_cardinalities") or {})
        sizes = [s for s in (spaces.candidates(config, "input_size", h) if isinstance(config, dict) else
                             [fixed.get("input_size")]) or [] if isinstance(s, int) and s > 0]
        self.input_size = min(sizes) if sizes else 1   # Forecaster's length check: the shortest window
        self.start_padding_enabled = bool(fixed.get("start_padding_enabled", False))
        self.val_size = self.test_size = 0
        self.train_trajectories, self.valid_trajectories = [], []

    def __repr__(self):
        return self.alias or type(self).__name__

    # -- configurations --------------------------------------------------------------------------
    def _fixed_entries(self, config, h) -> dict:
        """The config's entries that do not depend on the trial (a callable: called on a probe)."""
        if callable(config) and not isinstance(config, dict):
            try:
                return dict(config(_Probe()))
            except Exception:  # noqa: BLE001 -- a config that needs a real trial: nothing to read
                return {}
        optuna = _import_optional("optuna")
        dists = spaces.DISTRIBUTIONS + ((optuna.distributions.BaseDistribution,) if optuna else ())
        return {k: v for k, v in config.items() if not isinstance(v, dists)}

    def _draw(self, trial) -> dict:
        """The model's arguments for one trial: the config drawn by `trial`, then h and the losses."""
        if callable(self.config) and not isinstance(self.config, dict):
            cfg = dict(self.config(trial))
        else:
            optuna = _optuna()
            cfg = {}
            for k, v in spaces.resolve(self.config, self.h).items():
                if isinstance(v, spaces.DISTRIBUTIONS):
                    v = v.suggest(trial, k, self.h)
                elif isinstance(v, optuna.distributions.BaseDistribution):
                    v = _suggest_optuna(trial, k, v)
                cfg[k] = v
        for k in ("h", "loss", "valid_loss"):
            if cfg.get(k) is not None:
                raise ValueError(f"{self}: config sets {k!r}; pass {k}= to {type(self).__name__} instead")
        for k, size in (("input_size_multiplier", "input_size"), ("inference_input_size_multiplier",
                                                                  "inference_input_size")):
            if k in cfg:   # NF's configs built on default_config (_translate_input_size_multipliers)
                m = cfg.pop(k)
                cfg.setdefault(size, self.h * m)
        cfg = {k: v for k, v in cfg.items() if k not in ("h", "loss", "valid_loss")}
        cfg.update(h=self.h, loss=copy.deepcopy(self.loss), valid_loss=copy.deepcopy(self.valid_loss))
        if self.cls_model.MULTIVARIATE and self.n_series is not None:
            cfg.setdefault("n_series", self.n_series)
        if self.gpus:
            cfg.setdefault("device", "cuda")
        return cfg

    # -- the search ------------------------------------------------------------------------------
    def fit_dataset(self, dataset, val_size: int = 0, test_size: int = 0) -> "BaseAuto":
        """Search on `dataset` (validation: the last val_size steps, h when 0, before the last
        test_size), then refit the best configuration (NF's BaseAuto.fit)."""
        optuna = _optuna()
        val = int(val_size) if val_size > 0 else self.h
        sampler = self.search_alg if self.search_alg is not None else optuna.samplers.TPESampler(seed=self.seed)
        if not isinstance(sampler, optuna.samplers.BaseSampler):
            raise TypeError(f"{self}: search_alg must be an optuna sampler (optuna.samplers.*), got {sampler!r}")
        pruner = (optuna.pruners.NopPruner() if self.pruner is False else
                  self.pruner if self.pruner is not None else optuna.pruners.MedianPruner())
        study = optuna.create_study(direction="minimize", sampler=copy.deepcopy(sampler), pruner=pruner)
        backend = self.backend
        if backend == "local" and self.cpus:
            from ndiv.auto.backends import LocalBackend
            backend = LocalBackend(n_workers=self.cpus)
        engine, owned = get_backend(backend)
        handle = engine.scatter({"cls": self.cls_model, "dataset": dataset, "val_size": val, "test_size": test_size})
        records = {}
        start = time.monotonic()
        try:
            done = 0
            while done < self.num_samples and (done == 0 or self.time_budget is None
                                               or time.monotonic() - start < self.time_budget):
                trials = [study.ask() for _ in range(min(self.concurrent_trials, self.num_samples - done))]
                done += len(trials)
                history = study.get_trials(deepcopy=True, states=(optuna.trial.TrialState.COMPLETE,
                                                                  optuna.trial.TrialState.PRUNED))
                tasks, drawn = [], {}
                for t in trials:
                    try:
                        drawn[t.number] = self._draw(t)
                    except Exception as e:  # noqa: BLE001 -- a config that cannot be drawn: a failed trial
                        records[t.number] = {"number": t.number, "state": "FAIL", "value": None, "intermediate": [],
                                             "train_loss": None, "seconds": 0.0, "error": f"{type(e).__name__}: {e}"}
                        continue
                    tasks.append({"number": t.number, "config": drawn[t.number],
                                  "pruner": None if self.pruner is False else pruner, "history": history})
                for task, out in zip(tasks, engine.map(run_trial, handle, tasks)):
                    if isinstance(out, WorkerLost):
                        out = {"number": task["number"], "state": "FAIL", "value": None, "intermediate": [],
                               "train_loss": None, "seconds": 0.0,
                               "error": f"worker lost after {out.attempts} attempts: {out.error}"}
                    records[task["number"]] = out
                for t in trials:                 # told in trial order: the search never depends on timing
                    self._tell(study, t, records[t.number], drawn.get(t.number))
                    for callback in self.callbacks or []:
                        callback(study, study.trials[t.number])
        finally:
            engine.release(handle)
            if owned:
                engine.close()
        self.study = study
        self.results = self._results_frame(study, records)
        done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
        if not done:
            errors = sorted({r["error"] for r in records.values() if r["error"]})
            raise RuntimeError(f"{self}: none of the {len(records)} trials finished "
                               f"(errors: {errors[:3]}); see .results")
        best = min(done, key=lambda t: (t.value, t.number))
        config = {**self._config_of(best), "alias": str(self)}
        self.model = self.cls_model(**config)
        self.model.fit_dataset(dataset, val_size=val * self.refit_with_val, test_size=test_size)
        for k in ("input_size", "start_padding_enabled", "futr_exog_list", "hist_exog_list", "stat_exog_list",
                  "val_size", "test_size", "train_trajectories", "valid_trajectories"):
            setattr(self, k, getattr(self.model, k))
        return self

    def _tell(self, study, trial, rec: dict, config) -> None:
        optuna = _optuna()
        State = optuna.trial.TrialState
        if config is not None:
            self._configs[trial.number] = config
        for step, value in rec["intermediate"]:
            if math.isfinite(value):
                trial.report(value, step)
        trial.set_user_attr("METRICS", {"loss": rec["value"], "train_loss": rec["train_loss"]})
        trial.set_user_attr("seconds", rec["seconds"])
        if rec["error"]:
            trial.set_user_attr("error", rec["error"])
        if rec["state"] == "COMPLETE" and rec["value"] is not None and math.isfinite(rec["value"]):
            study.tell(trial, rec["value"])
        elif rec["state"] == "PRUNED":
            study.tell(trial, state=State.PRUNED)
        else:
            study.tell(trial, state=State.FAIL)
        if self.verbose:
            print(f"{self} trial {trial.number}: {rec['state']} loss={rec['value']} {rec['error'] or ''}")

    @property
    def _configs(self) -> dict:
        return self.__dict__.setdefault("_drawn_configs", {})

    def _config_of(self, trial) -> dict:
        return copy.deepcopy(self._configs[trial.number])

    def _results_frame(self, study, records):
        """One row per trial: number, state, loss, train_loss, seconds, error, config/<k>."""
        rows = sorted(study.trials, key=lambda t: t.number)
        keys = []
        for t in rows:
            for k in self._configs.get(t.number, {}):
                if k not in keys and k not in ("loss", "valid_loss", "h"):
                    keys.append(k)
        cols = {"number": [t.number for t in rows], "state": [t.state.name for t in rows],
                "loss": [records[t.number]["value"] for t in rows],
                "train_loss": [records[t.number]["train_loss"] for t in rows],
                "seconds": [records[t.number]["seconds"] for t in rows],
                "error": [records[t.number]["error"] for t in rows]}
        for k in keys:
            cols[f"config/{k}"] = [self._configs.get(t.number, {}).get(k) for t in rows]
        try:
            import pandas as pd
        except ImportError:
            return cols
        return pd.DataFrame(cols)

    # -- after the search: the refit model answers ----------------------------------------------
    def _require_model(self, what: str):
        if self.model is None:
            raise ValueError(f"{self}: call fit before {what} (the search has not run)")
        return self.model

    def predict_dataset(self, dataset, step_size: int = 1, test_size: int | None = None, quantiles=None):
        return self._require_model("predict").predict_dataset(dataset, step_size=step_size, test_size=test_size,
                                                              quantiles=quantiles)

    def validate(self, dataset) -> float:
        return self._require_model("validate").validate(dataset)

    def saved_model(self):
        """What Forecaster.save writes for this entry: the refit best model (NF's BaseAuto.save)."""
        return self._require_model("save")


BaseAuto.__signature__ = inspect.signature(BaseAuto.__init__.__wrapped__).replace(
    parameters=list(inspect.signature(BaseAuto.__init__.__wrapped__).parameters.values())[1:])
BaseAuto.__init__.__signature__ = inspect.signature(BaseAuto.__init__.__wrapped__)


def _suggest_optuna(trial, name, d):
    """A value for an optuna distribution through the public suggest_* API."""
    import optuna
    if isinstance(d, optuna.distributions.CategoricalDistribution):
        return trial.suggest_categorical(name, d.choices)
    if isinstance(d, optuna.distributions.IntDistribution):
        return trial.suggest_int(name, d.low, d.high, step=d.step, log=d.log)
    return trial.suggest_float(name, d.low, d.high, step=d.step, log=d.log)


def _import_optional(name):
    try:
        return __import__(name)
    except ImportError:
        return None


def make_auto(cls_model: type) -> type:
    """The Auto<Model> class of a model class (its NF default space from spaces.SPACES)."""
    name = cls_model.__name__
    auto = type(f"Auto{name}", (BaseAuto,), {
        "cls_model": cls_model, "default_config": spaces.SPACES.get(name, {}),
        "EXOGENOUS_FUTR": cls_model.EXOGENOUS_FUTR, "EXOGENOUS_HIST": cls_model.EXOGENOUS_HIST,
        "EXOGENOUS_STAT": cls_model.EXOGENOUS_STAT, "EXOGENOUS_CAT": cls_model.EXOGENOUS_CAT,
        "MULTIVARIATE": cls_model.MULTIVARIATE, "RECURRENT": cls_model.RECURRENT,
        "__module__": "ndiv.auto",
        "__doc__": f"Hyperparameter search for {name} (NeuralForecast's Auto{name}); see BaseAuto.",
    })
    auto.__signature__ = BaseAuto.__signature__
    return auto

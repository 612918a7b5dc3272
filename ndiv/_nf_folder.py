"""Open a folder written by NeuralForecast 3.3's `NeuralForecast.save(path)` as an ndiv Forecaster,
without torch (`ndiv.from_neuralforecast(path)`, or `ndiv.Forecaster.load(path)`, which sends
such folders here).

What NeuralForecast 3.3 writes (its "nf_format 2"; core.py `save`, _serialization.py):

    configuration.json         {"nf_format": "2", "configuration": {h, freq, local_scaler_type,
                               scalers_, id_col, time_col, target_col, alias_to_model,
                               [uids, last_dates, ds when save_dataset=True], ...}} in NF's tagged
                               JSON ({"__nf__": "tensor" | "datetime64" | "series" | ...})
    configuration.safetensors  the arrays the JSON points at (the scalers' statistics, ds, ...)
    {alias}_{i}.safetensors    one model: its weights, and in the header `model_class` and
                               `hyper_parameters` (tagged JSON; the loss as {"cls", "args"});
                               `shared` lists tied weights written once
    dataset.json / .safetensors  the training data (save_dataset=True), already local-scaled

The tagged JSON is decoded here for the tags these files use and no others; class names resolve
through ndiv's registries only (`ndiv.models.MODELS`, `ndiv.losses.LOSSES`, `ndiv.optim`), and
every file is read through `_saving._Folder` (plain names, no symbolic links). Legacy folders
(`.ckpt` checkpoints, `configuration.pkl`, `dataset.pkl`) are pickles: they are refused, never
opened, with how to re-save them in NeuralForecast >= 3.3.

    >>> fc = ndiv.from_neuralforecast("nf_folder")    # doctest: +SKIP
    >>> fc.predict()                                   # doctest: +SKIP
"""
from __future__ import annotations

import inspect
import json
import os
import struct
import warnings

import numpy as np

from ndiv._saving import _Folder, _has_pandas
from ndiv.data import AVAILABLE_MASK, TimeSeriesDataset
from ndiv.data.local_scalers import LOCAL_SCALER_TYPES, LocalScaler

CONFIG = "configuration.json"
CONFIG_ARRAYS = "configuration.safetensors"
DATASET = "dataset.json"
DATASET_ARRAYS = "dataset.safetensors"
TAG = "__nf__"
LEGACY_SUFFIXES = (".ckpt", ".pkl")

# NeuralForecast model options that ndiv's models do not have and that leave the forecast of a
# trained model as it is: the sample count of a DistributionLoss's recurrent quantiles, the
# metric Lightning monitors, an embedding size used only with categorical columns (refused below).
_IGNORED = {"n_samples", "val_monitor", "cat_emb_dim", "h_train", "inference_input_size"}
# Where the model runs is the loader's choice: a model trained on a GPU forecasts on the CPU here.
_PLACEMENT = {"accelerator", "devices", "strategy", "num_nodes"}
_CATEGORICAL = ("cat_exog_list", "categorical_cardinalities")
# NeuralForecast features whose saved state ndiv cannot use: such a folder is refused, not half read.
_UNSUPPORTED = {"local_static_scaler_type": "local scalers of static columns",
                "static_scalers_": "local scalers of static columns",
                "categorical_vocab_": "categorical columns",
                "prediction_intervals": "conformal prediction intervals"}


def is_nf_folder(path) -> bool:
    """Whether `path` is a folder NeuralForecast wrote (its configuration, or a legacy pickle)
    and not an ndiv one (forecaster.json)."""
    try:
        names = os.listdir(path)
    except (OSError, TypeError):
        return False
    if "forecaster.json" in names:
        return False
    return CONFIG in names or any(n.endswith(LEGACY_SUFFIXES) for n in names)


def from_neuralforecast(path, cls=None):
    """A fitted Forecaster from the folder `path` written by NeuralForecast 3.3's
    `NeuralForecast.save(path, save_dataset=...)`; torch is not needed.

    Each NF model becomes its ndiv twin (same class name in `ndiv.models.MODELS`, the saved
    hyperparameters, the loss by class name from `ndiv.losses.LOSSES`), its weights loaded with
    strict=True; the local scalers keep NF's fitted statistics. With save_dataset=True the
    Forecaster holds NF's training data, so `predict()` forecasts after it; with
    save_dataset=False pass the history: `predict(df=...)`.

    Raises ValueError naming the file for a legacy (pickle) folder, a model or loss ndiv lacks,
    an option ndiv cannot honour, or a damaged file; FileNotFoundError for a missing folder.
    """
    if cls is None:
        from ndiv.forecaster import Forecaster as cls
    path = os.fspath(path)
    if not os.path.isdir(path):
        raise FileNotFoundError(f"from_neuralforecast: {path!r} is not a folder written by NeuralForecast.save")
    folder = _Folder(path)
    try:
        return _read(cls, folder)
    finally:
        folder.close()


def _fail(folder: _Folder, name: str, problem: str):
    raise ValueError(f"from_neuralforecast: {folder.where(name)}: {problem}")


def _listdir(folder: _Folder) -> list[str]:
    return sorted(os.listdir(folder.fd if folder.fd is not None else folder.path))


def _refuse_legacy(folder: _Folder, names: list[str]) -> None:
    legacy = [n for n in names if n.endswith(LEGACY_SUFFIXES)]
    if CONFIG in names or not legacy:
        return
    raise ValueError(
        f"from_neuralforecast: {folder.where(legacy[0])} is a pickle from a NeuralForecast version before 3.3 "
        f"(legacy files: {legacy}); ndiv never unpickles, since a pickle runs code when it is read. Re-save the "
        "folder with NeuralForecast >= 3.3, which writes JSON and safetensors: "
        f"`nf = NeuralForecast.load({folder.path!r}, allow_pickle=True)` (only for a folder you trust), then "
        "`nf.save(new_path)` (or `python -m neuralforecast.migrate <folder>`), and load new_path")


def _safetensors(folder: _Folder, name: str) -> tuple[dict, dict]:
    """(arrays, header metadata) of the safetensors file `name` (never unpickles)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_bytes

    raw = folder.read(name, name)
    try:
        (n,) = struct.unpack("<Q", raw[:8])
        header = json.loads(raw[8:8 + n].decode("utf-8"))
        arrays = load_bytes(raw)
    except (struct.error, UnicodeDecodeError, json.JSONDecodeError, SafetensorError, ValueError, TypeError) as e:
        _fail(folder, name, f"is not a valid safetensors file (corrupt or truncated?): {str(e)[:200]}")
    meta = header.get("__metadata__") if isinstance(header, dict) else None
    return {k: np.array(v) for k, v in arrays.items()}, meta if isinstance(meta, dict) else {}


def _json(folder: _Folder, name: str):
    try:
        return json.loads(folder.read(name, name).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        _fail(folder, name, f"is not valid JSON ({type(e).__name__}: {str(e)[:200]}): the folder was edited or "
                            "damaged")


class _Decoder:
    """NeuralForecast's tagged JSON -> plain Python and NumPy, for the tags its saved folders use.
    `where` names the file in every error."""

    def __init__(self, folder: _Folder, name: str, tensors: dict):
        self.folder, self.name, self.tensors = folder, name, tensors

    def fail(self, key: str, problem: str):
        _fail(self.folder, self.name, f"{key} {problem}")

    def __call__(self, v, key: str):
        if isinstance(v, list):
            return [self(x, f"{key}[{i}]") for i, x in enumerate(v)]
        if not isinstance(v, dict):
            return v
        if TAG not in v:
            return {k: self(x, f"{key}.{k}") for k, x in v.items()}
        try:
            return self._tagged(v, v[TAG], key)
        except (KeyError, TypeError, IndexError, ValueError) as e:
            if str(e).startswith("from_neuralforecast"):
                raise
            self.fail(key, f"is a malformed {v[TAG]!r} entry ({type(e).__name__}: {str(e)[:120]}): the folder "
                           "was edited or damaged")

    def _tagged(self, v: dict, tag, key: str):
        if tag == "tensor":
            if v.get("key") not in self.tensors:
                self.fail(key, f"points at the array {v.get('key')!r}, which its safetensors file lacks")
            a = self.tensors[v["key"]]
            return a.astype(v["dtype"]) if v.get("kind") == "numpy" and "dtype" in v else a
        if tag == "array":
            return np.asarray(v["values"], dtype=v["dtype"]).reshape(v["shape"])
        if tag == "datetime64":
            raw = v["values"] if "values" in v else self(v["data"], key)
            if v.get("tz"):
                self.fail(key, f"holds time-zone-aware dates ({v['tz']}); ndiv's datasets hold naive dates: "
                               "refit NeuralForecast on naive (e.g. UTC) dates")
            return np.asarray(raw, dtype=np.int64).astype(f"datetime64[{v['unit']}]").astype("datetime64[ns]")
        if tag == "index":
            return np.asarray(v["values"])
        if tag == "series":
            return np.asarray(self(v["data"], key))
        if tag == "mapping":
            return {self(k, key): self(x, key) for k, x in v["items"]}
        if tag == "loss":
            return _loss(self, v, key)
        if tag == "torch_cls":
            return _optimizer_class(v, f"{self.folder.where(self.name)}: {key}")
        if tag == "scaler":
            return {"type": v.get("type"), "stats": None if v.get("stats_") is None else self(v["stats_"], key)}
        self.fail(key, f"has the tag {_short(tag)}, which ndiv does not read")


def _loss(dec: _Decoder, v: dict, key: str):
    from ndiv.losses import LOSSES

    name = v.get("cls")
    if name not in LOSSES:
        dec.fail(key, f"is NeuralForecast's {name}, which ndiv lacks; ndiv's losses: {sorted(LOSSES)}")
    args = dec(v.get("args") or {}, f"{key}.args")
    accepted = inspect.signature(LOSSES[name]).parameters
    unknown = sorted(k for k in args if k not in accepted)
    if unknown:
        dec.fail(key, f"is {name} with arguments {unknown} that ndiv's {name} does not take")
    if isinstance(args.get("horizon_weight"), np.ndarray):
        args["horizon_weight"] = args["horizon_weight"].astype(np.float32)
    try:
        return LOSSES[name](**args)
    except (TypeError, ValueError) as e:
        dec.fail(key, f"is {name}({args}), which ndiv's {name} rejects: {e}")


def _optimizer_class(v: dict, key: str):
    """An optimizer or scheduler class by name from ndiv.optim; one ndiv lacks only shapes a refit,
    never the forecast of the trained weights: warn and keep ndiv's default."""
    import ndiv.optim
    from ndiv.models._checks import _caller_level
    module = ndiv.optim.lr_scheduler if v.get("kind") == "lr_scheduler" else ndiv.optim
    cls = getattr(module, str(v.get("name")), None)
    if isinstance(cls, type):
        return cls
    warnings.warn(f"from_neuralforecast: {key} is torch's {v.get('name')}, which ndiv lacks; the model uses ndiv's "
                  "default (this matters only if you fit it again)", UserWarning, stacklevel=_caller_level())
    return None


def _read(cls, folder: _Folder):
    names = _listdir(folder)
    _refuse_legacy(folder, names)
    if CONFIG not in names:
        raise FileNotFoundError(f"from_neuralforecast: {folder.where(CONFIG)} not found: is {folder.path!r} a "
                                "folder written by NeuralForecast.save (3.3 or later)?")
    top = _json(folder, CONFIG)
    if not isinstance(top, dict) or not isinstance(top.get("configuration"), dict):
        _fail(folder, CONFIG, "must be an object with a 'configuration' object: not written by NeuralForecast.save")
    if str(top.get("nf_format")) != "2":
        _fail(folder, CONFIG, f"has nf_format={top.get('nf_format')!r}; ndiv reads NeuralForecast's format 2 "
                              "(NeuralForecast 3.3): re-save the folder with that version")
    tensors = _safetensors(folder, CONFIG_ARRAYS)[0] if CONFIG_ARRAYS in names else {}
    dec = _Decoder(folder, CONFIG, tensors)
    conf = top["configuration"]
    get = lambda k, default=None: dec(conf.get(k, default), k)  # noqa: E731

    if get("_fitted") is not True:
        _fail(folder, CONFIG, "says the NeuralForecast object was saved before fit (_fitted is not true): "
                              "fit it, then save")
    for k, what in _UNSUPPORTED.items():
        if conf.get(k):
            _fail(folder, CONFIG, f"{k} is set ({_short(conf[k])}); ndiv has no {what}: refit NeuralForecast "
                                  "without it")
    cols = {k: get(k, d) for k, d in (("id_col", "unique_id"), ("time_col", "ds"), ("target_col", "y"))}
    freq = get("freq")
    if not isinstance(freq, (str, int)) or isinstance(freq, bool):
        _fail(folder, CONFIG, f"freq must be a frequency string or an int, got {_short(freq)}")

    models = _models(folder, names, get("alias_to_model") or {})
    scaler_type = get("local_scaler_type")
    if scaler_type is not None and scaler_type not in LOCAL_SCALER_TYPES:
        _fail(folder, CONFIG, f"local_scaler_type is {scaler_type!r}, not one of ndiv's {list(LOCAL_SCALER_TYPES)}")
    scalers = {}
    for col, d in (get("scalers_") or {}).items():
        if not isinstance(d, dict) or d.get("type") != scaler_type or d.get("stats") is None:
            _fail(folder, CONFIG, f"scalers_[{col!r}] must be a fitted {scaler_type!r} scaler, got {_short(d)}")
        sc = LocalScaler(scaler_type)
        sc.stats_ = np.asarray(d["stats"], dtype=np.float64).reshape(-1, 2)
        scalers[col] = sc

    fc = cls(models, freq=freq, local_scaler_type=scaler_type)
    fc._scalers = scalers
    fc._static_df = None
    fc._like = "pandas" if _has_pandas() else None
    fc._nf_columns = (cols["id_col"], cols["time_col"], cols["target_col"])
    if DATASET in names:
        fc._dataset = _dataset(folder, names, get, freq, cols)
        fc._raw_dataset = _unscaled(fc._dataset, scalers)
    else:  # save_dataset=False: predict(df=...) brings the history
        fc._dataset = fc._raw_dataset = None
    fc._fitted = True
    return fc


def _models(folder: _Folder, names: list[str], alias_to_model: dict) -> list:
    """The ndiv twin of each `{alias}_{i}.safetensors`, in NeuralForecast.load's order (sorted names)."""
    from ndiv.models import MODELS
    from ndiv.serialization import _check_expected

    lower = {k.lower(): k for k in MODELS}
    files = [n for n in names if n.endswith(".safetensors") and n not in (CONFIG_ARRAYS, DATASET_ARRAYS)]
    if not files:
        _fail(folder, CONFIG, "the folder holds no model file ({alias}_{i}.safetensors)")
    models, count = [], {}
    for name in files:
        arrays, meta = _safetensors(folder, name)
        alias = "_".join(name[:-len(".safetensors")].split("_")[:-1]) or name
        nf_class = meta.get("model_class") or alias_to_model.get(alias, alias)
        cls_name = lower.get(str(nf_class).lower())
        if cls_name is None:
            _fail(folder, name, f"holds NeuralForecast's {nf_class}, which ndiv does not have; ndiv's models: "
                                f"{sorted(MODELS)}")
        try:
            stored = json.loads(meta["hyper_parameters"])
            if not isinstance(stored, dict):
                raise TypeError
        except (KeyError, TypeError, json.JSONDecodeError):
            _fail(folder, name, "has no hyper_parameters in its header: not written by NeuralForecast.save (3.3)")
        config = _config(_Decoder(folder, name, arrays), stored, MODELS[cls_name], name)
        count[alias] = count.get(alias, -1) + 1
        config["alias"] = alias if count[alias] == 0 else f"{alias}{count[alias]}"  # NF's names: MLP, MLP1
        try:
            model = MODELS[cls_name](**config)
        except (TypeError, ValueError) as e:
            _fail(folder, name, f"its hyperparameters are rejected by ndiv's {cls_name}: {e}")
        weights = _weights(arrays, meta, folder, name)
        expected = {k: v for k, v in model.state_dict().items()}
        _check_expected(weights, expected, folder.where(name))
        model.load_state_dict(weights, strict=True)
        model.eval()
        models.append(model)
    return models


def _config(dec: _Decoder, stored: dict, model_cls, name: str) -> dict:
    """NeuralForecast hyperparameters -> the ndiv model's arguments (same names)."""
    from ndiv.models._checks import TRAINER_KWARGS

    accepted = set(inspect.signature(model_cls).parameters)
    config = {}
    for k, v in stored.items():
        if k in _PLACEMENT or (k in _IGNORED and k not in accepted):
            continue
        value = dec(v, f"hyper_parameters.{k}")
        if k in _CATEGORICAL:
            if value:
                dec.fail(f"hyper_parameters.{k}", f"is {_short(value)}: ndiv's models have no categorical "
                                                 "exogenous columns; refit NeuralForecast without them")
            continue
        if k not in accepted and k not in TRAINER_KWARGS:
            dec.fail(f"hyper_parameters.{k}", f"is NeuralForecast's option {k}={_short(value)}, which ndiv's "
                                              f"{model_cls.__name__} does not have")
        if isinstance(value, tuple):
            value = list(value)
        config[k] = value
    return config


def _weights(arrays: dict, meta: dict, folder: _Folder, name: str) -> dict:
    """The model's weights: without NF's hyperparameter arrays and loss buffers (ndiv's losses
    hold plain arrays), with the tied weights NF wrote once (`shared`) written back."""
    weights = {k: v for k, v in arrays.items()
               if not k.startswith(("__hparams__.", "loss.", "valid_loss."))}
    try:
        shared = json.loads(meta.get("shared") or "{}")
    except json.JSONDecodeError:
        _fail(folder, name, "has an invalid 'shared' entry in its header")
    for kept, copies in shared.items():
        if kept in weights:
            for c in copies:
                weights[c] = weights[kept]
    return weights


def _dataset(folder: _Folder, names: list[str], get, freq, cols: dict) -> TimeSeriesDataset:
    """NeuralForecast's saved training data (local-scaled, as NF keeps it) as ndiv's dataset:
    the target first and available_mask last."""
    meta = _json(folder, DATASET)
    if not isinstance(meta, dict) or meta.get("dataset_class") != "TimeSeriesDataset":
        _fail(folder, DATASET, f"holds a {_short(meta.get('dataset_class') if isinstance(meta, dict) else meta)}; "
                               "ndiv reads NeuralForecast's in-memory TimeSeriesDataset only")
    tensors = _safetensors(folder, DATASET_ARRAYS)[0] if DATASET_ARRAYS in names else {}
    dec = _Decoder(folder, DATASET, tensors)
    fields = meta.get("fields") or {}
    temporal = np.asarray(dec(fields.get("temporal"), "fields.temporal"), dtype=np.float32)
    tcols = [str(c) for c in dec(fields.get("temporal_cols"), "fields.temporal_cols")]
    indptr = np.asarray(dec(fields.get("indptr"), "fields.indptr"), dtype=np.int64)
    static = dec(fields.get("static"), "fields.static")
    static_cols = dec(fields.get("static_cols"), "fields.static_cols")
    uids, ds = get("uids"), get("ds")
    if uids is None or ds is None:
        _fail(folder, CONFIG, "lacks uids or ds, which NeuralForecast writes with dataset.json")
    target = cols["target_col"]
    if temporal.ndim != 2 or temporal.shape[1] != len(tcols) or target not in tcols:
        _fail(folder, DATASET, f"temporal {temporal.shape} does not match temporal_cols {tcols} (target {target!r})")
    if len(indptr) != len(uids) + 1 or indptr[0] != 0 or indptr[-1] != len(temporal) or len(ds) != len(temporal):
        _fail(folder, DATASET, f"indptr, uids and ds do not describe its {len(temporal)} rows")
    if AVAILABLE_MASK not in tcols:
        temporal = np.concatenate([temporal, np.ones((len(temporal), 1), np.float32)], 1)
        tcols = tcols + [AVAILABLE_MASK]
    order = [tcols.index(target)] + [i for i, c in enumerate(tcols) if c not in (target, AVAILABLE_MASK)] \
        + [tcols.index(AVAILABLE_MASK)]
    if static is not None:
        static = np.asarray(static, dtype=np.float32).reshape(len(uids), -1)
        static_cols = [str(c) for c in static_cols]
    uids = np.asarray(uids)
    if uids.dtype.kind == "O":
        uids = uids.astype(str)
    ds = np.asarray(ds)
    return TimeSeriesDataset(temporal[:, order], [tcols[i] for i in order], indptr, uids, ds, static,
                             static_cols if static is not None else None, freq, cols["id_col"], cols["time_col"],
                             target)


def _unscaled(ds: TimeSeriesDataset, scalers: dict) -> TimeSeriesDataset:
    """The data in its own units (NF keeps only the local-scaled values): for predict_insample's
    y column and for Forecaster.save."""
    if not scalers:
        return ds
    temporal = ds.temporal.astype(np.float64)
    for col, sc in scalers.items():
        if col in ds.temporal_cols:
            i = ds.temporal_cols.index(col)
            temporal[:, i] = sc.inverse_transform(temporal[:, i], ds.indptr)
    return ds.with_temporal(temporal.astype(np.float32))


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."

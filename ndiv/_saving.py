"""Forecaster folders: atomic save, confined load (JSON and safetensors only, never a pickle).

A folder written by `Forecaster.save(path)` (format_version 2):

    forecaster.json        format_version, ndiv_version, freq, local_scaler_type,
                           models: [{class, config, weights, sha256}], scalers: {column: {scaler_type, stats}},
                           data: {file, sha256, temporal_cols, uids, uid_kind, static_cols, freq, ds_kind,
                                  id_col, time_col, target_col},
                           categories: {column: [training values]} (the categorical codes of fit)
    model_<i>.safetensors  the weights of models[i]
    data.safetensors       the training data in its own units (temporal, indptr, ds[, static]);
                           the local scalers are re-applied on load

Save writes everything into a fresh hidden folder `.<name>.tmp-<random>` next to `path`, then
renames it into place, so a reader finds either no folder, the old one or the new one, each
complete. Replacing a folder (overwrite=True) swaps the two in one step where Linux's
renameat2(RENAME_EXCHANGE) is available; elsewhere the old folder is renamed aside first, which
leaves a window of two renames in which `path` does not exist (a reader then gets
FileNotFoundError, never a mix). A process killed mid-save leaves its hidden temporary folder.

Load trusts nothing in the folder: forecaster.json is checked key by key, file names must be
plain names of regular files in the folder (no '..', no absolute path, no symbolic link), each
file must match the SHA-256 recorded at save (so an edited or truncated file is reported by
name), model classes and losses come from explicit registries (`MODELS`, `LOSSES`), and every
file is read through one handle on the folder, so a folder replaced while it is read is read
again rather than mixed.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import secrets
import shutil
import stat
import sys

import numpy as np

import ndiv
from ndiv.data import AVAILABLE_MASK, TimeSeriesDataset, apply_local_scalers
from ndiv.data.categorical import check_vocabulary
from ndiv.data.local_scalers import LOCAL_SCALER_TYPES, LocalScaler
from ndiv.device import to_device

FORMAT_VERSION = 2
META = "forecaster.json"
CONFORMITY = "conformity.safetensors"
DATA = "data.safetensors"


# -- save ---------------------------------------------------------------------------------------
def save_forecaster(fc, path, overwrite: bool = False) -> None:
    """Write fc (fitted) to the folder `path` atomically; see the module docstring."""
    target = os.path.realpath(os.fspath(path))  # a symlink to a folder: replace the folder it names
    _check_replaceable(target, overwrite)
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    tmp = os.path.join(parent, f".{os.path.basename(target)}.tmp-{secrets.token_hex(8)}")
    os.mkdir(tmp)
    try:
        _write_folder(fc, tmp)
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    _fsync(parent)


def _check_replaceable(target: str, overwrite: bool) -> None:
    if not os.path.lexists(target):
        return
    if not os.path.isdir(target):
        raise FileExistsError(f"Forecaster.save: {target!r} exists and is not a folder; give a folder path")
    entries = os.listdir(target)
    if not entries:
        return
    if not overwrite:
        raise FileExistsError(f"{target} exists and is not empty; pass overwrite=True to replace it")
    if META not in entries:
        raise FileExistsError(f"Forecaster.save: {target!r} is not a folder written by Forecaster.save (it has no "
                              f"{META}); overwrite=True replaces only such folders: choose another path")


def _write_folder(fc, folder: str) -> None:
    from ndiv.auto.partitioned import Partitioned
    models = []
    raw = fc._raw_dataset
    for i, m in enumerate(fc.models):
        m = m.saved_model() if hasattr(m, "saved_model") else m   # an Auto model: its refit best model
        name = f"model_{i}.safetensors"
        ndiv.save({k: to_device(v, "cpu") for k, v in m.state_dict().items()},
                  os.path.join(folder, name))
        inner = m.model if isinstance(m, Partitioned) else m
        entry = {"class": type(inner).__name__, "config": config_to_json(inner._init_config, f"models[{i}]"),
                 "weights": name, "sha256": _sha256_of(os.path.join(folder, name))}
        if isinstance(m, Partitioned):   # the copies' weights (partitions.<p>.*), their series by index
            entry["partitions"] = {"n_partitions": m.n_partitions,
                                   "series": [np.searchsorted(raw.uids, u).tolist() for u in m.part_uids]}
        models.append(entry)
    arrays = {"temporal": raw.temporal, "indptr": raw.indptr}
    if raw.static is not None:
        arrays["static"] = raw.static
    ds_kind = "datetime" if raw.ds.dtype.kind == "M" else "int"
    arrays["ds"] = (raw.ds.astype("datetime64[ns]") if ds_kind == "datetime" else raw.ds).astype(np.int64)
    ndiv.save(arrays, os.path.join(folder, DATA))
    data = {"file": DATA, "sha256": _sha256_of(os.path.join(folder, DATA)), "temporal_cols": raw.temporal_cols,
            "uids": raw.uids.tolist(),
            "uid_kind": {"i": "int", "u": "int", "f": "float"}.get(raw.uids.dtype.kind, "str"),
            "static_cols": raw.static_cols, "freq": raw.freq, "ds_kind": ds_kind, "id_col": raw.id_col,
            "time_col": raw.time_col, "target_col": raw.target_col}
    meta = {"format_version": FORMAT_VERSION, "ndiv_version": ndiv.__version__, "freq": fc.freq,
            "local_scaler_type": fc.local_scaler_type, "models": models,
            "scalers": {k: v.to_dict() for k, v in fc._scalers.items()}, "data": data,
            "categories": fc._categories}
    conformity = getattr(fc, "_conformity", None)
    if conformity is not None:  # fit(prediction_intervals=...): the scores that predict(level=) needs
        scores = {f"scores.{name}": np.asarray(v, np.float64) for name, v in conformity.items() if name != "_uids"}
        ndiv.save(scores, os.path.join(folder, CONFORMITY))
        meta["prediction_intervals"] = {"config": fc.prediction_intervals.to_dict(), "file": CONFORMITY,
                                        "sha256": _sha256_of(os.path.join(folder, CONFORMITY)),
                                        "models": sorted(n for n in conformity if n != "_uids")}
    with open(os.path.join(folder, META), "w") as f:
        json.dump(meta, f, indent=1, default=_json_default)
    for name in os.listdir(folder):
        _fsync(os.path.join(folder, name))
    _fsync(folder)


def _publish(tmp: str, target: str, overwrite: bool) -> None:
    """Move the complete folder tmp to target (absent, empty, or replaced when overwrite)."""
    if not os.path.lexists(target) or not os.listdir(target):
        os.replace(tmp, target)  # POSIX: atomic, and replaces an empty folder
        return
    _check_replaceable(target, overwrite)  # again: the folder may have changed while we wrote
    if _exchange(tmp, target):  # now tmp holds the old folder
        shutil.rmtree(tmp, ignore_errors=True)
        return
    aside = f"{tmp}-old"
    os.rename(target, aside)  # from here to the next rename, target does not exist
    try:
        os.rename(tmp, target)
    except BaseException:
        os.rename(aside, target)
        raise
    shutil.rmtree(aside, ignore_errors=True)


def _exchange(a: str, b: str) -> bool:
    """Swap two paths in one step (Linux renameat2 with RENAME_EXCHANGE); False where the
    system or the file system cannot."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    try:
        renameat2 = libc.renameat2  # glibc >= 2.28
    except AttributeError:
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), b)


def _fsync(path: str) -> None:
    """Flush a file or folder to disk (folders cannot be opened for this on Windows: skipped)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _sha256_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def _json_default(v):
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.ndarray):
        return v.tolist()
    raise TypeError(f"cannot save a value of type {type(v).__name__} in the model configuration")


def config_to_json(config: dict, where: str) -> dict:
    """A model's (or loss's) constructor arguments -> JSON-able dict; a loss becomes
    {'__loss__': its name in LOSSES, 'config': {...}}."""
    from ndiv.losses import LOSSES
    out = {}
    for k, v in config.items():
        if hasattr(v, "is_distribution_output"):
            name = type(v).__name__
            if LOSSES.get(name) is not type(v):
                raise ValueError(f"Forecaster.save: {where}.{k} is a {name}, which is not one of ndiv.losses "
                                 f"({sorted(LOSSES)}); only those losses can be saved and loaded")
            out[k] = {"__loss__": name, "config": config_to_json(getattr(v, "_init_config", {}), f"{where}.{k}")}
        elif isinstance(v, type):
            raise ValueError(f"cannot save option {k}={v!r} (a class); save supports the default optimizer "
                             "and scheduler")
        else:
            out[k] = v
    return out


# -- load ---------------------------------------------------------------------------------------
class _Folder:
    """Reads plain files of one folder through one handle on it (where the system allows), so
    every file comes from the same folder even if `path` is replaced meanwhile."""

    _by_fd = os.open in os.supports_dir_fd and hasattr(os, "O_NOFOLLOW")

    def __init__(self, path: str):
        self.path = path
        if not os.path.isdir(path):
            raise FileNotFoundError(f"{os.path.join(path, META)} not found: is {path!r} a folder written by "
                                    "Forecaster.save?")
        self.fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)) if self._by_fd else None

    def close(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def replaced(self) -> bool:
        """Whether `path` now names another folder than the one being read."""
        if self.fd is None:
            return False
        try:
            now, ours = os.stat(self.path), os.fstat(self.fd)
        except OSError:
            return True
        return (now.st_dev, now.st_ino) != (ours.st_dev, ours.st_ino)

    def where(self, name: str) -> str:
        return os.path.join(self.path, name)

    def read(self, name: str, key: str) -> bytes:
        """The bytes of the plain file `name` (named by JSON key `key`)."""
        if (not isinstance(name, str) or name in ("", ".", "..") or "\x00" in name or "/" in name
                or (os.altsep and os.altsep in name) or os.sep in name or os.path.isabs(name)):
            raise ValueError(f"Forecaster.load: {self.where(META)}: {key} must be the plain name of a file in "
                             f"the folder, got {name!r}: the folder was edited or not written by Forecaster.save")
        where = self.where(name)
        if self.fd is not None:
            try:  # O_NOFOLLOW: a symbolic link fails; O_NONBLOCK: a FIFO does not block
                fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_NONBLOCK", 0), dir_fd=self.fd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise ValueError(f"Forecaster.load: {where} is a symbolic link; a saved folder holds plain "
                                     "files only (copy the file in its place)") from None
                if e.errno == errno.ENOENT:
                    raise FileNotFoundError(f"Forecaster.load: {where} (named by {key} in {META}) not found") from None
                raise
        else:
            real, root = os.path.realpath(where), os.path.realpath(self.path)
            if os.path.islink(where) or os.path.dirname(real) != root:
                raise ValueError(f"Forecaster.load: {where} is a symbolic link; a saved folder holds plain "
                                 "files only (copy the file in its place)")
            if not os.path.exists(where):
                raise FileNotFoundError(f"Forecaster.load: {where} (named by {key} in {META}) not found")
            fd = os.open(where, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise ValueError(f"Forecaster.load: {where} is not a regular file")
            chunks = []
            while chunk := os.read(fd, 1 << 24):
                chunks.append(chunk)
            return b"".join(chunks)
        finally:
            os.close(fd)


def load_forecaster(cls, path):
    """Read a folder written by save_forecaster into a new `cls` (Forecaster)."""
    path = os.fspath(path)
    attempts = 5  # a folder replaced while we read it (files gone) is read again, from the start
    for attempt in range(attempts):
        folder = _Folder(path)
        try:
            return _read(cls, folder)
        except FileNotFoundError:
            if attempt == attempts - 1 or not folder.replaced():
                raise
        finally:
            folder.close()


class _Checker:
    """Type checks on decoded JSON, each error naming the file and the key."""

    def __init__(self, file: str):
        self.file = file

    def fail(self, key: str, problem: str):
        raise ValueError(f"Forecaster.load: {self.file}: {key} {problem}; the folder was edited, damaged or not "
                         "written by this version of Forecaster.save")

    def get(self, obj: dict, key: str, where: str, types, what: str, optional: bool = False):
        full = f"{where}.{key}" if where else key
        if key not in obj:
            if optional:
                return None
            self.fail(full, "is missing")
        v = obj[key]
        if optional and v is None:
            return None
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in _as_tuple(types)):
            self.fail(full, f"must be {what}, got {_short(v)}")
        return v

    def str_list(self, obj: dict, key: str, where: str) -> list:
        v = self.get(obj, key, where, list, "a list of str")
        if not all(isinstance(s, str) for s in v):
            self.fail(f"{where}.{key}" if where else key, f"must be a list of str, got {_short(v)}")
        return v


def _as_tuple(t):
    return t if isinstance(t, tuple) else (t,)


def _short(v) -> str:
    r = repr(v)
    return r if len(r) <= 60 else r[:57] + "..."


def _parse_json(folder: _Folder, name: str):
    raw = folder.read(name, name)
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ValueError(f"Forecaster.load: {folder.where(name)} is not valid JSON ({type(e).__name__}: "
                         f"{str(e)[:200]}): the folder was edited or damaged") from None


def _read_safetensors(folder: _Folder, name: str, sha256: str, key: str) -> dict:
    """name -> array of a safetensors file whose bytes hash to sha256 (never unpickles)."""
    from safetensors import SafetensorError
    from safetensors.numpy import load as load_bytes

    raw = folder.read(name, key)
    where = folder.where(name)
    if hashlib.sha256(raw).hexdigest() != sha256:
        raise ValueError(f"Forecaster.load: {where} does not match the SHA-256 recorded in {META} ({len(raw)} bytes): "
                         "it was edited, truncated or replaced after save")
    try:
        arrays = load_bytes(raw)
    except (SafetensorError, ValueError, TypeError) as e:
        raise ValueError(f"Forecaster.load: {where} is not a valid safetensors file (corrupt or truncated?): "
                         f"{e}") from None
    return {k: np.array(v) for k, v in arrays.items()}  # own, writable copies


def _read(cls, folder: _Folder):
    from ndiv.models import MODELS
    from ndiv.serialization import _check_expected

    meta = _parse_json(folder, META)
    c = _Checker(folder.where(META))
    if not isinstance(meta, dict):
        c.fail("the top level", f"must be a JSON object, got {_short(meta)}")
    version = c.get(meta, "format_version", "", int, "an int")
    if version != FORMAT_VERSION:
        c.fail("format_version", f"is {version}, this ndiv ({ndiv.__version__}) reads format_version "
                                 f"{FORMAT_VERSION} only: fit and save again")
    freq = c.get(meta, "freq", "", (str, int), "a frequency string or int")
    scaler_type = c.get(meta, "local_scaler_type", "", str, "null or a str", optional=True)
    if scaler_type is not None and scaler_type not in LOCAL_SCALER_TYPES:
        c.fail("local_scaler_type", f"is {scaler_type!r}, not one of {list(LOCAL_SCALER_TYPES)}")
    entries = c.get(meta, "models", "", list, "a non-empty list")
    if not entries:
        c.fail("models", "must be a non-empty list, got []")

    models = []
    for i, entry in enumerate(entries):
        where = f"models[{i}]"
        if not isinstance(entry, dict):
            c.fail(where, f"must be an object, got {_short(entry)}")
        name = c.get(entry, "class", where, str, "a model class name")
        if name not in MODELS:
            c.fail(f"{where}.class", f"is {name!r}, not one of ndiv.models.MODELS {sorted(MODELS)}")
        config = config_from_json(c.get(entry, "config", where, dict, "an object"), c, f"{where}.config")
        try:
            model = MODELS[name](**config)
        except (TypeError, ValueError) as e:
            c.fail(f"{where}.config", f"is rejected by {name}: {e}")
        if "partitions" in entry:
            model = _partitioned(model, c.get(entry, "partitions", where, dict, "an object"), c, where)
        weights = _read_safetensors(folder, c.get(entry, "weights", where, str, "a file name"),
                                    c.get(entry, "sha256", where, str, "a hex digest"), f"{where}.weights")
        _check_expected(weights, model.state_dict(), folder.where(entry["weights"]))
        model.load_state_dict(weights, strict=True)
        model.eval()
        models.append(model)

    raw = _read_dataset(folder, c, c.get(meta, "data", "", dict, "an object"))
    for i, model in enumerate(models):
        series = getattr(model, "_saved_series", None)
        if series is not None:    # a Partitioned model: its partitions' series, by index into the data
            if any(not 0 <= j < raw.n_series for s in series for j in s):
                c.fail(f"models[{i}].partitions.series", f"names series outside the data's {raw.n_series}")
            model.part_uids = [raw.uids[np.asarray(s, dtype=np.int64)] for s in series]
            del model._saved_series
    scalers = {}
    for col, d in c.get(meta, "scalers", "", dict, "an object").items():
        where = f"scalers[{col!r}]"
        if col not in raw.temporal_cols or col == AVAILABLE_MASK:
            c.fail(where, f"names no scaled column of the data ({raw.temporal_cols})")
        if not isinstance(d, dict) or d.get("scaler_type") != scaler_type:
            c.fail(where, f"must be an object with scaler_type {scaler_type!r}, got {_short(d)}")
        try:
            scalers[col] = LocalScaler.from_dict(d, n_series=raw.n_series)
        except (TypeError, ValueError) as e:
            c.fail(where, str(e))
    if (scaler_type is None) != (not scalers) or (scalers and raw.target_col not in scalers):
        c.fail("scalers", f"do not match local_scaler_type={scaler_type!r} (columns {sorted(scalers)})")

    try:
        fc = cls(models, freq=freq, local_scaler_type=scaler_type)
    except (TypeError, ValueError) as e:
        c.fail("models", str(e))
    fc._scalers = scalers
    # the categorical vocabulary of fit: predict encodes new data with the same codes
    fc._categories = check_vocabulary(meta.get("categories") or {}, fc._cat_cards, c.fail)
    fc._raw_dataset = raw
    fc._dataset = apply_local_scalers(raw, scalers)  # as fit: the same float64 arithmetic, bit for bit
    # the static features given at fit, back as a table, so predict(df) finds them as before save
    fc._static_df = None if raw.static is None else {
        raw.id_col: raw.uids, **{c: raw.static[:, j] for j, c in enumerate(raw.static_cols)}}
    fc._conformity = None
    pi = meta.get("prediction_intervals")
    if pi is not None:
        fc.prediction_intervals, fc._conformity = _read_conformity(folder, c, pi, fc, raw)
    fc._fitted = True
    fc._like = "pandas" if _has_pandas() else None
    return fc


def _partitioned(model, d: dict, c: _Checker, where: str):
    """A Partitioned model around `model` with one copy per saved partition (weights loaded after)."""
    import copy

    from ndiv import nn
    from ndiv.auto.partitioned import Partitioned
    n = c.get(d, "n_partitions", f"{where}.partitions", int, "an int")
    series = c.get(d, "series", f"{where}.partitions", list, "a list of lists of series indices")
    if not series or not all(isinstance(s, list) and s and all(isinstance(j, int) for j in s) for s in series):
        c.fail(f"{where}.partitions.series", "must be a non-empty list of non-empty lists of ints")
    try:
        wrapped = Partitioned(model, n)
    except (TypeError, ValueError) as e:
        c.fail(f"{where}.partitions", str(e))
    wrapped.partitions = nn.ModuleList([copy.deepcopy(model) for _ in series])
    wrapped._saved_series = series
    return wrapped


def _read_conformity(folder: _Folder, c: _Checker, pi, fc, raw):
    """(PredictionIntervals, {model name: scores [n_series, n_windows, h], '_uids': ids}) of a
    folder saved after fit(prediction_intervals=...), every part checked."""
    from ndiv.conformal import PredictionIntervals
    if not isinstance(pi, dict):
        c.fail("prediction_intervals", f"must be an object, got {_short(pi)}")
    config = c.get(pi, "config", "prediction_intervals", dict, "an object")
    try:
        intervals = PredictionIntervals(**config)
    except (TypeError, ValueError) as e:
        c.fail("prediction_intervals.config", str(e))
    names = c.get(pi, "models", "prediction_intervals", list, "a list of model names")
    arrays = _read_safetensors(folder, c.get(pi, "file", "prediction_intervals", str, "a file name"),
                               c.get(pi, "sha256", "prediction_intervals", str, "a hex digest"),
                               "prediction_intervals.file")
    models = {str(m) for m in fc.models}
    scores = {"_uids": raw.uids}
    for name in names:
        a = arrays.get(f"scores.{name}")
        if name not in models or a is None or a.ndim != 3 or a.shape[0] != raw.n_series or a.shape[2] != fc.h:
            c.fail("prediction_intervals.models", f"{name!r} has no scores of shape [{raw.n_series}, n_windows, "
                                                  f"{fc.h}] in {pi['file']}")
        scores[name] = a
    return intervals, scores


def _read_dataset(folder: _Folder, c: _Checker, d: dict) -> TimeSeriesDataset:
    w = "data"
    cols = c.str_list(d, "temporal_cols", w)
    static_cols = c.str_list(d, "static_cols", w)
    uids = c.get(d, "uids", w, list, "a list")
    uid_kind = c.get(d, "uid_kind", w, str, "'int', 'float' or 'str'")
    ds_kind = c.get(d, "ds_kind", w, str, "'datetime' or 'int'")
    if uid_kind not in ("int", "float", "str"):
        c.fail("data.uid_kind", f"must be 'int', 'float' or 'str', got {uid_kind!r}")
    if ds_kind not in ("datetime", "int"):
        c.fail("data.ds_kind", f"must be 'datetime' or 'int', got {ds_kind!r}")
    kind = {"int": int, "float": float, "str": str}[uid_kind]   # NF's AirPassengersDF has unique_id 1.0
    if not uids or not all(isinstance(u, kind) and not isinstance(u, bool) for u in uids):
        c.fail("data.uids", f"must be a non-empty list of {uid_kind}, got {_short(uids)}")
    uids = np.asarray(uids, dtype={int: np.int64, float: np.float64}.get(kind))
    if len(np.unique(uids)) != len(uids) or not np.array_equal(np.sort(uids), uids):
        c.fail("data.uids", "must be sorted and unique")
    names = [c.get(d, k, w, str, "a str") for k in ("id_col", "time_col", "target_col")]
    if not cols or cols[0] != names[2]:
        c.fail("data.temporal_cols", f"must start with the target column {names[2]!r}, got {_short(cols)}")
    data_freq = c.get(d, "freq", w, (str, int), "null, a str or an int", optional=True)

    name = c.get(d, "file", w, str, "a file name")
    arrays = _read_safetensors(folder, name, c.get(d, "sha256", w, str, "a hex digest"), "data.file")
    where = folder.where(name)
    n_series = len(uids)
    want = {"temporal": (np.float32, 2), "indptr": (np.int64, 1), "ds": (np.int64, 1)}
    if static_cols:
        want["static"] = (np.float32, 2)
    problems = [f"missing {k!r}" for k in want if k not in arrays]
    problems += [f"unexpected {k!r}" for k in arrays if k not in want]
    problems += [f"{k!r} must be {np.dtype(t)} with {n} dimension(s), got {arrays[k].dtype} {arrays[k].shape}"
                 for k, (t, n) in want.items() if k in arrays and (arrays[k].dtype != t or arrays[k].ndim != n)]
    if not problems:
        temporal, indptr = arrays["temporal"], arrays["indptr"]
        n_rows = len(temporal)
        if temporal.shape[1] != len(cols):
            problems.append(f"'temporal' has {temporal.shape[1]} columns, data.temporal_cols names {len(cols)}")
        if (len(indptr) != n_series + 1 or indptr[0] != 0 or indptr[-1] != n_rows or np.any(np.diff(indptr) < 1)):
            problems.append(f"'indptr' must rise from 0 to {n_rows} in {n_series} steps of at least 1, "
                            f"got {_short(indptr.tolist())}")
        if arrays["ds"].shape != (n_rows,):
            problems.append(f"'ds' must have shape ({n_rows},), got {arrays['ds'].shape}")
        if static_cols and arrays["static"].shape != (n_series, len(static_cols)):
            problems.append(f"'static' must have shape ({n_series}, {len(static_cols)}), got {arrays['static'].shape}")
    if problems:
        raise ValueError(f"Forecaster.load: {where} does not hold the data that {META} describes: "
                         + "; ".join(problems))
    ds = arrays["ds"].astype("datetime64[ns]") if ds_kind == "datetime" else arrays["ds"]
    return TimeSeriesDataset(arrays["temporal"], cols, arrays["indptr"], uids, ds, arrays.get("static"),
                             static_cols, data_freq, *names)


def config_from_json(config: dict, c: _Checker, where: str) -> dict:
    """The inverse of config_to_json: losses are looked up in ndiv.losses.LOSSES by name."""
    from ndiv.losses import LOSSES
    out = {}
    for k, v in config.items():
        if isinstance(v, dict) and "__loss__" in v:
            name = v["__loss__"]
            if not isinstance(name, str) or name not in LOSSES:
                c.fail(f"{where}.{k}.__loss__", f"is {_short(name)}, not one of ndiv.losses.LOSSES {sorted(LOSSES)}")
            sub = c.get(v, "config", f"{where}.{k}", dict, "an object")
            try:
                out[k] = LOSSES[name](**config_from_json(sub, c, f"{where}.{k}.config"))
            except (TypeError, ValueError) as e:
                c.fail(f"{where}.{k}.config", f"is rejected by {name}: {e}")
        else:
            out[k] = v
    return out


def _has_pandas() -> bool:
    try:
        import pandas  # noqa: F401
        return True
    except ImportError:
        return False

"""Hostile save folders: Forecaster.save is atomic, Forecaster.load trusts nothing it reads.

Each test copies one saved folder and damages it (truncated and edited files, edited JSON, path
traversal, symbolic links, a FIFO, a crafted pickle) and checks the error names the file.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

import ndiv
from ndiv import _saving
from ndiv.losses import MAE, DistributionLoss, MQLoss
from ndiv.models import MLP

ROOT = Path(__file__).resolve().parents[2]


def tiny_mlp(**kw):
    kw = {"h": 4, "input_size": 8, "hidden_size": 16, "num_layers": 1, "max_steps": 3, "enable_progress_bar": False,
          **kw}
    return MLP(**kw)


def two_series(n=40):
    t = np.arange(n)
    y = np.concatenate([100 + 10 * np.sin(t / 2), 50 + t * 0.5])
    return {"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": y}


@pytest.fixture(scope="module")
def fitted():
    return ndiv.Forecaster([tiny_mlp(loss=MQLoss(level=[80]))], freq=1, local_scaler_type="standard").fit(two_series())


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    path = tmp_path_factory.mktemp("saved") / "fc"
    fitted.save(str(path))
    return path


@pytest.fixture
def folder(saved, tmp_path):
    """A private copy of the saved folder, to damage."""
    return shutil.copytree(saved, tmp_path / "fc")


def snapshot(path):
    return {name: (path / name).read_bytes() for name in sorted(os.listdir(path))}


def edit_meta(folder, change):
    meta = json.loads((folder / "forecaster.json").read_text())
    change(meta)
    (folder / "forecaster.json").write_text(json.dumps(meta))


def as_arrays(table):
    return {k: np.asarray(table[k]) for k in table}


# -- atomic save ---------------------------------------------------------------------------------
def test_save_writes_plain_files_and_leaves_nothing_beside(fitted, tmp_path):
    fitted.save(str(tmp_path / "fc"))
    assert sorted(os.listdir(tmp_path)) == ["fc"]
    assert sorted(os.listdir(tmp_path / "fc")) == ["data.safetensors", "forecaster.json", "model_0.safetensors"]


class Boom(RuntimeError):
    pass


def failing_save(real_save, fail_on):
    def save(state_dict, path, metadata=None):
        if os.path.basename(path) == fail_on:
            with open(path, "wb") as f:
                f.write(b"half a fi")
            raise Boom(f"disk full while writing {path}")
        return real_save(state_dict, path, metadata)
    return save


@pytest.mark.parametrize("fail_on", ["model_0.safetensors", "data.safetensors"])
def test_a_failed_save_leaves_no_folder(fitted, tmp_path, monkeypatch, fail_on):
    monkeypatch.setattr(ndiv, "save", failing_save(ndiv.save, fail_on))
    with pytest.raises(Boom):
        fitted.save(str(tmp_path / "fc"))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "rename-aside"])
def test_a_failed_overwrite_keeps_the_old_folder(saved, tmp_path, monkeypatch, exchange):
    old = shutil.copytree(saved, tmp_path / "fc")
    before = snapshot(old)
    other = ndiv.Forecaster([tiny_mlp(max_steps=1, random_seed=7)], freq=1).fit(two_series(30))
    if not exchange:
        monkeypatch.setattr(_saving, "_exchange", lambda a, b: False)
    monkeypatch.setattr(ndiv, "save", failing_save(ndiv.save, "data.safetensors"))
    with pytest.raises(Boom):
        other.save(str(old), overwrite=True)
    assert snapshot(old) == before
    assert os.listdir(tmp_path) == ["fc"]
    monkeypatch.undo()
    if not exchange:
        monkeypatch.setattr(_saving, "_exchange", lambda a, b: False)
    other.save(str(old), overwrite=True)  # and without the failure, the new folder replaces it
    assert os.listdir(tmp_path) == ["fc"]
    loaded = ndiv.Forecaster.load(str(old))
    np.testing.assert_array_equal(as_arrays(loaded.predict())["MLP"], as_arrays(other.predict())["MLP"])


def test_overwrite_replaces_only_a_saved_folder(fitted, tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted.save(str(tmp_path))
    with pytest.raises(FileExistsError, match="not a folder written by Forecaster.save"):
        fitted.save(str(tmp_path), overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]
    with pytest.raises(FileExistsError, match="not a folder"):
        fitted.save(str(tmp_path / "notes.txt"), overwrite=True)
    (tmp_path / "empty").mkdir()
    fitted.save(str(tmp_path / "empty"))  # an empty folder is filled without overwrite=True
    assert "forecaster.json" in os.listdir(tmp_path / "empty")


def two_versions(tmp_path):
    data = two_series(30)
    fcs = [ndiv.Forecaster([tiny_mlp(max_steps=1, random_seed=s)], freq=1).fit(data) for s in (1, 2)]
    return fcs, [fc.models[0].state_dict() for fc in fcs]


def which(fc, weights) -> list:
    got = fc.models[0].state_dict()
    return [i for i, w in enumerate(weights) if all(np.array_equal(got[k], w[k]) for k in w)]


def test_a_folder_replaced_while_loading_is_read_again_not_mixed(tmp_path, monkeypatch):
    fcs, weights = two_versions(tmp_path)
    path = str(tmp_path / "fc")
    fcs[0].save(path)
    real_read = _saving._Folder.read
    replaced = []

    def read(self, name, key):  # forecaster.json of version 0 is read; then version 1 replaces it
        if name.endswith(".safetensors") and not replaced:
            replaced.append(name)
            fcs[1].save(path, overwrite=True)
        return real_read(self, name, key)

    monkeypatch.setattr(_saving._Folder, "read", read)
    assert which(ndiv.Forecaster.load(path), weights) == [1]
    assert replaced and os.listdir(tmp_path) == ["fc"]


def test_loads_during_overwrites_see_one_whole_folder(tmp_path):
    fcs, weights = two_versions(tmp_path)
    path = str(tmp_path / "fc")
    fcs[0].save(path)
    done, loaded, seen, errors = threading.Event(), threading.Event(), [], []

    def reader():
        while not done.is_set():
            try:
                seen.append(which(ndiv.Forecaster.load(path), weights))
            except Exception as e:  # recorded, then failed below with the exception's text
                errors.append(repr(e))
            loaded.set()

    t = threading.Thread(target=reader)
    t.start()
    try:
        for i in range(12):  # each save waits for a load to end, so loads and saves interleave
            loaded.clear()
            fcs[i % 2].save(path, overwrite=True)
            loaded.wait(timeout=60)
    finally:
        done.set()
        t.join()
    assert not errors, errors[:3]
    assert len(seen) >= 12 and all(len(m) == 1 for m in seen)
    assert os.listdir(tmp_path) == ["fc"]


# -- damaged files -------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["model_0.safetensors", "data.safetensors"])
@pytest.mark.parametrize("damage", ["truncate", "flip a byte", "empty"])
def test_edited_or_truncated_file_is_named(folder, name, damage):
    raw = (folder / name).read_bytes()
    raw = {"truncate": raw[: len(raw) // 2], "empty": b"",
           "flip a byte": raw[:-1] + bytes([raw[-1] ^ 1])}[damage]
    (folder / name).write_bytes(raw)
    with pytest.raises(ValueError, match=f"{name}.*(SHA-256|edited, truncated)"):
        ndiv.Forecaster.load(str(folder))


def test_truncated_file_with_a_matching_digest_is_named(folder):
    """Whoever edits the digest too still gets an error naming the file, not a crash."""
    raw = (folder / "model_0.safetensors").read_bytes()[:100]
    (folder / "model_0.safetensors").write_bytes(raw)
    edit_meta(folder, lambda m: m["models"][0].update(sha256=hashlib.sha256(raw).hexdigest()))
    with pytest.raises(ValueError, match="model_0.safetensors is not a valid safetensors file"):
        ndiv.Forecaster.load(str(folder))


def test_weights_of_another_shape_are_named(folder, fitted):
    other = tiny_mlp(hidden_size=8)
    ndiv.save(other.state_dict(), str(folder / "model_0.safetensors"))
    digest = hashlib.sha256((folder / "model_0.safetensors").read_bytes()).hexdigest()
    edit_meta(folder, lambda m: m["models"][0].update(sha256=digest))
    with pytest.raises(ValueError, match="model_0.safetensors.*expected shape"):
        ndiv.Forecaster.load(str(folder))


def test_data_arrays_that_disagree_with_the_json_are_named(folder):
    arrays = ndiv.load(str(folder / "data.safetensors"))
    arrays["indptr"] = arrays["indptr"][::-1].copy()
    ndiv.save(arrays, str(folder / "data.safetensors"))
    digest = hashlib.sha256((folder / "data.safetensors").read_bytes()).hexdigest()
    edit_meta(folder, lambda m: m["data"].update(sha256=digest))
    with pytest.raises(ValueError, match="data.safetensors does not hold the data.*'indptr'"):
        ndiv.Forecaster.load(str(folder))


EDITS = [  # (id, change to forecaster.json, the error it gives)
    ("format_version", lambda m: m.update(format_version=1), r"format_version is 1"),
    ("version as str", lambda m: m.update(format_version="2"), r"format_version must be an int"),
    ("no models", lambda m: m.pop("models"), r"models is missing"),
    ("models empty", lambda m: m.update(models=[]), r"models must be a non-empty list"),
    ("models not a list", lambda m: m.update(models={"a": 1}), r"models must be a non-empty list"),
    ("class unknown", lambda m: m["models"][0].update({"class": "os.system"}), r"models\[0\].class is 'os.system'"),
    ("class not str", lambda m: m["models"][0].update({"class": ["MLP"]}), r"models\[0\].class must be"),
    ("config rejected", lambda m: m["models"][0]["config"].update(hidden_sise=3), r"models\[0\].config is rejected"),
    ("config wrong type", lambda m: m["models"][0]["config"].update(h="four"), r"models\[0\].config is rejected"),
    ("loss unknown", lambda m: m["models"][0]["config"]["loss"].update(__loss__="__class__"),
     r"models\[0\].config.loss.__loss__ is '__class__'"),
    ("loss not str", lambda m: m["models"][0]["config"]["loss"].update(__loss__={"a": 1}),
     r"models\[0\].config.loss.__loss__ is \{'a': 1\}"),
    ("loss config rejected", lambda m: m["models"][0]["config"]["loss"]["config"].update(level="x"),
     r"models\[0\].config.loss.config is rejected by MQLoss"),
    ("weights not str", lambda m: m["models"][0].update(weights=3), r"models\[0\].weights must be a file name"),
    ("scaler unknown", lambda m: m.update(local_scaler_type="pickle"), r"local_scaler_type is 'pickle'"),
    ("scaler stats", lambda m: m["scalers"]["y"].update(stats=[[1.0, "x"]] * 2),
     r"scalers\['y'\] LocalScaler stats must be"),
    ("scaler series", lambda m: m["scalers"]["y"].update(stats=[[1.0, 2.0]]),
     r"scalers\['y'\] LocalScaler stats has 1 pairs for 2 series"),
    ("scaler column", lambda m: m["scalers"].update(z=m["scalers"]["y"]), r"scalers\['z'\] names no"),
    ("scalers dropped", lambda m: m.update(scalers={}), r"scalers do not match"),
    ("uids", lambda m: m["data"].update(uids=["a", 1]), r"data.uids must be"),
    ("uids unsorted", lambda m: m["data"].update(uids=["b", "a"]), r"data.uids must be sorted"),
    ("temporal cols", lambda m: m["data"].update(temporal_cols=["x"]), r"data.temporal_cols must start"),
    ("ds kind", lambda m: m["data"].update(ds_kind="pickle"), r"data.ds_kind must be"),
    ("data missing", lambda m: m.pop("data"), r"data is missing"),
    ("top level list", lambda m: (m.clear(), m.update(x=1)), r"format_version is missing"),
]


@pytest.mark.parametrize("change, error", [e[1:] for e in EDITS], ids=[e[0] for e in EDITS])
def test_edited_json_is_named_with_its_key(folder, change, error):
    edit_meta(folder, change)
    with pytest.raises(ValueError, match=r"forecaster.json: " + error):
        ndiv.Forecaster.load(str(folder))


@pytest.mark.parametrize("text", ['{"format_version": 2', "[1, 2]", "\xff\xfe", "[" * 100000 + "]" * 100000],
                         ids=["cut", "a list", "not utf-8", "deep"])
def test_json_that_does_not_parse_is_named(folder, text):
    (folder / "forecaster.json").write_bytes(text.encode("latin-1"))
    with pytest.raises(ValueError, match="forecaster.json"):
        ndiv.Forecaster.load(str(folder))


# -- names that leave the folder -----------------------------------------------------------------
@pytest.mark.parametrize("name", ["../outside.safetensors", "/etc/passwd", "sub/model_0.safetensors", "..", ".", "",
                                  "model_0.safetensors\x00.txt"])
def test_file_names_must_be_plain_names_in_the_folder(folder, name):
    shutil.copy(folder / "model_0.safetensors", folder.parent / "outside.safetensors")
    edit_meta(folder, lambda m: m["models"][0].update(weights=name))
    with pytest.raises(ValueError, match=r"models\[0\].weights must be the plain name of a file in the folder"):
        ndiv.Forecaster.load(str(folder))
    edit_meta(folder, lambda m: (m["models"][0].update(weights="model_0.safetensors"), m["data"].update(file=name)))
    with pytest.raises(ValueError, match=r"data.file must be the plain name of a file in the folder"):
        ndiv.Forecaster.load(str(folder))


@pytest.fixture(params=[True, False], ids=["dir-fd", "by-path"])
def by_fd(request, monkeypatch):
    """Both ways _Folder reads: through a handle on the folder (POSIX), by checked paths (Windows)."""
    monkeypatch.setattr(_saving._Folder, "_by_fd", request.param and _saving._Folder._by_fd)


@pytest.mark.parametrize("name", ["model_0.safetensors", "data.safetensors", "forecaster.json"])
def test_a_symbolic_link_out_of_the_folder_is_refused(folder, name, by_fd):
    outside = folder.parent / f"outside-{name}"
    shutil.move(folder / name, outside)  # the very same bytes, reached through a link
    os.symlink(outside, folder / name)
    with pytest.raises(ValueError, match=f"{name} is a symbolic link"):
        ndiv.Forecaster.load(str(folder))
    os.remove(folder / name)
    shutil.copy(outside, folder / name)  # the same bytes as a plain file: it loads
    ndiv.Forecaster.load(str(folder))


def test_a_missing_file_is_named(folder, by_fd):
    os.remove(folder / "model_0.safetensors")
    with pytest.raises(FileNotFoundError, match=r"model_0.safetensors \(named by models\[0\].weights"):
        ndiv.Forecaster.load(str(folder))
    with pytest.raises(FileNotFoundError, match="Forecaster.save"):
        ndiv.Forecaster.load(str(folder / "nothing"))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_without_blocking(folder):
    os.remove(folder / "model_0.safetensors")
    os.mkfifo(folder / "model_0.safetensors")
    # in another process: a load that opens the FIFO waits for a writer (never coming), GIL held
    code = "import sys, ndiv; ndiv.Forecaster.load(sys.argv[1])"
    try:
        done = subprocess.run([sys.executable, "-c", code, str(folder)], cwd=ROOT, capture_output=True, text=True,
                              timeout=120)
    except subprocess.TimeoutExpired:
        pytest.fail("Forecaster.load blocks on a FIFO")
    assert "ValueError" in done.stderr and "model_0.safetensors is not a regular file" in done.stderr, done.stderr


# -- a pickle never runs -------------------------------------------------------------------------
class _Marker:
    """Unpickling this creates the file `path` (it runs Path.touch): loading must never do it."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (Path.touch, (Path(self.path),))


@pytest.mark.parametrize("name", ["model_0.safetensors", "model_0.pkl", "weights.npz"])
def test_a_crafted_pickle_is_never_unpickled(folder, tmp_path, name):
    marker = tmp_path / "unpickled"
    if name.endswith(".npz"):
        np.savez(folder / name, w=np.array([_Marker(str(marker))], dtype=object))
    else:
        (folder / name).write_bytes(pickle.dumps({"w": _Marker(str(marker))}))
    raw = (folder / name).read_bytes()
    edit_meta(folder, lambda m: m["models"][0].update(weights=name, sha256=hashlib.sha256(raw).hexdigest()))
    with pytest.raises(ValueError, match=f"{name} is not a valid safetensors file"):
        ndiv.Forecaster.load(str(folder))
    assert not marker.exists()
    pickle.loads(raw) if not name.endswith(".npz") else np.load(folder / name, allow_pickle=True)["w"]
    assert marker.exists()  # the crafted file does run when unpickled: the check above means something


# -- what a loaded forecaster gives --------------------------------------------------------------
def test_predict_insample_after_load_is_in_the_data_units(fitted, saved):
    before = as_arrays(fitted.predict_insample())
    after = as_arrays(ndiv.Forecaster.load(str(saved)).predict_insample())
    assert list(before) == list(after)
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)
    assert before["y"].min() > 40  # the data's units (the series sit near 50 and 100), not scaled


@pytest.mark.parametrize("loss", [MAE(), MQLoss(level=[80, 90]), DistributionLoss("Normal", level=[80])], ids=str)
def test_losses_round_trip_by_registry_name(tmp_path, loss):
    fc = ndiv.Forecaster([tiny_mlp(max_steps=1, loss=loss)], freq=1).fit(two_series(30))
    fc.save(str(tmp_path / "fc"))
    meta = json.loads((tmp_path / "fc" / "forecaster.json").read_text())
    assert meta["models"][0]["config"]["loss"]["__loss__"] == type(loss).__name__
    loaded = ndiv.Forecaster.load(str(tmp_path / "fc"))
    assert type(loaded.models[0].loss) is type(loss)
    before, after = as_arrays(fc.predict()), as_arrays(loaded.predict())
    for k in before:
        np.testing.assert_array_equal(before[k], after[k], err_msg=k)


def test_a_loss_outside_the_registry_is_refused_at_save(tmp_path):
    class MyMAE(MAE):
        pass

    fc = ndiv.Forecaster([tiny_mlp(max_steps=1, loss=MyMAE())], freq=1).fit(two_series(30))
    with pytest.raises(ValueError, match=r"models\[0\].loss is a MyMAE, which is not one of ndiv.losses"):
        fc.save(str(tmp_path / "fc"))
    assert os.listdir(tmp_path) == []

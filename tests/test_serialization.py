"""ndiv.save / ndiv.load: safetensors files, interchangeable with PyTorch's, never unpickled."""
import os
import pickle

import numpy as np
import pytest

from ndiv.serialization import load, load_metadata, save


class StandInParam:  # .data/.grad, like ndiv.nn.Parameter
    def __init__(self, data):
        self.data, self.grad, self.requires_grad = data, None, True


def _param(arr):
    try:
        import ndiv
        return ndiv.tensor(arr, requires_grad=True, dtype=arr.dtype)
    except (ImportError, AttributeError):
        return StandInParam(arr)


def _state_dict():
    r = np.random.default_rng(0)
    return {
        "linear.weight": r.normal(size=(4, 3)).astype(np.float32),
        "linear.bias": r.normal(size=4).astype(np.float32),
        "f64": r.normal(size=(2, 2, 2)),
        "half": r.normal(size=5).astype(np.float16),
        "scalar": np.array(2.5),                               # 0-d stays 0-d
        "empty": np.zeros((0, 3), np.float32),
        "steps": np.array(7, np.int64),
        "mask": np.array([True, False, True]),
        "idx": np.arange(6, dtype=np.int32).reshape(2, 3),
        "u8": np.arange(4, dtype=np.uint8),
        "transposed": r.normal(size=(3, 5)).T,                  # not C-contiguous
        "strided": np.arange(20.0)[::3],
        "c64": (r.normal(size=3) + 1j * r.normal(size=3)).astype(np.complex64),
    }


def test_round_trip_keeps_values_shapes_and_dtypes(tmp_path):
    sd = _state_dict()
    path = tmp_path / "m.safetensors"
    save(sd, path)
    out = load(path)
    assert set(out) == set(sd)
    for k, v in sd.items():
        assert out[k].dtype == v.dtype and out[k].shape == v.shape, k
        np.testing.assert_array_equal(out[k], v, err_msg=k)
    assert os.listdir(tmp_path) == ["m.safetensors"]  # the temporary file is gone


def test_tensors_and_numpy_scalars_are_accepted(tmp_path):
    w = np.arange(6.0, dtype=np.float32).reshape(2, 3)
    save({"w": _param(w), "n": np.float64(3.0)}, str(tmp_path / "t.safetensors"))
    out = load(tmp_path / "t.safetensors", expected={"w": w, "n": ()})
    np.testing.assert_array_equal(out["w"], w)
    assert out["n"].shape == () and out["n"] == 3.0


def test_metadata_round_trip(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"a": np.zeros(2)}, path, metadata={"model": "NHITS", "config": '{"h": 12}'})
    assert load_metadata(path) == {"model": "NHITS", "config": '{"h": 12}'}
    save({"a": np.zeros(2)}, path)  # overwrites in place
    assert load_metadata(path) == {}


def test_file_written_by_ndiv_opens_in_torch(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import load_file

    sd = _state_dict()
    path = tmp_path / "m.safetensors"
    save(sd, path)
    out = load_file(str(path))
    for k, v in sd.items():
        np.testing.assert_array_equal(out[k].numpy(), v, err_msg=k)
        assert tuple(out[k].shape) == v.shape
    lin = torch.nn.Linear(3, 4)
    lin.load_state_dict({"weight": out["linear.weight"], "bias": out["linear.bias"]})


def test_file_written_by_torch_opens_in_ndiv(tmp_path):
    torch = pytest.importorskip("torch")
    from safetensors.torch import save_file

    torch.manual_seed(0)
    lstm = torch.nn.LSTM(3, 5, num_layers=2)
    sd = {k: v.detach().clone() for k, v in lstm.state_dict().items()}
    sd["bf16"] = torch.tensor([1.5, -2.25, 3.0e38, 1e-3], dtype=torch.bfloat16)
    sd["i64"] = torch.arange(5)
    sd["scalar"] = torch.tensor(1.25, dtype=torch.float16)
    path = tmp_path / "torch.safetensors"
    save_file(sd, str(path), metadata={"format": "pt"})
    out = load(path)
    for k, v in sd.items():
        expected = v.float().numpy() if v.dtype == torch.bfloat16 else v.numpy()
        assert out[k].dtype == expected.dtype and out[k].shape == expected.shape, k
        np.testing.assert_array_equal(out[k], expected, err_msg=k)
    assert out["bf16"].dtype == np.float32  # bfloat16 widens exactly to float32
    assert load_metadata(path) == {"format": "pt"}


def test_missing_file(tmp_path):
    path = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match=r"ndiv.load: no such file: .*nope\.safetensors"):
        load(path)
    with pytest.raises(ValueError, match="is a folder, expected a .safetensors file"):
        load(tmp_path)


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x10\x00\x00\x00\x00\x00\x00\x00{\"a\": 1}"],
                         ids=["empty", "garbage", "bad-header"])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(ValueError, match=r"ndiv.load: '.*bad\.safetensors' is not a valid safetensors file"):
        load(path)


def test_truncated_file(tmp_path):
    path = tmp_path / "cut.safetensors"
    save(_state_dict(), path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ValueError, match=r"cut\.safetensors' is not a valid safetensors file \(corrupt or truncated\?\)"):
        load(path)


class _Exploit:
    def __reduce__(self):
        return (open, (str(_Exploit.marker), "w"))


def test_loading_never_unpickles(tmp_path):
    """A pickle whose loading would create a file: load refuses it and nothing runs."""
    _Exploit.marker = tmp_path / "pwned"
    path = tmp_path / "model.pt"
    path.write_bytes(pickle.dumps({"w": _Exploit()}, protocol=2))
    with pytest.raises(ValueError, match="looks like a torch.save/pickle file, which ndiv never unpickles"):
        load(path)
    assert not _Exploit.marker.exists()


def test_torch_save_file_is_refused_with_a_hint(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "model.pt"
    torch.save({"w": torch.ones(2)}, str(path))
    with pytest.raises(ValueError, match=r"safetensors.torch.save_file\(model.state_dict\(\), path\)"):
        load(path)


@pytest.mark.parametrize("value,exc,match", [
    ([1.0, 2.0], TypeError, "the value of 'x' is a list; expected an array or a Tensor"),
    (3.0, TypeError, "the value of 'x' is a float"),
    (None, TypeError, "the value of 'x' is a NoneType"),
    (np.array(["a", "b"]), ValueError, "the value of 'x' has dtype <U1, which safetensors cannot store"),
    (np.array([object()]), ValueError, "has dtype object"),
    (np.zeros(2, np.complex256) if hasattr(np, "complex256") else np.zeros(2, np.float16).astype("V2"),
     ValueError, "which safetensors cannot store"),
])
def test_bad_values(tmp_path, value, exc, match):
    with pytest.raises(exc, match=match):
        save({"x": value}, tmp_path / "x.safetensors")
    assert not os.listdir(tmp_path)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="keys must be str, got 0"):
        save({0: np.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="state_dict must be a mapping"):
        save([np.zeros(2)], tmp_path / "x.safetensors")
    with pytest.raises(TypeError, match="metadata must map str to str"):
        save({"a": np.zeros(2)}, tmp_path / "x.safetensors", metadata={"h": 12})
    with pytest.raises(ValueError, match="'__metadata__' is reserved"):
        save({"__metadata__": np.zeros(2)}, tmp_path / "x.safetensors")
    with pytest.raises(FileNotFoundError, match="folder .*missing.* does not exist"):
        save({"a": np.zeros(2)}, tmp_path / "missing" / "x.safetensors")
    with pytest.raises(ValueError, match="is a folder; give a file path"):
        save({"a": np.zeros(2)}, tmp_path)


def test_expected_shapes_and_dtypes(tmp_path):
    path = tmp_path / "m.safetensors"
    save({"w": np.zeros((4, 3), np.float32), "b": np.zeros(4, np.float32)}, path)
    load(path, expected={"w": (4, 3), "b": np.ones(4, np.float32)})
    with pytest.raises(ValueError, match=r"'w': expected shape \(3, 4\), file has \(4, 3\)"):
        load(path, expected={"w": (3, 4), "b": (4,)})
    with pytest.raises(ValueError, match=r"'b': expected dtype float64, file has float32"):
        load(path, expected={"w": (4, 3), "b": _param(np.zeros(4))})
    with pytest.raises(ValueError, match=r"missing keys \['c'\]; unexpected keys \['b'\]"):
        load(path, expected={"w": (4, 3), "c": (4,)})

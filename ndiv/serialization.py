"""ndiv.save / ndiv.load: state dicts as safetensors files, never pickle.

A state dict (name -> array, e.g. `model.state_dict()`) is written in the safetensors format
(a JSON header of names, dtypes and shapes, then the raw little-endian bytes), the weight format
of the PyTorch/Hugging Face ecosystem: a file written by ndiv opens with
`safetensors.torch.load_file`, and a file written by `safetensors.torch.save_file` opens here.
Loading reads numbers only, so an untrusted file cannot run code.

complex64 is a safetensors dtype (C64; torch's safetensors reads and writes it). complex128 is
not: ndiv stores such an array as float64 with a trailing axis of 2 (real, imaginary) and lists
its name in the header's metadata under "__ndiv_complex128__", so ndiv.load restores it (other
readers see the float64 pairs, torch.view_as_complex's layout).

    ndiv.save(model.state_dict(), "nhits.safetensors", metadata={"model": "NHITS"})
    model.load_state_dict(ndiv.load("nhits.safetensors", expected=model.state_dict()))
"""
from __future__ import annotations

import json
import os
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from ndiv.device import is_cuda_array

__all__ = ["save", "load", "load_metadata"]

# The NumPy dtypes that safetensors stores (bfloat16 has no NumPy dtype: it loads as float32).
_SAVABLE = {np.dtype(t) for t in (np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32,
                                  np.uint32, np.int64, np.uint64, np.float16, np.float32,
                                  np.float64, np.complex64)}
_LOADABLE = {"BOOL", "I8", "U8", "I16", "U16", "I32", "U32", "I64", "U64", "F16", "F32", "F64", "C64"}
_COMPLEX128_KEY = "__ndiv_complex128__"  # metadata: JSON list of the names stored as float64 pairs


def _complex128_as_pairs(a: np.ndarray) -> np.ndarray:
    """complex128 [...] -> float64 [..., 2] (real, imaginary), C-contiguous."""
    out = np.empty(a.shape + (2,), np.float64)
    out[..., 0], out[..., 1] = a.real, a.imag
    return out


def _to_host_array(key: str, value) -> np.ndarray:
    """A C-contiguous NumPy array from an array, a Tensor (its .data) or a cupy array."""
    if not isinstance(value, np.ndarray) and hasattr(value, "data") and hasattr(value, "grad"):
        value = value.data  # an ndiv Tensor or Parameter
    if is_cuda_array(value):
        value = value.get()
    if isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(f"ndiv.save: the value of {key!r} is a {type(value).__name__}; expected an "
                        "array or a Tensor (numpy array, cupy array, ndiv.Tensor). Store "
                        "numbers as np.asarray(x) and options in metadata=")
    if value.dtype not in _SAVABLE and value.dtype != np.complex128:
        raise ValueError(f"ndiv.save: the value of {key!r} has dtype {value.dtype}, which safetensors "
                         f"cannot store; convert it to a numeric dtype such as float32. Storable "
                         f"dtypes: {', '.join(sorted(str(d) for d in _SAVABLE | {np.dtype(np.complex128)}))}")
    # not np.ascontiguousarray: it turns a 0-d array into shape (1,)
    return value if value.flags.c_contiguous else value.copy(order="C")


def save(state_dict: Mapping[str, Any], path: str | os.PathLike,
         metadata: Mapping[str, str] | None = None) -> None:
    """Write a state dict (name -> array or Tensor, any shape) to a safetensors file.

    Tensors contribute their `.data`; GPU (cupy) arrays are copied to the host. The file is
    written next to `path` and renamed into place, so a crash never leaves half a file.

    Args:
        state_dict: str -> numpy/cupy array or ndiv Tensor (bool, int8-64, uint8-64,
            float16/32/64, complex64, complex128).
        path: the file to write (its folder must exist), conventionally "*.safetensors".
        metadata: optional str -> str, stored in the header (e.g. a JSON config).

    Example:
        >>> ndiv.save({"w": np.ones((2, 3), np.float32)}, "w.safetensors")  # doctest: +SKIP
    """
    from safetensors.numpy import save_file

    path = os.fspath(path)
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"ndiv.save: state_dict must be a mapping of names to arrays, got "
                        f"{type(state_dict).__name__}")
    arrays, pairs = {}, []
    for key, value in state_dict.items():
        if not isinstance(key, str):
            raise TypeError(f"ndiv.save: keys must be str, got {key!r} ({type(key).__name__})")
        if key == "__metadata__":
            raise ValueError("ndiv.save: '__metadata__' is reserved by the safetensors format; "
                             "pass metadata= instead")
        arrays[key] = _to_host_array(key, value)
        if arrays[key].dtype == np.complex128:
            arrays[key] = _complex128_as_pairs(arrays[key])
            pairs.append(key)
    if metadata is not None:
        if not isinstance(metadata, Mapping) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
            raise TypeError("ndiv.save: metadata must map str to str (json.dumps other values), "
                            f"got {metadata!r}")
        if _COMPLEX128_KEY in metadata:
            raise ValueError(f"ndiv.save: metadata key {_COMPLEX128_KEY!r} is reserved by ndiv "
                             "(it lists the complex128 arrays); use another key")
        metadata = dict(metadata)
    if pairs:
        metadata = {**(metadata or {}), _COMPLEX128_KEY: json.dumps(pairs)}
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"ndiv.save: cannot write {path!r}: folder {folder!r} does not exist")
    if os.path.isdir(path):
        raise ValueError(f"ndiv.save: {path!r} is a folder; give a file path such as "
                         f"{os.path.join(path, 'model.safetensors')!r}")
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        save_file(arrays, tmp, metadata=metadata)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _check_file(path: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(f"ndiv.load: no such file: {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"ndiv.load: {path!r} is a folder, expected a .safetensors file")


def _not_safetensors(path: str, err: Exception) -> ValueError:
    with open(path, "rb") as f:
        head = f.read(2)
    hint = ""
    if head in (b"PK", b"\x80\x02", b"\x80\x04", b"\x80\x05"):  # a zip (torch.save) or a pickle
        hint = (" It looks like a torch.save/pickle file, which ndiv never unpickles; in PyTorch, "
                "re-save it with safetensors.torch.save_file(model.state_dict(), path).")
    return ValueError(f"ndiv.load: {path!r} is not a valid safetensors file (corrupt or "
                      f"truncated?): {err}.{hint}")


def _read_bfloat16(path: str, key: str) -> np.ndarray:
    """bfloat16 has no NumPy dtype: widen it to float32 (exact: bf16 is float32's top half)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        info = json.loads(f.read(n))[key]
        begin, end = info["data_offsets"]
        f.seek(8 + n + begin)
        raw = np.frombuffer(f.read(end - begin), dtype="<u2")
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(info["shape"])


def load(path: str | os.PathLike, expected: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Read a safetensors file into a dict name -> numpy array (bfloat16 widens to float32;
    complex128 arrays that ndiv.save stored as float64 pairs come back as complex128).

    Args:
        path: a file written by ndiv.save or by safetensors (e.g. safetensors.torch.save_file).
        expected: optional name -> array/Tensor (checks shape and dtype) or shape tuple
            (checks shape), e.g. `model.state_dict()`: the file must hold exactly these keys.
    Raises:
        FileNotFoundError if path does not exist; ValueError for a file that is not safetensors
        (corrupt, truncated, a pickle), a dtype NumPy cannot hold, or a mismatch with `expected`
        (naming each key with its expected and actual shape or dtype).

    Example:
        >>> weights = ndiv.load("w.safetensors", expected={"w": (2, 3)})  # doctest: +SKIP
    """
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    _check_file(path)
    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(path, framework="numpy") as f:
            for key in f.keys():
                info = f.get_slice(key)
                dtype = info.get_dtype()
                if dtype == "BF16":
                    out[key] = _read_bfloat16(path, key)
                elif dtype in _LOADABLE:
                    out[key] = f.get_tensor(key)
                else:
                    raise ValueError(f"ndiv.load: {path!r}: {key!r} has dtype {dtype}, which NumPy "
                                     "cannot hold; convert it to float32 before saving")
            pairs = (f.metadata() or {}).get(_COMPLEX128_KEY)
    except SafetensorError as e:
        raise _not_safetensors(path, e) from None
    for key in json.loads(pairs) if pairs else ():
        a = out.get(key)
        if a is None or a.dtype != np.float64 or a.shape[-1:] != (2,):
            raise ValueError(f"ndiv.load: {path!r}: the header lists {key!r} as complex128, but the "
                             "file holds no float64 [..., 2] array under that name (corrupt header?)")
        out[key] = a[..., 0] + 1j * a[..., 1]
    if expected is not None:
        _check_expected(out, expected, path)
    return out


def load_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The str -> str metadata stored in a safetensors file's header ({} if none)."""
    from safetensors import SafetensorError, safe_open

    path = os.fspath(path)
    _check_file(path)
    try:
        with safe_open(path, framework="numpy") as f:
            meta = dict(f.metadata() or {})
            meta.pop(_COMPLEX128_KEY, None)  # ndiv's own bookkeeping, not the user's metadata
            return meta
    except SafetensorError as e:
        raise _not_safetensors(path, e) from None


def _check_expected(loaded: dict[str, np.ndarray], expected: Mapping[str, Any], path: str) -> None:
    problems = []
    missing = [k for k in expected if k not in loaded]
    unexpected = [k for k in loaded if k not in expected]
    if missing:
        problems.append(f"missing keys {missing}")
    if unexpected:
        problems.append(f"unexpected keys {unexpected}")
    for key in expected:
        if key not in loaded:
            continue
        want, got = expected[key], loaded[key]
        if isinstance(want, (tuple, list)):
            want_shape, want_dtype = tuple(want), None
        else:
            arr = want.data if hasattr(want, "grad") and hasattr(want, "data") else want
            want_shape = tuple(arr.shape)
            try:
                want_dtype = np.dtype(arr.dtype)
            except TypeError:  # e.g. a torch dtype: check the shape only
                want_dtype = None
        if got.shape != want_shape:
            problems.append(f"{key!r}: expected shape {want_shape}, file has {got.shape}")
        elif want_dtype is not None and got.dtype != want_dtype:
            problems.append(f"{key!r}: expected dtype {want_dtype}, file has {got.dtype}")
    if problems:
        raise ValueError(f"ndiv.load: {path!r} does not match the expected state dict: "
                         + "; ".join(problems))

"""The device layer, checked without a GPU: CuPy stays unimported, asking for 'cuda' without CuPy or
a GPU is one clear error, mixing devices names both, dispatch picks ndiv.kernels.cuda for CuPy
arrays (a fake CuPy array type stands in), the CUDA twins keep the reference signatures, and every
CUDA source compiles (NVRTC through CuPy where it loads, else `nvcc -ptx`, else the test skips).
The kernels' results on a GPU are tests/kernels/test_cuda.py's.
"""
import inspect
import os
import shutil
import subprocess
import sys
import types
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import ndiv
from ndiv import device
from ndiv.autograd.ops import fused
from ndiv.kernels import cpu, cuda, reference
from ndiv.kernels.cuda._compile import full_source


class FakeCupyArray(np.ndarray):
    """An ndarray whose type claims to live in cupy: what array_module and kernels_for look at."""
    __module__ = "cupy"


def _fake_cuda(a):
    return np.asarray(a).view(FakeCupyArray)


class _FakeCupyModule(types.ModuleType):
    """Stands in for the cupy module: NumPy's functions (they keep FakeCupyArray's type)."""
    def __getattr__(self, name):
        return getattr(np, name)


@pytest.fixture
def fake_cupy(monkeypatch):
    """ndiv.device answers a stand-in module for CuPy arrays, without importing CuPy."""
    mod = _FakeCupyModule("cupy")
    monkeypatch.setattr(device, "_CUPY", mod)
    return mod


def test_import_ndiv_and_the_cuda_kernels_imports_no_cupy():
    code = ("import sys, ndiv, ndiv.kernels.cuda, ndiv.autograd.ops.fused; "
            "print('cupy' in sys.modules, 'cupyx' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


@pytest.mark.parametrize("why", ["no cupy", "no gpu"])
def test_cuda_without_cupy_or_gpu_is_one_clear_error(monkeypatch, why):
    monkeypatch.setattr(device, "_CUPY", None)
    if why == "no cupy":
        monkeypatch.setitem(sys.modules, "cupy", None)           # import cupy -> ImportError
    else:
        def no_driver():
            raise RuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")
        fake = types.ModuleType("cupy")
        fake.cuda = types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=no_driver))
        monkeypatch.setitem(sys.modules, "cupy", fake)
    match = r"device='cuda' needs CuPy and an NVIDIA GPU: install ndiv\[cuda12\] or ndiv\[cuda13\]"
    with pytest.raises(RuntimeError, match=match):
        ndiv.tensor([1.0], device="cuda")
    with pytest.raises(RuntimeError, match=match):
        ndiv.randn(2, 3).to("cuda")
    with pytest.raises(RuntimeError, match=match):
        ndiv.nn.Linear(2, 3).to("cuda")
    with pytest.raises(RuntimeError, match="cudaErrorNoDevice" if why == "no gpu" else "ModuleNotFoundError"):
        ndiv.zeros(2, device="cuda")


def test_unknown_device_names_the_value():
    with pytest.raises(ValueError, match=r"device must be 'cpu' or 'cuda', got 'tpu'"):
        ndiv.tensor([1.0], device="tpu")


def test_mixing_devices_names_both(fake_cupy):
    a, b = ndiv.randn(3), ndiv.randn(3)
    b.data = _fake_cuda(b.data)
    assert b.device == "cuda" and a.device == "cpu"
    with pytest.raises(RuntimeError, match="same device, got cpu and cuda"):
        a + b
    with pytest.raises(RuntimeError, match="cpu and cuda|cuda and cpu"):
        ndiv.cat([a, b])


def test_dispatch_picks_the_kernels_of_the_array(fake_cupy):
    x = np.zeros((2, 3), np.float32)
    assert device.array_module(x) is np and device.kernels_for(x) is cpu
    assert device.array_module(_fake_cuda(x)) is fake_cupy
    assert device.kernels_for(_fake_cuda(x)) is cuda


def test_fused_op_on_a_cuda_array_calls_the_cuda_kernel(fake_cupy, monkeypatch):
    """The autograd wiring asks kernels_for(x): a CuPy array reaches ndiv.kernels.cuda, both ways."""
    calls = []
    monkeypatch.setattr(cuda, "gelu_fwd", lambda x, approx: calls.append("fwd") or x * 2)
    monkeypatch.setattr(cuda, "gelu_bwd", lambda gy, x, approx: calls.append("bwd") or gy * 3)
    x = ndiv.tensor(np.ones(4, np.float32), requires_grad=True)
    x.data = _fake_cuda(x.data)
    y = fused.gelu(x)
    assert calls == ["fwd"] and type(y.data) is FakeCupyArray
    y.sum().backward()
    assert calls == ["fwd", "bwd"] and np.all(np.asarray(x.grad) == 3)


@pytest.mark.parametrize("name", reference.KERNELS)
def test_every_kernel_has_a_cuda_twin_with_the_reference_signature(name):
    want = list(inspect.signature(getattr(reference, name)).parameters)
    assert list(inspect.signature(getattr(cuda, name)).parameters) == want
    assert list(inspect.signature(getattr(cpu, name)).parameters) == want


def test_unsupported_dtype_and_head_dim_are_named():
    from ndiv.kernels.cuda._compile import dtype_name
    from ndiv.kernels.cuda.attention import _config
    with pytest.raises(TypeError, match="dtype int32 is not supported; use float32 or float64"):
        dtype_name(np.int32)
    with pytest.raises(ValueError, match="head dim D=300 is above the kernels' maximum of 256"):
        _config(300, np.float32)


# -- the CUDA sources compile ----------------------------------------------------------------
def _nvrtc():
    """CuPy's NVRTC binding if CuPy and an NVRTC library load (no GPU needed), else None."""
    try:
        from cupy_backends.cuda.libs import nvrtc
        nvrtc.getVersion()
        return nvrtc
    except Exception:  # CuPy missing, or its NVRTC library not found: try nvcc instead
        return None


def _subset(variants):
    """A compile takes seconds per attention variant: each dtype at DMAX 64, and DMAX 16 in float32
    (the other DMAX are the same text with other sizes). NDIV_CUDA_COMPILE_ALL=1 compiles them all."""
    if os.environ.get("NDIV_CUDA_COMPILE_ALL"):
        return variants
    return [(dt, d) for dt, d in variants if not d or d["DMAX"] == 64 or (d["DMAX"] == 16 and dt == "float32")]


@pytest.mark.parametrize("name", sorted(cuda.SOURCES))
def test_cuda_source_compiles(name, tmp_path):
    source, variants = cuda.SOURCES[name]
    variants = _subset(variants)
    nvrtc = _nvrtc()
    if nvrtc is not None:                           # the compiler CuPy itself runs at first use
        def compile_one(variant):
            dt, defs = variant
            prog = nvrtc.createProgram(full_source(source, dt, defs), f"{name}.cu", [], [])
            try:
                nvrtc.compileProgram(prog, ["--std=c++17", "-arch=compute_90"])
            except Exception as e:
                return f"NVRTC: {name} ({dt}, {defs}) does not compile: {e}\n{nvrtc.getProgramLog(prog)}"
            return None if nvrtc.getPTX(prog) else f"NVRTC: {name} ({dt}, {defs}) gave no PTX"
    else:
        nvcc = shutil.which("nvcc")
        if nvcc is None:
            pytest.skip("neither CuPy's NVRTC nor nvcc is available to compile the CUDA sources")

        def compile_one(variant):
            dt, defs = variant
            path = tmp_path / f"{name}-{dt}-{'-'.join(f'{k}{v}' for k, v in sorted(defs.items()))}.cu"
            path.write_text(full_source(source, dt, defs))
            res = subprocess.run([nvcc, "-ptx", "--std=c++17", "-arch=sm_90", "-o", os.devnull, str(path)],
                                 capture_output=True, text=True)
            return None if res.returncode == 0 else f"nvcc: {name} ({dt}, {defs}) does not compile:\n{res.stderr}"
    with ThreadPoolExecutor(max(1, min(8, os.cpu_count() or 1))) as pool:
        errors = [e for e in pool.map(compile_one, variants) if e]
    assert not errors, "\n\n".join(errors)

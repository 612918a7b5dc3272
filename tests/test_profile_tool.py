"""tools/profile_model.py: the parts of a training step add up to the step, the GEMMs it records
are the model's, and the instrumentation is undone afterwards. Tiny: MLP, 3 series of M4 Hourly."""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np
import pytest

import ndiv
import ndiv.kernels.cpu
from ndiv.autograd.ops import linalg, nn_ops

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def tool():
    spec = importlib.util.spec_from_file_location("profile_model", os.path.join(ROOT, "tools", "profile_model.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod          # dataclasses look their module up there
    spec.loader.exec_module(mod)
    if not os.path.exists(os.path.join(mod.DATA_DIR, "m4", "m4_hourly_train.csv.gz")):
        pytest.skip(f"M4 Hourly is not in {mod.DATA_DIR}")
    return mod


def test_parts_add_up_to_the_step(tool):
    originals = (linalg.MatMul.forward, nn_ops.Linear.backward, linalg._mm, ndiv.kernels.cpu.gelu_fwd)
    p = tool.profile("MLP", "m4_hourly", steps=3, n_series=3,
                     hparams=dict(hidden_size=8, num_layers=1, windows_batch_size=8))
    assert set(p.parts) == set(tool.PARTS)
    assert sum(p.parts.values()) == pytest.approx(p.step_instrumented, rel=1e-9)
    assert all(v >= 0 for k, v in p.parts.items() if k != "overhead")
    assert p.parts["overhead"] > 0 and p.parts["gemm"] > 0 and p.parts["sampling"] > 0 and p.parts["optimizer"] > 0
    assert p.parts["kernels"] == 0.0                     # an MLP calls no fused kernel
    # two Linear layers: 2 forward GEMMs, 2 weight gradients, 1 input gradient (the input needs none)
    assert p.n_gemms == 5
    shapes = sorted(s for _, s, _ in p.gemm_shapes)
    assert ((8, 8), (8, 48)) in shapes and ((8, 96), (96, 8)) in shapes   # [B, L] @ W1^T, [B, H] @ W2^T
    assert p.floor > 0 and p.step > 0 and np.isfinite(p.ratio)
    assert "op Linear.forward" in p.details and not any(k.startswith("kernel") for k in p.details)
    # the per-op details are the "numpy" part split by Function
    assert sum(v for k, v in p.details.items() if k.startswith("op ")) == pytest.approx(p.parts["numpy"], rel=1e-6)
    assert (linalg.MatMul.forward, nn_ops.Linear.backward, linalg._mm, ndiv.kernels.cpu.gelu_fwd) == originals
    assert "step = " in tool.format_profile(p)


def test_rewrite_times_every_gemm_form(tool):
    clock = tool._Clock()
    op, call = tool._gemm_hooks(clock)

    def f(a, b):
        xp = np
        return a @ b + xp.matmul(a, b) + np.einsum("ij,jk->ik", a, b) + np.einsum("ij,ij->i", a, b.T)[:, None]

    g = tool._rewrite(f)
    a, b = np.ones((3, 4), np.float32), np.ones((4, 3), np.float32)
    g.__globals__[tool.HOOK_OP], g.__globals__[tool.HOOK_CALL] = op, call
    try:
        clock.on = clock.recording = True
        np.testing.assert_array_equal(g(a, b), f(a, b))
    finally:
        del g.__globals__[tool.HOOK_OP], g.__globals__[tool.HOOK_CALL]
    assert sorted(name for name, _, _ in clock.gemms) == ["einsum", "matmul", "op"]   # the batched dot is no GEMM
    assert clock.excl["gemm"] > 0
    assert tool._einsum_is_gemm("blhe,bshe->bhls", 2) and not tool._einsum_is_gemm("bhqd,bhqd->bhq", 2)

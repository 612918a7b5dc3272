"""Gradient inspection: grad_norms, GradOutputRecorder and the examples/gradient_norms.py script."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

import ndiv
import ndiv.nn as nn
from ndiv.nn.utils import GradOutputRecorder, grad_norms, total_grad_norm

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "gradient_norms.py"


def _model_and_backward():
    ndiv.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    x = ndiv.randn(5, 3)
    (m(x) ** 2).sum().backward()
    return m


def test_grad_norms_per_parameter_and_per_module():
    m = _model_and_backward()
    per_param = grad_norms(m)
    assert list(per_param) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert per_param["2.bias"] == pytest.approx(np.linalg.norm(m[2].bias.grad))
    per_mod = grad_norms(m, by="module")
    assert list(per_mod) == ["0", "2"]
    assert per_mod["0"] == pytest.approx(np.hypot(per_param["0.weight"], per_param["0.bias"]))
    assert grad_norms(m, norm_type=float("inf"))["0.weight"] == pytest.approx(np.abs(m[0].weight.grad).max())
    assert total_grad_norm(m) == pytest.approx(np.sqrt(sum(v**2 for v in per_param.values())))
    m.zero_grad()
    assert grad_norms(m) == {}
    with pytest.raises(ValueError, match="by must be 'parameter' or 'module'"):
        grad_norms(m, by="layer")


def test_grad_output_recorder_sees_each_backward_and_detaches():
    ndiv.manual_seed(0)
    m = nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2))
    rec = GradOutputRecorder(m, types=(nn.Linear,))
    x = ndiv.randn(5, 3)
    out = m(x)
    out.sum().backward()
    # d(sum)/d(out) is all ones: its norm is sqrt(numel)
    assert rec.norms["2"] == [pytest.approx(np.sqrt(10))]
    assert len(rec.norms["0"]) == 1 and rec.norms["0"][0] > 0
    rec.remove()
    m(x).sum().backward()
    assert len(rec.norms["2"]) == 1 and not m[0]._has_hooks


def test_example_trains_and_reports_gradient_norms():
    spec = importlib.util.spec_from_file_location("gradient_norms_example", EXAMPLE)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    hist = mod.main(steps=120, every=40, verbose=False)
    assert hist["step"] == [1, 40, 80, 120]
    assert hist["loss"][-1] < 0.2 * hist["loss"][0]
    assert all(list(n) == ["0", "2", "4"] for n in hist["param_grad"])
    assert all(np.isfinite(v) and v > 0 for n in hist["param_grad"] + hist["output_grad"] for v in n.values())
    assert hist["param_grad"][-1]["4"] < hist["param_grad"][0]["4"]  # gradients shrink as the fit improves
    assert hist["mae"] < hist["naive_mae"]

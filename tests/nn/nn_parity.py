"""Helpers to run the same layer in torch and ndiv and compare outputs and every gradient.

A Case names a layer or functional call once, for both libraries: `build(nn)` receives torch.nn
or ndiv.nn (their constructors take the same arguments), `fwd(F, module, *inputs)` receives
torch.nn.functional or ndiv.nn.functional. Inputs are numpy arrays: floating ones require grad,
bool/int ones (masks, indices) do not.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import numpy as np

import ndiv
import ndiv.nn as nnd
import ndiv.nn.functional as Fd

TOL = {"float64": dict(rtol=1e-8, atol=1e-10), "float32": dict(rtol=1e-5, atol=1e-5)}


def _call(F, m, *xs):
    return m(*xs)


@dataclasses.dataclass
class Case:
    name: str
    build: Callable | None           # nn -> module (or None for a functional case)
    inputs: Callable                 # rng -> list of numpy arrays
    fwd: Callable = _call            # (F, module, *inputs) -> Tensor or nested tuple of them
    train: bool = False

    def __str__(self):
        return self.name


def _flatten(out):
    if out is None:
        return []
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in _flatten(o)]
    return [out]


def _torch_in(torch, a):
    t = torch.from_numpy(np.array(a, copy=True))
    if t.is_floating_point():
        t.requires_grad_(True)
    return t


def _ndiv_in(a):
    return ndiv.tensor(np.array(a, copy=True), requires_grad=np.asarray(a).dtype.kind == "f")


def copy_torch_state(tmod, nmod):
    """Load a torch module's state_dict into the ndiv module (strict: the names must agree)."""
    nmod.load_state_dict({k: v.detach().cpu().numpy() for k, v in tmod.state_dict().items()})


def run_case(case: Case, dtype: str, seed: int = 0):
    """Run case in both libraries; assert outputs, input gradients and parameter gradients agree."""
    import torch

    rng = np.random.default_rng(seed)
    tdtype = getattr(torch, dtype)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in case.inputs(rng)]
    tmod = nmod = None
    if case.build is not None:
        torch.manual_seed(seed)
        tmod = case.build(torch.nn).to(tdtype)
        nmod = case.build(nnd).to(dtype=dtype)
        assert list(nmod.state_dict()) == list(tmod.state_dict()), f"{case}: state_dict keys or order differ from torch"
        copy_torch_state(tmod, nmod)
        tmod.train(case.train)
        nmod.train(case.train)
    t_in = [_torch_in(torch, a) for a in arrays]
    n_in = [_ndiv_in(a) for a in arrays]
    t_out = _flatten(case.fwd(torch.nn.functional, tmod, *t_in))
    n_out = _flatten(case.fwd(Fd, nmod, *n_in))
    assert len(t_out) == len(n_out), f"{case}: {len(t_out)} torch outputs, {len(n_out)} ndiv outputs"
    tol = TOL[dtype]
    for i, (t, n) in enumerate(zip(t_out, n_out)):
        assert n.dtype == np.dtype(dtype), f"{case}: output {i} has dtype {n.dtype}, expected {dtype}"
        assert_close(n.numpy(), t.detach().numpy(), f"{case}: output {i}", **tol)
    # a random projection of every output, so each gradient element is exercised
    t_loss = n_loss = 0
    for t, n in zip(t_out, n_out):
        if not t.requires_grad:
            continue
        w = rng.standard_normal(t.shape).astype(dtype)
        t_loss = t_loss + (t * torch.from_numpy(w)).sum()
        n_loss = n_loss + (n * w).sum()
    if isinstance(t_loss, int):
        return
    t_loss.backward()
    n_loss.backward()
    for i, (t, n) in enumerate(zip(t_in, n_in)):
        if t.grad is not None:
            assert n.grad is not None, f"{case}: input {i} got no gradient in ndiv"
            assert_close(n.grad, t.grad.numpy(), f"{case}: grad of input {i}", **tol)
    if tmod is not None:
        n_params = dict(nmod.named_parameters())
        t_params = dict(tmod.named_parameters())
        assert sorted(n_params) == sorted(t_params), f"{case}: parameter names differ"
        for name, tp in t_params.items():
            g = n_params[name].grad
            if tp.grad is None:
                assert g is None or not np.any(g), f"{case}: {name} has a gradient in ndiv only"
                continue
            assert g is not None, f"{case}: {name} got no gradient in ndiv"
            assert_close(g, tp.grad.numpy(), f"{case}: grad of {name}", **tol)
    return tmod, nmod


def assert_close(actual, expected, what: str, rtol: float, atol: float):
    actual = np.asarray(actual)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != torch's {expected.shape}"
    scale = max(1.0, float(np.nanmax(np.abs(expected)))) if expected.size else 1.0
    np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol * scale, err_msg=what)

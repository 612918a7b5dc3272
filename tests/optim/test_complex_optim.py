"""Optimizers on complex parameters, step for step torch.optim (20 steps, complex128).

torch updates a complex parameter on its real view (torch.view_as_real), so the adaptive
optimizers keep one second moment per real and per imaginary part. Each step feeds both
libraries the same gradient, a fixed function of the current parameters, so the comparison
isolates the optimizer.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv import optim

torch = pytest.importorskip("torch")

CASES = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.1, weight_decay=0.01)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.9), weight_decay=0.1, maximize=True)),
    ("Adam", dict(lr=0.01, amsgrad=True, weight_decay=0.05)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, amsgrad=True, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, momentum=0.9, centered=True, weight_decay=0.01)),
    ("Adagrad", dict(lr=0.1, initial_accumulator_value=0.1, lr_decay=0.01, weight_decay=0.01)),
]


def _grad_of(p: np.ndarray, k: int) -> np.ndarray:
    """A gradient that depends on p and on the step (nonlinear, different per part)."""
    return 2 * (p - (0.5 - 0.3j)) + 0.3 * p * p + 0.1 * np.sin(k + np.arange(p.size)).reshape(p.shape) * 1j


def _run(name, kwargs, shapes, dtype=np.complex128, real_too=False, steps=20):
    rng = np.random.default_rng(0)
    inits = [np.asarray(rng.standard_normal(s) + 1j * rng.standard_normal(s), dtype) for s in shapes]
    if real_too:
        inits.append(rng.standard_normal((3,)).astype(np.float64 if dtype == np.complex128 else np.float32))
    ps = [ndiv.tensor(a.copy(), requires_grad=True) for a in inits]
    ts = [torch.tensor(a.copy(), requires_grad=True) for a in inits]
    opt = getattr(optim, name)(ps, **kwargs)
    topt = getattr(torch.optim, name)(ts, **kwargs)
    for k in range(steps):
        for p, t in zip(ps, ts):
            g = _grad_of(p.data, k)
            g = g.real.astype(p.dtype) if p.dtype.kind == "f" else g.astype(p.dtype)
            p.grad, t.grad = g, torch.tensor(g.copy())
        opt.step()
        topt.step()
    return ps, ts, opt, topt


@pytest.mark.parametrize("name, kwargs", CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CASES)])
def test_matches_torch_on_complex_params(name, kwargs):
    # one complex param alone (the per-parameter loop), two (Adam's flat group path), a mix
    for shapes, real_too in (([(3, 4)], False), ([(3, 4), (5,), ()], False), ([(2, 3)], True)):
        ps, ts, opt, topt = _run(name, kwargs, shapes, real_too=real_too)
        for p, t in zip(ps, ts):
            assert p.dtype == np.dtype(str(t.dtype).replace("torch.", ""))
            np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-10, atol=1e-12)
        tstate = topt.state_dict()["state"]
        for i, st in opt.state_dict()["state"].items():
            for key, v in st.items():
                if isinstance(v, np.ndarray):   # the moments are complex of p's shape, as torch's
                    np.testing.assert_allclose(v, tstate[i][key].numpy(), rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", ["Adam", "RMSprop"])
def test_second_moment_is_per_real_part(name):
    """After one step from a zero state, v = (1 - beta) * (g_re^2 + i g_im^2), not (1 - beta) g^2."""
    p = ndiv.tensor(np.array([1 + 1j, 2 - 1j]), requires_grad=True)
    p.grad = np.array([3 + 4j, -1 + 2j])
    opt = getattr(optim, name)([p], lr=0.1)
    opt.step()
    key, beta = ("exp_avg_sq", 0.999) if name == "Adam" else ("square_avg", 0.99)
    v = opt.state[p][key]
    np.testing.assert_allclose(v, (1 - beta) * np.array([9 + 16j, 1 + 4j]))


def test_complex64_params_stay_complex64():
    ps, ts, _, _ = _run("Adam", dict(lr=0.01), [(3, 4), (2,)], dtype=np.complex64, steps=3)
    for p, t in zip(ps, ts):
        assert p.dtype == np.complex64
        np.testing.assert_allclose(p.data, t.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_keeps_complex_state():
    ps, _, opt, topt = _run("Adam", dict(lr=0.01, amsgrad=True), [(3, 4)], steps=3)
    q = ndiv.tensor(ps[0].data.copy(), requires_grad=True)
    opt2 = optim.Adam([q], lr=0.01, amsgrad=True)
    opt2.load_state_dict(topt.state_dict())            # torch's own complex state loads as is
    for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
        assert opt2.state[q][key].dtype == np.complex128
        np.testing.assert_allclose(opt2.state[q][key], opt.state[ps[0]][key])
    r = ndiv.tensor(np.zeros(12), requires_grad=True)
    with pytest.raises(ValueError, match=r"state\[0\]\['exp_avg'\] is complex \(complex128\), but parameter 0 is real"):
        optim.Adam([r]).load_state_dict({**opt.state_dict(), "state": {0: {
            k: (v.reshape(12) if isinstance(v, np.ndarray) else v) for k, v in opt.state_dict()["state"][0].items()}}})


@pytest.mark.parametrize("norm_type", [2.0, 1.0, 3.0, float("inf")])
def test_clip_grad_norm_uses_modulus(norm_type):
    rng = np.random.default_rng(1)
    gs = [rng.standard_normal((3, 4)) + 1j * rng.standard_normal((3, 4)), rng.standard_normal(5)]
    ps = [ndiv.tensor(np.zeros_like(g), requires_grad=True) for g in gs]
    ts = [torch.zeros(g.shape, dtype=torch.from_numpy(g).dtype, requires_grad=True) for g in gs]
    for p, t, g in zip(ps, ts, gs):
        p.grad, t.grad = g.copy(), torch.tensor(g)
    total = optim.clip_grad_norm_(ps, 0.5, norm_type=norm_type)
    ttotal = torch.nn.utils.clip_grad_norm_(ts, 0.5, norm_type=norm_type)
    assert total == pytest.approx(float(ttotal), rel=1e-12)
    for p, t in zip(ps, ts):
        np.testing.assert_allclose(p.grad, t.grad.numpy(), rtol=1e-12)


def test_clip_grad_value_refuses_complex():
    p = ndiv.tensor(np.zeros(2, np.complex64), requires_grad=True)
    p.grad = np.array([1 + 1j, 2j], np.complex64)
    with pytest.raises(TypeError, match="clip_grad_value_: a gradient is complex"):
        optim.clip_grad_value_([p], 0.5)

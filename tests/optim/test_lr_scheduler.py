"""ndiv.optim.lr_scheduler: the same lr sequence as torch's schedulers, step for step."""
import json
import math

import numpy as np
import pytest

from ndiv import optim
from ndiv.optim import lr_scheduler as ls

N_STEPS = 30
LRS = (0.1, 0.03)  # two param groups with their own lr


def _lambda(epoch):
    return 0.9 ** epoch + 0.01 * (epoch % 3)


# (scheduler name, optimizer name, kwargs): kwargs are the same for ndiv and torch
GRID = [
    ("StepLR", "SGD", dict(step_size=7)),
    ("StepLR", "SGD", dict(step_size=3, gamma=0.5)),
    ("MultiStepLR", "SGD", dict(milestones=[4, 11, 11, 25], gamma=0.3)),
    ("ExponentialLR", "SGD", dict(gamma=0.93)),
    ("CosineAnnealingLR", "SGD", dict(T_max=10)),          # 30 steps: down, up, down again
    ("CosineAnnealingLR", "SGD", dict(T_max=12, eta_min=0.001)),
    ("LambdaLR", "SGD", dict(lr_lambda=_lambda)),
    ("LambdaLR", "SGD", dict(lr_lambda=[_lambda, lambda e: 1 / (1 + e)])),
    ("OneCycleLR", "SGD", dict(max_lr=1.0, total_steps=N_STEPS)),
    ("OneCycleLR", "SGD", dict(max_lr=[1.0, 0.5], total_steps=N_STEPS, anneal_strategy="linear")),
    ("OneCycleLR", "Adam", dict(max_lr=0.01, epochs=3, steps_per_epoch=10, three_phase=True, pct_start=0.25)),
    ("OneCycleLR", "Adam", dict(max_lr=0.01, total_steps=N_STEPS, three_phase=True, anneal_strategy="linear",
                                cycle_momentum=False, div_factor=10.0, final_div_factor=100.0)),
    ("OneCycleLR", "RMSprop", dict(max_lr=0.02, total_steps=N_STEPS + 5, base_momentum=[0.8, 0.7],
                                   max_momentum=0.9, pct_start=0.4)),
]


def _optimizer(module, name, params):
    groups = [{"params": params[:1], "lr": LRS[0]}, {"params": params[1:], "lr": LRS[1]}]
    extra = {"momentum": 0.9} if name in ("SGD", "RMSprop") else {}
    return getattr(module, name)(groups, lr=LRS[0], **extra)


def _record(opt, sched, metrics=None):
    """lr (and momentum/beta1) of every group after construction and after each step."""
    def snap():
        mom = [g.get("momentum", g.get("betas", (None,))[0]) for g in opt.param_groups]
        return [float(lr) for lr in sched.get_last_lr()] + [float(m) for m in mom]

    out = [snap()]
    for t in range(N_STEPS):
        opt.step()
        sched.step() if metrics is None else sched.step(metrics[t])
        out.append(snap())
    return np.array(out)


@pytest.fixture
def new_params(make_param):
    """Two fresh parameters (one per param group)."""
    return lambda: [make_param(np.zeros(2)), make_param(np.zeros(3))]


@pytest.mark.parametrize("sched,opt_name,kwargs", GRID, ids=[f"{s}-{o}-{k}" for s, o, k in GRID])
def test_lr_sequence_matches_torch(sched, opt_name, kwargs, new_params):
    torch = pytest.importorskip("torch")
    opt = _optimizer(optim, opt_name, new_params())
    ours = _record(opt, getattr(ls, sched)(opt, **kwargs))
    topt = _optimizer(torch.optim, opt_name, [torch.zeros(2, requires_grad=True),
                                               torch.zeros(3, requires_grad=True)])
    theirs = _record(topt, getattr(torch.optim.lr_scheduler, sched)(topt, **kwargs))
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)


PLATEAU = [
    dict(),
    dict(mode="max", factor=0.5, patience=2),
    dict(patience=1, threshold=0.05, threshold_mode="abs", cooldown=2),
    dict(mode="max", patience=0, threshold=0.1, cooldown=1, min_lr=[0.01, 0.02]),
    dict(patience=2, factor=0.5, min_lr=0.029, eps=1e-3),
]


@pytest.mark.parametrize("kwargs", PLATEAU, ids=str)
def test_reduce_on_plateau_matches_torch(kwargs, new_params):
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    # a metric that improves, stalls, improves a little (below some thresholds), then worsens
    metrics = np.concatenate([np.linspace(1, 0.5, 6), np.full(6, 0.5), 0.5 - 0.01 * np.arange(8),
                              0.4 + 0.02 * r.random(10)])
    kw = dict(kwargs, patience=kwargs.get("patience", 3))
    opt = _optimizer(optim, "SGD", new_params())
    ours = _record(opt, ls.ReduceLROnPlateau(opt, **kw), metrics)
    topt = _optimizer(torch.optim, "SGD", [torch.zeros(2, requires_grad=True), torch.zeros(3, requires_grad=True)])
    theirs = _record(topt, torch.optim.lr_scheduler.ReduceLROnPlateau(topt, **kw), metrics)
    np.testing.assert_allclose(ours, theirs, rtol=1e-14, atol=0)
    assert ours[-1, 0] < LRS[0]  # the grid reduces at least once


def test_cosine_by_hand(new_params):
    opt = optim.SGD(new_params(), lr=1.0)
    sched = ls.CosineAnnealingLR(opt, T_max=4)
    lrs = [sched.get_last_lr()[0]]
    for _ in range(4):
        sched.step()
        lrs.append(sched.get_last_lr()[0])
    np.testing.assert_allclose(lrs, [(1 + math.cos(math.pi * t / 4)) / 2 for t in range(5)], atol=1e-15)


@pytest.mark.parametrize("sched,opt_name,kwargs", [GRID[2], GRID[5], GRID[8], GRID[10]])
def test_state_dict_round_trip_through_json(sched, opt_name, kwargs, new_params):
    """Stop after 12 steps, save optimizer and scheduler state as JSON, resume: same sequence."""
    opt = _optimizer(optim, opt_name, new_params())
    full = _record(opt, getattr(ls, sched)(opt, **kwargs))

    opt = _optimizer(optim, opt_name, new_params())
    s = getattr(ls, sched)(opt, **kwargs)
    for _ in range(12):
        s.step()
    text = json.dumps({"opt": opt.state_dict()["param_groups"], "sched": s.state_dict()})

    saved = json.loads(text)
    opt2 = _optimizer(optim, opt_name, new_params())
    opt2.load_state_dict({"state": {}, "param_groups": saved["opt"]})
    s2 = getattr(ls, sched)(opt2, **kwargs, last_epoch=11)
    s2.load_state_dict(saved["sched"])
    assert s2.last_epoch == 12 and s2.get_last_lr() == s.get_last_lr()
    rest = []
    for _ in range(12, N_STEPS):
        s2.step()
        rest.append(s2.get_last_lr())
    np.testing.assert_allclose(np.array(rest), full[13:, :2], rtol=1e-14)


def test_lambda_state_dict_leaves_functions_out(new_params):
    opt = optim.SGD(new_params(), lr=0.1)
    sd = ls.LambdaLR(opt, _lambda).state_dict()
    assert "lr_lambdas" not in sd and "optimizer" not in sd
    json.dumps(sd)


def test_scheduler_errors(new_params):
    opt = optim.SGD(new_params(), lr=0.1)
    with pytest.raises(TypeError, match="is not an Optimizer"):
        ls.StepLR(object(), step_size=2)
    with pytest.raises(ValueError, match="step_size must be a positive int"):
        ls.StepLR(opt, step_size=0)
    with pytest.raises(ValueError, match="Expected 1 lr_lambdas, but got 2"):
        ls.LambdaLR(opt, [_lambda, _lambda])
    with pytest.raises(KeyError, match="initial_lr"):
        ls.ExponentialLR(optim.SGD(new_params(), lr=0.1), gamma=0.9, last_epoch=3)
    with pytest.raises(ValueError, match="either total_steps OR"):
        ls.OneCycleLR(opt, max_lr=0.1)
    with pytest.raises(ValueError, match="anneal_strategy must be one of"):
        ls.OneCycleLR(opt, max_lr=0.1, total_steps=10, anneal_strategy="exp")
    with pytest.raises(ValueError, match="max_lr must have the same length as optimizer.param_groups"):
        ls.OneCycleLR(opt, max_lr=[0.1, 0.2], total_steps=10)
    with pytest.raises(ValueError, match="momentum or beta1"):
        ls.OneCycleLR(optim.Adagrad(new_params()), max_lr=0.1, total_steps=10)
    sched = ls.OneCycleLR(opt, max_lr=0.1, total_steps=2)
    sched.step()
    sched.step()
    with pytest.raises(ValueError, match="Tried to step 3 times. The specified number of total steps is 2"):
        sched.step()
    with pytest.raises(ValueError, match="Factor should be < 1.0"):
        ls.ReduceLROnPlateau(opt, factor=1.5)
    with pytest.raises(ValueError, match="mode 'best' is unknown"):
        ls.ReduceLROnPlateau(opt, mode="best")
    with pytest.raises(ValueError, match="threshold mode 'pct' is unknown"):
        ls.ReduceLROnPlateau(opt, threshold_mode="pct")
    with pytest.raises(ValueError, match="expected 1 min_lrs, got 2"):
        ls.ReduceLROnPlateau(opt, min_lr=[0.1, 0.2])

"""ndiv.optim optimizers: step-for-step parity with torch.optim, param groups, state dicts, errors."""
import json

import numpy as np
import pytest

from ndiv import optim

SHAPES = [(3, 4), (5,), ()]  # a matrix, a vector and a 0-d parameter
N_STEPS = 20

# (optimizer name, options): one row per behaviour each option switches on
GRID = [
    ("SGD", dict(lr=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.9)),
    ("SGD", dict(lr=0.05, momentum=0.9, dampening=0.5)),
    ("SGD", dict(lr=0.05, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.05, momentum=0.8, weight_decay=0.1)),
    ("SGD", dict(lr=0.05, momentum=0.5, weight_decay=0.01, maximize=True)),
    ("Adam", dict(lr=0.01)),
    ("Adam", dict(lr=0.01, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.02, betas=(0.5, 0.9), eps=1e-6, amsgrad=True, weight_decay=0.05)),
    ("Adam", dict(lr=0.01, betas=(0.3, 0.4), maximize=True)),
    ("AdamW", dict(lr=0.01)),
    ("AdamW", dict(lr=0.01, weight_decay=0.1, amsgrad=True)),
    ("AdamW", dict(lr=0.01, betas=(0.8, 0.99), maximize=True)),
    ("RMSprop", dict(lr=0.01)),
    ("RMSprop", dict(lr=0.01, centered=True)),
    ("RMSprop", dict(lr=0.01, momentum=0.9)),
    ("RMSprop", dict(lr=0.01, alpha=0.9, centered=True, momentum=0.5, weight_decay=0.1)),
    ("RMSprop", dict(lr=0.01, alpha=0.5, eps=1e-4, maximize=True)),
    ("Adagrad", dict(lr=0.1)),
    ("Adagrad", dict(lr=0.1, lr_decay=0.1)),
    ("Adagrad", dict(lr=0.1, weight_decay=0.1, initial_accumulator_value=0.5)),
    ("Adagrad", dict(lr=0.1, eps=1e-5, maximize=True)),
]


def _problem(seed=0):
    """Initial weights, targets, curvatures and per-step noise for g = s * (w - c) + noise."""
    r = np.random.default_rng(seed)
    w0 = [r.normal(size=s) for s in SHAPES]
    c = [r.normal(size=s) for s in SHAPES]
    s = [r.uniform(0.5, 2.0, size=s) for s in SHAPES]
    noise = [[0.1 * r.normal(size=sh) for sh in SHAPES] for _ in range(N_STEPS)]
    return w0, c, s, noise


def _gradient(w, c, s, noise, t, i):
    # parameter 1 gets no gradient at steps 5 and 6: optimizers must skip it, state untouched
    if i == 1 and t in (5, 6):
        return None
    return np.asarray(s * (w - c) + noise)


def _groups(params, opts):
    """Two param groups, the second with half the lr: per-group options must be honoured."""
    return [{"params": params[:2]}, {"params": params[2:], "lr": opts["lr"] / 2}]


def _run_ndiv(name, opts, make_param):
    w0, c, s, noise = _problem()
    params = [make_param(w.copy()) for w in w0]
    data_ids = [id(p.data) for p in params]
    opt = getattr(optim, name)(_groups(params, opts), **opts)
    for t in range(N_STEPS):
        for i, p in enumerate(params):
            p.grad = _gradient(p.data, c[i], s[i], noise[t][i], t, i)
        opt.step()
    assert [id(p.data) for p in params] == data_ids, "updates must be in place on p.data"
    return [np.asarray(p.data) for p in params], opt


def _run_torch(name, opts):
    torch = pytest.importorskip("torch")
    w0, c, s, noise = _problem()
    params = [torch.tensor(w, requires_grad=True) for w in w0]
    opt = getattr(torch.optim, name)(_groups(params, opts), **opts)
    for t in range(N_STEPS):
        for i, p in enumerate(params):
            g = _gradient(p.detach().numpy(), c[i], s[i], noise[t][i], t, i)
            p.grad = None if g is None else torch.tensor(g)
        opt.step()
    return [p.detach().numpy() for p in params], opt


@pytest.mark.parametrize("name,opts", GRID, ids=[f"{n}-{o}" for n, o in GRID])
def test_matches_torch_after_20_steps_float64(name, opts, make_param):
    ours, opt = _run_ndiv(name, opts, make_param)
    theirs, topt = _run_torch(name, opts)
    for a, b in zip(ours, theirs):
        assert a.dtype == np.float64
        np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-12)
    # the state has torch's names and values too
    for p, tp in zip([q for g in opt.param_groups for q in g["params"]],
                     [q for g in topt.param_groups for q in g["params"]]):
        ts = topt.state[tp]
        assert set(opt.state[p]) == set(ts)
        for key, value in opt.state[p].items():
            np.testing.assert_allclose(np.asarray(value, dtype=float), ts[key].detach().numpy(),
                                       rtol=1e-10, atol=1e-12, err_msg=key)


@pytest.mark.parametrize("name", ["SGD", "Adam", "AdamW", "RMSprop", "Adagrad"])
def test_float32_parameters_stay_float32(name, make_param):
    p = make_param(np.ones((2, 3), np.float32))
    opt = getattr(optim, name)([p], lr=0.1, **({"momentum": 0.9} if name == "SGD" else {}))
    for _ in range(3):
        p.grad = np.full((2, 3), 0.5, np.float32)
        opt.step()
    assert p.data.dtype == np.float32
    assert all(v.dtype == np.float32 for v in opt.state[p].values() if isinstance(v, np.ndarray))
    assert np.all(p.data < 1)


def test_sgd_by_hand(make_param):
    """Two momentum steps worked out on paper: v1 = g1, v2 = 0.9 v1 + g2, p -= lr * v."""
    p = make_param(np.array([1.0, 2.0]))
    opt = optim.SGD([p], lr=0.1, momentum=0.9)
    p.grad = np.array([1.0, -1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.9, 2.1])
    p.grad = np.array([1.0, 1.0])
    opt.step()
    np.testing.assert_allclose(p.data, [0.9 - 0.1 * 1.9, 2.1 - 0.1 * 0.1])


def test_gradients_are_not_modified(make_param):
    for name in ["SGD", "Adam", "RMSprop", "Adagrad"]:
        p = make_param(np.ones(4))
        g = np.arange(4.0)
        p.grad = g
        getattr(optim, name)([p], lr=0.1, weight_decay=0.5, maximize=True).step()
        np.testing.assert_array_equal(g, np.arange(4.0), err_msg=name)


def test_zero_grad(make_param):
    p, q = make_param(np.ones(3)), make_param(np.ones(2))
    opt = optim.SGD([p, q], lr=0.1)
    p.grad = np.ones(3)
    grad_array = p.grad
    opt.zero_grad(set_to_none=False)
    assert p.grad is grad_array and np.all(p.grad == 0) and q.grad is None
    opt.zero_grad()
    assert p.grad is None


def test_step_with_closure_returns_its_loss(make_param):
    p = make_param(np.array([3.0]))
    opt = optim.SGD([p], lr=0.25)

    def closure():
        p.grad = 2 * p.data  # d/dp p^2
        return float(p.data[0] ** 2)

    assert opt.step(closure) == 9.0
    np.testing.assert_allclose(p.data, [1.5])
    assert opt.step() is None


def test_param_groups_and_add_param_group(make_param):
    a, b, c = (make_param(np.zeros(2)) for _ in range(3))
    opt = optim.Adam([{"params": [a]}, {"params": b, "lr": 0.5, "betas": [0.8, 0.9]}], lr=0.1)
    assert [g["lr"] for g in opt.param_groups] == [0.1, 0.5]
    assert opt.param_groups[1]["betas"] == (0.8, 0.9) and opt.param_groups[1]["eps"] == 1e-8
    opt.add_param_group({"params": [c], "weight_decay": 0.1})
    assert opt.param_groups[2]["lr"] == 0.1 and opt.param_groups[2]["params"] == [c]
    with pytest.raises(ValueError, match="more than one parameter group"):
        opt.add_param_group({"params": [a]})
    named = optim.SGD([("w", a), ("b", b)], lr=0.1)
    assert named.param_groups[0]["param_names"] == ["w", "b"]


def test_parameters_from_a_generator(make_param):
    ps = [make_param(np.zeros(2)) for _ in range(3)]
    opt = optim.SGD((p for p in ps), lr=0.1)
    assert opt.param_groups[0]["params"] == ps


ERRORS = [  # (optimizer, kwargs, exception, message regex)
    ("SGD", dict(lr=-0.1), ValueError, r"Invalid learning rate: -0.1 \(lr=-0.1, expected lr >= 0\)"),
    ("Adam", dict(lr=-1), ValueError, "Invalid learning rate"),
    ("Adam", dict(betas=(1.0, 0.999)), ValueError, r"Invalid beta parameter at index 0: 1.0"),
    ("AdamW", dict(betas=(0.9, -0.1)), ValueError, r"Invalid beta parameter at index 1"),
    ("Adam", dict(betas=(0.9,)), ValueError, r"Invalid betas: \(0.9,\)"),
    ("Adam", dict(eps=-1e-8), ValueError, "Invalid epsilon value"),
    ("Adam", dict(weight_decay=-1), ValueError, "Invalid weight_decay value"),
    ("SGD", dict(momentum=-0.5), ValueError, "Invalid momentum value"),
    ("SGD", dict(nesterov=True), ValueError, "Nesterov momentum requires a momentum and zero dampening"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "zero dampening"),
    ("RMSprop", dict(alpha=-0.1), ValueError, "Invalid alpha value"),
    ("Adagrad", dict(lr_decay=-1), ValueError, "Invalid lr_decay value"),
    ("Adagrad", dict(initial_accumulator_value=-1), ValueError, "Invalid initial_accumulator_value"),
    ("Adam", dict(momentum=0.9), TypeError, "momentum"),  # not an Adam option
]


@pytest.mark.parametrize("name,kwargs,exc,match", ERRORS, ids=[f"{e[0]}-{e[1]}" for e in ERRORS])
def test_bad_options_raise(name, kwargs, exc, match, make_param):
    with pytest.raises(exc, match=match):
        getattr(optim, name)([make_param(np.zeros(2))], **kwargs)


def test_unknown_option_in_a_param_group(make_param):
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['learning_rate'\] in param group 0; "
                                         r"valid options: .*'lr'"):
        optim.SGD([{"params": [make_param(np.zeros(2))], "learning_rate": 0.1}])


def test_bad_option_in_a_param_group(make_param):
    with pytest.raises(ValueError, match="Invalid learning rate"):
        optim.SGD([{"params": [make_param(np.zeros(2))], "lr": -1.0}], lr=0.1)


def test_bad_params_raise(make_param):
    p = make_param(np.zeros(2))
    with pytest.raises(TypeError, match=r"got a single \w+; wrap it in a list"):
        optim.SGD(p, lr=0.1)
    with pytest.raises(TypeError, match="got a single ndarray"):
        optim.Adam(np.zeros(3))
    with pytest.raises(ValueError, match="optimizer got an empty parameter list"):
        optim.Adam([])
    with pytest.raises(ValueError, match="empty parameter list"):
        optim.SGD(iter([]), lr=0.1)
    with pytest.raises(TypeError, match="can only optimize parameters .* one of the params is a float"):
        optim.SGD([p, 1.0], lr=0.1)
    with pytest.raises(TypeError, match="ordered collection"):
        optim.SGD({p}, lr=0.1)
    with pytest.raises(ValueError, match="appears twice"):
        optim.SGD([p, p], lr=0.1)
    with pytest.raises(TypeError, match="param_group must be a dict"):
        optim.SGD([{"params": [p]}, [p]], lr=0.1)
    with pytest.raises(ValueError, match="no 'params' key"):
        optim.SGD([{"lr": 0.1}], lr=0.1)


@pytest.mark.parametrize("name,opts", [g for g in GRID if g[1].get("maximize") is None][::3])
def test_state_dict_round_trip_through_json_and_safetensors(name, opts, make_param, tmp_path):
    """Save after 10 steps (arrays to safetensors, the rest to JSON), load into a fresh
    optimizer, take 10 more steps: the same weights as 20 uninterrupted steps."""
    import ndiv.serialization as ser

    full, _ = _run_ndiv(name, opts, make_param)

    w0, c, s, noise = _problem()
    params = [make_param(w.copy()) for w in w0]
    opt = getattr(optim, name)(_groups(params, opts), **opts)

    def run(opt, params, steps):
        for t in steps:
            for i, p in enumerate(params):
                p.grad = _gradient(p.data, c[i], s[i], noise[t][i], t, i)
            opt.step()

    run(opt, params, range(10))
    sd = opt.state_dict()
    arrays = {f"{k}.{n}": v for k, st in sd["state"].items() for n, v in st.items() if isinstance(v, np.ndarray)}
    scalars = {k: {n: v for n, v in st.items() if not isinstance(v, np.ndarray)} for k, st in sd["state"].items()}
    ser.save(arrays, tmp_path / "opt.safetensors")
    text = json.dumps({"scalars": scalars, "param_groups": [
        {k: v for k, v in g.items()} for g in sd["param_groups"]]})
    for p in params:  # later steps must not change the saved dict: its arrays are copies
        p.grad = np.ones_like(p.data)
    opt.step()

    meta = json.loads(text)
    state = {k: dict(v) for k, v in meta["scalars"].items()}
    for name_, arr in ser.load(tmp_path / "opt.safetensors").items():
        k, n = name_.split(".")
        state[k][n] = arr
    params2 = [make_param(np.asarray(a).copy()) for a in _weights_after(name, opts, make_param, 10)]
    opt2 = getattr(optim, name)(_groups(params2, {"lr": 123.0}), lr=123.0)
    opt2.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    assert opt2.param_groups[0]["lr"] == opts["lr"]
    run(opt2, params2, range(10, N_STEPS))
    for a, b in zip(full, params2):
        np.testing.assert_allclose(b.data, a, rtol=1e-13, atol=1e-15)


def _weights_after(name, opts, make_param, steps):
    w0, c, s, noise = _problem()
    params = [make_param(w.copy()) for w in w0]
    opt = getattr(optim, name)(_groups(params, opts), **opts)
    for t in range(steps):
        for i, p in enumerate(params):
            p.grad = _gradient(p.data, c[i], s[i], noise[t][i], t, i)
        opt.step()
    return [p.data for p in params]


@pytest.mark.parametrize("name,opts", [("Adam", dict(lr=0.01, amsgrad=True)),
                                       ("SGD", dict(lr=0.05, momentum=0.9)),
                                       ("RMSprop", dict(lr=0.01, centered=True, momentum=0.5))])
def test_loads_torch_optimizer_state_dict(name, opts, make_param):
    """A torch.optim state_dict (tensors inside) loads as it is: training resumes identically."""
    torch = pytest.importorskip("torch")
    theirs, topt = _run_torch(name, opts)
    params = [make_param(w.copy()) for w in theirs]
    opt = getattr(optim, name)(_groups(params, opts), **opts)
    opt.load_state_dict(topt.state_dict())
    tparams = [q for g in topt.param_groups for q in g["params"]]
    r = np.random.default_rng(1)
    for _ in range(5):
        grads = [r.normal(size=s) for s in SHAPES]
        for p, tp, g in zip(params, tparams, grads):
            p.grad, tp.grad = g, torch.tensor(g)
        opt.step()
        topt.step()
    for p, tp in zip(params, tparams):
        np.testing.assert_allclose(p.data, tp.detach().numpy(), rtol=1e-10, atol=1e-12)


def test_load_state_dict_errors(make_param):
    p, q = make_param(np.zeros(2)), make_param(np.zeros(3))
    opt = optim.Adam([p], lr=0.1)
    p.grad = np.ones(2)
    opt.step()
    sd = opt.state_dict()
    with pytest.raises(ValueError, match="different number of parameter groups"):
        optim.Adam([{"params": [p]}, {"params": [q]}]).load_state_dict(sd)
    with pytest.raises(ValueError, match="doesn't match the size of optimizer's group"):
        optim.Adam([p, q]).load_state_dict(sd)
    with pytest.raises(ValueError, match=r"state\[0\]\['exp_avg'\] has shape \(2,\), but parameter 0 has shape \(3,\)"):
        optim.Adam([q]).load_state_dict(sd)
    with pytest.raises(ValueError, match="expected a dict with keys 'state' and 'param_groups'"):
        optim.Adam([p]).load_state_dict({"state": {}})


def test_state_is_keyed_by_identity(make_param):
    p = make_param(np.zeros(2))
    opt = optim.Adagrad([p], lr=0.1, initial_accumulator_value=0.25)
    assert p in opt.state and len(opt.state) == 1 and list(opt.state) == [p]
    np.testing.assert_array_equal(opt.state[p]["sum"], [0.25, 0.25])
    assert "Adagrad (" in repr(opt) and "lr: 0.1" in repr(opt)


def test_trains_a_real_ndiv_tensor():
    """End to end with the autograd Tensor: minimise ||w - c||^2 with Adam."""
    import ndiv

    if not hasattr(ndiv, "tensor"):
        pytest.skip("ndiv.tensor is not available yet")
    c = np.array([1.0, -2.0, 3.0])
    w = ndiv.tensor(np.zeros(3), requires_grad=True, dtype="float64")
    opt = optim.Adam([w], lr=0.1)
    for _ in range(300):
        opt.zero_grad()
        loss = ((w - ndiv.tensor(c)) ** 2).sum()
        loss.backward()
        opt.step()
    np.testing.assert_allclose(w.data, c, atol=1e-3)

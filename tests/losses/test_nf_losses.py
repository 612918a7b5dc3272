"""NeuralForecast 3.3's other losses on ndiv: each loss's value and gradient (w.r.t. the network
output) equal NF's torch loss on random float64 inputs, and a 5-step fit of a tiny MLP through
ndiv.Forecaster with each loss gives a finite loss and NF's output columns."""
import numpy as np
import pytest

import ndiv
from ndiv.losses import (GMM, NBMM, PMM, DistributionLoss, HuberIQLoss, HuberLoss, HuberMQLoss, HuberQLoss, IQLoss,
                         QuantileLoss, TukeyLoss)
from ndiv.models import MLP

B, H, N = 4, 3, 2
HW = np.array([1.0, 0.5, 2.0])


def point_inputs(seed, Q=None):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(B, H, N)) * 2 + 1
    y_hat = rng.normal(size=(B, H, N) if Q is None else (B, H, N, Q)) * 2 + 1
    mask = (rng.random((B, H, N)) > 0.25).astype(np.float64)
    insample = rng.normal(size=(B, 8, N)) + 1
    return y, y_hat, mask, insample


def torch_grad(torch, fn, x):
    """fn(torch leaf of x) -> (value, d value / d x) in float64."""
    t = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    v = fn(t)
    v.backward()
    return v.item(), t.grad.numpy()


def ndiv_grad(fn, x):
    t = ndiv.tensor(x, dtype="float64", requires_grad=True)
    v = fn(t)
    v.backward()
    return v.item(), t.grad


def assert_parity(torch, ours, theirs, x, rtol=1e-6):
    ref, ref_grad = torch_grad(torch, theirs, x)
    got, got_grad = ndiv_grad(ours, x)
    assert np.isfinite(ref) and got == pytest.approx(ref, rel=rtol, abs=1e-12)
    np.testing.assert_allclose(got_grad, ref_grad, rtol=rtol, atol=1e-12)


# name -> (ndiv loss, NF loss) builders, each given horizon_weight (None or HW) -- NF's names and arguments
POINT = {
    "HuberLoss": lambda nf, hw: (HuberLoss(delta=0.7, horizon_weight=hw), nf.HuberLoss(delta=0.7, horizon_weight=hw)),
    "TukeyLoss": lambda nf, hw: (TukeyLoss(c=2.5), nf.TukeyLoss(c=2.5)),
    "TukeyLossRaw": lambda nf, hw: (TukeyLoss(c=2.5, normalize=False), nf.TukeyLoss(c=2.5, normalize=False)),
    "QuantileLoss": lambda nf, hw: (QuantileLoss(q=0.3, horizon_weight=hw), nf.QuantileLoss(q=0.3, horizon_weight=hw)),
    "HuberQLoss": lambda nf, hw: (HuberQLoss(q=0.3, delta=0.7, horizon_weight=hw),
                                  nf.HuberQLoss(q=0.3, delta=0.7, horizon_weight=hw)),
    "HuberMQLoss": lambda nf, hw: (HuberMQLoss(level=[80, 90], delta=0.7, horizon_weight=hw),
                                   nf.HuberMQLoss(level=[80, 90], delta=0.7, horizon_weight=hw)),
    "HuberMQLossQ": lambda nf, hw: (HuberMQLoss(quantiles=[0.1, 0.5, 0.9], horizon_weight=hw),
                                    nf.HuberMQLoss(quantiles=[0.1, 0.5, 0.9], horizon_weight=hw)),
}


@pytest.mark.parametrize("name", list(POINT))
@pytest.mark.parametrize("weighted", [False, True], ids=["mask", "mask+horizon_weight"])
def test_point_loss_value_and_gradient_match_neuralforecast(name, weighted):
    torch = pytest.importorskip("torch")
    nf = pytest.importorskip("neuralforecast.losses.pytorch")
    ours, theirs = POINT[name](nf, HW if weighted else None)
    assert ours.output_names == list(theirs.output_names)
    assert ours.outputsize_multiplier == theirs.outputsize_multiplier
    y, y_hat, mask, ins = point_inputs(hash(name) % 1000, Q=ours.outputsize_multiplier if "MQ" in name else None)
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    for m in (mask, None):
        assert_parity(torch, lambda f: ours(y=y, y_hat=f, mask=m, y_insample=ins),
                      lambda f: theirs(y=t(y), y_hat=f, mask=None if m is None else t(m), y_insample=t(ins)), y_hat)
    if "MQ" in name:   # domain_map: [B, h, N * Q] -> [B, h, N, Q] as NF
        flat = y_hat.reshape(B, H, -1)
        np.testing.assert_array_equal(ours.domain_map(ndiv.tensor(flat)).numpy(), theirs.domain_map(t(flat)).numpy())


def test_tukey_as_neuralforecast_computes_it():
    """NF's formula: c^2/6 (1 - (d/c)^2)^3 for inliers (so c^2/6 at d = 0, falling to 0 at d = c),
    c^2/6 beyond c whatever the mask; masked inliers count 0; the mean runs over every entry."""
    y = np.zeros((1, 3, 1))
    f = ndiv.tensor(np.array([[[0.0], [1.0], [10.0]]]))
    loss = TukeyLoss(c=2.0, normalize=False)
    k = 4 / 6
    assert loss(y=y, y_hat=f).item() == pytest.approx((1 + 0.75 ** 3 + 1) / 3 * k)
    assert loss(y=y, y_hat=f, mask=np.zeros((1, 3, 1))).item() == pytest.approx(1 / 3 * k)


def test_point_loss_errors():
    with pytest.raises(ValueError, match="HuberQLoss: q must be between 0 and 1, got 1.5"):
        HuberQLoss(q=1.5)
    with pytest.raises(ValueError, match="HuberMQLoss: delta must be > 0, got 0"):
        HuberMQLoss(delta=0)
    with pytest.raises(ValueError, match="TukeyLoss: c must be > 0"):
        TukeyLoss(c=-1)
    with pytest.raises(ValueError, match=r"HuberMQLoss: y has shape \(1, 2, 1\)"):
        HuberMQLoss()(y=np.zeros((1, 2, 1)), y_hat=ndiv.zeros(1, 3, 1, 5))


# ----------------------------------------------------------------------------- distribution and mixture losses
# name -> (kwargs for both, the target's kind)
DIST = {
    "Bernoulli": (lambda m: m.DistributionLoss("Bernoulli", level=[80]), "binary"),
    "Tweedie": (lambda m: m.DistributionLoss("Tweedie", rho=1.3, level=[80]), "counts"),
    "GMM": (lambda m: m.GMM(n_components=3, level=[80]), "real"),
    "GMMweighted": (lambda m: m.GMM(n_components=3, weighted=True, return_params=True), "real"),
    "GMMcorrelated": (lambda m: m.GMM(n_components=2, batch_correlation=True, horizon_correlation=True), "real"),
    "PMM": (lambda m: m.PMM(n_components=3, quantiles=[0.9, 0.1, 0.5]), "counts"),
    "PMMweighted": (lambda m: m.PMM(n_components=2, weighted=True, horizon_correlation=True), "counts"),
    "NBMM": (lambda m: m.NBMM(n_components=2), "counts"),
    "NBMMweighted": (lambda m: m.NBMM(n_components=3, weighted=True, return_params=True), "counts"),
    "ISQF": (lambda m: m.DistributionLoss("ISQF", level=[50, 75], num_pieces=3), "real"),
    "ISQF1piece": (lambda m: m.DistributionLoss("ISQF", quantiles=[0.25, 0.5, 0.75], num_pieces=1), "real"),
}


def dist_inputs(seed, multiplier, kind):
    """Raw network output [B, h, N * multiplier], loc/scale [B, 1, N] (loc > 0: Tweedie takes its
    log, NBMM multiplies by it), a target of the kind and a mask."""
    rng = np.random.default_rng(seed)
    out = rng.normal(size=(B, H, N * multiplier)) * 0.7
    loc, scale = rng.random((B, 1, N)) * 3 + 1, rng.random((B, 1, N)) + 0.5
    y = {"binary": lambda: (rng.random((B, H, N)) < 0.4).astype(np.float64),
         "counts": lambda: rng.poisson(3.0, size=(B, H, N)).astype(np.float64),
         "real": lambda: rng.normal(size=(B, H, N)) * 2 + 2}[kind]()
    mask = (rng.random((B, H, N)) > 0.25).astype(np.float64)
    return out, loc, scale, y, mask


@pytest.mark.parametrize("name", list(DIST))
@pytest.mark.parametrize("anchored", [False, True], ids=["raw", "loc-scale"])
def test_distribution_loss_value_and_gradient_match_neuralforecast(name, anchored):
    torch = pytest.importorskip("torch")
    nf = pytest.importorskip("neuralforecast.losses.pytorch")
    make, kind = DIST[name]
    ours, theirs = make(ndiv.losses), make(nf)
    assert ours.output_names == list(theirs.output_names) and ours.param_names == list(theirs.param_names)
    assert ours.outputsize_multiplier == theirs.outputsize_multiplier
    np.testing.assert_allclose(ours.quantiles, theirs.quantiles.detach().numpy(), rtol=1e-6)
    out, loc, scale, y, mask = dist_inputs(hash(name) % 1000, ours.outputsize_multiplier, kind)
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    if name.startswith("ISQF"):   # NF keeps its knots' levels in float32 (log(0.25) in float32): use float64
        from functools import partial
        theirs.domain_map = partial(nf.isqf_domain_map, quantiles=torch.sort(theirs.quantiles.double()).values,
                                    num_pieces=ours.num_pieces)
    ls = (loc, scale) if anchored else (None, None)
    ls_t = (t(loc), t(scale)) if anchored else (None, None)
    for m in (mask, None):
        assert_parity(
            torch, lambda o: ours(y=y, distr_args=ours.scale_decouple(ours.domain_map(o), loc=ls[0], scale=ls[1]),
                                  mask=m),
            lambda o: theirs(y=t(y), distr_args=theirs.scale_decouple(theirs.domain_map(o), loc=ls_t[0],
                                                                        scale=ls_t[1]),
                             mask=None if m is None else t(m)), out)
    if name.startswith("ISQF"):
        return    # its mean is an empirical mean of random samples, in NF as here
    # the distribution's mean, as NF's
    args = ours.scale_decouple(ours.domain_map(ndiv.tensor(out)), loc=ls[0], scale=ls[1])
    args_t = theirs.scale_decouple(theirs.domain_map(t(out)), loc=ls_t[0], scale=ls_t[1])
    np.testing.assert_allclose(ours.get_distribution(args).mean.numpy(),
                               theirs.get_distribution(args_t).mean.detach().numpy(), rtol=1e-8)


@pytest.mark.parametrize("name", list(DIST))
def test_distribution_sampling_is_seeded_and_matches_the_mean(name):
    make, kind = DIST[name]
    loss = make(ndiv.losses)
    out, loc, scale, y, mask = dist_inputs(7, loss.outputsize_multiplier, kind)
    args = loss.scale_decouple(loss.domain_map(ndiv.tensor(out)), loc=loc, scale=scale)
    samples, mean, quants = loss.sample(args, num_samples=4000, rng=np.random.default_rng(0))
    assert samples.shape == (B, H, N, 4000) and mean.shape == (B, H, N, 1)
    assert quants.shape == (B, H, N, len(loss.quantiles))
    again = loss.sample(args, num_samples=4000, rng=np.random.default_rng(0))[0]
    np.testing.assert_array_equal(samples, again)
    exact = loss.get_distribution(args).mean.numpy()
    spread = samples.std(axis=-1)
    assert np.all(np.abs(mean[..., 0] - exact) <= 0.1 * spread + 1e-3 + 0.02 * np.abs(exact)), name
    if kind in ("binary", "counts"):
        assert samples.min() >= 0


def test_distribution_loss_errors():
    with pytest.raises(ValueError, match=r"DistributionLoss\('Tweedie'\) needs rho"):
        DistributionLoss("Tweedie")
    with pytest.raises(ValueError, match="rho=2.5 must be between 1 and 2"):
        DistributionLoss("Tweedie", rho=2.5)
    with pytest.raises(ValueError, match="does not support return_params=True"):
        DistributionLoss("Tweedie", rho=1.5, return_params=True)
    with pytest.raises(ValueError, match=r"DistributionLoss\('ISQF'\) does not support return_params=True"):
        DistributionLoss("ISQF", return_params=True)
    loss = DistributionLoss("Bernoulli")
    with pytest.raises(ValueError, match=r"y must be 0 or 1, got \[0.5\]"):
        loss(y=np.array([[[0.5]]]), distr_args=loss.scale_decouple(loss.domain_map(ndiv.zeros(1, 1, 1))))
    with pytest.raises(ValueError, match="GMM: n_components must be a positive integer, got 0"):
        GMM(n_components=0)
    with pytest.raises(ValueError, match=r"PMM\(n_components=3\): the model output has 4 channels"):
        PMM(n_components=3).domain_map(ndiv.zeros(1, 2, 4))


# ----------------------------------------------------------------------------- implicit quantile losses
IMPLICIT = {
    "IQLoss": lambda m, hw: m.IQLoss(cos_embedding_dim=8, horizon_weight=hw),
    "HuberIQLoss": lambda m, hw: m.HuberIQLoss(cos_embedding_dim=8, delta=0.5, horizon_weight=hw),
}


@pytest.mark.parametrize("name", list(IMPLICIT))
@pytest.mark.parametrize("weighted", [False, True], ids=["mask", "mask+horizon_weight"])
def test_implicit_loss_value_and_gradients_match_neuralforecast(name, weighted):
    """Same layer weights and the same drawn quantiles: the same loss, the same gradient in the
    network output and in every layer weight."""
    torch = pytest.importorskip("torch")
    nf = pytest.importorskip("neuralforecast.losses.pytorch")
    theirs = IMPLICIT[name](nf, None if not weighted else torch.tensor(HW)).double()
    ours = IMPLICIT[name](ndiv.losses, HW if weighted else None)
    assert ours.output_names == list(theirs.output_names)
    state = {k: v.detach().numpy().copy() for k, v in theirs.named_parameters()}
    assert sorted(state) == sorted(n for n, _ in ours.named_parameters())
    for n, p in ours.named_parameters():
        p.data = state[n]
    y, y_hat, mask, _ = point_inputs(3)
    tau = np.random.default_rng(4).random((B, H, N, 1))
    ours._sample_quantiles = lambda shape: tau
    theirs._sample_quantiles = lambda sample_size, device: (setattr(theirs, "q", torch.tensor(tau[..., 0])),
                                                            torch.tensor(tau))[1]
    t = lambda a: torch.tensor(a, dtype=torch.float64)
    assert_parity(torch, lambda f: ours(y=y, y_hat=ours.domain_map(f), mask=mask),
                  lambda f: theirs(y=t(y), y_hat=theirs.domain_map(f), mask=t(mask)), y_hat)
    theirs.zero_grad()
    for p in ours.parameters():
        p.grad = None
    torch_grad(torch, lambda f: theirs(y=t(y), y_hat=theirs.domain_map(f), mask=t(mask)), y_hat)
    ndiv_grad(lambda f: ours(y=y, y_hat=ours.domain_map(f), mask=mask), y_hat)
    for n, p in ours.named_parameters():
        np.testing.assert_allclose(p.grad, dict(theirs.named_parameters())[n].grad.numpy(), rtol=1e-6, atol=1e-12)
    # eval mode: the fixed quantile, NF's update_quantile
    ours.eval()
    ours.update_quantile([0.8])
    theirs.update_quantile([0.8])
    assert ours.output_names == ["_ql0.8"] == theirs.output_names
    np.testing.assert_allclose(ours.domain_map(ndiv.tensor(y_hat)).numpy(),
                               theirs.domain_map(t(y_hat)).detach().numpy(), rtol=1e-10)


def test_implicit_quantiles_are_drawn_from_beta():
    ndiv.manual_seed(0)
    loss = IQLoss(cos_embedding_dim=4, concentration0=1.0, concentration1=4.0)  # Beta(4, 1): mean 0.8
    loss.domain_map(ndiv.zeros(50, 4, 5))
    assert loss.q.shape == (50, 4, 5) and 0.77 < loss.q.mean() < 0.83 and 0 < loss.q.min()
    with pytest.raises(ValueError, match="IQLoss: cos_embedding_dim must be a positive number, got 0"):
        IQLoss(cos_embedding_dim=0)


# ----------------------------------------------------------------------------- fitting through Forecaster
def two_series(n=40):
    t = np.arange(n)
    y = np.concatenate([10 + 3 * np.sin(t / 2), 5 + t * 0.1])
    return {"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": y}


FIT = {
    "HuberLoss": (lambda: HuberLoss(), ["MLP"]),
    "TukeyLoss": (lambda: TukeyLoss(), ["MLP"]),
    "QuantileLoss": (lambda: QuantileLoss(q=0.3), ["MLP_ql0.3"]),
    "HuberQLoss": (lambda: HuberQLoss(q=0.3), ["MLP_q0.3_d1.0"]),
    "HuberMQLoss": (lambda: HuberMQLoss(level=[80]), ["MLP-median", "MLP-lo-80", "MLP-hi-80"]),
    "Bernoulli": (lambda: DistributionLoss("Bernoulli", level=[80]), ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"]),
    "Tweedie": (lambda: DistributionLoss("Tweedie", rho=1.5, level=[80]),
                ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"]),
    "GMM": (lambda: GMM(n_components=2, level=[80], return_params=True),
            ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80", "MLP-mu-1", "MLP-std-1", "MLP-mu-2", "MLP-std-2"]),
    "PMM": (lambda: PMM(n_components=2, level=[80], weighted=True),
            ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"]),
    "NBMM": (lambda: NBMM(n_components=2, quantiles=[0.2, 0.8]), ["MLP", "MLP-lo-60.0", "MLP-hi-60.0"]),
    "ISQF": (lambda: DistributionLoss("ISQF", level=[80], num_pieces=2),
             ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"]),
    "IQLoss": (lambda: IQLoss(cos_embedding_dim=8), ["MLP_ql0.5"]),
    "HuberIQLoss": (lambda: HuberIQLoss(cos_embedding_dim=8), ["MLP_ql0.5"]),
}


def fit_predict(loss, valid_loss=None, data=None, **predict_kw):
    model = MLP(h=4, input_size=8, hidden_size=16, num_layers=1, max_steps=5, loss=loss, valid_loss=valid_loss,
                enable_progress_bar=False, scaler_type="standard")
    fc = ndiv.Forecaster([model], freq=1).fit(two_series() if data is None else data)
    assert all(np.isfinite(v) for _, v in model.train_trajectories)
    return fc.predict(**predict_kw)


@pytest.mark.parametrize("name", list(FIT))
def test_fit_with_each_loss(name):
    make, columns = FIT[name]
    data = two_series()
    if name == "Bernoulli":
        data["y"] = (data["y"] > np.median(data["y"])).astype(float)
    out = fit_predict(make(), data=data)
    cols = [c for c in out if c not in ("unique_id", "ds")]
    assert cols == columns
    assert all(np.isfinite(np.asarray(out[c], dtype=float)).all() for c in cols)


def test_predict_level_with_implicit_and_mixture_losses():
    """predict(level=) as NF: IQLoss gives the requested quantiles of its 0.01..0.99 grid (no crossing),
    a mixture samples any level."""
    iq = fit_predict(IQLoss(cos_embedding_dim=8), level=[80])
    assert [c for c in iq if c not in ("unique_id", "ds")] == ["MLP-lo-80", "MLP-hi-80"]
    assert np.all(np.asarray(iq["MLP-lo-80"]) <= np.asarray(iq["MLP-hi-80"]))
    gmm = fit_predict(GMM(n_components=2), quantiles=[0.3, 0.7])
    assert [c for c in gmm if c not in ("unique_id", "ds")] == ["MLP", "MLP_ql0.3", "MLP_ql0.7"]
    assert np.all(np.asarray(gmm["MLP_ql0.3"]) <= np.asarray(gmm["MLP_ql0.7"]))


@pytest.mark.parametrize("make", [lambda: IQLoss(cos_embedding_dim=8), lambda: DistributionLoss("Tweedie", rho=1.4),
                                  lambda: NBMM(n_components=2, weighted=True), lambda: TukeyLoss(c=3.0)],
                         ids=["IQLoss", "Tweedie", "NBMM", "TukeyLoss"])
def test_save_and_load_keep_the_new_losses(make, tmp_path):
    """Forecaster.save names the loss and its arguments (LOSSES); load rebuilds it, with the
    implicit loss's layer weights, and forecasts the same."""
    model = MLP(h=4, input_size=8, hidden_size=16, num_layers=1, max_steps=3, loss=make(), enable_progress_bar=False,
                scaler_type="standard")
    fc = ndiv.Forecaster([model], freq=1).fit(two_series())
    fc.save(str(tmp_path / "f"))
    back = ndiv.Forecaster.load(str(tmp_path / "f"))
    assert type(back.models[0].loss) is type(model.loss)
    a, b = fc.predict(), back.predict()
    for c in a:
        if c not in ("unique_id", "ds"):
            np.testing.assert_allclose(np.asarray(a[c], float), np.asarray(b[c], float), rtol=1e-6)


def test_pytorch_alias_module_has_neuralforecasts_names():
    """`from neuralforecast.losses.pytorch import ...` becomes `from ndiv.losses.pytorch import ...`."""
    from ndiv.losses import pytorch as alias
    names = ["MAE", "MSE", "RMSE", "MAPE", "SMAPE", "MASE", "HuberLoss", "TukeyLoss", "QuantileLoss", "HuberQLoss",
             "MQLoss", "HuberMQLoss", "IQLoss", "HuberIQLoss", "DistributionLoss", "GMM", "PMM", "NBMM"]
    for n in names:
        assert getattr(alias, n) is getattr(ndiv.losses, n) and n in ndiv.losses.LOSSES
    nf = pytest.importorskip("neuralforecast.losses.pytorch")
    assert all(hasattr(nf, n) for n in names)


@pytest.mark.parametrize("pieces", [1, 3])
def test_isqf_quantile_function_matches_neuralforecast(pieces):
    """Sampling evaluates the spline quantile function at uniform levels: the same function as NF's."""
    torch = pytest.importorskip("torch")
    nf = pytest.importorskip("neuralforecast.losses.pytorch")
    from functools import partial
    ours = DistributionLoss("ISQF", level=[50, 75], num_pieces=pieces)
    theirs = nf.DistributionLoss("ISQF", level=[50, 75], num_pieces=pieces)
    knots = torch.sort(theirs.quantiles.double()).values
    out, loc, scale, _, _ = dist_inputs(11, ours.outputsize_multiplier, "real")
    args = ours.scale_decouple(ours.domain_map(ndiv.tensor(out)), loc=loc, scale=scale)
    args_t = partial(nf.isqf_domain_map, quantiles=knots, num_pieces=pieces)(torch.tensor(out))
    alpha = np.random.default_rng(0).random((6, B, H, N))
    ref = nf.BaseISQF(*args_t).quantile(torch.tensor(alpha)).numpy() * scale + loc
    np.testing.assert_allclose(ours.get_distribution(args).quantile(alpha), ref, rtol=1e-10, atol=1e-12)

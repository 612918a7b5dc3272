"""Losses: hand-computed values, NeuralForecast's torch losses on the same inputs (skipped without
torch/neuralforecast), float64 gradcheck in the forecast and distribution parameters."""
import numpy as np
import pytest

import ndiv
from ndiv.losses import (MAE, MAPE, MASE, MSE, RMSE, SMAPE, DistributionLoss, HuberLoss, MQLoss, QuantileLoss)


def inputs(seed=0, B=4, h=3, N=1, Q=None):
    rng = np.random.default_rng(seed)
    y = rng.normal(size=(B, h, N)) * 2 + 1
    y[0, 0, 0] = 0.0                                           # y = 0: MAPE's divide-no-nan
    y_hat = rng.normal(size=(B, h, N) if Q is None else (B, h, N, Q)) * 2 + 1
    mask = (rng.random((B, h, N)) > 0.2).astype(np.float64)
    insample = rng.normal(size=(B, 8)) + 1
    return y, y_hat, mask, insample


POINT = [("MAE", lambda: MAE()), ("MSE", lambda: MSE()), ("RMSE", lambda: RMSE()), ("MAPE", lambda: MAPE()),
         ("SMAPE", lambda: SMAPE()), ("MASE", lambda: MASE(seasonality=2)), ("HuberLoss", lambda: HuberLoss(delta=0.7)),
         ("QuantileLoss", lambda: QuantileLoss(q=0.3)), ("MQLoss", lambda: MQLoss(level=[80, 90])),
         ("MQLossQ", lambda: MQLoss(quantiles=[0.1, 0.5, 0.9]))]


def test_hand_computed_point_losses():
    y = np.array([[[1.0], [2.0], [4.0]]])
    f = ndiv.tensor([[[1.0], [3.0], [2.0]]], dtype="float64")
    mask = np.array([[[1.0], [1.0], [0.0]]])                  # the last step does not count
    assert MAE()(y=y, y_hat=f).item() == pytest.approx(1.0)
    assert MAE()(y=y, y_hat=f, mask=mask).item() == pytest.approx(0.5)
    assert MSE()(y=y, y_hat=f).item() == pytest.approx(5 / 3)
    assert RMSE()(y=y, y_hat=f).item() == pytest.approx(np.sqrt(5 / 3))
    assert MAPE()(y=y, y_hat=f).item() == pytest.approx((0 + 0.5 + 0.5) / 3)
    assert SMAPE()(y=y, y_hat=f).item() == pytest.approx(2 * (0 + 1 / 5 + 2 / 6) / 3)
    assert HuberLoss(delta=1.0)(y=y, y_hat=f).item() == pytest.approx((0 + 0.5 + 1.5) / 3)
    assert QuantileLoss(q=0.9)(y=y, y_hat=f).item() == pytest.approx((0 + 0.1 + 1.8) / 3)
    ins = np.array([[1.0, 3.0, 2.0, 6.0]])                     # seasonal (2) diffs |2-1|, |6-3| -> scale 2
    assert MASE(seasonality=2)(y=y, y_hat=f, y_insample=ins).item() == pytest.approx(1.0 / 2)
    q = MQLoss(quantiles=[0.1, 0.9])                           # both quantile forecasts are f
    both = ndiv.tensor(np.repeat(f.numpy()[..., None], 2, axis=-1))
    assert q(y=y, y_hat=both).item() == pytest.approx(((0 + 0.9 + 0.2) + (0 + 0.1 + 1.8)) / 3)  # sum over q
    assert MAE()(y=y, y_hat=f, mask=np.zeros_like(y)).item() == 0.0      # nothing to average


def test_output_names_and_sizes():
    assert MAE().output_names == [""] and MAE().outputsize_multiplier == 1
    assert QuantileLoss(0.25).output_names == ["_ql0.25"]
    m = MQLoss(level=[80, 90])
    assert m.output_names == ["-median", "-lo-90", "-lo-80", "-hi-80", "-hi-90"] and m.outputsize_multiplier == 5
    np.testing.assert_allclose(m.quantiles, [0.5, 0.05, 0.1, 0.9, 0.95])
    assert MQLoss(quantiles=[0.1, 0.5, 0.9]).output_names == ["-lo-80.0", "-median", "-hi-80.0"]
    d = DistributionLoss("StudentT", level=[90], return_params=True)
    assert d.output_names == ["", "-median", "-lo-90", "-hi-90", "-df", "-loc", "-scale"]
    assert d.outputsize_multiplier == 3 and d.is_distribution_output and not MAE().is_distribution_output
    assert DistributionLoss("Poisson", quantiles=[0.9, 0.2]).output_names == ["", "-lo-60.0", "-hi-80.0"]
    assert m.domain_map(ndiv.zeros(2, 3, 5)).shape == (2, 3, 1, 5)


def test_errors():
    with pytest.raises(ValueError, match="distribution='Gamma' is not available; use one of"):
        DistributionLoss("Gamma")
    with pytest.raises(ValueError, match="MASE needs y_insample"):
        MASE(seasonality=2)(y=np.zeros((1, 2, 1)), y_hat=ndiv.zeros(1, 2, 1))
    with pytest.raises(ValueError, match=r"MAE: y has shape \(1, 2, 1\) but y_hat has shape \(1, 3, 1\)"):
        MAE()(y=np.zeros((1, 2, 1)), y_hat=ndiv.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="horizon_weight has 2 entries but the forecast has h=3 steps"):
        MAE(horizon_weight=np.ones(2))(y=np.zeros((1, 3, 1)), y_hat=ndiv.zeros(1, 3, 1))
    with pytest.raises(ValueError, match="level must be between 0 and 100"):
        MQLoss(level=[120])


@pytest.mark.parametrize("name, make", POINT, ids=[p[0] for p in POINT])
def test_point_losses_match_neuralforecast(name, make):
    torch = pytest.importorskip("torch")
    nfl = pytest.importorskip("neuralforecast.losses.pytorch")
    loss = make()
    Q = loss.outputsize_multiplier if isinstance(loss, MQLoss) else None
    y, y_hat, mask, ins = inputs(1, Q=Q)
    hw = np.array([1.0, 0.5, 2.0])
    kwargs = dict(MASE={"seasonality": 2}, HuberLoss={"delta": 0.7}, QuantileLoss={"q": 0.3},
                  MQLoss={"level": [80, 90]}, MQLossQ={"quantiles": [0.1, 0.5, 0.9]}).get(name, {})
    theirs_cls = getattr(nfl, "MQLoss" if name == "MQLossQ" else name)
    for weight in (None, hw):
        theirs = theirs_cls(**kwargs, horizon_weight=None if weight is None else torch.tensor(weight))
        ours = type(loss)(**kwargs, horizon_weight=weight)
        t = lambda a: torch.tensor(a)
        ref = theirs(y=t(y), y_hat=t(y_hat), mask=t(mask), y_insample=t(ins)).item()
        got = ours(y=y, y_hat=ndiv.tensor(y_hat), mask=mask, y_insample=ins).item()
        assert got == pytest.approx(ref, rel=1e-7), name   # NF keeps its quantiles in float32
    # float32 in, float32 out, close to torch's float32
    ref32 = theirs(y=t(y).float(), y_hat=t(y_hat).float(), mask=t(mask).float(), y_insample=t(ins).float()).item()
    out32 = ours(y=y.astype(np.float32), y_hat=ndiv.tensor(y_hat.astype(np.float32)), mask=mask, y_insample=ins)
    assert out32.dtype == np.float32 and out32.item() == pytest.approx(ref32, rel=1e-5)


@pytest.mark.parametrize("name, make", POINT, ids=[p[0] for p in POINT])
def test_point_losses_gradcheck(name, make):
    loss = make()
    Q = loss.outputsize_multiplier if isinstance(loss, MQLoss) else None
    y, y_hat, mask, ins = inputs(2, Q=Q)
    y_hat = y_hat + 0.05                     # keep away from the kinks |y - y_hat| = 0 and delta
    ndiv.autograd.gradcheck(lambda f: loss(y=y, y_hat=f, mask=mask, y_insample=ins),
                            [ndiv.tensor(y_hat, requires_grad=True)])


def test_mase_per_window_scale_with_3d_insample():
    y, y_hat, mask, ins = inputs(3)
    a = MASE(seasonality=2)(y=y, y_hat=ndiv.tensor(y_hat), y_insample=ins).item()
    b = MASE(seasonality=2)(y=y, y_hat=ndiv.tensor(y_hat), y_insample=ins[:, :, None]).item()
    assert a == pytest.approx(b, rel=1e-12)


def dist_outputs(name, seed=0, B=3, h=4, N=1):
    """Raw network outputs [B, h, n_params * N], loc/scale [B, 1, N] and a target on the data scale."""
    rng = np.random.default_rng(seed)
    k = {"Normal": 2, "StudentT": 3, "Poisson": 1, "NegativeBinomial": 2}[name]
    out = rng.normal(size=(B, h, k * N)) * 0.5
    loc, scale = rng.normal(size=(B, 1, N)) + 5, rng.random((B, 1, N)) + 0.5
    if name in ("Poisson", "NegativeBinomial"):
        y = rng.poisson(5.0, size=(B, h, N)).astype(np.float64)
        y[0, 0, 0] = 0.0
    else:
        y = rng.normal(size=(B, h, N)) * 2 + 5
    mask = np.ones((B, h, N))
    mask[1, -1] = 0
    return out, loc, scale, y, mask


DISTS = ["Normal", "StudentT", "Poisson", "NegativeBinomial"]


@pytest.mark.parametrize("name", DISTS)
def test_distribution_loss_matches_neuralforecast(name):
    torch = pytest.importorskip("torch")
    nfl = pytest.importorskip("neuralforecast.losses.pytorch")
    out, loc, scale, y, mask = dist_outputs(name)
    theirs = nfl.DistributionLoss(name, level=[80, 90])
    ours = DistributionLoss(name, level=[80, 90])
    assert ours.output_names == list(theirs.output_names) and ours.param_names == theirs.param_names
    np.testing.assert_allclose(ours.quantiles, theirs.quantiles.numpy(), rtol=1e-6)
    t = lambda a: torch.tensor(a)
    args_t = theirs.scale_decouple(output=theirs.domain_map(t(out)), loc=t(loc), scale=t(scale))
    args = ours.scale_decouple(ours.domain_map(ndiv.tensor(out)), loc=loc, scale=scale)
    for a, b in zip(args, args_t):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-10, atol=1e-12)
    ref = theirs(y=t(y), distr_args=args_t, mask=t(mask)).item()
    assert ours(y=y, distr_args=args, mask=mask).item() == pytest.approx(ref, rel=1e-8)
    np.testing.assert_allclose(ours.get_distribution(args).mean.numpy(),
                               theirs.get_distribution(args_t).mean.numpy(), rtol=1e-8)


@pytest.mark.parametrize("name", DISTS)
def test_distribution_loss_gradcheck(name):
    out, loc, scale, y, mask = dist_outputs(name, seed=4, B=2, h=3)
    loss = DistributionLoss(name)
    ndiv.autograd.gradcheck(
        lambda o: loss(y=y, distr_args=loss.scale_decouple(loss.domain_map(o), loc=loc, scale=scale), mask=mask),
        [ndiv.tensor(out, requires_grad=True)])


@pytest.mark.parametrize("name", DISTS)
def test_sampling_quantiles(name):
    """Sample mean and quantiles agree with the distribution (scipy's exact quantiles), and a seed
    repeats them."""
    from scipy import stats
    out, loc, scale, y, mask = dist_outputs(name, seed=5, B=2, h=2)
    loss = DistributionLoss(name, level=[80], num_samples=20000)
    args = loss.scale_decouple(loss.domain_map(ndiv.tensor(out)), loc=loc, scale=scale)
    samples, mean, quants = loss.sample(args, rng=np.random.default_rng(0))
    assert samples.shape == (2, 2, 1, 20000) and mean.shape == (2, 2, 1, 1) and quants.shape == (2, 2, 1, 3)
    p = [a.numpy() for a in args]
    exact = {"Normal": lambda q: stats.norm.ppf(q, p[0], p[1]),
             "StudentT": lambda q: stats.t.ppf(q, p[0], p[1], p[2]),
             "Poisson": lambda q: stats.poisson.ppf(q, p[0]),
             "NegativeBinomial": lambda q: stats.nbinom.ppf(q, p[0], 1 - p[1])}[name]
    for j, q in enumerate(loss.quantiles):
        spread = np.abs(exact(0.9) - exact(0.1)) + 1
        assert np.all(np.abs(quants[..., j] - exact(q)) < 0.06 * spread), (name, q)
    np.testing.assert_allclose(mean[..., 0], loss.get_distribution(args).mean.numpy(), rtol=0.05, atol=0.05)
    again = loss.sample(args, num_samples=50, rng=np.random.default_rng(0))[0]
    np.testing.assert_array_equal(again, loss.sample(args, num_samples=50, rng=np.random.default_rng(0))[0])


def test_special_functions_gradcheck():
    from ndiv.losses._special import digamma, lgamma
    x = ndiv.tensor(np.array([0.3, 1.0, 4.5, 20.0]), requires_grad=True)
    ndiv.autograd.gradcheck(lgamma, [x])
    ndiv.autograd.gradcheck(digamma, [x])
    from scipy.special import gammaln
    np.testing.assert_allclose(lgamma(x).numpy(), gammaln(x.numpy()))


def test_multivariate_distribution_domain_map():
    """[B, h, n_params * N]: consecutive blocks of N, as torch.tensor_split."""
    loss = DistributionLoss("Normal")
    out = ndiv.tensor(np.arange(2 * 3 * 6, dtype=np.float64).reshape(2, 3, 6))
    mean, std = loss.domain_map(out)
    np.testing.assert_array_equal(mean.numpy(), out.numpy()[:, :, :3])
    np.testing.assert_array_equal(std.numpy(), out.numpy()[:, :, 3:])

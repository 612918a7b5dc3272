"""Temporal scalers against NeuralForecast's TemporalNorm; local scalers against coreforecast."""
import numpy as np
import pytest

import ndiv
from ndiv.data import LocalScaler, TemporalNorm, TimeSeriesDataset, fit_local_scalers, inverse_scale, scale
from ndiv.data.scalers import masked_median
from tests.data.conftest import long_data

def _np(a):
    return a.numpy() if isinstance(a, ndiv.Tensor) else a


TEMPORAL = ["identity", "standard", "robust", "minmax", "minmax1", "invariant", "revin"]


def windows(seed=0, shape=(6, 10, 3, 1)):
    """[B, T, C, N] float32 windows and a mask [B, T, 1, N] with left padding and edge cases."""
    rng = np.random.default_rng(seed)
    x = (rng.normal(size=shape) * 5 + 3).astype(np.float32)
    x[1] = 2.0                                   # constant window: zero spread
    x[2, :, 0] = np.repeat([1.0, 2.0], 5)[:, None]  # MAD 0 but std > 0
    x[3, :5] = 0                                 # left padding, masked out below
    mask = np.ones(shape[:2] + (1, shape[3]), np.float32)
    mask[3, :5] = 0
    mask[:, -3:] = 0                             # the horizon
    mask[4, :6] = 0                              # one available point
    mask[5, 1:7:2] = 0                           # even count: the lower median
    return x, mask


@pytest.mark.parametrize("kind", TEMPORAL)
def test_temporal_norm_matches_neuralforecast(kind):
    torch = pytest.importorskip("torch")
    _scalers = pytest.importorskip("neuralforecast.common._scalers")
    x, mask = windows()
    theirs = _scalers.TemporalNorm(scaler_type=kind, dim=1, num_features=3)
    z_nf = theirs.transform(torch.from_numpy(x), torch.from_numpy(mask)).detach().numpy()
    ours = TemporalNorm(kind, dim=1, num_features=3)
    z = ours.transform(x, mask)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, z_nf, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(_np(ours.x_shift), theirs.x_shift.detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(_np(ours.x_scale), theirs.x_scale.detach().numpy(), rtol=1e-6, atol=1e-6)
    back_nf = theirs.inverse_transform(torch.from_numpy(z_nf)).detach().numpy()
    np.testing.assert_allclose(_np(ours.inverse_transform(z)), back_nf, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("kind", TEMPORAL)
def test_round_trip(kind):
    x, mask = windows(1)
    norm = TemporalNorm(kind, dim=1, num_features=3)
    np.testing.assert_allclose(_np(norm.inverse_transform(norm.transform(x, mask))), x, rtol=1e-5, atol=1e-4)


def test_lower_median_like_torch():
    x = np.array([[4.0, 1.0, 3.0, 2.0, 9.0]])
    assert masked_median(x, np.array([[1, 1, 1, 1, 0]])).item() == 2.0      # not 2.5
    assert masked_median(x, np.zeros((1, 5))).item() == 0.0                  # nothing available


@pytest.mark.parametrize("kind", ["standard", "minmax1", "invariant"])
def test_scale_functions_work_on_tensors(kind):
    """The same arithmetic runs on ndiv Tensors, with gradients to the scaled input."""
    rng = np.random.default_rng(2)
    x64 = rng.normal(size=(3, 6, 1, 1)) * 3 + 1
    mask = np.ones((3, 6, 1, 1))
    mask[:, -2:] = 0
    norm = TemporalNorm(kind, dim=1)
    shift, sc = norm.statistics(x64, mask)
    t = ndiv.tensor(x64, requires_grad=True)
    np.testing.assert_allclose(scale(kind, t, shift, sc).numpy(), scale(kind, x64, shift, sc), rtol=1e-12)
    np.testing.assert_allclose(inverse_scale(kind, t, shift, sc).numpy(), inverse_scale(kind, x64, shift, sc), rtol=1e-12)
    ndiv.autograd.gradcheck(lambda a: inverse_scale(kind, scale(kind, a, shift, sc), shift, sc) * 1.5,
                            [ndiv.tensor(x64, requires_grad=True)])


def test_revin_parameters_get_gradients():
    from ndiv.nn import Parameter
    x, mask = windows(3)
    norm = TemporalNorm("revin", dim=1, num_features=3)
    assert [n for n, _ in norm.named_parameters()] == ["revin_bias", "revin_weight"]   # NF's names
    norm.revin_weight = Parameter(np.full((1, 1, 3, 1), 2.0))
    norm.revin_bias = Parameter(np.zeros((1, 1, 3, 1)))
    z = norm.transform(x.astype(np.float64), mask)
    np.testing.assert_allclose(z, TemporalNorm("standard", dim=1).transform(x.astype(np.float64), mask))
    out = norm.inverse_transform(ndiv.tensor(z)).sum()
    out.backward()
    # d/d bias of sum(z * scale * (w + eps) + shift + bias) = number of entries per feature
    np.testing.assert_allclose(norm.revin_bias.grad.ravel(), [x.shape[0] * x.shape[1]] * 3)
    assert np.all(np.isfinite(norm.revin_weight.grad)) and np.any(norm.revin_weight.grad != 0)


def test_bad_scaler_type():
    with pytest.raises(ValueError, match="scaler_type='zscore' is not a temporal scaler"):
        TemporalNorm("zscore")
    with pytest.raises(ValueError, match="scaler_type='revin' needs num_features"):
        TemporalNorm("revin")
    with pytest.raises(ValueError, match=r"local_scaler_type='zscore'; expected None or one of"):
        LocalScaler("zscore")


LOCAL = [("standard", "LocalStandardScaler", {}), ("robust", "LocalRobustScaler", {"scale": "mad"}),
         ("robust-iqr", "LocalRobustScaler", {"scale": "iqr"}), ("minmax", "LocalMinMaxScaler", {}),
         ("boxcox", "LocalBoxCoxScaler", {"method": "loglik", "lower": 0.0})]


@pytest.mark.parametrize("kind, cls, kw", LOCAL, ids=[c[0] for c in LOCAL])
def test_local_scalers_match_coreforecast(kind, cls, kw):
    scalers = pytest.importorskip("coreforecast.scalers")
    from coreforecast.grouped_array import GroupedArray
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.gamma(2.0, 10.0, 30), np.full(5, 4.0), rng.gamma(5.0, 3.0, 12)])
    indptr = np.array([0, 30, 35, 47])
    ref = getattr(scalers, cls)(**kw).fit(GroupedArray(x, indptr))
    ours = LocalScaler(kind).fit(x, indptr)
    z = ours.transform(x, indptr)
    if kind == "boxcox":       # lambda from a different optimizer: close, not equal
        varied = [0, 2]
        np.testing.assert_allclose(ours.stats_[varied, 0], ref.stats_[varied, 0], atol=2e-3)
    else:
        np.testing.assert_allclose(ours.stats_, ref.stats_, rtol=1e-10)
        np.testing.assert_allclose(z, ref.transform(GroupedArray(x, indptr)), rtol=1e-10, atol=1e-12)
        zz = np.linspace(-2, 2, len(x))
        np.testing.assert_allclose(ours.inverse_transform(zz, indptr), ref.inverse_transform(GroupedArray(zz, indptr)),
                                   rtol=1e-10)
    np.testing.assert_allclose(ours.inverse_transform(z, indptr), x, rtol=1e-8)
    two = ours.inverse_transform(np.stack([z, z], 1), indptr)                 # forecast + quantiles
    np.testing.assert_allclose(two, np.stack([x, x], 1), rtol=1e-8)
    assert LocalScaler.from_dict(ours.to_dict()).stats_.tolist() == ours.stats_.tolist()


def test_local_scalers_on_a_dataset():
    data = long_data()
    ds = TimeSeriesDataset.from_df(data)
    scaled, scalers = fit_local_scalers(ds, "standard")
    assert set(scalers) == {"y", "x1", "x2"}
    a, b = scaled.indptr[0], scaled.indptr[1]
    assert abs(scaled.temporal[a:b, 0].mean()) < 1e-5 and scaled.temporal[a:b, 0].std() == pytest.approx(1, rel=1e-5)
    np.testing.assert_array_equal(scaled.temporal[:, -1], ds.temporal[:, -1])       # the mask is untouched
    data["y"][3] = -1.0
    with pytest.raises(ValueError, match=r"needs values >= 0, but column 'y' of series 'a' has -1.0"):
        fit_local_scalers(TimeSeriesDataset.from_df(data, exog_cols=[]), "boxcox")

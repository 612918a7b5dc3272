"""The dense models: DLinear, NLinear, NBEATS, NHITS.

For each: float64 gradcheck of the loss through the model, one batch overfits, AirPassengers
beats seasonal naive, the errors name the option; and with torch + neuralforecast installed,
NeuralForecast's defaults, state_dict layout and forward on its own weights (exogenous included).
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import ndiv
from ndiv.losses import MSE, MQLoss
from ndiv.models import NBEATS, NHITS, DLinear, NLinear

from . import nf_reference as nf_ref

MODELS = {"DLinear": DLinear, "NLinear": NLinear, "NBEATS": NBEATS, "NHITS": NHITS}

# tiny configurations: (model, hyperparameters, exogenous sizes of the windows_batch)
TINY = [
    ("DLinear", dict(h=4, input_size=9, moving_avg_window=3), {}),
    ("NLinear", dict(h=4, input_size=9), {}),
    ("NBEATS", dict(h=4, input_size=9, mlp_units=[[6, 6]], n_harmonics=1, n_basis=2,
                    stack_types=["identity", "trend", "seasonality"]), {}),
    ("NHITS", dict(h=4, input_size=9, mlp_units=[[6, 6]], n_blocks=[1, 1], stack_types=["identity"] * 2,
                   n_pool_kernel_size=[2, 3], n_freq_downsample=[2, 1], hist_exog_list=["x"], futr_exog_list=["f"],
                   stat_exog_list=["s"]), dict(hist=1, futr=1, stat=1)),
    ("NHITS", dict(h=4, input_size=9, mlp_units=[[6, 6]], n_blocks=[1], stack_types=["identity"], n_pool_kernel_size=[2],
                   n_freq_downsample=[2], pooling_mode="AvgPool1d", interpolation_mode="cubic"), {}),
]
TINY_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TINY)]



# -- gradients, overfitting, AirPassengers -----------------------------------------------------------

@pytest.mark.parametrize("name,kw,exog", TINY, ids=TINY_IDS)
def test_gradcheck_loss_float64(name, kw, exog):
    model = MODELS[name](**kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 2, kw["input_size"], kw["h"], **exog), np.float64, requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((2, kw["h"], 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + list(model.parameters())
    inputs = [t for t in inputs if t.requires_grad]

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    # tensors of more than 32 elements are checked along 8 random directions each (keeps it fast)
    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=32)


@pytest.mark.parametrize("name,kw,exog", TINY, ids=TINY_IDS)
def test_one_batch_overfits(name, kw, exog):
    """A fixed batch of 8 windows (fewer than a linear map of 9 lags can fit exactly): MSE falls
    by orders of magnitude in a few hundred Adam steps."""
    wide = {"mlp_units": [[32, 32]]} if "mlp_units" in kw else {}
    if name == "NHITS":  # h knots per block: random targets are within reach
        wide["n_freq_downsample"] = [1] * len(kw["n_freq_downsample"])
    model = MODELS[name](**{**kw, **wide}, loss=MSE())
    rng = np.random.default_rng(1)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 8, kw["input_size"], kw["h"], **exog))
    y = ndiv.tensor(rng.standard_normal((8, kw["h"], 1)).astype(np.float32))
    losses = nf_ref.overfit_losses(model, batch, y, steps=300, lr=3e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 1e-2 * losses[0], (losses[0], losses[-1])


AIR = {  # small, fast configurations; tools/compare_nf.py measures NF's defaults
    "DLinear": dict(max_steps=300, learning_rate=1e-2, scaler_type="standard"),
    "NLinear": dict(max_steps=300, learning_rate=1e-2, scaler_type="standard"),
    "NBEATS": dict(max_steps=100, mlp_units=[[64, 64], [64, 64]], scaler_type="standard"),
    "NHITS": dict(max_steps=100, mlp_units=[[64, 64], [64, 64]], scaler_type="standard"),
}


@pytest.mark.parametrize("name", sorted(AIR))
def test_air_passengers_beats_seasonal_naive(name):
    train, test = nf_ref.air_passengers()
    fc = ndiv.Forecaster(models=[MODELS[name](h=12, input_size=24, enable_progress_bar=False, **AIR[name])], freq="MS")
    pred = fc.fit(train).predict()
    assert list(pred) == ["unique_id", "ds", name]
    y_hat = np.asarray(pred[name])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    np.testing.assert_array_equal(np.asarray(pred["ds"]), test["ds"])
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"{name}: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_load_gives_the_same_forecast(name, tmp_path):
    """The config (tuples of stack options included) and the fixed basis matrices round-trip."""
    train, _ = nf_ref.air_passengers()
    kw = {"mlp_units": [[8, 8]], **({"interpolation_mode": "cubic"} if name == "NHITS" else {})} if name in ("NBEATS", "NHITS") else {}
    fc = ndiv.Forecaster([MODELS[name](h=12, input_size=24, max_steps=2, enable_progress_bar=False, **kw)], freq="MS")
    before = np.asarray(fc.fit(train).predict()[name])
    fc.save(str(tmp_path / "fc"))
    np.testing.assert_array_equal(np.asarray(ndiv.Forecaster.load(str(tmp_path / "fc")).predict()[name]), before)


# -- model-specific behaviour --------------------------------------------------------------------------

@pytest.mark.parametrize("length,window", [(11, 5), (4, 25), (7, 1)])
def test_dlinear_trend_is_the_padded_moving_average(length, window):
    x = np.random.default_rng(2).standard_normal((3, length)).astype(np.float32)
    season, trend = DLinear(h=2, input_size=length, moving_avg_window=window).decomp(ndiv.tensor(x))
    half = (window - 1) // 2
    padded = np.concatenate([np.repeat(x[:, :1], half, 1), x, np.repeat(x[:, -1:], half, 1)], axis=1)
    expected = np.stack([padded[:, t:t + window].mean(1) for t in range(length)], axis=1)
    np.testing.assert_allclose(trend.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(season.numpy() + trend.numpy(), x, rtol=1e-6)


def test_nlinear_is_shift_equivariant():
    model = NLinear(h=3, input_size=6)
    x = np.random.default_rng(3).standard_normal((2, 6, 1)).astype(np.float32)
    with ndiv.no_grad():
        a = model({"insample_y": ndiv.tensor(x)}).numpy()
        b = model({"insample_y": ndiv.tensor(x + 5.0)}).numpy()
    np.testing.assert_allclose(b, a + 5.0, rtol=1e-5, atol=1e-4)


def test_nbeats_shared_weights_reuse_one_block():
    model = NBEATS(h=4, input_size=8, mlp_units=[[4, 4]], stack_types=["identity", "trend"], n_blocks=[3, 2],
                   shared_weights=True)
    assert model.blocks[0] is model.blocks[1] is model.blocks[2] and model.blocks[3] is model.blocks[4]
    assert model.blocks[0] is not model.blocks[3]
    assert "blocks.2.layers.0.weight" in model.state_dict()          # NF lists every index


def test_basis_matrices_are_fixed_parameters():
    model = NBEATS(h=4, input_size=8, mlp_units=[[4, 4]])
    fixed = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert fixed == ["blocks.1.basis.backcast_basis", "blocks.1.basis.forecast_basis",
                     "blocks.2.basis.backcast_basis", "blocks.2.basis.forecast_basis"]


def test_dropout_trains_stochastically_and_turns_off_window_dedupe():
    for model in (NHITS(h=4, input_size=8, mlp_units=[[8, 8]], dropout_prob_theta=0.5),
                  NBEATS(h=4, input_size=8, mlp_units=[[8, 8]], dropout_prob_theta=0.5)):
        assert model._has_sample_randomness()
        batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(4), 2, 8, 4))
        model.train()
        assert not np.allclose(model(batch).numpy(), model(batch).numpy())
        model.eval()
        np.testing.assert_array_equal(model(batch).numpy(), model(batch).numpy())


def test_mqloss_outputs():
    for cls in MODELS.values():
        model = cls(h=4, input_size=8, loss=MQLoss(level=[80]), **({"mlp_units": [[4, 4]]} if cls in (NBEATS, NHITS) else {}))
        out = model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 8, 4)))
        assert out.shape == (2, 4, 3)


@pytest.mark.parametrize("make,match", [
    (lambda: DLinear(h=4, input_size=8, moving_avg_window=4), "moving_avg_window must be a positive odd"),
    (lambda: DLinear(h=4, input_size=8, hist_exog_list=["x"]), "does not support hist exogenous"),
    (lambda: NLinear(h=4, input_size=8, futr_exog_list=["x"]), "does not support futr exogenous"),
    (lambda: NBEATS(h=4, input_size=8, stat_exog_list=["x"]), "does not support stat exogenous"),
    (lambda: NBEATS(h=1, input_size=8), "h=1 does not work"),
    (lambda: NBEATS(h=4, input_size=8, stack_types=["identity", "fourier"], n_blocks=[1, 1]), "stack_types must be among"),
    (lambda: NBEATS(h=4, input_size=8, basis="wavelet"), "basis must be one of"),
    (lambda: NBEATS(h=4, input_size=8, basis="spline", n_basis=2), "needs n_basis >= 3"),
    (lambda: NBEATS(h=4, input_size=8, activation="GELU"), "activation must be one of"),
    (lambda: NBEATS(h=4, input_size=8, n_blocks=[1, 1]), "n_blocks needs one entry per stack"),
    (lambda: NHITS(h=4, input_size=8, mlp_units=[512, 512]), "mlp_units must be a list of"),
    (lambda: NHITS(h=4, input_size=8, stack_types=["trend"] * 3), "every stack type must be 'identity'"),
    (lambda: NHITS(h=4, input_size=8, n_pool_kernel_size=[2, 1]), "n_pool_kernel_size needs one positive int"),
    (lambda: NHITS(h=4, input_size=8, n_freq_downsample=[4, 0, 1]), "n_freq_downsample needs one positive int"),
    (lambda: NHITS(h=4, input_size=8, pooling_mode="LPPool1d"), "pooling_mode must be one of"),
    (lambda: NHITS(h=4, input_size=8, interpolation_mode="spline"), "interpolation_mode must be one of"),
    (lambda: NHITS(h=4, input_size=8, interpolation_mode="cubic", loss=MQLoss(level=[80])), "'cubic' needs a loss with one"),
    (lambda: NHITS(h=4, input_size=8, dropout_prob_theta=1.5), "dropout_prob_theta must be in"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_n_polynomials_is_deprecated():
    with pytest.warns(DeprecationWarning, match="n_polynomials"):
        NBEATS(h=4, input_size=8, mlp_units=[[4, 4]], n_polynomials=2)


# -- NeuralForecast as the reference (skipped without torch + neuralforecast) --------------------------

NF_CASES = [
    ("DLinear", dict(h=12, input_size=24), {}),
    ("DLinear", dict(h=5, input_size=17, moving_avg_window=7, loss=MQLoss(level=[80])), {}),
    ("NLinear", dict(h=12, input_size=24), {}),
    ("NBEATS", dict(h=12, input_size=24, mlp_units=[[16, 16], [16, 16]]), {}),
    ("NBEATS", dict(h=6, input_size=15, mlp_units=[[8, 12]], stack_types=["trend", "seasonality", "identity", "trend"],
                    n_blocks=[2, 1, 1, 1], shared_weights=True, activation="PReLU", n_harmonics=3, n_basis=3,
                    basis="legendre", loss=MQLoss(level=[80])), {}),
    ("NHITS", dict(h=12, input_size=24, mlp_units=[[16, 16], [16, 16]]), {}),
    ("NHITS", dict(h=12, input_size=25, mlp_units=[[16, 16]], pooling_mode="AvgPool1d", interpolation_mode="cubic",
                   n_pool_kernel_size=[3, 2, 1], hist_exog_list=["a", "b"], futr_exog_list=["c"],
                   stat_exog_list=["s1", "s2"], activation="Softplus"), dict(hist=2, futr=1, stat=2)),
    ("NHITS", dict(h=7, input_size=20, mlp_units=[[16, 16]], interpolation_mode="nearest", n_freq_downsample=[3, 2, 1],
                   futr_exog_list=["c"], loss=MQLoss(level=[80, 90])), dict(futr=1)),
]



@pytest.mark.parametrize("name,kw,exog", NF_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(NF_CASES)])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog):
    nf_ref.nf_models()
    nf_kw = {**kw, "loss": nf_ref.nf_loss(kw["loss"])} if "loss" in kw else kw
    nf_model = nf_ref.build(name, **nf_kw)
    nd_model = MODELS[name](**kw)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 7, kw["input_size"], kw["h"], **exog)
    batch["insample_mask"][0, :3] = 0.0                  # a padded start: the mask enters the residuals
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_model_defaults_are_neuralforecasts(name):
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(getattr(nf, name).__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(MODELS[name]).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            want = ref[k]
            got = [list(u) for u in v] if k == "mlp_units" else (list(v) if isinstance(v, tuple) else v)
            assert got == want, (k, got, want)
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs", "cat_exog_list",
                                                    "categorical_cardinalities", "cat_emb_dim"}
    assert not missing, missing


@pytest.mark.parametrize("basis", ["polynomial", "legendre", "chebyshev", "changepoint", "piecewise_linear",
                                   "linear_hat", "spline"])
def test_trend_bases_match_neuralforecast(basis):
    nf_ref.nf_models()
    from neuralforecast.models.nbeats import get_basis

    from ndiv.models.nbeats import TREND_BASES
    for length, n_basis in ((24, 3), (7, 5)):
        np.testing.assert_allclose(TREND_BASES[basis](length, n_basis + 1), get_basis(length, n_basis, basis),
                                   rtol=1e-12, atol=1e-12)

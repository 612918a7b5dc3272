"""The dense models after the seed's ten: TiDE, BiTCN, DeepNPTS, NBEATSx; the flattened-input
helper they share with MLP; nn.Linear with in_features=0 (TiDE builds one).

For each model: float64 gradcheck of the loss through the model, one batch overfits, a short fit
on AirPassengers beats seasonal naive, the errors name the option; with torch + neuralforecast
installed, NeuralForecast's defaults, its state_dict loads strictly and gives the same forecast
for its default configuration and configurations with every kind of exogenous input the model
takes and a multi-output loss.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import ndiv
from ndiv import nn
from ndiv.losses import MSE, MQLoss
from ndiv.models import MODELS, NBEATSx, BiTCN, DeepNPTS, TiDE

from . import nf_reference as nf_ref

NEW = ["TiDE", "BiTCN", "DeepNPTS", "NBEATSx"]

# tiny configurations without dropout (gradcheck and overfitting need a deterministic forward):
# (model, hyperparameters, exogenous sizes of the windows_batch)
TINY = [
    ("TiDE", dict(h=3, input_size=5, hidden_size=6, decoder_output_dim=2, temporal_decoder_dim=4, temporal_width=2,
                  dropout=0.0), {}),
    ("TiDE", dict(h=3, input_size=5, hidden_size=6, decoder_output_dim=2, temporal_decoder_dim=4, temporal_width=2,
                  dropout=0.0, hist_exog_list=["x"],
                  futr_exog_list=["f"], stat_exog_list=["s"]), dict(hist=1, futr=1, stat=1)),
    ("BiTCN", dict(h=3, input_size=5, hidden_size=3, dropout=0.0), {}),
    ("BiTCN", dict(h=3, input_size=4, hidden_size=2, dropout=0.0, hist_exog_list=["x"], futr_exog_list=["f"],
                   stat_exog_list=["s"]), dict(hist=1, futr=1, stat=1)),
    ("DeepNPTS", dict(h=3, input_size=5, hidden_size=4, dropout=0.0), {}),          # BatchNorm on batch statistics
    ("DeepNPTS", dict(h=3, input_size=4, hidden_size=3, dropout=0.0, batch_norm=False, n_layers=1, hist_exog_list=["x"],
                      futr_exog_list=["f"], stat_exog_list=["s"]), dict(hist=1, futr=1, stat=1)),
    ("NBEATSx", dict(h=3, input_size=5, mlp_units=[[4, 4]], n_harmonics=1, n_polynomials=1), {}),
    ("NBEATSx", dict(h=3, input_size=4, mlp_units=[[3, 3]], stack_types=["exogenous", "identity"], n_blocks=[1, 1],
                     hist_exog_list=["x"], futr_exog_list=["f"], stat_exog_list=["s"]), dict(hist=1, futr=1, stat=1)),
]
TINY_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TINY)]


@pytest.mark.parametrize("name,kw,exog", TINY, ids=TINY_IDS)
def test_gradcheck_loss_float64(name, kw, exog):
    model = MODELS[name](**kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 3, kw["input_size"], kw["h"], **exog), np.float64,
                              requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((3, kw["h"], 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + list(model.parameters())
    inputs = [t for t in inputs if t.requires_grad]

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=32)


OVERFIT = {  # wider than TINY, still without dropout
    "TiDE": dict(hidden_size=32, decoder_output_dim=4, temporal_decoder_dim=16, dropout=0.0),
    "BiTCN": dict(hidden_size=16, dropout=0.0),
    "DeepNPTS": dict(hidden_size=32, dropout=0.0, batch_norm=False),
    "NBEATSx": dict(mlp_units=[[32, 32]]),
}


@pytest.mark.parametrize("name", NEW)
def test_one_batch_overfits(name):
    """A fixed batch of 8 windows: MSE falls by two orders of magnitude in a few hundred Adam steps.
    DeepNPTS forecasts a weighted mean of the window: its targets are window values (steps 7, 3, 0, 5)."""
    model = MODELS[name](h=4, input_size=8, loss=MSE(), **OVERFIT[name])
    rng = np.random.default_rng(1)
    batch = nf_ref.windows_batch(rng, 8, 8, 4)
    y = rng.standard_normal((8, 4, 1)).astype(np.float32)
    if name == "DeepNPTS":
        y = batch["insample_y"][:, [7, 3, 0, 5]]
    batch, y = nf_ref.as_tensors(batch), ndiv.tensor(y)
    losses = nf_ref.overfit_losses(model, batch, y, steps=300, lr=1e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 1e-2 * losses[0], (losses[0], losses[-1])


AIR = {  # small and fast; tools/compare_nf.py measures NeuralForecast's defaults
    "TiDE": dict(hidden_size=32, decoder_output_dim=8, temporal_decoder_dim=16, max_steps=50, learning_rate=1e-2,
                 windows_batch_size=64, scaler_type="standard"),
    "BiTCN": dict(max_steps=50, learning_rate=1e-2, windows_batch_size=64, scaler_type="standard"),
    "DeepNPTS": dict(max_steps=100, learning_rate=1e-2, windows_batch_size=64),        # scaler 'standard' by default
    "NBEATSx": dict(max_steps=100, mlp_units=[[64, 64], [64, 64]], scaler_type="standard"),
}


@pytest.mark.parametrize("name", NEW)
def test_air_passengers_beats_seasonal_naive(name):
    train, test = nf_ref.air_passengers()
    model = MODELS[name](h=12, input_size=24, enable_progress_bar=False, **AIR[name])
    pred = ndiv.Forecaster(models=[model], freq="MS").fit(train).predict()
    assert list(pred) == ["unique_id", "ds", name]
    y_hat = np.asarray(pred[name])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"{name}: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


SMALL = {"TiDE": dict(hidden_size=8, decoder_output_dim=2, temporal_decoder_dim=4), "BiTCN": dict(hidden_size=4),
         "DeepNPTS": dict(hidden_size=4), "NBEATSx": dict(mlp_units=[[4, 4]], stack_types=["exogenous", "identity"],
                                                         n_blocks=[1, 1])}


@pytest.mark.parametrize("name", NEW)
def test_save_load_with_futr_exog_gives_the_same_forecast(name, tmp_path):
    """TiDE with futr exogenous only saves and loads its [hidden, 0] hist projection weight."""
    train, test = nf_ref.air_passengers()
    train = dict(train, f=np.sin(np.arange(len(train["y"]))))
    futr = {"unique_id": test["unique_id"], "ds": test["ds"], "f": np.cos(np.arange(12))}
    model = MODELS[name](h=12, input_size=24, max_steps=2, futr_exog_list=["f"], enable_progress_bar=False,
                         **SMALL[name])
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    before = np.asarray(fc.predict(futr_df=futr)[name])
    fc.save(str(tmp_path / "fc"))
    np.testing.assert_array_equal(np.asarray(ndiv.Forecaster.load(str(tmp_path / "fc")).predict(futr_df=futr)[name]),
                                  before)


@pytest.mark.parametrize("name", NEW)
def test_mqloss_outputs_and_registration(name):
    kw = dict(TINY[[n for n, _, _ in TINY].index(name)][1], h=4, input_size=8)
    assert MODELS[name] is getattr(ndiv.models, name)
    if name == "DeepNPTS":                              # point losses only
        return
    model = MODELS[name](**kw, loss=MQLoss(level=[80]))
    assert model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 8, 4))).shape == (2, 4, 3)


# -- the shared pieces -----------------------------------------------------------------------------------

def test_linear_with_zero_inputs_is_its_bias():
    layer = nn.Linear(0, 3)
    assert layer.weight.shape == (3, 0) and set(layer.state_dict()) == {"weight", "bias"}
    layer.load_state_dict({"weight": np.zeros((3, 0), np.float32), "bias": np.array([1.0, 2.0, 3.0], np.float32)},
                          strict=True)
    x = ndiv.tensor(np.zeros((2, 4, 0), np.float32), requires_grad=True)
    y = layer(x)
    np.testing.assert_array_equal(y.numpy(), np.broadcast_to([1.0, 2.0, 3.0], (2, 4, 3)))
    (y * 2.0).sum().backward()
    np.testing.assert_array_equal(np.asarray(layer.bias.grad), [16.0, 16.0, 16.0])
    assert x.grad.shape == (2, 4, 0)
    no_bias = nn.Linear(0, 2, bias=False)
    np.testing.assert_array_equal(no_bias(ndiv.tensor(np.zeros((5, 0), np.float32))).numpy(), np.zeros((5, 2)))


def test_dense_input_flattens_time_major():
    from ndiv.models.common._modules import dense_input, dense_input_size
    rng = np.random.default_rng(7)
    b = nf_ref.windows_batch(rng, 2, 3, 2, hist=2, futr=1, stat=2)
    y = b["insample_y"][..., 0]
    want = np.concatenate([y, b["hist_exog"].reshape(2, -1), b["futr_exog"].reshape(2, -1), b["stat_exog"]], axis=1)
    got = dense_input(ndiv.tensor(y), nf_ref.as_tensors(b), 2, 1, 2).numpy()
    np.testing.assert_array_equal(got, want)
    assert got.shape[1] == dense_input_size(3, 2, 2, 1, 2)
    np.testing.assert_array_equal(dense_input(ndiv.tensor(y), nf_ref.as_tensors(b), 0, 0, 0).numpy(), y)


def test_tide_with_futr_exog_only_builds_the_empty_hist_projection():
    model = TiDE(h=3, input_size=5, hidden_size=6, temporal_width=2, futr_exog_list=["f"])
    sd = model.state_dict()
    assert sd["hist_exog_projection.lin1.weight"].shape == (6, 0)
    assert sd["hist_exog_projection.skip.weight"].shape == (2, 0)
    assert model._has_sample_randomness()                       # dropout=0.3 by default: no window dedupe


def test_bitcn_stacks_are_causal_each_way_and_run_the_dilated_kernel(monkeypatch):
    from ndiv.autograd.ops import fused
    calls = []
    real = fused.Conv1dDilated.apply
    monkeypatch.setattr(fused.Conv1dDilated, "apply", lambda *a, **k: calls.append(
        (k["pad_left"], k["pad_right"], k["dilation"])) or real(*a, **k))
    model = BiTCN(h=3, input_size=6, hidden_size=4, dropout=0.0, futr_exog_list=["f"])
    assert (model.n_layers_bwd, model.n_layers_fwd) == (3, 4)        # receptive fields >= 6 and >= 9 steps
    model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(3), 2, 6, 3, futr=1))).sum().backward()
    dilated = [c for c in calls if c[2] > 1 or c[0] + c[1] > 0]
    assert sorted(dilated) == sorted([(0, 1, 1), (0, 2, 2), (0, 4, 4), (0, 8, 8), (1, 0, 1), (2, 0, 2), (4, 0, 4)])
    assert all(p.grad is not None for p in model.parameters())
    x = np.random.default_rng(4).standard_normal((2, 4, 9)).astype(np.float32)
    for net, changed, same in ((model.net_bwd, slice(5, None), slice(None, 5)), (model.net_fwd, slice(None, 5), slice(5, None))):
        with ndiv.no_grad():
            a = model._stack(net, ndiv.tensor(x)).numpy()
            x2 = x.copy()
            x2[:, :, changed] += 1.0
            b = model._stack(net, ndiv.tensor(x2)).numpy()
        np.testing.assert_array_equal(a[:, :, same], b[:, :, same])   # backward: the past only; forward: the future only


def test_deepnpts_forecast_is_a_weighted_mean_of_the_window():
    model = DeepNPTS(h=3, input_size=6, hidden_size=4)
    assert model._has_sample_randomness()                      # BatchNorm and dropout: no window dedupe
    model.eval()
    y = np.random.default_rng(8).standard_normal((5, 6, 1)).astype(np.float32)
    with ndiv.no_grad():
        out = model({"insample_y": ndiv.tensor(y)}).numpy()
        shifted = model({"insample_y": ndiv.tensor(y + 100.0)}).numpy()
    assert out.shape == (5, 3, 1)
    assert (out[:, :, 0] >= y.min(1) - 1e-5).all() and (out[:, :, 0] <= y.max(1) + 1e-5).all()
    assert not np.allclose(shifted, out + 100.0)               # the weights read the values (not shift-invariant)


def test_nbeatsx_dropout_trains_stochastically_and_turns_off_window_dedupe():
    model = NBEATSx(h=4, input_size=8, mlp_units=[[8, 8]], dropout_prob_theta=0.5)
    assert model._has_sample_randomness()
    batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(4), 2, 8, 4))
    model.train()
    assert not np.allclose(model(batch).numpy(), model(batch).numpy())
    model.eval()
    np.testing.assert_array_equal(model(batch).numpy(), model(batch).numpy())


def test_nbeatsx_reuses_nbeats_blocks_and_bases():
    from ndiv.models.nbeats import NBEATSBlock, SeasonalityBasis, TrendBasis
    model = NBEATSx(h=4, input_size=8, mlp_units=[[4, 4]], n_polynomials=3, stack_types=["trend", "seasonality"],
                    n_blocks=[1, 1], futr_exog_list=["f"])
    assert all(isinstance(b, NBEATSBlock) for b in model.blocks)
    assert isinstance(model.blocks[0].basis, TrendBasis) and model.blocks[0].basis.backcast_basis.shape == (4, 8)
    assert isinstance(model.blocks[1].basis, SeasonalityBasis)
    assert model.blocks[0].layers[0].in_features == 8 + 1 * (8 + 4)           # residual | futr exog


@pytest.mark.parametrize("make,match", [
    (lambda: TiDE(h=4, input_size=8, dropout=1.0), "dropout must be a probability in"),
    (lambda: TiDE(h=4, input_size=8, temporal_width=0), "temporal_width must be a positive integer"),
    (lambda: BiTCN(h=4, input_size=1), "input_size must be at least 2"),
    (lambda: BiTCN(h=4, input_size=8, dropout=-0.1), "dropout must be a probability in"),
    (lambda: DeepNPTS(h=4, input_size=8, loss=MQLoss(level=[80])), "only supports point loss functions .* as loss"),
    (lambda: DeepNPTS(h=4, input_size=8, loss=_nd_loss(("DistributionLoss", "Poisson"))), "only supports point loss"),
    (lambda: DeepNPTS(h=4, input_size=8, valid_loss=_nd_loss(("DistributionLoss", "Normal"))), "as valid loss"),
    (lambda: DeepNPTS(h=4, input_size=8, exclude_insample_y=True), "exclude_insample_y=True is not possible"),
    (lambda: DeepNPTS(h=4, input_size=8, n_layers=0), "n_layers must be a positive integer"),
    (lambda: NBEATSx(h=4, input_size=8, stack_types=["exogenous"], n_blocks=[1], hist_exog_list=["x"]),
     "'exogenous' stack needs futr_exog_list or stat_exog_list"),
    (lambda: NBEATSx(h=4, input_size=8, stack_types=["identity", "fourier"], n_blocks=[1, 1]), "stack_types must be among"),
    (lambda: NBEATSx(h=1, input_size=8), "h=1 does not work"),
    (lambda: NBEATSx(h=4, input_size=8, activation="GELU"), "activation must be one of"),
    (lambda: NBEATSx(h=4, input_size=8, n_blocks=[1, 1]), "n_blocks needs one entry per stack"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- NeuralForecast as the reference (skipped without torch + neuralforecast) ----------------------------

ALL_EXOG = dict(hist_exog_list=["a", "b"], futr_exog_list=["c"], stat_exog_list=["s1", "s2"])
ALL_EXOG_SIZES = dict(hist=2, futr=1, stat=2)
NF_CASES = [
    ("MLP", dict(h=5, input_size=9, hidden_size=8, **ALL_EXOG), ALL_EXOG_SIZES),
    ("TiDE", dict(h=12, input_size=24), {}),
    ("TiDE", dict(h=5, input_size=9, hidden_size=8, decoder_output_dim=3, temporal_decoder_dim=6,
                  num_encoder_layers=2, num_decoder_layers=2, loss=MQLoss(level=[80, 90]), **ALL_EXOG),
     ALL_EXOG_SIZES),
    ("TiDE", dict(h=5, input_size=9, hidden_size=8, layernorm=False, temporal_width=3, futr_exog_list=["c", "d"]),
     dict(futr=2)),
    ("TiDE", dict(h=4, input_size=7, hidden_size=8, decoder_output_dim=3, hist_exog_list=["a"],
                  loss=("DistributionLoss", "Normal")), dict(hist=1)),
    ("BiTCN", dict(h=12, input_size=24), {}),
    ("BiTCN", dict(h=5, input_size=9, hidden_size=4, loss=MQLoss(level=[80, 90]), **ALL_EXOG), ALL_EXOG_SIZES),
    ("BiTCN", dict(h=3, input_size=2, hidden_size=4, futr_exog_list=["c", "d"], loss=("DistributionLoss", "StudentT")),
     dict(futr=2)),
    # DeepNPTS takes point losses only (NF raises otherwise; test_errors_name_the_option checks ours)
    ("DeepNPTS", dict(h=12, input_size=24), {}),
    ("DeepNPTS", dict(h=5, input_size=9, hidden_size=4, n_layers=3, **ALL_EXOG), ALL_EXOG_SIZES),
    ("DeepNPTS", dict(h=3, input_size=6, hidden_size=4, batch_norm=False, dropout=0.0, futr_exog_list=["c", "d"],
                      loss=MSE()), dict(futr=2)),
    ("NBEATSx", dict(h=12, input_size=24), {}),
    ("NBEATSx", dict(h=5, input_size=9, mlp_units=[[8, 8]], stack_types=["exogenous", "trend", "seasonality", "identity"],
                     n_blocks=[2, 1, 1, 1], n_polynomials=3, n_harmonics=1, loss=MQLoss(level=[80]), **ALL_EXOG),
     ALL_EXOG_SIZES),
    ("NBEATSx", dict(h=4, input_size=7, mlp_units=[[8, 8], [8, 6]], stack_types=["exogenous", "identity"], n_blocks=[2, 2],
                     shared_weights=True, activation="PReLU", stat_exog_list=["s1"],
                     loss=("DistributionLoss", "Normal")), dict(stat=1)),
    ("NBEATSx", dict(h=4, input_size=7, mlp_units=[[8, 8]], stack_types=["exogenous", "trend"], n_blocks=[1, 1],
                     futr_exog_list=["c", "d"], hist_exog_list=["a"]), dict(futr=2, hist=1)),
]


def _nf_twin_loss(loss):
    """NeuralForecast's twin of an ndiv loss; ('DistributionLoss', name) builds both sides."""
    import neuralforecast.losses.pytorch as nf_losses
    if isinstance(loss, tuple):
        return nf_losses.DistributionLoss(loss[1], level=[80])
    return nf_ref.nf_loss(loss)


def _nd_loss(loss):
    from ndiv.losses import DistributionLoss
    return DistributionLoss(loss[1], level=[80]) if isinstance(loss, tuple) else loss


@pytest.mark.parametrize("name,kw,exog", NF_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(NF_CASES)])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog):
    nf_ref.nf_models()
    nf_model = nf_ref.build(name, **({**kw, "loss": _nf_twin_loss(kw["loss"])} if "loss" in kw else kw))
    nd_model = MODELS[name](**({**kw, "loss": _nd_loss(kw["loss"])} if "loss" in kw else kw))
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 7, kw["input_size"], kw["h"], **exog)
    batch["insample_mask"][0, :3] = 0.0                  # a padded start (NBEATSx's residuals read the mask)
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


def test_deepnpts_batch_norm_matches_neuralforecast_in_training_and_after():
    """Training mode (batch statistics) gives NF's forecast and running statistics; eval mode
    then uses those running statistics as NF does."""
    nf_ref.nf_models()
    import torch
    kw = dict(h=4, input_size=7, hidden_size=5, dropout=0.0, stat_exog_list=["s"])
    nf_model, nd_model = nf_ref.build("DeepNPTS", **kw), DeepNPTS(**kw)
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(9), 6, 7, 4, stat=1)
    nf_model.train()
    nd_model.train()
    for _ in range(2):
        with torch.no_grad():
            ref = nf_model({k: None if v is None else torch.tensor(v) for k, v in batch.items()}).numpy()
        with ndiv.no_grad():
            got = nd_model(nf_ref.as_tensors(batch)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)
    ours = nd_model.state_dict()
    for k, v in nf_ref.nf_state_dict(nf_model).items():
        np.testing.assert_allclose(np.asarray(ours[k].numpy() if hasattr(ours[k], "numpy") else ours[k]), v,
                                   rtol=1e-5, atol=1e-6, err_msg=k)
    nf_ref.assert_same_forward(nf_model, nd_model, nf_ref.windows_batch(np.random.default_rng(10), 3, 7, 4, stat=1))


@pytest.mark.parametrize("name", NEW)
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

"""TCN: dilated causal convolutions + MLP decoder (NeuralForecast's TCN).

Float64 gradcheck of the loss, one batch overfits, AirPassengers beats seasonal naive, the
encoder is causal and runs the fused dilated conv1d kernel, the errors name the option; with
torch + neuralforecast installed, NeuralForecast's defaults, state_dict layout (its CausalConv1d
lists each conv twice) and forward on its own weights, exogenous included.
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import ndiv
from ndiv.losses import MSE, MQLoss
from ndiv.models import TCN

from . import nf_reference as nf_ref

SMALL = dict(kernel_size=2, dilations=[1, 2], encoder_hidden_size=5, decoder_hidden_size=4)
TINY = [
    (dict(h=3, input_size=6, **SMALL), {}),
    (dict(h=3, input_size=6, hist_exog_list=["x"], futr_exog_list=["f"], stat_exog_list=["s"], **SMALL),
     dict(hist=1, futr=1, stat=1)),
    (dict(h=4, input_size=5, kernel_size=3, dilations=[1, 3], encoder_hidden_size=4, decoder_hidden_size=4,
          encoder_activation="Tanh"), {}),
]



@pytest.mark.parametrize("kw,exog", TINY, ids=range(len(TINY)))
def test_gradcheck_loss_float64(kw, exog):
    model = TCN(**kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 2, kw["input_size"], kw["h"], **exog), np.float64,
                        requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((2, kw["h"], 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + list(model.parameters())

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=32)


def test_one_batch_overfits():
    model = TCN(h=4, input_size=8, kernel_size=2, dilations=[1, 2], encoder_hidden_size=16, decoder_hidden_size=32,
                loss=MSE())
    rng = np.random.default_rng(1)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 8, 8, 4))
    y = ndiv.tensor(rng.standard_normal((8, 4, 1)).astype(np.float32))
    losses = nf_ref.overfit_losses(model, batch, y, steps=300, lr=1e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 1e-2 * losses[0], (losses[0], losses[-1])


def test_air_passengers_beats_seasonal_naive():
    train, test = nf_ref.air_passengers()
    # narrow and fast (MAE ~27 against naive's 47.8); tools/compare_nf.py measures NF's defaults
    model = TCN(h=12, input_size=24, encoder_hidden_size=16, decoder_hidden_size=16, max_steps=100,
                learning_rate=1e-2, enable_progress_bar=False)
    pred = ndiv.Forecaster(models=[model], freq="MS").fit(train).predict()
    assert list(pred) == ["unique_id", "ds", "TCN"]
    y_hat = np.asarray(pred["TCN"])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    np.testing.assert_array_equal(np.asarray(pred["ds"]), test["ds"])
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"TCN: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


def test_encoder_is_causal_and_matches_conv_then_chomp():
    model = TCN(h=3, input_size=12, kernel_size=3, dilations=[1, 2, 4], encoder_hidden_size=6)
    x = np.random.default_rng(2).standard_normal((2, 12, 1)).astype(np.float32)
    enc = model.hist_encoder
    with ndiv.no_grad():
        a = enc(ndiv.tensor(x)).numpy()
        x2 = x.copy()
        x2[:, 7:] += 1.0                                   # change the future from t = 7 on
        b = enc(ndiv.tensor(x2)).numpy()
        np.testing.assert_array_equal(a[:, :7], b[:, :7])  # outputs before t = 7 do not move
        assert not np.allclose(a[:, 7:], b[:, 7:])
        # forward (left padding only) equals NF's causalconv: symmetric padding, conv, chomp, act
        h = ndiv.tensor(x).swapaxes(1, 2)
        for layer in enc.tcn:
            h = layer.causalconv(h)
        np.testing.assert_allclose(h.swapaxes(1, 2).numpy(), a, rtol=1e-5, atol=1e-6)


def test_fused_conv1d_kernel_runs(monkeypatch):
    from ndiv.autograd.ops import fused
    calls = []
    real = fused.Conv1dDilated.apply
    monkeypatch.setattr(fused.Conv1dDilated, "apply", lambda *a, **k: calls.append(k["dilation"]) or real(*a, **k))
    model = TCN(h=3, input_size=6, **SMALL)
    model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(3), 2, 6, 3))).sum().backward()
    assert calls == SMALL["dilations"]
    assert all(p.grad is not None for p in model.parameters())


def test_conv_is_one_parameter_under_two_names():
    model = TCN(h=3, input_size=6, **SMALL)
    sd = model.state_dict()
    assert sd["hist_encoder.tcn.0.conv.weight"] is sd["hist_encoder.tcn.0.causalconv.0.weight"]
    assert len(list(model.parameters())) == 2 * len(SMALL["dilations"]) + 2 + 4


def test_mqloss_outputs():
    model = TCN(h=4, input_size=8, loss=MQLoss(level=[80]), **SMALL)
    assert model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 8, 4))).shape == (2, 4, 3)


@pytest.mark.parametrize("make,match", [
    (lambda: TCN(h=4, input_size=8, kernel_size=0), "kernel_size must be a positive int"),
    (lambda: TCN(h=4, input_size=8, dilations=[1, 0]), "dilations must be a non-empty list"),
    (lambda: TCN(h=4, input_size=8, encoder_activation="Swish"), "encoder_activation='Swish' is not supported"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


NF_CASES = [
    (dict(h=12, input_size=24), {}),
    (dict(h=6, input_size=20, kernel_size=3, dilations=[1, 2, 4], encoder_hidden_size=16, decoder_hidden_size=8,
          encoder_activation="Tanh", hist_exog_list=["a", "b"], futr_exog_list=["c"], stat_exog_list=["s"]),
     dict(hist=2, futr=1, stat=1)),
    (dict(h=12, input_size=8, dilations=[1, 2], encoder_hidden_size=8, decoder_layers=1, futr_exog_list=["c"],
          loss=MQLoss(level=[80, 90])), dict(futr=1)),
]


@pytest.mark.parametrize("kw,exog", NF_CASES, ids=range(len(NF_CASES)))
def test_neuralforecast_weights_give_the_same_forecast(kw, exog):
    nf_ref.nf_models()
    if "loss" in kw:
        import neuralforecast.losses.pytorch as nf_losses
        nf_kw = {**kw, "loss": nf_losses.MQLoss(quantiles=[float(q) for q in kw["loss"].quantiles])}
    else:
        nf_kw = kw
    nf_model = nf_ref.build("TCN", **nf_kw)
    nd_model = TCN(**kw)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 7, kw["input_size"], kw["h"], **exog)
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


def test_model_defaults_are_neuralforecasts():
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(nf.TCN.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(TCN).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            assert (list(v) if isinstance(v, tuple) else v) == ref[k], (k, v, ref[k])
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs", "cat_exog_list",
                                                    "categorical_cardinalities", "cat_emb_dim"}
    assert not missing, missing


def test_save_and_load_give_the_same_forecast(tmp_path):
    train, _ = nf_ref.air_passengers()
    fc = ndiv.Forecaster(models=[TCN(h=12, input_size=24, max_steps=3, enable_progress_bar=False, **SMALL)],
                         freq="MS").fit(train)
    fc.save(str(tmp_path / "tcn"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "tcn"))
    assert loaded.models[0].dilations == SMALL["dilations"]
    np.testing.assert_array_equal(np.asarray(loaded.predict()["TCN"]), np.asarray(fc.predict()["TCN"]))

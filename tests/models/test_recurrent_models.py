"""The recurrent models: RNN, LSTM, GRU (NeuralForecast's direct, recurrent=False forecasters).

For each: float64 gradcheck of the loss through the model, one batch overfits, AirPassengers
beats seasonal naive, the fused LSTM/GRU sequence kernels run, the errors name the option; and
with torch + neuralforecast installed, NeuralForecast's defaults, state_dict layout and forward on
its own weights (exogenous and h > input_size included).
"""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import ndiv
from ndiv.losses import MSE, MQLoss
from ndiv.models import GRU, LSTM, RNN

from . import nf_reference as nf_ref

MODELS = {"RNN": RNN, "LSTM": LSTM, "GRU": GRU}
SMALL = dict(encoder_n_layers=2, encoder_hidden_size=5, decoder_hidden_size=4)

# tiny configurations: (model, hyperparameters, exogenous sizes of the windows_batch)
TINY = [
    ("RNN", dict(h=3, input_size=6, **SMALL), {}),
    ("RNN", dict(h=3, input_size=6, hist_exog_list=["x"], futr_exog_list=["f"],
                 stat_exog_list=["s"], **SMALL), dict(hist=1, futr=1, stat=1)),
    ("LSTM", dict(h=3, input_size=6, **SMALL), {}),
    ("LSTM", dict(h=7, input_size=5, futr_exog_list=["f"], stat_exog_list=["s"], **SMALL), dict(futr=1, stat=1)),
    ("GRU", dict(h=3, input_size=6, **SMALL), {}),
    ("GRU", dict(h=3, input_size=6, hist_exog_list=["x"], futr_exog_list=["f"], decoder_layers=3, **SMALL),
     dict(hist=1, futr=1)),
]
TINY_IDS = [f"{name}-{i}" for i, (name, _, _) in enumerate(TINY)]



# -- gradients, overfitting, AirPassengers -----------------------------------------------------------

@pytest.mark.parametrize("name,kw,exog", TINY, ids=TINY_IDS)
def test_gradcheck_loss_float64(name, kw, exog):
    model = MODELS[name](**kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 2, kw["input_size"], kw["h"], **exog), np.float64,
                        requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((2, kw["h"], 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + list(model.parameters())

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    # tensors of more than 32 elements are checked along 8 random directions each (keeps it fast)
    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=32)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_one_batch_overfits(name):
    """8 fixed windows, random targets: the MSE falls by orders of magnitude in 300 Adam steps."""
    model = MODELS[name](h=4, input_size=8, encoder_hidden_size=16, decoder_hidden_size=32, loss=MSE())
    rng = np.random.default_rng(1)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 8, 8, 4))
    y = ndiv.tensor(rng.standard_normal((8, 4, 1)).astype(np.float32))
    losses = nf_ref.overfit_losses(model, batch, y, steps=300, lr=1e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 1e-2 * losses[0], (losses[0], losses[-1])


AIR = {  # narrow, fast configurations (MAE ~12-16 against naive's 47.8); tools/compare_nf.py measures NF's defaults
    "RNN": dict(encoder_hidden_size=16, decoder_hidden_size=16, max_steps=150, learning_rate=5e-3),
    "LSTM": dict(encoder_hidden_size=32, decoder_hidden_size=32, max_steps=100, learning_rate=5e-3),
    "GRU": dict(encoder_hidden_size=16, decoder_hidden_size=16, max_steps=100, learning_rate=1e-2),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_air_passengers_beats_seasonal_naive(name):
    train, test = nf_ref.air_passengers()
    model = MODELS[name](h=12, input_size=24, enable_progress_bar=False, **AIR[name])
    pred = ndiv.Forecaster(models=[model], freq="MS").fit(train).predict()
    assert list(pred) == ["unique_id", "ds", name]
    y_hat = np.asarray(pred[name])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    np.testing.assert_array_equal(np.asarray(pred["ds"]), test["ds"])
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"{name}: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


# -- model-specific behaviour --------------------------------------------------------------------------

@pytest.mark.parametrize("name,fn", [("LSTM", "lstm_seq"), ("GRU", "gru_seq")])
def test_fused_sequence_kernel_runs(name, fn, monkeypatch):
    from ndiv.autograd.ops import fused
    calls = []
    real = getattr(fused, fn)
    monkeypatch.setattr(fused, fn, lambda *a, **k: calls.append(1) or real(*a, **k))
    model = MODELS[name](h=3, input_size=6, **SMALL)
    out = model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(2), 2, 6, 3)))
    out.sum().backward()
    assert len(calls) == SMALL["encoder_n_layers"]       # one fused call per layer, forward and BPTT
    assert all(p.grad is not None for p in model.parameters())


def test_h_longer_than_input_size_upsamples_the_hidden_states():
    model = LSTM(h=10, input_size=4, **SMALL)
    assert model.upsample_sequence.weight.shape == (10, 4)
    out = model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(3), 2, 4, 10)))
    assert out.shape == (2, 10, 1)
    assert not hasattr(LSTM(h=4, input_size=10, **SMALL), "upsample_sequence")


def test_input_size_below_one_means_three_horizons():
    with pytest.warns(UserWarning, match="3 \\* h = 36"):
        model = GRU(h=12, **SMALL)
    assert model.input_size == 36


def test_encoder_dropout_trains_stochastically_and_turns_off_window_dedupe():
    model = LSTM(h=3, input_size=6, encoder_dropout=0.5, **SMALL)
    assert model._has_sample_randomness()
    assert not LSTM(h=3, input_size=6, **SMALL)._has_sample_randomness()
    batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(4), 2, 6, 3))
    model.train()
    assert not np.allclose(model(batch).numpy(), model(batch).numpy())
    model.eval()
    np.testing.assert_array_equal(model(batch).numpy(), model(batch).numpy())


@pytest.mark.parametrize("name", sorted(MODELS))
def test_save_and_load_give_the_same_forecast(name, tmp_path):
    train, _ = nf_ref.air_passengers()
    fc = ndiv.Forecaster(models=[MODELS[name](h=12, input_size=24, max_steps=3, enable_progress_bar=False, **SMALL)],
                         freq="MS").fit(train)
    fc.save(str(tmp_path / name))
    loaded = ndiv.Forecaster.load(str(tmp_path / name))
    assert type(loaded.models[0]) is MODELS[name]
    np.testing.assert_array_equal(np.asarray(loaded.predict()[name]), np.asarray(fc.predict()[name]))


def test_mqloss_outputs():
    for cls in MODELS.values():
        model = cls(h=4, input_size=8, loss=MQLoss(level=[80]), **SMALL)
        out = model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 8, 4)))
        assert out.shape == (2, 4, 3)


@pytest.mark.parametrize("make,match", [
    (lambda: LSTM(h=4, input_size=8, recurrent=True, encoder_hidden_size=2, loss=MQLoss(level=[80])),
     "needs encoder_hidden_size > 3"),
    (lambda: RNN(h=4, input_size=8, encoder_activation="sigmoid"), "encoder_activation must be 'tanh' or 'relu'"),
    (lambda: GRU(h=4, input_size=8, decoder_activation="Swish"), "decoder_activation='Swish' is not supported"),
    (lambda: LSTM(h=4, input_size=8, encoder_dropout=1.5), "dropout must be a number in"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_rnn_encoder_activation_is_tanh_as_in_neuralforecast():
    """NF 3.3 accepts encoder_activation but never passes it to nn.RNN: its checkpoints are tanh."""
    with pytest.warns(UserWarning, match="encoder_activation='relu' has no effect"):
        relu = RNN(h=3, input_size=6, encoder_activation="relu", **SMALL)
    assert relu.hist_encoder.mode == "RNN_TANH"
    nf_ref.nf_models()
    nf_model = nf_ref.build("RNN", h=3, input_size=6, encoder_activation="relu", **SMALL)
    nf_ref.load_nf_weights(nf_model, relu)
    nf_ref.assert_same_forward(nf_model, relu, nf_ref.windows_batch(np.random.default_rng(7), 4, 6, 3))


def test_deprecated_options_warn():
    with pytest.warns(DeprecationWarning, match="encoder_activation is deprecated"):
        GRU(h=4, input_size=8, encoder_activation="tanh", **SMALL)
    with pytest.warns(UserWarning, match="context_size is deprecated"):
        LSTM(h=4, input_size=8, context_size=10, **SMALL)


# -- NeuralForecast as the reference (skipped without torch + neuralforecast) --------------------------

NF_CASES = [
    ("RNN", dict(h=12, input_size=24), {}),
    ("RNN", dict(h=6, input_size=15, encoder_n_layers=3, encoder_hidden_size=16,
                 decoder_layers=1, hist_exog_list=["a", "b"], futr_exog_list=["c"], stat_exog_list=["s"]),
     dict(hist=2, futr=1, stat=1)),
    ("LSTM", dict(h=12, input_size=24), {}),
    ("LSTM", dict(h=12, input_size=8, encoder_hidden_size=16, decoder_hidden_size=8, decoder_activation="Tanh",
                  hist_exog_list=["a"], futr_exog_list=["c", "d"], loss=MQLoss(level=[80])), dict(hist=1, futr=2)),
    ("GRU", dict(h=12, input_size=24), {}),
    ("GRU", dict(h=5, input_size=20, encoder_n_layers=1, encoder_hidden_size=24, decoder_layers=3,
                 decoder_activation="PReLU", stat_exog_list=["s1", "s2"], futr_exog_list=["c"]),
     dict(stat=2, futr=1)),
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
            assert v == ref[k], (k, v, ref[k])
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs", "cat_exog_list",
                                                    "categorical_cardinalities", "cat_emb_dim"}
    assert not missing, missing

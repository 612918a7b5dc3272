"""VanillaTransformer and Informer (NeuralForecast's encoder-decoder transformers).

With torch + neuralforecast installed: NF's state_dict (the positional tables included) loads
strictly and gives the same forecast for the default configuration and others (futr exogenous
and categorical columns, MQLoss, DistributionLoss, layer counts, Informer without distilling);
Informer either with a `factor` that keeps every query (full attention, any draw) or with NF's
own key draws injected through ndiv.random.inject; one training step (loss, every gradient, the
Adam update) on the same batch without dropout. Without them: a float64 gradcheck, a short
Forecaster fit that beats a naive forecast, save/load, registration and the option errors.
"""
from __future__ import annotations

import contextlib
import inspect

import numpy as np
import pytest

import ndiv
from ndiv.losses import MQLoss
from ndiv.models import MODELS, Informer, VanillaTransformer

from . import nf_reference as nf_ref
from .test_new_dense_models import _nd_loss, _nf_twin_loss

NAMES = ["VanillaTransformer", "Informer"]
TINY = dict(h=3, input_size=6, hidden_size=4, n_head=2, conv_hidden_size=4, dropout=0.0)


@contextlib.contextmanager
def nf_key_draws(monkeypatch):
    """Record the keys NF's ProbAttention draws (torch.randint), to inject them into ndiv."""
    import torch
    draws, real = [], torch.randint

    def spy(*args, **kwargs):
        out = real(*args, **kwargs)
        draws.append(out.numpy().copy())
        return out
    monkeypatch.setattr(torch, "randint", spy)
    yield draws
    monkeypatch.setattr(torch, "randint", real)


def _both_forward(nf_model, nd_model, batch, monkeypatch, inject: bool, train=False):
    """(NF's output, ndiv's output) on the same numpy batch; with inject, ndiv gets NF's key draws."""
    import torch
    nf_model.train(train)
    nd_model.train(train)
    with nf_key_draws(monkeypatch) as draws:
        ref = nf_model({k: None if v is None else torch.tensor(v) for k, v in batch.items()})
    with ndiv.random.inject(randint=draws) if inject else contextlib.nullcontext():
        got = nd_model(nf_ref.as_tensors(batch))
    return ref, got, draws


# name, hyperparameters, exogenous sizes of the batch, inject NF's key draws
# (Informer-3 scores its sampled keys from one full GEMM, Informer-5 and -6 gather K_sample as NF)
NF_CASES = [
    ("VanillaTransformer", dict(h=12, input_size=24), {}, False),
    ("VanillaTransformer", dict(h=5, input_size=9, hidden_size=8, n_head=2, conv_hidden_size=6, encoder_layers=3,
                                decoder_layers=2, activation="relu", futr_exog_list=["a", "b"],
                                loss=MQLoss(level=[80, 90])), dict(futr=2), False),
    ("VanillaTransformer", dict(h=4, input_size=10, hidden_size=6, n_head=3, decoder_input_size_multiplier=0.3,
                                loss=("DistributionLoss", "Normal")), {}, False),
    ("Informer", dict(h=12, input_size=24), {}, True),
    ("Informer", dict(h=5, input_size=9, hidden_size=8, n_head=2, conv_hidden_size=6, factor=10,
                      futr_exog_list=["a"], loss=MQLoss(level=[80])), dict(futr=1), False),
    ("Informer", dict(h=6, input_size=20, hidden_size=8, n_head=2, conv_hidden_size=6, factor=1, encoder_layers=3,
                      decoder_layers=2, futr_exog_list=["a", "b"], activation="relu"), dict(futr=2), True),
    ("Informer", dict(h=4, input_size=16, hidden_size=8, n_head=4, factor=2, distil=False, encoder_layers=3,
                      loss=("DistributionLoss", "StudentT")), {}, True),
]


@pytest.mark.parametrize("name,kw,exog,inject", NF_CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(NF_CASES)])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog, inject, monkeypatch):
    nf_ref.nf_models()
    nf_model = nf_ref.build(name, **({**kw, "loss": _nf_twin_loss(kw["loss"])} if "loss" in kw else kw))
    nd_model = MODELS[name](**({**kw, "loss": _nd_loss(kw["loss"])} if "loss" in kw else kw))
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    assert nd_model.state_dict()["enc_embedding.position_embedding.pe"].shape == (1, 5000, kw.get("hidden_size", 128))
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 5, kw["input_size"], kw["h"], **exog)
    ref, got, draws = _both_forward(nf_model, nd_model, batch, monkeypatch, inject)
    assert got.shape == tuple(ref.shape)
    np.testing.assert_allclose(got.numpy(), ref.detach().numpy(), rtol=1e-4, atol=1e-5)
    if name == "Informer":
        assert len(draws) == kw.get("encoder_layers", 2) + 2 * kw.get("decoder_layers", 1)   # one per attention
    if name == "Informer" and not inject:       # every query kept: full attention, whatever keys are drawn
        ndiv.manual_seed(123)
        with ndiv.no_grad():
            np.testing.assert_allclose(nd_model(nf_ref.as_tensors(batch)).numpy(), got.numpy(), rtol=1e-6, atol=1e-7)


def test_informer_samples_keys_from_ndivs_generator():
    """Default factor: the forecast depends on the keys drawn; the same seed gives the same draw."""
    model = Informer(**{**TINY, "input_size": 24, "h": 12, "factor": 1}).eval()
    batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(1), 4, 24, 12))
    outs = []
    for seed in (5, 5, 6):
        ndiv.manual_seed(seed)
        with ndiv.no_grad():
            outs.append(model(batch).numpy())
    np.testing.assert_array_equal(outs[0], outs[1])
    assert not np.allclose(outs[0], outs[2])
    assert model._has_sample_randomness()


def test_categorical_futr_columns_match_neuralforecast():
    nf = nf_ref.nf_models()
    from .test_categorical import _nf_forward, _raw_batch
    exog = dict(hist_exog_list=[], futr_exog_list=["fc", "f1"], stat_exog_list=[], cat_exog_list=["fc"],
                categorical_cardinalities={"fc": 7})
    for name in NAMES:
        assert getattr(nf, name).EXOGENOUS_CAT and MODELS[name].EXOGENOUS_CAT
        kw = dict(h=4, input_size=8, hidden_size=8, n_head=2, factor=10, **exog)
        kw = {k: v for k, v in kw.items() if k != "factor" or name == "Informer"}
        nf_model, nd_model = nf_ref.build(name, **kw), MODELS[name](**kw)
        nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
        nf_ref.load_nf_weights(nf_model, nd_model)
        nf_model.eval()
        nd_model.eval()
        batch = _raw_batch(np.random.default_rng(3), 5, 8, 4, exog)
        b, L = batch["insample_y"].shape[:2]
        batch.update(hist_exog=np.zeros((b, L, 0), np.float32), stat_exog=np.zeros((b, 0), np.float32))
        ref = _nf_forward(nf_model, batch)
        with ndiv.no_grad():
            got = nd_model(nd_model._tensors(batch)).numpy()
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


# -- one training step ----------------------------------------------------------------------------------

STEP_CASES = [
    ("VanillaTransformer", dict(h=4, input_size=8, hidden_size=8, n_head=2, conv_hidden_size=6, dropout=0.0,
                                futr_exog_list=["a"]), dict(futr=1)),
    ("Informer", dict(h=4, input_size=16, hidden_size=8, n_head=2, conv_hidden_size=6, dropout=0.0, factor=1,
                      encoder_layers=3), {}),
]


@pytest.mark.parametrize("name,kw,exog", STEP_CASES, ids=[c[0] for c in STEP_CASES])
def test_one_training_step_matches_neuralforecast(name, kw, exog, monkeypatch):
    """Same weights, same batch (Informer: NF's key draws injected), no dropout, training mode
    (Informer's distilling BatchNorm on batch statistics): the loss, every gradient and the
    parameters after an Adam step agree."""
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    import neuralforecast.losses.pytorch as nf_losses
    nf_model, nd_model = nf_ref.build(name, **kw), MODELS[name](**kw)
    nf_ref.load_nf_weights(nf_model, nd_model)
    rng = np.random.default_rng(11)
    batch = nf_ref.windows_batch(rng, 6, kw["input_size"], kw["h"], **exog)
    y = rng.standard_normal((6, kw["h"], 1)).astype(np.float32)
    t_opt = torch.optim.Adam(nf_model.parameters(), lr=1e-2)
    n_opt = ndiv.optim.Adam(nd_model.parameters(), lr=1e-2)
    ref, got, _ = _both_forward(nf_model, nd_model, batch, monkeypatch, inject=name == "Informer", train=True)
    t_loss = nf_losses.MAE()(y=torch.tensor(y), y_hat=ref)
    n_loss = nd_model.loss(y=ndiv.tensor(y), y_hat=got)
    t_loss.backward()
    n_loss.backward()
    assert abs(n_loss.item() - t_loss.item()) <= 1e-5 * abs(t_loss.item())
    nd_params = dict(nd_model.named_parameters())
    t_grads = {k: p.grad.numpy() for k, p in nf_model.named_parameters()}
    # gradients that are 0 in exact arithmetic (the key projection's bias: softmax ignores a shift
    # of every score) are float32 noise in both, and Adam turns noise of any size into a step of lr
    noise = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
    for k, g in t_grads.items():
        err = np.abs(np.asarray(nd_params[k].grad) - g).max()
        assert err <= 1e-3 * np.abs(g).max() + noise, (k, err)
    before = {k: p.detach().numpy().copy() for k, p in nf_model.named_parameters()}
    t_opt.step()
    n_opt.step()
    for k, p in nf_model.named_parameters():
        after = p.detach().numpy()
        tol = 2e-3 * np.abs(after - before[k]).max() + 1e-6 * np.abs(before[k]).max() + 1e-8
        tol = np.where(np.abs(t_grads[k]) < noise, 2 * 1e-2, tol)
        err = np.abs(nd_params[k].numpy() - after)
        assert (err <= tol).all(), (k, float(err.max()))


# -- without torch -------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_loss_float64(name):
    kw = dict(TINY, futr_exog_list=["f"]) if name == "VanillaTransformer" else dict(TINY, factor=1)
    model = MODELS[name](**kw).double().eval()          # eval: the distilling BatchNorm's running statistics
    rng = np.random.default_rng(0)
    raw = nf_ref.windows_batch(rng, 2, kw["input_size"], kw["h"], futr=1 if "futr_exog_list" in kw else 0)
    batch = nf_ref.as_tensors(raw, np.float64, requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((2, kw["h"], 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + \
        [p for p in model.parameters() if p.requires_grad]

    def loss(*_):
        ndiv.manual_seed(0)                              # Informer: the same key draw at every evaluation
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=6, n_directions=3)


AIR = dict(hidden_size=16, n_head=2, conv_hidden_size=16, max_steps=60, learning_rate=3e-3, windows_batch_size=32,
           scaler_type="standard", dropout=0.0, enable_progress_bar=False)


@pytest.mark.parametrize("name", NAMES)
def test_air_passengers_fit_predict_beats_the_last_value(name):
    train, test = nf_ref.air_passengers()
    model = MODELS[name](h=12, input_size=24, **AIR)
    pred = ndiv.Forecaster(models=[model], freq="MS").fit(train).predict()
    assert list(pred) == ["unique_id", "ds", name]
    y_hat = np.asarray(pred[name])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), float(np.mean(np.abs(train["y"][-1] - test["y"])))
    print(f"{name}: AirPassengers MAE {mae:.2f} (last value {naive:.2f})")
    assert mae < naive, (mae, naive)


@pytest.mark.parametrize("name", NAMES)
def test_save_load_with_futr_exog_gives_the_same_forecast(name, tmp_path):
    train, test = nf_ref.air_passengers()
    train = dict(train, f=np.sin(np.arange(len(train["y"]))))
    futr = {"unique_id": test["unique_id"], "ds": test["ds"], "f": np.cos(np.arange(12))}
    model = MODELS[name](h=12, input_size=24, max_steps=2, futr_exog_list=["f"], enable_progress_bar=False,
                         **{k: v for k, v in TINY.items() if k not in ("h", "input_size")})
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    ndiv.manual_seed(0)                                  # Informer draws keys at predict time
    before = np.asarray(fc.predict(futr_df=futr)[name])
    fc.save(str(tmp_path / "fc"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "fc"))
    assert "enc_embedding.position_embedding.pe" in loaded.models[0].state_dict()
    ndiv.manual_seed(0)
    np.testing.assert_array_equal(np.asarray(loaded.predict(futr_df=futr)[name]), before)


@pytest.mark.parametrize("name", NAMES)
def test_registration_and_mqloss_outputs(name):
    assert MODELS[name] is getattr(ndiv.models, name)
    model = MODELS[name](**TINY, loss=MQLoss(level=[80]))
    with ndiv.no_grad():
        out = model(nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 6, 3)))
    assert out.shape == (2, 3, 3)


@pytest.mark.parametrize("cls", [VanillaTransformer, Informer])
@pytest.mark.parametrize("kw,err,match", [
    (dict(decoder_input_size_multiplier=1.0), ValueError, r"decoder_input_size_multiplier must be a number in \(0, 1\)"),
    (dict(input_size=2, decoder_input_size_multiplier=0.9), ValueError, "gives a decoder window of 2 steps"),
    (dict(activation="tanh"), ValueError, "activation must be 'relu' or 'gelu', got 'tanh'"),
    (dict(hidden_size=7), ValueError, "hidden_size must be even"),
    (dict(hidden_size=4, n_head=8), ValueError, "n_head=8 must be at most hidden_size=4"),
    (dict(n_head=0), ValueError, "n_head must be a positive integer"),
    (dict(dropout=1.0), ValueError, r"dropout must be a probability in \[0, 1\)"),
    (dict(h=5000), ValueError, "positional embedding covers 5000 steps"),
    (dict(hist_exog_list=["x"]), ValueError, "does not support hist exogenous"),
    (dict(stat_exog_list=["s"]), ValueError, "does not support stat exogenous"),
])
def test_errors_name_the_option(cls, kw, err, match):
    with pytest.raises(err, match=match):
        cls(**{"h": 4, "input_size": 8, **kw})


@pytest.mark.parametrize("kw,match", [(dict(factor=0), "factor must be a positive integer"),
                                      (dict(distil="yes"), "distil must be True or False")])
def test_informer_errors_name_the_option(kw, match):
    with pytest.raises(ValueError, match=match):
        Informer(h=4, input_size=8, **kw)


@pytest.mark.parametrize("name", NAMES)
def test_model_defaults_are_neuralforecasts(name):
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(getattr(nf, name).__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(MODELS[name]).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            assert v == ref[k], (k, v, ref[k])
    assert not {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs"}
    assert (getattr(nf, name).EXOGENOUS_FUTR, getattr(nf, name).EXOGENOUS_HIST, getattr(nf, name).EXOGENOUS_STAT,
            getattr(nf, name).EXOGENOUS_CAT) == (MODELS[name].EXOGENOUS_FUTR, MODELS[name].EXOGENOUS_HIST,
                                                  MODELS[name].EXOGENOUS_STAT, MODELS[name].EXOGENOUS_CAT)

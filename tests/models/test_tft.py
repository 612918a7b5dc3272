"""TFT: NeuralForecast's weights give the same forecast and the same variable-selection weights and
attention; one training step matches NF's; float64 gradients; a tiny fit/predict, save/load and the
Forecaster's interpretation (feature_importances, attention_weights); clear errors.

Tiny sizes throughout (hidden_size 8-16, a few windows). The NF tests skip without torch and
neuralforecast.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.losses import MSE, MQLoss
from ndiv.models import MODELS, TFT

from . import nf_reference as nf_ref
from .test_new_dense_models import _nd_loss, _nf_twin_loss
from .test_new_dense_models import test_model_defaults_are_neuralforecasts as _defaults_are_nfs
from .test_training_matches_nf import EXOG as STEP_EXOG
from .test_training_matches_nf import test_exogenous_dense_models_step_like_neuralforecast as _step_like_nf

ALL_EXOG = dict(hist_exog_list=["a", "b"], futr_exog_list=["c"], stat_exog_list=["s1", "s2"])
ALL_EXOG_SIZES = dict(hist=2, futr=1, stat=2)
NF_CASES = [
    (dict(h=12, input_size=24), {}),                                     # NF's defaults (hidden_size 128)
    (dict(h=5, input_size=9, hidden_size=8, n_head=2, loss=MQLoss(level=[80, 90]), **ALL_EXOG), ALL_EXOG_SIZES),
    (dict(h=4, input_size=7, hidden_size=12, n_head=3, n_rnn_layers=2, rnn_type="gru", one_rnn_initial_state=True,
          grn_activation="GELU", stat_exog_list=["s1"], futr_exog_list=["c", "d"],
          loss=("DistributionLoss", "StudentT")), dict(stat=1, futr=2)),
    (dict(h=4, input_size=6, hidden_size=8, n_head=2, n_rnn_layers=2, hist_exog_list=["a"],
          stat_exog_list=["s1", "s2"]), dict(hist=1, stat=2)),
    (dict(h=3, input_size=5, hidden_size=8, n_head=1, n_rnn_layers=2, one_rnn_initial_state=True,
          grn_activation="ReLU", stat_exog_list=["s1", "s2"], loss=MSE()), dict(stat=2)),
]
NF_IDS = [f"TFT-{i}" for i in range(len(NF_CASES))]


def _pair(kw):
    nf_model = nf_ref.build("TFT", **({**kw, "loss": _nf_twin_loss(kw["loss"])} if "loss" in kw else kw))
    nd_model = TFT(**({**kw, "loss": _nd_loss(kw["loss"])} if "loss" in kw else kw))
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    return nf_model, nd_model


@pytest.mark.parametrize("kw,exog", NF_CASES, ids=NF_IDS)
def test_neuralforecast_weights_give_the_same_forecast(kw, exog):
    nf_ref.nf_models()
    nf_model, nd_model = _pair(kw)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 7, kw["input_size"], kw["h"], **exog)
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


@pytest.mark.parametrize("kw,exog", NF_CASES[1:], ids=NF_IDS[1:])
def test_variable_weights_and_attention_are_neuralforecasts(kw, exog):
    """Same weights, same windows: NF's interpretability_params, feature_importances() and
    attention_weights() against forward_interpretable (each weight row sums to 1)."""
    nf_ref.nf_models()
    import torch
    nf_model, nd_model = _pair(kw)
    nf_model.eval()
    nd_model.eval()
    batch = nf_ref.windows_batch(np.random.default_rng(7), 5, kw["input_size"], kw["h"], **exog)
    with torch.no_grad():
        nf_model({k: None if v is None else torch.tensor(v) for k, v in batch.items()})
    with ndiv.no_grad():
        _, ours = nd_model.forward_interpretable(nf_ref.as_tensors(batch))
    ref = nf_model.interpretability_params
    for key in ("history_vsn_wgts", "future_vsn_wgts", "attn_wts", "static_encoder_sparse_weights"):
        if ours[key] is None:
            assert isinstance(ref[key], list) and not ref[key], key          # NF: [] without static exog
            continue
        np.testing.assert_allclose(ours[key].numpy(), ref[key].numpy(), rtol=1e-4, atol=1e-6, err_msg=key)
        if key != "attn_wts":
            np.testing.assert_allclose(ours[key].numpy().sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(ours["attn_wts"].numpy().sum(-1), 1.0, rtol=1e-5)
    assert np.all(np.triu(ours["attn_wts"].numpy()[0, 0], 1) == 0)           # causal: no weight on later steps
    imp = nf_model.feature_importances()
    past = imp["Past variable importance over time"].to_numpy()
    np.testing.assert_allclose(ours["history_vsn_wgts"].numpy().mean(0), past, rtol=1e-4, atol=1e-6)
    if nd_model.futr_exog_list:                # NF's labels are right when there are future exogenous columns
        assert list(imp["Past variable importance over time"]) == nd_model.past_variable_names()
    np.testing.assert_allclose(ours["attn_wts"].numpy().mean(axis=(0, 1)), nf_model.attention_weights(),
                               rtol=1e-4, atol=1e-6)


def test_mask_is_a_persistent_buffer_that_strict_loading_needs():
    model = TFT(h=3, input_size=4, hidden_size=8, n_head=2)
    sd = model.state_dict()
    mask = np.asarray(sd["temporal_fusion_decoder.attention._mask"])
    assert mask.shape == (1, 7, 7)
    assert np.isneginf(mask[0][np.triu_indices(7, 1)]).all() and (mask[0][np.tril_indices(7)] == 0).all()
    assert "temporal_fusion_decoder.attention._mask" not in dict(model.named_parameters())
    del sd["temporal_fusion_decoder.attention._mask"]
    with pytest.raises(Exception, match="_mask"):
        TFT(h=3, input_size=4, hidden_size=8, n_head=2).load_state_dict(sd, strict=True)


STEP_CONFIGS = [dict(hidden_size=8, n_head=2, dropout=0.0, **STEP_EXOG),
                dict(hidden_size=8, n_head=2, dropout=0.0, n_rnn_layers=2),
                dict(hidden_size=8, n_head=2, dropout=0.0, rnn_type="gru", stat_exog_list=["level"])]


@pytest.mark.parametrize("kw", STEP_CONFIGS, ids=["exog", "2-layers", "gru-static"])
def test_training_step_matches_neuralforecast(kw, monkeypatch):
    """Three steps from NF's weights on the same windows (dropout 0): scaled inputs, loss,
    every gradient (the static context reaches the LSTM states) and the Adam update agree."""
    _step_like_nf("TFT", kw, monkeypatch)


def test_model_defaults_are_neuralforecasts():
    _defaults_are_nfs("TFT")


def test_gradcheck_loss_float64():
    kw = dict(h=2, input_size=3, hidden_size=4, n_head=2, dropout=0.0, hist_exog_list=["a"], futr_exog_list=["c"],
              stat_exog_list=["s"])
    model = TFT(**kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 2, 3, 2, hist=1, futr=1, stat=1), np.float64,
                              requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((2, 2, 1)))
    # the inputs and one weight of each kind of block (the static state reaches the LSTMs through ch, cc)
    params = dict(model.named_parameters())
    names = ["embedding.stat_exog_embedding_vectors", "static_encoder.context_grns.2.lin_a.weight",
             "static_encoder.context_grns.3.glu.lin.bias", "temporal_encoder.history_vsn.joint_grn.lin_c.weight",
             "temporal_encoder.history_encoder.weight_hh_l0", "temporal_encoder.future_encoder.bias_ih_l0",
             "temporal_fusion_decoder.attention.qkv_linears.weight", "temporal_fusion_decoder.decoder_ln.weight",
             "output_adapter.weight"]
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + [params[k] for k in names]

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=8)


def test_without_future_exogenous_the_last_y_is_the_future_input():
    model = TFT(h=3, input_size=5, hidden_size=8, n_head=2, dropout=0.0).eval()
    batch = nf_ref.windows_batch(np.random.default_rng(1), 2, 5, 3)
    with ndiv.no_grad():
        _, w = model.forward_interpretable(nf_ref.as_tensors(batch))
        repeated = dict(batch, futr_exog=np.repeat(batch["insample_y"][:, -1:], 8, axis=1))
        # the same model reading the repeated y as a given future input gives the same forecast
        assert model.past_variable_names() == ["repeated_target", "observed_target"]
        np.testing.assert_array_equal(model(nf_ref.as_tensors(repeated)).numpy(),
                                      model(nf_ref.as_tensors(batch)).numpy())
    assert w["future_vsn_wgts"].shape == (2, 3, 1) and w["static_encoder_sparse_weights"] is None


def test_one_batch_overfits():
    model = TFT(h=4, input_size=8, hidden_size=16, n_head=2, dropout=0.0, loss=MSE())
    rng = np.random.default_rng(1)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 8, 8, 4))
    y = ndiv.tensor(rng.standard_normal((8, 4, 1)).astype(np.float32))
    losses = nf_ref.overfit_losses(model, batch, y, steps=150, lr=1e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 0.05 * losses[0], (losses[0], losses[-1])


def _air_with_exog():
    train, test = nf_ref.air_passengers()
    n = len(train["y"]) + 12
    f = np.sin(2 * np.pi * np.arange(n) / 12)
    train = dict(train, f=f[:-12], x=np.cos(np.arange(n - 12) / 7.0))
    futr = {"unique_id": test["unique_id"], "ds": test["ds"], "f": f[-12:]}
    static = {"unique_id": np.unique(train["unique_id"]), "s": np.array([1.0])}
    return train, test, futr, static


TINY_FIT = dict(h=12, input_size=24, hidden_size=8, n_head=2, max_steps=3, windows_batch_size=8,
                inference_windows_batch_size=8, enable_progress_bar=False)


def test_forecaster_fit_predict_save_load(tmp_path):
    train, _, futr, static = _air_with_exog()
    model = TFT(futr_exog_list=["f"], hist_exog_list=["x"], stat_exog_list=["s"], **TINY_FIT)
    fc = ndiv.Forecaster([model], freq="MS").fit(train, static_df=static)
    pred = fc.predict(futr_df=futr)
    assert list(pred) == ["unique_id", "ds", "TFT"]
    y_hat = np.asarray(pred["TFT"])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    assert len(model.train_trajectories) == 3
    fc.save(str(tmp_path / "fc"))
    again = ndiv.Forecaster.load(str(tmp_path / "fc"))
    np.testing.assert_array_equal(np.asarray(again.predict(futr_df=futr)["TFT"]), y_hat)
    np.testing.assert_array_equal(np.asarray(again.models[0].state_dict()["temporal_fusion_decoder.attention._mask"]),
                                  np.asarray(model.state_dict()["temporal_fusion_decoder.attention._mask"]))


def test_forecaster_feature_importances_and_attention_weights():
    """The importances of the window predict() forecasts from: per-row sums of 1, NF's keys and
    labels, the same numbers as forward_interpretable on that window."""
    pd = pytest.importorskip("pandas")
    train, _, futr, static = _air_with_exog()
    model = TFT(futr_exog_list=["f"], hist_exog_list=["x"], stat_exog_list=["s"], **TINY_FIT)
    fc = ndiv.Forecaster([model], freq="MS").fit(train, static_df=static)
    imp = fc.feature_importances(futr_df=futr)
    assert list(imp) == ["Past variable importance over time", "Future variable importance over time",
                         "Static covariates"]
    past, future, stat = imp.values()
    assert isinstance(past, pd.DataFrame) and list(past) == ["x", "f", "observed_target"] and len(past) == 24
    assert list(future) == ["f"] and len(future) == 12
    assert list(stat.index) == ["s"] and list(stat) == ["importance"]
    for frame in imp.values():
        np.testing.assert_allclose(frame.to_numpy().sum(axis=1 if frame is not stat else 0), 1.0, rtol=1e-5)
    r = ndiv.viz.tft_interpretation(fc, futr_df=futr)
    np.testing.assert_allclose(past.to_numpy(), r["past"][0], rtol=1e-6)
    att = fc.attention_weights(futr_df=futr, unique_id="AirPassengers")
    assert list(att)[:2] == ["step", "h1"] and list(att)[-1] == "mean" and len(att) == 36
    np.testing.assert_allclose(att[[f"h{k}" for k in range(1, 13)]].to_numpy().sum(0), 1.0, rtol=1e-5)
    assert (att["h1"].to_numpy()[25:] == 0).all()                       # step 1 attends up to itself
    with pytest.raises(ValueError, match="futr_df"):
        fc.feature_importances()
    with pytest.raises(ValueError, match="unique_id='nope'"):
        fc.attention_weights(futr_df=futr, unique_id="nope")


def test_forecaster_interpretation_errors_and_decomposition_frame():
    pytest.importorskip("pandas")
    from ndiv.models import NHITS
    train, _ = nf_ref.air_passengers()
    fc = ndiv.Forecaster([NHITS(h=12, input_size=24, max_steps=2, mlp_units=[[8, 8]] * 3,
                                enable_progress_bar=False)], freq="MS").fit(train)
    with pytest.raises(ValueError, match="is a TFT"):
        fc.feature_importances()
    dec = fc.decomposition()
    stacks = [c for c in dec if c.startswith("stack")]
    assert len(stacks) == 3 and len(dec) == 12
    np.testing.assert_allclose(dec["level"] + dec[stacks].sum(axis=1), dec["NHITS"], rtol=1e-5)
    np.testing.assert_allclose(dec["NHITS"], fc.predict()["NHITS"], rtol=1e-4)


@pytest.mark.parametrize("make,match", [
    (lambda: TFT(h=4, input_size=8, tgt_size=2), "tgt_size must be 1"),
    (lambda: TFT(h=4, input_size=8, grn_activation="GLU"), "grn_activation must be one of"),
    (lambda: TFT(h=4, input_size=8, rnn_type="rnn"), "rnn_type must be 'lstm' or 'gru'"),
    (lambda: TFT(h=4, input_size=8, hidden_size=10, n_head=4), "hidden_size=10 must be a multiple of n_head=4"),
    (lambda: TFT(h=4, input_size=8, dropout=1.5), "dropout must be a probability in"),
    (lambda: TFT(h=4, input_size=8, n_head=0), "n_head must be a positive integer"),
    (lambda: TFT(h=4, input_size=8, hist_exog_list=["a"], cat_exog_list=["a"], categorical_cardinalities={"a": 3}),
     "does not support categorical exogenous"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_registered():
    assert MODELS["TFT"] is TFT is ndiv.models.TFT
    assert TFT(h=4, input_size=8, hidden_size=8, n_head=2)._has_sample_randomness()   # dropout 0.1: no dedupe


def test_cli_explain_writes_the_importances_picture(tmp_path, capsys):
    """`ndiv forecast --model TFT --plot p.png --explain` (its _explain step on a tiny fit)."""
    pytest.importorskip("matplotlib")
    from ndiv import cli, viz
    train, _ = nf_ref.air_passengers()
    model = TFT(**TINY_FIT)
    rec = viz.GradientRecorder(model)
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    rec.remove()
    cli._explain(str(tmp_path / "p.png"), fc, rec)
    for name in ("p_gradients.png", "p_importances.png"):
        assert (tmp_path / name).read_bytes()[:4] == b"\x89PNG", name
    assert "wrote" in capsys.readouterr().out


def test_decomposition_with_future_exogenous_and_without_pandas(monkeypatch):
    """NBEATSx with an exogenous stack takes futr_df as predict does; without pandas the frames are
    dicts of arrays (the library's array form)."""
    from ndiv import forecaster as fc_module
    from ndiv.models import NBEATSx
    train, _, futr, _ = _air_with_exog()
    train = {k: v for k, v in train.items() if k != "x"}
    model = NBEATSx(h=12, input_size=24, max_steps=2, mlp_units=[[8, 8]], stack_types=["exogenous", "identity"],
                    n_blocks=[1, 1], futr_exog_list=["f"], enable_progress_bar=False)
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    monkeypatch.setattr(fc_module, "_has_pandas", lambda: False)
    dec = fc.decomposition(futr_df=futr)
    assert isinstance(dec, dict) and list(dec) == ["unique_id", "ds", "level", "stack 0 (exogenous)",
                                                  "stack 1 (identity)", "NBEATSx"]
    np.testing.assert_allclose(dec["level"] + dec["stack 0 (exogenous)"] + dec["stack 1 (identity)"], dec["NBEATSx"],
                               rtol=1e-5)
    np.testing.assert_allclose(dec["NBEATSx"], np.asarray(fc.predict(futr_df=futr)["NBEATSx"]), rtol=1e-4)
    with pytest.raises(ValueError, match="futr_df"):
        fc.decomposition()


@pytest.mark.parametrize("loss,columns", [
    (MQLoss(level=[80]), ["TFT-median", "TFT-lo-80", "TFT-hi-80"]),
    (("DistributionLoss", "Normal"), ["TFT", "TFT-median", "TFT-lo-80", "TFT-hi-80"])])
def test_forecaster_probabilistic_outputs(loss, columns):
    train, _ = nf_ref.air_passengers()
    fc = ndiv.Forecaster([TFT(loss=_nd_loss(loss), **TINY_FIT)], freq="MS").fit(train)
    pred = fc.predict()
    assert list(pred) == ["unique_id", "ds", *columns]
    lo, hi = np.asarray(pred["TFT-lo-80"]), np.asarray(pred["TFT-hi-80"])
    assert np.isfinite(lo).all() and (lo <= hi).all()

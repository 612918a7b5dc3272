"""Autoformer and FEDformer: the shared decomposition encoder-decoder, AutoCorrelation's two
branches, the complex Fourier blocks (shared across layers, modes drawn from random_seed).

Without torch: float64 gradchecks through the new blocks, the tied FourierBlock, a tiny fit /
predict / save / load through Forecaster, the option errors. With torch + neuralforecast:
NF's state_dict loads strictly and gives NF's forecast (default configuration and others with
futr exog, MQLoss, DistributionLoss, other windows / factor / modes), in eval mode and in
training mode without dropout (Autoformer's batch-mean delays); NF's mode draw; one training
step (loss, gradients, Adam update, complex weights included) as NF's on the same windows.
"""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.losses import DistributionLoss, MQLoss
from ndiv.models import MODELS, Autoformer, FEDformer
from ndiv.models.autoformer import AutoCorrelation
from ndiv.models.fedformer import FourierBlock, FourierCrossAttention, get_frequency_modes

from . import nf_reference as nf_ref

TINY = {"Autoformer": dict(hidden_size=8, n_head=2, conv_hidden_size=4, MovingAvg_window=5, factor=1),
        "FEDformer": dict(hidden_size=16, conv_hidden_size=4, MovingAvg_window=5, modes=3)}


# -- the blocks, float64 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("training", [True, False], ids=["train-batch-delays", "eval-sample-delays"])
def test_autocorrelation_gradcheck_float64(training):
    corr = AutoCorrelation(False, factor=1).train(training)
    rng = np.random.default_rng(0)
    q, k, v = (ndiv.tensor(rng.standard_normal((2, n, 2, 3)), requires_grad=True) for n in (9, 7, 7))
    assert ndiv.autograd.gradcheck(lambda q, k, v: corr(q, k, v)[0], [q, k, v])


def test_autocorrelation_rolls_by_the_chosen_delays():
    """A value sequence rolled back by the delays: out[t] = sum_i w_i v[(t + d_i) mod L], the
    weights a softmax of the delays' mean correlation; eval picks per sample, training per batch."""
    rng = np.random.default_rng(1)
    q = rng.standard_normal((3, 8, 1, 2))
    v = rng.standard_normal((3, 8, 1, 2))
    corr = np.fft.irfft(np.fft.rfft(q, axis=1) * np.conj(np.fft.rfft(q, axis=1)), axis=1).mean(axis=(2, 3))  # [B, L]
    top_k = int(2 * np.log(8))
    for training in (False, True):
        block = AutoCorrelation(False, factor=2).train(training)
        with ndiv.no_grad():
            got = block(*(ndiv.tensor(a) for a in (q, q, v)))[0].numpy()
        for b in range(3):
            delays = np.argsort(-(corr.mean(0) if training else corr[b]), kind="stable")[:top_k]
            w = np.exp(corr[b, delays] - corr[b, delays].max())
            w /= w.sum()
            want = sum(wi * np.roll(v[b], -d, axis=0) for wi, d in zip(w, delays))
            np.testing.assert_allclose(got[b], want, rtol=1e-10, atol=1e-12)


def test_fourier_blocks_gradcheck_float64_with_complex_weights():
    rng = np.random.RandomState(0)
    block = FourierBlock(16, 16, seq_len=10, modes=3, rng=rng)
    cross = FourierCrossAttention(16, 16, seq_len_q=10, seq_len_kv=12, modes=3, rng=rng)
    for m in (block, cross):
        m.weights1 = ndiv.nn.Parameter(m.weights1.data.astype(np.complex128))
    q = ndiv.tensor(np.random.default_rng(2).standard_normal((2, 10, 8, 2)), requires_grad=True)
    k = ndiv.tensor(np.random.default_rng(3).standard_normal((2, 12, 8, 2)), requires_grad=True)
    assert ndiv.autograd.gradcheck(lambda q, w: block(q, q, q)[0], [q, block.weights1])
    assert ndiv.autograd.gradcheck(lambda q, k, w: cross(q, k, k)[0] * 256.0, [q, k, cross.weights1])


def test_fourier_modes_are_sorted_and_bounded():
    assert get_frequency_modes(24, modes=64) == list(range(12))                  # every bin below L // 2
    assert get_frequency_modes(24, modes=4, mode_select_method="lowest") == [0, 1, 2, 3]
    drawn = get_frequency_modes(24, modes=4, rng=np.random.RandomState(5))
    assert drawn == sorted(drawn) and len(set(drawn)) == 4 and max(drawn) < 12
    assert drawn == get_frequency_modes(24, modes=4, rng=np.random.RandomState(5))


# -- the models ---------------------------------------------------------------------------------------------

def test_fedformer_encoder_block_is_one_tensor_under_every_layer_key():
    model = FEDformer(h=4, input_size=8, encoder_layers=3, decoder_layers=2, **TINY["FEDformer"])
    sd = model.state_dict()
    keys = [f"encoder.attn_layers.{i}.attention.inner_correlation.weights1" for i in range(3)]
    assert all(sd[k] is sd[keys[0]] for k in keys) and sd[keys[0]].dtype == np.complex64
    dec = [f"decoder.layers.{i}.{a}.inner_correlation.weights1" for i in range(2)
           for a in ("self_attention", "cross_attention")]
    assert sd[dec[0]] is sd[dec[2]] and sd[dec[1]] is sd[dec[3]]
    params = list(model.parameters())
    assert len(params) == len({id(p) for p in params})                        # each parameter once
    assert sum(p.data.dtype == np.complex64 for p in params) == 3             # encoder, decoder self, cross
    opt = ndiv.optim.Adam(model.parameters(), lr=1e-2)
    assert sum(len(g["params"]) for g in opt.param_groups) == len(params)
    # a loaded state_dict (the same array under each key) keeps the tie
    model.load_state_dict({k: np.array(v) for k, v in sd.items()}, strict=True)
    w = model.encoder.attn_layers[1].attention.inner_correlation.weights1
    assert w is model.encoder.attn_layers[0].attention.inner_correlation.weights1
    batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(0), 3, 8, 4))
    model.loss(y=ndiv.tensor(np.ones((3, 4, 1), np.float32)), y_hat=model(batch)).backward()
    assert w.grad is not None and w.grad.dtype == np.complex64


def test_fedformer_modes_follow_random_seed():
    a, b = (FEDformer(h=4, input_size=24, random_seed=s, **TINY["FEDformer"]) for s in (1, 1))
    c = FEDformer(h=4, input_size=24, random_seed=7, **TINY["FEDformer"])
    idx = [m.encoder.attn_layers[0].attention.inner_correlation.index for m in (a, b, c)]
    assert idx[0] == idx[1] and idx[0] != idx[2]


@pytest.mark.parametrize("name", ["Autoformer", "FEDformer"])
def test_autoformer_training_delays_turn_off_window_dedupe(name):
    model = MODELS[name](h=4, input_size=8, dropout=0.0, **TINY[name])
    assert model._has_sample_randomness() == (name == "Autoformer")


@pytest.mark.parametrize("name", ["Autoformer", "FEDformer"])
def test_output_shapes_and_registration(name):
    assert MODELS[name] is getattr(ndiv.models, name)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(np.random.default_rng(5), 2, 8, 4, futr=1))
    model = MODELS[name](h=4, input_size=8, loss=MQLoss(level=[80]), futr_exog_list=["f"], **TINY[name])
    assert model(batch).shape == (2, 4, 3)


@pytest.mark.parametrize("name", ["Autoformer", "FEDformer"])
def test_fit_predict_save_load(name, tmp_path):
    """A tiny fit with a future-known column; the saved folder predicts the same (FEDformer's
    modes come back from random_seed, its tied weights from the one stored array)."""
    train, test = nf_ref.air_passengers()
    train = dict(train, f=np.sin(np.arange(len(train["y"])) * np.pi / 6))
    futr = {"unique_id": test["unique_id"], "ds": test["ds"], "f": np.sin(np.arange(len(train["y"]), len(train["y"]) + 12) * np.pi / 6)}
    kw = dict(TINY[name], modes=4) if name == "FEDformer" else TINY[name]
    model = MODELS[name](h=12, input_size=24, max_steps=3, windows_batch_size=8, futr_exog_list=["f"],
                         scaler_type="standard", enable_progress_bar=False, random_seed=3, **kw)
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    pred = fc.predict(futr_df=futr)
    assert list(pred) == ["unique_id", "ds", name]
    y_hat = np.asarray(pred[name])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    fc.save(str(tmp_path / "fc"))
    again = ndiv.Forecaster.load(str(tmp_path / "fc")).predict(futr_df=futr)
    np.testing.assert_array_equal(np.asarray(again[name]), y_hat)


@pytest.mark.parametrize("make,match", [
    (lambda: FEDformer(h=4, input_size=8, n_head=4), "n_head must be 8"),
    (lambda: FEDformer(h=4, input_size=8, version="Wavelets"), "version must be 'Fourier'"),
    (lambda: FEDformer(h=4, input_size=8, hidden_size=12), "hidden_size must be a multiple of 8"),
    (lambda: FEDformer(h=12, input_size=24, decoder_input_size_multiplier=0.05), "decoder's label_len \\+ h"),
    (lambda: FEDformer(h=4, input_size=8, activation="tanh"), "activation must be 'relu' or 'gelu'"),
    (lambda: FEDformer(h=4, input_size=8, modes=0), "modes must be a positive integer"),
    (lambda: Autoformer(h=4, input_size=8, decoder_input_size_multiplier=1.0), "decoder_input_size_multiplier must be in"),
    (lambda: Autoformer(h=4, input_size=8, MovingAvg_window=4), "MovingAvg_window must be a positive odd integer"),
    (lambda: Autoformer(h=4, input_size=8, activation="ReLU"), "activation must be 'relu' or 'gelu'"),
    (lambda: Autoformer(h=4, input_size=8, hidden_size=2, n_head=4), "hidden_size must be at least n_head"),
    (lambda: Autoformer(h=4, input_size=8, dropout=1.5), "dropout must be a probability"),
    (lambda: Autoformer(h=1, input_size=4), "factor=3 asks for int\\(factor \\* ln 3\\) = 3 delays"),
    (lambda: Autoformer(h=4, input_size=8, hist_exog_list=["x"]), "does not support hist exogenous"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- NeuralForecast as the reference (skipped without torch + neuralforecast) -------------------------------

NF_CASES = [
    ("Autoformer", dict(h=12, input_size=24), {}),
    ("Autoformer", dict(h=5, input_size=19, hidden_size=16, factor=1, MovingAvg_window=7, decoder_layers=2,
                        futr_exog_list=["a", "b"], loss=MQLoss(level=[80, 90])), dict(futr=2)),
    ("Autoformer", dict(h=4, input_size=10, hidden_size=8, n_head=2, conv_hidden_size=6, activation="relu",
                        encoder_layers=1, decoder_input_size_multiplier=0.3, loss=("DistributionLoss", "Normal")), {}),
    ("FEDformer", dict(h=12, input_size=24), {}),
    ("FEDformer", dict(h=5, input_size=20, hidden_size=16, modes=3, MovingAvg_window=5, decoder_layers=2,
                       futr_exog_list=["a", "b"], loss=MQLoss(level=[80, 90]), random_seed=4), dict(futr=2)),
    ("FEDformer", dict(h=4, input_size=11, hidden_size=16, modes=2, mode_select="lowest", activation="relu",
                       conv_hidden_size=8, loss=("DistributionLoss", "Normal")), {}),
]


def _losses(kw):
    """(NF kwargs, ndiv kwargs): ('DistributionLoss', name) builds each library's loss."""
    loss = kw.get("loss")
    if loss is None:
        return kw, kw
    if isinstance(loss, tuple):
        import neuralforecast.losses.pytorch as nf_losses
        return {**kw, "loss": nf_losses.DistributionLoss(loss[1], level=[80])}, {**kw, "loss": DistributionLoss(loss[1], level=[80])}
    return {**kw, "loss": nf_ref.nf_loss(loss)}, kw


def _pair(name, kw):
    nf_ref.nf_models()
    nf_kw, nd_kw = _losses(kw)
    nf_model, nd_model = nf_ref.build(name, **nf_kw), MODELS[name](**nd_kw)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    return nf_model, nd_model


@pytest.mark.parametrize("name,kw,exog", NF_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(NF_CASES)])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog):
    nf_model, nd_model = _pair(name, kw)
    if name == "FEDformer":   # the modes NF drew after seeding np.random with random_seed
        nf_idx = [getattr(m, a) for m in nf_model.modules() for a in ("index", "index_q", "index_kv") if hasattr(m, a)]
        nd_idx = [getattr(m, a) for m in nd_model.modules() for a in ("index", "index_q", "index_kv") if hasattr(m, a)]
        assert nd_idx == nf_idx
    batch = nf_ref.windows_batch(np.random.default_rng(6), 6, kw["input_size"], kw["h"], **exog)
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


@pytest.mark.parametrize("case", [1, 4], ids=["Autoformer", "FEDformer"])
def test_training_mode_forward_without_dropout_matches(case):
    """Training mode: Autoformer takes the batch-mean delays (NF's time_delay_agg_training)."""
    torch = pytest.importorskip("torch")
    name, kw, exog = NF_CASES[case]
    nf_model, nd_model = _pair(name, dict(kw, dropout=0.0))
    nf_model.train()
    nd_model.train()
    batch = nf_ref.windows_batch(np.random.default_rng(7), 6, kw["input_size"], kw["h"], **exog)
    with torch.no_grad():
        ref = nf_model({k: None if v is None else torch.tensor(v) for k, v in batch.items()}).numpy()
    with ndiv.no_grad():
        got = nd_model(nf_ref.as_tensors(batch)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


STEP_CASES = [("Autoformer", dict(hidden_size=16, conv_hidden_size=8)),
              ("Autoformer", dict(hidden_size=8, n_head=2, conv_hidden_size=4, factor=1, futr_exog_list=["month_sin"])),
              ("FEDformer", dict(hidden_size=16, conv_hidden_size=8, modes=5, futr_exog_list=["month_sin"]))]


@pytest.mark.parametrize("name,kw", STEP_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(STEP_CASES)])
def test_training_steps_match_neuralforecast(name, kw):
    """Two steps from the same weights (NF's, copied into ndiv after each step) on the same
    windows (tools/nf_train_compare.py's Pair, dropout 0): the loss, every gradient (FEDformer's
    complex weights included, both parts) and the Adam update agree. Gradients at float32
    rounding noise carry no sign (the seasonal LayerNorm's bias and the query biases of
    AutoCorrelation have an exact gradient of 0: a constant shift cancels), and Adam turns them
    into steps of up to lr: there the updates need only stay within 2 lr. The windows are
    standardised: on raw AirPassengers (hundreds) the delay softmax saturates and its gradient to
    the q/k projections is float32 rounding in both libraries."""
    pytest.importorskip("torch")
    nf_ref.nf_models()
    import importlib
    import logging
    disabled = logging.root.manager.disable
    tool = importlib.import_module("tools.nf_train_compare")
    logging.disable(disabled)                    # the tool silences logging for its own runs
    train, _ = tool.load_train()
    if kw.get("futr_exog_list"):
        train, _ = tool.with_exog(train)
    pair = tool.Pair(name, seed=2, max_steps=2, windows_batch_size=16, scaler_type="standard", **kw)
    pair.setup_data(train)
    lr = pair.nd.learning_rate
    for step in range(2):
        before = {k: p.detach().numpy().copy() for k, p in pair.nf.named_parameters()}
        d = pair.step()
        assert d["insample_y"] <= 1e-6 and d["loss"] <= 1e-5, (step, d["loss_nd"], d["loss_nf"])
        t_grads, n_grads = d["t_grads"], d["n_grads"]
        noise = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
        for k in t_grads:
            err = np.abs(n_grads[k] - t_grads[k]).max()
            assert err <= 1e-3 * np.abs(t_grads[k]).max() + noise, (step, k, err)
        nd_params = dict(pair.nd.named_parameters())
        for k, p in pair.nf.named_parameters():
            after = p.detach().numpy()
            tol = 2e-3 * np.abs(after - before[k]).max() + 1e-6 * np.abs(before[k]).max() + 1e-8
            noisy = 2 * lr * (np.sqrt(2) if np.iscomplexobj(after) else 1)   # each part up to 2 lr
            tol = np.where(np.abs(t_grads[k]) < noise, noisy, tol)
            assert (np.abs(nd_params[k].data - after) <= tol).all(), (step, k)
        pair.sync()


@pytest.mark.parametrize("name", ["Autoformer", "FEDformer"])
def test_categorical_futr_column_matches_neuralforecast(name):
    """A categorical future-known column (codes 0..K, 0 unseen) next to a numeric one: NF's
    futr_cat_embeddings load, and the embedded stream gives NF's forecast."""
    torch = pytest.importorskip("torch")
    kw = dict(h=4, input_size=8, futr_exog_list=["fc", "f1"], cat_exog_list=["fc"], categorical_cardinalities={"fc": 5},
              **TINY[name])
    nf_model, nd_model = _pair(name, kw)
    rng = np.random.default_rng(8)
    batch = nf_ref.windows_batch(rng, 5, 8, 4, futr=2)
    batch["futr_exog"][..., 0] = rng.integers(0, 6, (5, 12))
    nf_model.eval()
    nd_model.eval()
    tb = {k: None if v is None else torch.tensor(v) for k, v in batch.items()}
    tb["futr_exog"] = nf_model._embed_stream(tb["futr_exog"], nf_model.futr_exog_list, nf_model.futr_cat_exog_list,
                                             nf_model.futr_cat_embeddings)
    with torch.no_grad():
        ref = nf_model(tb).numpy()
    with ndiv.no_grad():
        got = nd_model(nd_model._tensors(batch)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)

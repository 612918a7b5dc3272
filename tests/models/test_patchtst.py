"""PatchTST: float64 gradcheck of the loss, one batch overfits, AirPassengers beats seasonal naive,
the errors name the option; with torch + neuralforecast installed, NeuralForecast's defaults,
state_dict layout and forward on its own weights (default configuration and variants)."""
from __future__ import annotations

import inspect

import numpy as np
import pytest

import ndiv
from ndiv.losses import MSE
from ndiv.nn import functional as F
from ndiv.models import PatchTST
from ndiv.models.patchtst import TSTiEncoder, positional_encoding

from . import nf_reference as nf_ref

# 12 steps -> pad 2 -> patches of 4 every 2: 6 tokens of width 8, two heads, two layers
TINY = dict(h=4, input_size=12, patch_len=4, stride=2, hidden_size=8, n_heads=2, linear_hidden_size=8,
            encoder_layers=2, dropout=0.0, fc_dropout=0.0)


def _batch(rng, b, kw, dtype=np.float32, requires_grad=False):
    raw = nf_ref.windows_batch(rng, b, kw["input_size"], kw["h"])
    raw["insample_y"] = raw["insample_y"] * 3 + 10
    return {k: None if v is None else ndiv.tensor(v.astype(dtype), requires_grad=requires_grad and k == "insample_y")
            for k, v in raw.items()}


@pytest.mark.parametrize("variant", [
    dict(),
    dict(res_attention=False, revin_affine=True, revin_subtract_last=False, activation="relu"),
    dict(batch_normalization=True, revin=False)], ids=["default", "flash-attention-revin-affine", "pre-norm-no-revin"])
def test_gradcheck_loss_float64(variant):
    """Train mode (BatchNorm on batch statistics) with dropout 0: the loss is a deterministic function
    of the parameters (and of insample_y without RevIN, whose statistics are constants for the
    gradient, as in NF)."""
    kw = {**TINY, **variant}
    model = PatchTST(**kw, loss=MSE()).double()
    model.train()
    rng = np.random.default_rng(0)
    revin = kw.get("revin", True)
    batch = _batch(rng, 3, kw, np.float64, requires_grad=not revin)
    y = ndiv.tensor(rng.standard_normal((3, kw["h"], 1)) + (10 if revin else 0))
    # every parameter but those of the second layer's feed-forward and norms (its attention stays:
    # the first layer's scores reach the loss through it)
    params = [p for k, p in model.named_parameters() if p.requires_grad
              and not k.startswith(("model.backbone.encoder.layers.1.ff", "model.backbone.encoder.layers.1.norm"))]
    inputs = ([] if revin else [batch["insample_y"]]) + params
    scale = model.model.backbone.encoder.layers[0].self_attn.sdp_attn.scale
    assert not scale.requires_grad and all(p is not scale for p in inputs)  # frozen, as NF's (lsa=False)

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    # tensors of more than 4 elements are checked along 3 random directions each (keeps it fast)
    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=4, n_directions=3)


def test_one_batch_overfits():
    model = PatchTST(**{**TINY, "hidden_size": 16, "linear_hidden_size": 32}, loss=MSE())
    rng = np.random.default_rng(1)
    batch = _batch(rng, 8, TINY)
    y = ndiv.tensor((rng.standard_normal((8, TINY["h"], 1)) + 10).astype(np.float32))
    losses = nf_ref.overfit_losses(model, batch, y, steps=100, lr=1e-2)
    assert np.isfinite(losses).all()
    assert losses[-1] < 1e-2 * losses[0], (losses[0], losses[-1])


def test_air_passengers_beats_seasonal_naive():
    train, test = nf_ref.air_passengers()
    model = PatchTST(h=12, input_size=24, hidden_size=16, n_heads=4, linear_hidden_size=32, encoder_layers=2,
                     windows_batch_size=64, learning_rate=1e-3, max_steps=150, enable_progress_bar=False)
    fc = ndiv.Forecaster(models=[model], freq="MS").fit(train)
    pred = fc.predict()
    y_hat = np.asarray(pred["PatchTST"], dtype=float)
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"PatchTST: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


def test_shapes_patches_and_window_dedupe():
    model = PatchTST(**TINY)
    assert model.model.backbone.patch_num == 6 and model.model.head_nf == 6 * 8
    out = model(_batch(np.random.default_rng(2), 5, TINY))
    assert out.shape == (5, 4, 1) and np.isfinite(out.numpy()).all()
    assert model._has_sample_randomness()            # BatchNorm's batch statistics: no window dedupe
    short = PatchTST(h=3, input_size=5, patch_len=16, stride=8)   # NF's rule: patch_len = min(16, 5 + 8)
    assert short.model.patch_len == 13 and short.model.backbone.patch_num == 1


def test_attention_without_residual_scores_runs_the_flash_kernel(monkeypatch):
    monkeypatch.setattr(F, "FLASH_MIN_SCORES", 0)  # PatchTST's few patches would take the composed path
    from ndiv.autograd.ops import fused
    calls = []
    flash = fused.flash_attention
    monkeypatch.setattr(fused, "flash_attention", lambda *a, **k: calls.append(a[0].shape) or flash(*a, **k))
    batch = _batch(np.random.default_rng(3), 5, TINY)
    PatchTST(**TINY)(batch)
    assert calls == []                                        # res_attention=True: composed (scores carried)
    PatchTST(**TINY, res_attention=False)(batch)
    assert calls == [(5, 2, 6, 4)] * TINY["encoder_layers"]   # [B, H, P, d_k] per layer


@pytest.mark.parametrize("make,match", [
    (lambda: PatchTST(h=4, input_size=12, hidden_size=10, n_heads=4), "hidden_size .10. must be divisible by n_heads .4."),
    (lambda: PatchTST(h=4, input_size=12, activation="tanh"), "activation='tanh' is not available"),
    (lambda: PatchTST(h=4, input_size=12, stride=0), "stride must be a positive integer"),
    (lambda: PatchTST(h=4, input_size=12, hist_exog_list=["x"]), "PatchTST does not support hist exogenous"),
    (lambda: positional_encoding("fourier", True, 3, 8), "pe='fourier' is not a positional encoding"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- NeuralForecast as the reference (skipped without torch + neuralforecast) -------------------

VARIANTS = [
    dict(),                                                  # NF's defaults
    dict(res_attention=False),                               # F.scaled_dot_product_attention
    dict(revin=False),
    dict(batch_normalization=True, activation="relu"),       # pre-norm layers
    dict(revin_affine=True, revin_subtract_last=False),
    dict(input_size=30, patch_len=7, stride=3, hidden_size=32, n_heads=4, encoder_layers=2, linear_hidden_size=24),
]


def _warm_batchnorm(nf_model, input_size):
    """A few training-mode passes so the running statistics that eval() uses are not 0 and 1."""
    import torch
    nf_model.train()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(3):
            nf_model({"insample_y": torch.randn(16, input_size, 1, generator=g) * 3 + 1})


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: "-".join(f"{k}={x}" for k, x in v.items()) or "defaults")
def test_neuralforecast_weights_give_the_same_forecast(variant):
    nf_ref.nf_models()
    kw = {"h": 12, "input_size": 24, **variant}
    nf_model, nd_model = nf_ref.build("PatchTST", **kw), PatchTST(**kw)
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    _warm_batchnorm(nf_model, kw["input_size"])
    nf_ref.load_nf_weights(nf_model, nd_model)
    batch = nf_ref.windows_batch(np.random.default_rng(6), 9, kw["input_size"], kw["h"])
    if kw.get("revin", True):  # RevIN makes the forecast follow the level of the window
        batch["insample_y"] = batch["insample_y"] * 10 + 100
    nf_ref.assert_same_forward(nf_model, nd_model, batch)


@pytest.mark.parametrize("norm,res_attention", [("LayerNorm", True), ("LayerNorm", False), ("BatchNorm", False)])
def test_encoder_norms_match_neuralforecast(norm, res_attention):
    """NF's PatchTST always builds BatchNorm; its TSTiEncoder also takes norm='LayerNorm'."""
    nf_ref.nf_models()
    import torch
    from neuralforecast.models.patchtst import TSTiEncoder as NFEncoder
    kw = dict(c_in=1, patch_num=5, patch_len=6, n_layers=2, hidden_size=16, n_heads=4, linear_hidden_size=24,
              norm=norm, res_attention=res_attention)
    torch.manual_seed(0)
    ref = NFEncoder(**kw)
    ours = TSTiEncoder(**kw)
    ours.load_state_dict({k: v.detach().numpy() for k, v in ref.state_dict().items()}, strict=True)
    ref.eval(), ours.eval()
    x = np.random.default_rng(7).standard_normal((3, 1, 6, 5)).astype(np.float32)
    with torch.no_grad():
        want = ref(torch.tensor(x)).numpy()
    with ndiv.no_grad():
        got = ours(ndiv.tensor(x)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_positional_encodings_match_neuralforecast():
    nf_ref.nf_models()
    from neuralforecast.models.patchtst import positional_encoding as nf_pe
    for pe in ("lin1d", "exp1d", "lin2d", "exp2d", "sincos"):
        np.testing.assert_allclose(positional_encoding(pe, True, 7, 16).numpy(), nf_pe(pe, True, 7, 16).detach().numpy(),
                                   rtol=1e-4, atol=1e-6, err_msg=pe)
    for pe, shape in (("zeros", (7, 16)), ("zero", (7, 1)), ("normal", (7, 1)), ("uniform", (7, 1)), (None, (7, 16))):
        ours, ref = positional_encoding(pe, True, 7, 16), nf_pe(pe, True, 7, 16)
        assert ours.shape == tuple(ref.shape) == shape and ours.requires_grad == ref.requires_grad, pe


def test_model_defaults_are_neuralforecasts():
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(nf.PatchTST.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(PatchTST).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            assert v == ref[k], (k, v, ref[k])
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs"}
    assert not missing, missing

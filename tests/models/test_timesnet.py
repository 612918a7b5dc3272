"""TimesNet and its Inception block.

The Inception block's merged 11x11 kernel equals NF's average of six convolutions (outputs and
every kernel's gradient); FFT_for_Period picks NF's periods; float64 gradcheck of the loss
through the model; with torch + neuralforecast installed, NF's state_dict (buffer `pe` included)
loads strictly and gives the same forecast on identical batches for the default configuration and
two others (futr exog + MQLoss; DistributionLoss with other top_k / num_kernels / layers), and one
training step (dropout 0) matches NF's loss, gradients and Adam update; a tiny fit through
ndiv.Forecaster beats seasonal naive; save/load; the errors name the option.
"""
from __future__ import annotations

import importlib.util
import inspect
import os

import numpy as np
import pytest

import ndiv
from ndiv.losses import MQLoss, DistributionLoss
from ndiv.models import MODELS, TimesNet
from ndiv.models.common._inception import Inception_Block_V1
from ndiv.models.timesnet import FFT_for_Period
from ndiv.nn import functional as F

from . import nf_reference as nf_ref


def test_inception_merged_kernel_equals_the_six_conv_average():
    ndiv.manual_seed(0)
    block = Inception_Block_V1(3, 4, num_kernels=6).double()
    for conv in block.kernels:                           # NF's init leaves biases 0: make them count
        conv.bias.data[...] = np.random.default_rng(len(conv.bias.data) + conv.weight.shape[-1]).standard_normal(4)
    rng = np.random.default_rng(1)
    x = ndiv.tensor(rng.standard_normal((2, 3, 3, 7)), requires_grad=True)
    r = ndiv.tensor(rng.standard_normal((2, 4, 3, 7)))

    def grads(y):
        for p in [x, *block.parameters()]:
            p.grad = None
        (y * r).sum().backward()
        return [np.array(x.grad)] + [np.array(p.grad) for p in block.parameters()]

    y = block(x)
    got = grads(y)
    # NF's forward: each conv on its own (the composed ConvNd, not the fused kernel), then the mean
    ref = ndiv.stack([F._conv2d_composed(x, c.weight, c.bias, padding=i) for i, c in enumerate(block.kernels)], -1)
    ref = ref.mean(axis=-1)
    np.testing.assert_allclose(y.numpy(), ref.numpy(), rtol=1e-12, atol=1e-12)
    for g, w in zip(got, grads(ref)):
        np.testing.assert_allclose(g, w, rtol=1e-10, atol=1e-12)
    w, _ = block.merged()
    assert w.shape == (4, 3, 11, 11)


def test_inception_runs_one_fused_conv(monkeypatch):
    from ndiv.kernels import cpu
    calls = []
    real = cpu.conv2d_fwd
    monkeypatch.setattr(cpu, "conv2d_fwd", lambda *a: calls.append(a[1].shape) or real(*a))
    Inception_Block_V1(2, 3, num_kernels=4)(ndiv.randn(1, 2, 2, 5))
    assert calls == [(3, 2, 7, 7)]


def test_fft_for_period_picks_the_strongest_batch_mean_frequencies():
    t = np.arange(24)
    # frequency 4 (period 6) strongest in both windows, frequency 2 (period 12) next
    x = np.stack([3 * np.sin(2 * np.pi * 4 * t / 24) + np.cos(2 * np.pi * 2 * t / 24) + 5,
                  2 * np.cos(2 * np.pi * 4 * t / 24) + 0.5 * np.sin(2 * np.pi * 2 * t / 24) - 1])[:, :, None]
    periods, weights = FFT_for_Period(ndiv.tensor(x), 2)
    assert list(periods) == [6, 12]
    amp = np.abs(np.fft.rfft(x, axis=1)).mean(-1)
    np.testing.assert_allclose(weights.numpy(), amp[:, [4, 2]], rtol=1e-12)


TINY = dict(h=3, input_size=6, hidden_size=4, conv_hidden_size=3, top_k=2, num_kernels=3, encoder_layers=1,
            dropout=0.0)


def test_gradcheck_loss_float64():
    model = TimesNet(**TINY, futr_exog_list=["f"]).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(nf_ref.windows_batch(rng, 3, 6, 3, futr=1), np.float64, requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((3, 3, 1)))
    inputs = [t for t in batch.values() if t is not None and t.requires_grad] + list(model.parameters())

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=24)


# -- NeuralForecast: weights, forecast, one training step ------------------------------------------
CONFIGS = [
    ("default", dict(h=12, input_size=24), {}),
    ("futr-mqloss", dict(h=6, input_size=12, hidden_size=16, conv_hidden_size=8, top_k=3,
                         futr_exog_list=["f1", "f2"], loss=MQLoss(level=[80])), dict(futr=2)),
    ("normal-k2-n3-l3", dict(h=5, input_size=11, hidden_size=8, conv_hidden_size=6, top_k=2, num_kernels=3,
                             encoder_layers=3, loss=DistributionLoss("Normal", level=[90])), {}),
]


def _nf_loss(loss):
    if isinstance(loss, DistributionLoss):
        import neuralforecast.losses.pytorch as nf_losses
        return nf_losses.DistributionLoss(distribution="Normal", level=[90])
    return nf_ref.nf_loss(loss)


@pytest.mark.parametrize("name, kw, exog", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog):
    """Identical batches (the periods are a batch property): strict load, pe buffer included."""
    nf_ref.nf_models()
    nf_kw = dict(kw, loss=_nf_loss(kw["loss"])) if "loss" in kw else kw
    nf = nf_ref.build("TimesNet", **nf_kw)
    nd = TimesNet(**kw)
    nf_ref.assert_same_state_dict_layout(nf, nd)
    assert "enc_embedding.position_embedding.pe" in nd.state_dict()
    nf_ref.load_nf_weights(nf, nd)
    batch = nf_ref.windows_batch(np.random.default_rng(2), 8, kw["input_size"], kw["h"], **exog)
    batch["insample_y"] += np.sin(np.arange(kw["input_size"]) * 2 * np.pi / 6)[None, :, None]   # clear periods
    got = nf_ref.assert_same_forward(nf, nd, batch, rtol=1e-4, atol=1e-5)
    assert got.shape == (8, kw["h"], nd.loss.outputsize_multiplier)


def test_categorical_futr_exog_matches_neuralforecast():
    """A categorical future column (embedded by the shared base, unseen codes included) next to a
    numeric one, through NF's own _embed_stream (tests/models/test_categorical.py's helpers)."""
    from .test_categorical import _nf_forward, _raw_batch
    exog = dict(hist_exog_list=[], futr_exog_list=["fc", "f1"], stat_exog_list=[])
    kw = dict(h=4, input_size=8, hidden_size=8, conv_hidden_size=4, top_k=2, num_kernels=3, encoder_layers=1,
              futr_exog_list=["fc", "f1"], cat_exog_list=["fc"], categorical_cardinalities={"fc": 7})
    nf, nd = nf_ref.build("TimesNet", **kw), TimesNet(**kw)
    nf_ref.assert_same_state_dict_layout(nf, nd)
    assert "futr_cat_embeddings.0.weight" in nd.state_dict()
    nf_ref.load_nf_weights(nf, nd)
    nf.eval()
    nd.eval()
    batch = _raw_batch(np.random.default_rng(3), 6, 8, 4, exog)
    batch.pop("hist_exog"), batch.pop("stat_exog")
    ref = _nf_forward(nf, dict(batch, hist_exog=np.zeros((6, 8, 0), np.float32), stat_exog=np.zeros((6, 0), np.float32)))
    with ndiv.no_grad():
        got = nd(nd._tensors(batch)).numpy()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def _train_compare():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "nf_train_compare.py")
    spec = importlib.util.spec_from_file_location("nf_train_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("exog", [False, True], ids=["y-only", "futr-exog"])
def test_training_step_matches_neuralforecast(exog):
    """Two steps, each from NF's weights on the same windows (dropout 0; tools/nf_train_compare.py's
    Pair): scaled inputs, loss, every gradient and the Adam update. As in
    tests/models/test_training_matches_nf.py, gradient elements at float32 noise (below 1e-6 of the
    largest gradient: an Inception bias gradient is a sum over the whole batch and grid that cancels
    to ~1e-8) carry no sign, and Adam turns them into steps of up to lr: there the updates need only
    stay within 2 lr."""
    nf_ref.nf_models()
    tool = _train_compare()
    train, _ = tool.load_train()
    extra = dict(hidden_size=8, conv_hidden_size=8, top_k=3, windows_batch_size=16)
    if exog:
        train, _ = tool.with_exog(train)
        extra["futr_exog_list"] = ["month_sin"]
    pair = tool.Pair("TimesNet", seed=3, max_steps=2, **extra)
    pair.setup_data(train)
    lr = pair.nd.learning_rate
    for step in range(2):
        before = {k: p.detach().numpy().copy() for k, p in pair.nf.named_parameters()}
        d = pair.step()
        assert d["insample_y"] < 1e-6, (step, d["insample_y"])
        assert d["loss"] < 1e-5, (step, d["loss_nd"], d["loss_nf"])
        t_grads = {k: p.grad.numpy() for k, p in pair.nf.named_parameters()}
        noise = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
        nd_params = dict(pair.nd.named_parameters())
        for k, p in pair.nf.named_parameters():
            err = np.abs(np.asarray(nd_params[k].grad) - t_grads[k]).max()
            assert err <= 1e-3 * np.abs(t_grads[k]).max() + noise, (step, k, err)
            after = p.detach().numpy()
            tol = 2e-3 * np.abs(after - before[k]).max() + 1e-6 * np.abs(before[k]).max() + 1e-8
            tol = np.where(np.abs(t_grads[k]) < noise, 2 * lr, tol)
            assert (np.abs(nd_params[k].data - after) <= tol).all(), (step, k)
        pair.sync()                         # the next step starts from the same weights again


def test_model_defaults_are_neuralforecasts():
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(nf.TimesNet.__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(TimesNet).parameters.items()
            if p.default is not inspect.Parameter.empty}
    for k, v in ours.items():
        if k in ref and k not in ("loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar"):
            assert v == ref[k], (k, v, ref[k])
    assert not {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs"}
    for flag in ("EXOGENOUS_FUTR", "EXOGENOUS_HIST", "EXOGENOUS_STAT", "EXOGENOUS_CAT", "MULTIVARIATE", "RECURRENT"):
        assert getattr(TimesNet, flag) == getattr(nf.TimesNet, flag), flag


# -- the forecasting API ----------------------------------------------------------------------------
SMALL = dict(hidden_size=8, conv_hidden_size=8, top_k=2, num_kernels=3, encoder_layers=1, enable_progress_bar=False)


def test_air_passengers_fit_predict_beats_seasonal_naive():
    train, test = nf_ref.air_passengers()
    model = TimesNet(h=12, input_size=24, max_steps=40, learning_rate=1e-2, windows_batch_size=32, **SMALL)
    pred = ndiv.Forecaster(models=[model], freq="MS").fit(train).predict()
    assert list(pred) == ["unique_id", "ds", "TimesNet"]
    y_hat = np.asarray(pred["TimesNet"])
    assert y_hat.shape == (12,) and np.isfinite(y_hat).all()
    mae, naive = float(np.mean(np.abs(y_hat - test["y"]))), nf_ref.seasonal_naive_mae(train, test)
    print(f"TimesNet: AirPassengers MAE {mae:.2f} (seasonal naive {naive:.2f})")
    assert mae < naive, (mae, naive)


def test_save_load_with_futr_exog_gives_the_same_forecast(tmp_path):
    train, test = nf_ref.air_passengers()
    train = dict(train, f=np.sin(np.arange(len(train["y"]))))
    futr = {"unique_id": test["unique_id"], "ds": test["ds"], "f": np.cos(np.arange(12))}
    model = TimesNet(h=12, input_size=24, max_steps=2, futr_exog_list=["f"], loss=MQLoss(level=[80]), **SMALL)
    fc = ndiv.Forecaster([model], freq="MS").fit(train)
    before = fc.predict(futr_df=futr)
    assert "TimesNet-lo-80" in list(before)
    fc.save(str(tmp_path / "fc"))
    after = ndiv.Forecaster.load(str(tmp_path / "fc")).predict(futr_df=futr)
    assert list(after) == list(before)
    for col in [c for c in before if c.startswith("TimesNet")]:
        np.testing.assert_array_equal(np.asarray(after[col]), np.asarray(before[col]))
    assert MODELS["TimesNet"] is ndiv.models.TimesNet


@pytest.mark.parametrize("kw, error, match", [
    (dict(top_k=19), ValueError, r"TimesNet: top_k must be at most \(input_size \+ h\) // 2 = 18"),
    (dict(top_k=0), ValueError, "TimesNet: top_k must be a positive integer, got 0"),
    (dict(num_kernels=2.5), ValueError, "TimesNet: num_kernels must be a positive integer"),
    (dict(hidden_size=0), ValueError, "TimesNet: hidden_size must be a positive integer"),
    (dict(dropout=1.0), ValueError, r"TimesNet: dropout must be a probability in \[0, 1\)"),
    (dict(hist_exog_list=["x"]), ValueError, "TimesNet"),
    (dict(stat_exog_list=["s"]), ValueError, "TimesNet"),
])
def test_errors_name_the_option(kw, error, match):
    with pytest.raises(error, match=match):
        TimesNet(h=12, input_size=24, **kw)

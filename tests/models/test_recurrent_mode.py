"""NeuralForecast's recurrent mode (ndiv/models/_recurrent.py): DeepAR, and RNN, LSTM, GRU with
recurrent=True; nn.LSTM(proj_size=...); the fused LSTM/GRU kernels carrying their state.

Parity with NF 3.3: NF's weights (strict load) give the same recursive forecast through both
libraries' predict paths (the point column, 1e-4 relative; DeepAR's distribution parameters
too, and its quantile columns agree with the exact quantiles of those parameters within the
sampling error of the draws, for both libraries); one training step on the same windows gives
the same loss, gradients and Adam update (tools/nf_train_compare.Pair). Tiny sizes throughout.
"""
from __future__ import annotations

import importlib.util
import os

import numpy as np
import pytest

import ndiv
from ndiv import nn
from ndiv.losses import MAE, DistributionLoss
from ndiv.models import MODELS, DeepAR, GRU, LSTM

from . import nf_reference as nf_ref

TINY = dict(encoder_hidden_size=8)
EXOG = dict(hist_exog_list=["trend"], futr_exog_list=["month_sin"], stat_exog_list=["level"])


# -- nn.LSTM(proj_size) -------------------------------------------------------------------------
def test_lstm_proj_size_matches_torch_forward_and_gradients():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    t = torch.nn.LSTM(3, 6, num_layers=2, batch_first=True, proj_size=2)
    m = nn.LSTM(3, 6, num_layers=2, batch_first=True, proj_size=2)
    m.load_state_dict({k: v.detach().numpy() for k, v in t.state_dict().items()}, strict=True)
    x, h0, c0 = (rng.standard_normal(s).astype(np.float32) for s in ((4, 5, 3), (2, 4, 2), (2, 4, 6)))
    xt = [torch.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    yt, (ht, ct) = t(xt[0], (xt[1], xt[2]))
    (yt.sum() + (ht ** 2).sum() + ct.sum()).backward()
    xn = [ndiv.tensor(a, requires_grad=True) for a in (x, h0, c0)]
    y, (h, c) = m(xn[0], (xn[1], xn[2]))
    (y.sum() + (h ** 2).sum() + c.sum()).backward()
    assert y.shape == (4, 5, 2) and h.shape == (2, 4, 2) and c.shape == (2, 4, 6)
    for a, b in ((y, yt), (h, ht), (c, ct)):
        np.testing.assert_allclose(a.numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)
    for a, b in zip(xn, xt):
        np.testing.assert_allclose(a.grad, b.grad.numpy(), rtol=1e-4, atol=1e-6)
    named = dict(m.named_parameters())
    for k, p in t.named_parameters():
        np.testing.assert_allclose(named[k].grad, p.grad.numpy(), rtol=1e-4, atol=1e-6, err_msg=k)


def test_lstm_proj_size_gradcheck_float64():
    m = nn.LSTM(2, 4, num_layers=2, proj_size=3, dtype="float64")
    x = ndiv.randn(3, 2, 2, dtype="float64", requires_grad=True)
    h0 = ndiv.randn(2, 2, 3, dtype="float64", requires_grad=True)
    c0 = ndiv.randn(2, 2, 4, dtype="float64", requires_grad=True)
    w_hr = m.weight_hr_l1

    def fn(x, h0, c0, w_hr):
        y, (h, c) = m(x, (h0, c0))
        return y.sum() + h.tanh().sum() + (c * c).sum()
    ndiv.autograd.gradcheck(fn, [x, h0, c0, w_hr])


@pytest.mark.parametrize("make, match", [
    (lambda: nn.rnn.RNNBase("GRU", 3, 4, proj_size=2), "proj_size is an LSTM option only"),
    (lambda: nn.LSTM(3, 4, proj_size=4), r"proj_size must be an int in \[0, hidden_size=4\)"),
])
def test_proj_size_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


# -- the fused kernels carry their state across calls ------------------------------------------
@pytest.mark.parametrize("cls, fn", [(nn.LSTM, "lstm_seq"), (nn.GRU, "gru_seq")])
def test_state_carried_step_by_step_equals_one_call_with_the_fused_kernel(cls, fn, monkeypatch):
    from ndiv.autograd.ops import fused
    calls = []
    orig = getattr(fused, fn)
    monkeypatch.setattr(fused, fn, lambda *a, **k: calls.append(1) or orig(*a, **k))
    m = cls(3, 5, num_layers=2, batch_first=True)
    x = ndiv.randn(4, 7, 3)
    whole, _ = m(x)
    out, state = m(x[:, :3])
    outs = [out]
    for t in range(3, 7):                      # then one step at a time, the state carried
        out, state = m(x[:, t:t + 1], state)
        outs.append(out)
    np.testing.assert_allclose(ndiv.cat(outs, axis=1).numpy(), whole.numpy(), rtol=1e-5, atol=1e-6)
    assert len(calls) == 2 * 6                 # the fused kernel ran for every layer and call


# -- NF parity of the recursive forecasts ---------------------------------------------------------
def _data(exog: bool):
    pd = pytest.importorskip("pandas")
    train, test = nf_ref.air_passengers()
    train, test = pd.DataFrame(train), pd.DataFrame(test)
    static = futr = None
    if exog:
        full = pd.concat([train, test], ignore_index=True)
        t = np.arange(len(full), dtype=np.float64)
        full["trend"] = t / len(full) + 0.1 * np.cos(t)
        full["month_sin"] = np.sin(2 * np.pi * full["ds"].dt.month.to_numpy() / 12)
        train, test = full.iloc[:-12].reset_index(drop=True), full.iloc[-12:].reset_index(drop=True)
        futr = test[["unique_id", "ds", "month_sin"]]
        static = pd.DataFrame({"unique_id": ["AirPassengers"], "level": [0.5]})
    return train, futr, static


def _nf_loss(loss):
    import neuralforecast.losses.pytorch as nf_losses
    if isinstance(loss, DistributionLoss):
        return nf_losses.DistributionLoss(loss.distribution, level=[80], return_params=loss.return_params)
    return nf_losses.MAE()


def _forecasts(name, kw, exog=False, loss=None):
    """(ndiv's, NF's) forecast frames from the same weights: NF fits one step, its weights are
    perturbed (so that the forecast moves) and loaded strictly into ndiv."""
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    from neuralforecast import NeuralForecast
    train, futr, static = _data(exog)
    kw = dict(h=12, input_size=24, max_steps=1, random_seed=1, **(EXOG if exog else {}), **kw)
    if loss is None and name == "DeepAR":
        # NF's default loss is one DistributionLoss instance shared by every DeepAR built without a
        # loss; after a fit it holds tensors with history that later deepcopies refuse: use a fresh one
        import neuralforecast.losses.pytorch as nf_losses
        nf_loss = nf_losses.DistributionLoss("StudentT", level=[80, 90], return_params=False)
    else:
        nf_loss = None if loss is None else _nf_loss(loss)
    nf_model = nf_ref.build(name, **kw, **({} if nf_loss is None else dict(loss=nf_loss)))
    nf = NeuralForecast(models=[nf_model], freq="MS")
    nf.fit(train, static_df=static)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for k, p in nf.models[0].named_parameters():
            if not k.startswith(("loss.", "valid_loss.")):   # NF's loss holds its quantiles as a Parameter
                    p.add_(0.5 / p.shape[-1] ** 0.5 * torch.randn(p.shape, generator=gen))   # contractive: no chaos
    p_nf = nf.predict(futr_df=futr)
    nd_model = MODELS[name](enable_progress_bar=False, **kw, **({} if loss is None else dict(loss=loss)))
    fc = ndiv.Forecaster(models=[nd_model], freq="MS").fit(train, static_df=static)
    nf_ref.assert_same_state_dict_layout(nf.models[0], nd_model)
    nf_ref.load_nf_weights(nf.models[0], nd_model)
    return fc.predict(futr_df=futr), p_nf


def _rel(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))


POINT_CASES = [
    ("RNN", dict(recurrent=True), False),                                       # NF's defaults
    ("LSTM", dict(recurrent=True), False),
    ("GRU", dict(recurrent=True), False),
    ("RNN", dict(recurrent=True, h_train=3, inference_input_size=12, encoder_n_layers=1, **TINY), True),
    ("LSTM", dict(recurrent=True, scaler_type="standard", **TINY), True),
    ("GRU", dict(recurrent=True, h_train=2, **TINY), True),
    ("DeepAR", dict(), False),                                                   # NF's defaults
    ("DeepAR", dict(lstm_hidden_size=8, decoder_hidden_layers=1, decoder_hidden_size=4, scaler_type="robust",
                    h_train=3), True),
]


@pytest.mark.parametrize("name, kw, exog", POINT_CASES,
                         ids=[f"{n}-{'exog' if e else 'defaults'}" for n, _, e in POINT_CASES])
def test_recursive_forecast_matches_neuralforecast(name, kw, exog):
    got, ref = _forecasts(name, kw, exog)
    assert np.ptp(ref[name].to_numpy()) > 0   # the forecast moves
    assert _rel(got[name], ref[name]) < 1e-4
    assert list(got.columns) == list(ref.columns)


@pytest.mark.parametrize("name, kw", [
    ("LSTM", dict(recurrent=True, **TINY)),
    ("GRU", dict(recurrent=True, **TINY)),
    ("DeepAR", dict(lstm_hidden_size=8, trajectory_samples=400, scaler_type="standard")),
])
def test_distribution_loss_forecast_matches_neuralforecast(name, kw):
    """Mean and parameters exactly; the quantile columns of both libraries within the sampling
    error of their draws (5 standard errors of a sample quantile, sqrt(q (1 - q) / n) / pdf)."""
    stats = pytest.importorskip("scipy.stats")
    got, ref = _forecasts(name, kw, exog=False, loss=DistributionLoss("StudentT", level=[80], return_params=True))
    for col in (name, f"{name}-df", f"{name}-loc", f"{name}-scale"):
        assert _rel(got[col], ref[col]) < 1e-4, col
    n = kw.get("trajectory_samples", 100)
    df, loc, scale = (got[f"{name}-{p}"].to_numpy() for p in ("df", "loc", "scale"))
    for q, col in ((0.1, f"{name}-lo-80"), (0.5, f"{name}-median"), (0.9, f"{name}-hi-80")):
        exact = stats.t.ppf(q, df, loc, scale)
        se = np.sqrt(q * (1 - q) / n) / stats.t.pdf(exact, df, loc, scale)
        for frame in (got, ref):
            assert np.all(np.abs(frame[col].to_numpy() - exact) < 5 * se), col


# -- one training step, as NF's -----------------------------------------------------------------
def _pair_module():
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "nf_train_compare.py")
    spec = importlib.util.spec_from_file_location("nf_train_compare", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.parametrize("name, kw, exog", [
    ("RNN", dict(recurrent=True, **TINY), False),
    ("LSTM", dict(recurrent=True, h_train=3, **TINY), True),
    ("GRU", dict(recurrent=True, **TINY), True),
    ("DeepAR", dict(lstm_hidden_size=8, lstm_dropout=0.0, windows_batch_size=64, scaler_type="robust", h_train=2), True),
])
def test_training_steps_match_neuralforecast(name, kw, exog):
    """Loss, gradients and the Adam update on the same windows. (DeepAR with scaler_type='robust':
    with its identity default, raw AirPassengers values saturate the LSTM and first-step Adam
    signs of ~0 gradients differ at float32 noise.)"""
    torch = pytest.importorskip("torch")
    nf_ref.nf_models()
    cmp = _pair_module()
    train, _ = cmp.load_train()
    static = None
    if exog:
        train, static = cmp.with_exog(train)
        kw = {**cmp.EXOG, **kw}
    pair = cmp.Pair(name, seed=2, max_steps=5, **kw)
    pair.setup_data(train, static)
    for step in range(2):
        d = pair.step()
        assert d["insample_y"] < 1e-6 and d["loss"] < 1e-5, (step, d["loss"])
        assert max(d["grad"].values()) < 1e-3, (step, max(d["grad"], key=d["grad"].get))
        assert max(d["param"].values()) < 1e-4, (step, max(d["param"], key=d["param"].get))
    torch.set_num_threads(1)


# -- ndiv's own checks --------------------------------------------------------------------------
def test_recursive_validation_is_the_valid_loss_of_the_recursive_forecast():
    """validate() runs the same recursion as predict: its MAE on the held-out window equals the
    MAE of the forecast of that window."""
    pd = pytest.importorskip("pandas")
    train, _ = nf_ref.air_passengers()
    train = pd.DataFrame(train)
    model = GRU(h=6, input_size=12, recurrent=True, max_steps=5, val_check_steps=5, **TINY)
    fc = ndiv.Forecaster(models=[model], freq="MS").fit(train, val_size=6)
    assert len(model.valid_trajectories) == 1
    valid = model.valid_trajectories[0][1]
    forecast = fc.predict(df=train.iloc[:-6])["GRU"].to_numpy()
    assert valid == pytest.approx(np.mean(np.abs(forecast - train["y"].to_numpy()[-6:])), rel=1e-5)


def test_deepar_defaults_point_column_is_deterministic_and_save_load(tmp_path):
    pd = pytest.importorskip("pandas")
    train, _ = nf_ref.air_passengers()
    model = DeepAR(h=4, input_size=8, max_steps=2, lstm_hidden_size=8, trajectory_samples=50,
                   enable_progress_bar=False)
    assert isinstance(model.loss, DistributionLoss) and model.loss.distribution == "StudentT"
    assert isinstance(model.valid_loss, MAE) and model.num_lr_decays == 3 and model.RECURRENT
    assert model._has_sample_randomness()            # lstm_dropout=0.1 between the two layers
    fc = ndiv.Forecaster(models=[model], freq="MS").fit(pd.DataFrame(train))
    a, b = fc.predict(), fc.predict(level=[50])
    np.testing.assert_array_equal(a["DeepAR"], b["DeepAR"])
    assert list(a.columns[2:]) == ["DeepAR", "DeepAR-median", "DeepAR-lo-90", "DeepAR-lo-80", "DeepAR-hi-80",
                                   "DeepAR-hi-90"]
    fc.save(str(tmp_path / "m"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "m"))
    assert type(loaded.models[0]) is DeepAR
    pd.testing.assert_frame_equal(loaded.predict(), a)


def test_recurrent_lstm_save_load(tmp_path):
    pd = pytest.importorskip("pandas")
    train, _ = nf_ref.air_passengers()
    fc = ndiv.Forecaster(models=[LSTM(h=4, input_size=8, recurrent=True, max_steps=2, enable_progress_bar=False,
                                      **TINY)], freq="MS").fit(pd.DataFrame(train))
    fc.save(str(tmp_path / "m"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "m"))
    assert loaded.models[0].RECURRENT and loaded.models[0].hist_encoder.proj_size == 1
    pd.testing.assert_frame_equal(loaded.predict(), fc.predict())


@pytest.mark.parametrize("make, error, match", [
    (lambda: DeepAR(h=4, input_size=8, exclude_insample_y=True), ValueError, "exclude_insample_y"),
    (lambda: DeepAR(h=4, input_size=8, decoder_hidden_layers=1), ValueError, "decoder_hidden_size must be > 0"),
    (lambda: DeepAR(h=4, input_size=8, trajectory_samples=0), ValueError, "trajectory_samples"),
    (lambda: GRU(h=4, input_size=8, recurrent="yes"), TypeError, "recurrent must be True or False"),
    (lambda: LSTM(h=4, input_size=8, recurrent=True, h_train=0), ValueError, "h_train"),
])
def test_errors_name_the_option(make, error, match):
    with pytest.raises(error, match=match):
        make()

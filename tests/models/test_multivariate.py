"""The multivariate path (MULTIVARIATE=True: n_series, a batch holds all series, output
[B, h, N * n_out]) and its models: MLPMultivariate, TSMixer, TSMixerx, StemGNN, iTransformer.

For each model: NeuralForecast's state_dict loads strictly and gives the same forecast on the
same windows (default configuration and others: exogenous inputs, MQLoss, DistributionLoss),
BatchNorm statistics included; one training step from the same weights and windows matches NF
(loss, gradients, Adam update). The path end to end: through `Forecaster`, a multivariate model
beside a univariate one (fit, predict, cross_validation, predict_insample, save/load), NF's
predict and cross_validation from the same weights (per-series scalers, exogenous layouts,
NF's inference batching, which a batch-dependent graph such as StemGNN's makes visible), a fit
on ETTh1's 7 columns as 7 series that beats a naive forecast, and the errors.

The NF comparisons skip without torch / neuralforecast; the ETTh1 tests skip without ../shared.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

import ndiv
from ndiv.losses import MQLoss, DistributionLoss
from ndiv.models import MODELS, MLP, MLPMultivariate, StemGNN, TSMixer

from . import nf_reference as nf_ref

MV = ["MLPMultivariate", "TSMixer", "TSMixerx", "StemGNN", "iTransformer"]


def mv_batch(rng, b, input_size, h, n_series, hist=0, futr=0, stat=0):
    """A random multivariate windows_batch (numpy) with NF's keys and layouts."""
    return dict(insample_y=rng.standard_normal((b, input_size, n_series)).astype(np.float32),
                insample_mask=np.ones((b, input_size, n_series), np.float32),
                hist_exog=rng.standard_normal((b, hist, input_size, n_series)).astype(np.float32) if hist else None,
                futr_exog=rng.standard_normal((b, futr, input_size + h, n_series)).astype(np.float32) if futr else None,
                stat_exog=rng.standard_normal((n_series, stat)).astype(np.float32) if stat else None)


def _etth1_path():
    here = os.path.dirname(__file__)
    return os.path.join(here, "..", "..", "..", "shared", "data", "ett", "ETTh1.csv")


def etth1(n_rows: int, n_cols: int = 7):
    """ETTh1's first n_rows hours, its first n_cols columns as series, long format (pandas)."""
    pd = pytest.importorskip("pandas")
    if not os.path.exists(_etth1_path()):
        pytest.skip("../shared/data/ett/ETTh1.csv is absent")
    raw = pd.read_csv(_etth1_path(), parse_dates=["date"], nrows=n_rows).iloc[:, :n_cols + 1]
    return raw.melt(id_vars="date", var_name="unique_id", value_name="y").rename(columns={"date": "ds"})


def with_exog(df, n_series):
    """df plus a future-known column (hour of day), a historical one and a static table."""
    pd = pytest.importorskip("pandas")
    df = df.copy()
    df["f"] = np.sin(df["ds"].dt.hour.to_numpy() / 24 * 2 * np.pi)
    df["x"] = np.cos(np.arange(len(df)) * 0.37)
    df["hour"] = df["ds"].dt.hour.to_numpy()                       # categorical in some cases
    uids = sorted(df["unique_id"].unique())
    static = pd.DataFrame({"unique_id": uids, "s": np.arange(n_series) / n_series,
                           "grp": [10 + 10 * (i % 2) for i in range(n_series)]})
    return df, static


# -- NeuralForecast's weights give the same forecast ---------------------------------------------
EXOG = dict(hist_exog_list=["a", "b"], futr_exog_list=["c"], stat_exog_list=["s1", "s2"])
EXOG_SIZES = dict(hist=2, futr=1, stat=2)
NF_CASES = [
    ("MLPMultivariate", dict(h=12, input_size=24, n_series=3), {}),
    ("MLPMultivariate", dict(h=5, input_size=9, n_series=3, hidden_size=8, num_layers=3, loss=MQLoss(level=[80, 90]),
                             **EXOG), EXOG_SIZES),
    ("MLPMultivariate", dict(h=4, input_size=7, n_series=2, hidden_size=8, futr_exog_list=["c", "d"],
                             loss=("DistributionLoss", "Normal")), dict(futr=2)),
    ("StemGNN", dict(h=12, input_size=24, n_series=3), {}),
    ("StemGNN", dict(h=5, input_size=9, n_series=4, multi_layer=2, leaky_rate=0.1, loss=MQLoss(level=[80])), {}),
    ("StemGNN", dict(h=4, input_size=6, n_series=2, multi_layer=1, loss=("DistributionLoss", "StudentT")), {}),
    ("TSMixer", dict(h=12, input_size=24, n_series=3), {}),
    ("TSMixer", dict(h=5, input_size=9, n_series=3, ff_dim=8, n_block=3, revin=False, loss=MQLoss(level=[80])), {}),
    ("TSMixer", dict(h=4, input_size=6, n_series=2, ff_dim=4, n_block=1, loss=("DistributionLoss", "Normal")), {}),
    ("TSMixerx", dict(h=12, input_size=24, n_series=3), {}),
    ("TSMixerx", dict(h=5, input_size=9, n_series=3, ff_dim=8, loss=MQLoss(level=[80, 90]), **EXOG), EXOG_SIZES),
    ("TSMixerx", dict(h=4, input_size=7, n_series=2, ff_dim=4, n_block=1, revin=False, futr_exog_list=["c", "d"],
                      hist_exog_list=["a"], loss=("DistributionLoss", "StudentT")), dict(futr=2, hist=1)),
    ("TSMixerx", dict(h=4, input_size=7, n_series=2, ff_dim=4, stat_exog_list=["s1"]), dict(stat=1)),
    ("iTransformer", dict(h=12, input_size=24, n_series=3), {}),
    ("iTransformer", dict(h=5, input_size=9, n_series=3, hidden_size=16, n_heads=2, d_ff=8, e_layers=3,
                          futr_exog_list=["c", "d"], loss=MQLoss(level=[80])), dict(futr=2)),
    ("iTransformer", dict(h=4, input_size=6, n_series=2, hidden_size=10, n_heads=4, d_ff=8, use_norm=False,
                          loss=("DistributionLoss", "Normal")), {}),
]


def _nf_twin_loss(loss):
    import neuralforecast.losses.pytorch as nf_losses
    if isinstance(loss, tuple):
        return nf_losses.DistributionLoss(loss[1], level=[80])
    return nf_ref.nf_loss(loss)


def _nd_loss(loss):
    return DistributionLoss(loss[1], level=[80]) if isinstance(loss, tuple) else loss


def _pair(name, kw):
    """(NF model, ndiv model) with the same hyperparameters and NF's weights in both."""
    nf_model = nf_ref.build(name, **({**kw, "loss": _nf_twin_loss(kw["loss"])} if "loss" in kw else kw))
    nd_model = MODELS[name](**({**kw, "loss": _nd_loss(kw["loss"])} if "loss" in kw else kw))
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    nf_ref.load_nf_weights(nf_model, nd_model)
    return nf_model, nd_model


@pytest.mark.parametrize("name,kw,exog", NF_CASES, ids=[f"{n}-{i}" for i, (n, _, _) in enumerate(NF_CASES)])
def test_neuralforecast_weights_give_the_same_forecast(name, kw, exog):
    nf_ref.nf_models()
    nf_model, nd_model = _pair(name, kw)
    batch = mv_batch(np.random.default_rng(6), 5, kw["input_size"], kw["h"], kw["n_series"], **exog)
    out = nf_ref.assert_same_forward(nf_model, nd_model, batch)
    assert out.shape == (5, kw["h"], kw["n_series"] * nd_model.loss.outputsize_multiplier)


# -- one training step matches NeuralForecast ----------------------------------------------------
STEP_CASES = [
    ("MLPMultivariate", dict(hidden_size=16, scaler_type="standard", futr_exog_list=["f"], hist_exog_list=["x"],
                             stat_exog_list=["s"])),
    ("StemGNN", dict(multi_layer=2, dropout_rate=0.0)),                       # scaler 'robust' by default
    ("TSMixer", dict(ff_dim=8, dropout=0.0)),                       # RevIN; BatchNorm on batch statistics
    ("TSMixerx", dict(ff_dim=8, scaler_type="robust", futr_exog_list=["f"], hist_exog_list=["x"],
                      stat_exog_list=["s"])),
    ("iTransformer", dict(hidden_size=16, n_heads=2, d_ff=8, dropout=0.0, futr_exog_list=["f"])),
]


@pytest.mark.parametrize("name,kw", STEP_CASES, ids=[n for n, _ in STEP_CASES])
def test_training_steps_match_neuralforecast(name, kw):
    """Three steps on ETTh1's first 4 columns, each from NF's weights on the windows ndiv's sampler
    draws (NF's own training_step on that draw): the scaled inputs, the loss, the gradients and
    the Adam update agree. Gradient elements at float32 noise carry no sign: Adam turns them into
    a step of up to lr, so there the updates only stay within 2 lr."""
    nf_ref.nf_models()
    from tools.nf_train_compare import Pair
    df, static = with_exog(etth1(240, 4), 4)
    exog = bool(kw.get("futr_exog_list"))
    if exog and not kw.get("stat_exog_list"):
        static = None
    pair = Pair(name, h=6, input_size=12, n_series=4, max_steps=3, windows_batch_size=16, **kw)
    pair.setup_data(df if exog else df[["unique_id", "ds", "y"]], static if exog else None, freq="h")
    lr = pair.nd.learning_rate
    for step in range(3):
        before = {k: p.detach().numpy().copy() for k, p in pair.nf.named_parameters()}
        d = pair.step()
        assert d["insample_y"] < 1e-5 and d["loss"] < 1e-5, (step, d["insample_y"], d["loss"])
        t_grads = {k: np.zeros(tuple(p.shape)) if p.grad is None else p.grad.numpy() for k, p in pair.nf.named_parameters()}
        noise = 1e-6 * max(float(np.abs(g).max()) for g in t_grads.values())
        for k, g in t_grads.items():           # a key bias's gradient is exactly 0 up to rounding (softmax)
            assert d["grad_abs"][k] <= 1e-3 * np.abs(g).max() + noise, (step, k, d["grad_abs"][k])
        nd_params = dict(pair.nd.named_parameters())
        for k, p in pair.nf.named_parameters():
            after = p.detach().numpy()
            tol = 2e-3 * np.abs(after - before[k]).max() + 1e-6 * np.abs(before[k]).max() + 1e-8
            tol = np.where(np.abs(t_grads[k]) < noise, 2 * lr, tol)
            err = np.abs(nd_params[k].data - after)
            assert (err <= tol).all(), (step, k, float(err.max()))
        pair.sync()


# -- the path end to end through Forecaster ------------------------------------------------------
def test_forecaster_runs_a_multivariate_model_beside_a_univariate_one(tmp_path):
    """fit / predict / cross_validation / predict_insample / save / load on 4 ETTh1 series with
    every exogenous kind, MQLoss per series, a per-series temporal scaler."""
    pd = pytest.importorskip("pandas")
    df, static = with_exog(etth1(200, 4), 4)
    last = df["ds"].max()
    train, futr = df[df["ds"] <= last - pd.Timedelta(hours=6)], df[df["ds"] > last - pd.Timedelta(hours=6)]
    mv = MLPMultivariate(h=6, input_size=12, n_series=4, hidden_size=16, max_steps=5, scaler_type="standard",
                         loss=MQLoss(level=[80]), futr_exog_list=["f"], hist_exog_list=["x"], stat_exog_list=["s"],
                         enable_progress_bar=False)
    uni = MLP(h=6, input_size=12, hidden_size=8, max_steps=5, enable_progress_bar=False)
    fc = ndiv.Forecaster([mv, uni], freq="h").fit(train, static_df=static, val_size=6)
    assert len(mv.valid_trajectories) == 0 and len(mv.train_trajectories) == 5
    pred = fc.predict(futr_df=futr[["unique_id", "ds", "f"]])
    assert list(pred.columns) == ["unique_id", "ds", "MLPMultivariate-median", "MLPMultivariate-lo-80",
                                  "MLPMultivariate-hi-80", "MLP"]
    assert len(pred) == 4 * 6 and np.isfinite(pred.iloc[:, 2:].to_numpy()).all()
    lo, med, hi = (pred[f"MLPMultivariate{s}"].to_numpy() for s in ("-lo-80", "-median", "-hi-80"))
    assert (lo <= med).all() and (med <= hi).all()
    fc.save(str(tmp_path / "fc"))
    loaded = ndiv.Forecaster.load(str(tmp_path / "fc"))
    again = loaded.predict(futr_df=futr[["unique_id", "ds", "f"]])
    np.testing.assert_array_equal(again.iloc[:, 2:].to_numpy(), pred.iloc[:, 2:].to_numpy())
    cv = fc.cross_validation(df, static_df=static, n_windows=2, step_size=3)
    assert len(cv) == 4 * 2 * 6 and list(cv.columns)[-1] == "y"
    np.testing.assert_array_equal(np.sort(cv["cutoff"].unique()),
                                  np.sort(df["ds"].unique())[[-10, -7]])
    ins = fc.predict_insample(step_size=6)
    assert np.isfinite(ins["MLPMultivariate-median"].to_numpy()).all()
    assert set(ins["unique_id"]) == set(df["unique_id"])


# TSMixer is left out: cross_validation's refit step updates its BatchNorm running statistics on
# each library's own random windows (its forward from NF's weights, BatchNorm included, is tested above)
PREDICT_CASES = [
    ("MLPMultivariate", dict(hidden_size=16, scaler_type="standard", futr_exog_list=["f"], hist_exog_list=["x"],
                             stat_exog_list=["s"])),
    ("StemGNN", dict(multi_layer=2, inference_windows_batch_size=2)),     # the graph of each batch of 2 windows
    ("TSMixerx", dict(ff_dim=8, futr_exog_list=["f"], hist_exog_list=["x"], stat_exog_list=["s"],
                      inference_windows_batch_size=3)),
    ("iTransformer", dict(hidden_size=16, n_heads=2, d_ff=8, scaler_type="robust")),
    ("MLPMultivariate", dict(hidden_size=8, scaler_type="revin", inference_windows_batch_size=4)),  # learnable scaler
    ("MLPMultivariate", dict(hidden_size=16, scaler_type="robust", futr_exog_list=["f", "hour"], hist_exog_list=["x"],
                             stat_exog_list=["s", "grp"], cat_exog_list=["hour", "grp"],
                             categorical_cardinalities={"hour": 24, "grp": 2})),
    ("TSMixerx", dict(ff_dim=8, futr_exog_list=["hour"], stat_exog_list=["grp"], cat_exog_list=["hour", "grp"],
                      categorical_cardinalities={"hour": 24, "grp": 2}, cat_emb_dim=3)),
]


@pytest.mark.parametrize("name,kw", PREDICT_CASES, ids=[f"{n}-{i}" for i, (n, _) in enumerate(PREDICT_CASES)])
def test_predict_and_cross_validation_match_neuralforecast(name, kw):
    """Same weights (a learning rate of 1e-30 leaves NF's initial weights in both): NF's
    NeuralForecast.predict and cross_validation give the same forecasts as ndiv's Forecaster
    (windows, per-series scaling and its inverse, exogenous layouts, inference batching)."""
    nf_ref.nf_models()
    pd = pytest.importorskip("pandas")
    from neuralforecast import NeuralForecast
    df, static = with_exog(etth1(160, 3), 3)
    exog = bool(kw.get("futr_exog_list"))
    if not exog:
        df, static = df[["unique_id", "ds", "y"]], None
    last = df["ds"].max()
    train = df[df["ds"] <= last - pd.Timedelta(hours=6)]
    futr = df[df["ds"] > last - pd.Timedelta(hours=6)][["unique_id", "ds", *kw["futr_exog_list"]]] if exog else None
    args = dict(h=6, input_size=12, n_series=3, max_steps=1, learning_rate=1e-30, **kw)
    nf_model = nf_ref.build(name, **args)
    nd_model = MODELS[name](enable_progress_bar=False, **args)
    nf_fc = NeuralForecast([nf_model], freq="h")
    nf_fc.fit(train, static_df=static)
    fc = ndiv.Forecaster([nd_model], freq="h").fit(train, static_df=static)
    nf_ref.load_nf_weights(nf_fc.models[0], nd_model)

    def same(ours, ref, keys):
        merged = ref.merge(ours, on=keys, suffixes=("_nf", "_nd"))
        assert len(merged) == len(ref) == len(ours)
        np.testing.assert_allclose(merged[f"{name}_nd"], merged[f"{name}_nf"], rtol=1e-4, atol=1e-4)

    same(fc.predict(futr_df=futr), nf_fc.predict(futr_df=futr, static_df=static), ["unique_id", "ds"])
    if not exog:                               # h=12 from h=6: recursively, the forecast fed back as in NF
        same(fc.predict(h=12), nf_fc.predict(h=12), ["unique_id", "ds"])
    cv_nf = nf_fc.cross_validation(df, static_df=static, n_windows=5, step_size=2)
    cv_nd = fc.cross_validation(df, static_df=static, n_windows=5, step_size=2)
    same(cv_nd, cv_nf, ["unique_id", "ds", "cutoff"])


def test_etth1_seven_series_beat_the_naive_forecast():
    """ETTh1's 7 columns as 7 series: a short fit forecasts the last 24 hours better than
    repeating the last observed value (mean MAE over the series)."""
    pd = pytest.importorskip("pandas")
    df = etth1(1200)
    last = df["ds"].max()
    train, test = df[df["ds"] <= last - pd.Timedelta(hours=24)], df[df["ds"] > last - pd.Timedelta(hours=24)]
    model = MLPMultivariate(h=24, input_size=96, n_series=7, hidden_size=128, max_steps=150, learning_rate=1e-3,
                            scaler_type="standard", windows_batch_size=64, enable_progress_bar=False)
    pred = ndiv.Forecaster([model], freq="h").fit(train).predict()
    merged = test.merge(pred, on=["unique_id", "ds"])
    assert len(merged) == 7 * 24
    naive = merged["unique_id"].map(train.groupby("unique_id")["y"].last())
    mae, mae_naive = (float(np.mean(np.abs(merged["y"] - v))) for v in (merged["MLPMultivariate"], naive))
    print(f"ETTh1 7 series, h=24: MAE {mae:.3f}, naive {mae_naive:.3f}")
    assert mae < mae_naive, (mae, mae_naive)


# -- errors ---------------------------------------------------------------------------------------
def _three_series(lengths=(30, 30, 30), ends=None):
    """Hourly series 'a', 'b', 'c' with the given lengths, all ending together unless ends."""
    ends = ends or [np.datetime64("2024-01-03T00")] * len(lengths)
    uid, ds, y = [], [], []
    for name, n, end in zip("abc", lengths, ends):
        uid += [name] * n
        ds.append(end - np.arange(n)[::-1].astype("timedelta64[h]"))
        y.append(np.sin(np.arange(n) / 3.0) + ord(name))
    return {"unique_id": np.array(uid), "ds": np.concatenate(ds), "y": np.concatenate(y)}


@pytest.mark.parametrize("name", MV)
def test_multivariate_needs_n_series(name):
    with pytest.raises(ValueError, match="multivariate model: set n_series"):
        MODELS[name](h=4, input_size=8)


def test_n_series_must_match_the_data_at_fit_and_predict():
    model = MLPMultivariate(h=4, input_size=8, n_series=2, hidden_size=4, max_steps=1, enable_progress_bar=False)
    with pytest.raises(ValueError, match=r"built with n_series=2 but the data has 3 series"):
        ndiv.Forecaster([model], freq="h").fit(_three_series())
    model = MLPMultivariate(h=4, input_size=8, n_series=3, hidden_size=4, max_steps=1, enable_progress_bar=False)
    fc = ndiv.Forecaster([model], freq="h").fit(_three_series())
    two = {k: v[:60] for k, v in _three_series().items()}
    with pytest.raises(ValueError, match=r"\(predict\): the model was built with n_series=3 but the data has 2"):
        fc.predict(df=two)


def test_series_must_end_together_but_may_start_apart():
    end = np.datetime64("2024-01-03T00")
    model = MLPMultivariate(h=4, input_size=8, n_series=3, hidden_size=4, max_steps=2, enable_progress_bar=False)
    with pytest.raises(ValueError, match="aligned on the same dates.*'a' ends at .* and series 'c'"):
        ndiv.Forecaster([model], freq="h").fit(_three_series(ends=[end, end, end - np.timedelta64(2, "h")]))
    fc = ndiv.Forecaster([model], freq="h").fit(_three_series(lengths=(30, 24, 20)))   # padded starts, masked
    pred = fc.predict()
    assert len(pred["unique_id"]) == 12 and np.isfinite(np.asarray(pred["MLPMultivariate"])).all()
    with pytest.raises(ValueError, match="multivariate and the series have different lengths"):
        fc.predict_insample()


def test_stemgnn_options():
    with pytest.raises(ValueError, match="n_stacks must be 2"):
        StemGNN(h=4, input_size=8, n_series=2, n_stacks=3)
    with pytest.raises(ValueError, match="dropout_rate must be a probability"):
        StemGNN(h=4, input_size=8, n_series=2, dropout_rate=1.5)
    with pytest.raises(ValueError, match="multivariate models do not support|does not support hist"):
        StemGNN(h=4, input_size=8, n_series=2, hist_exog_list=["x"])


@pytest.mark.parametrize("name", MV)
def test_registered_and_saved_by_name(name):
    assert MODELS[name] is getattr(ndiv.models, name)
    assert MODELS[name].MULTIVARIATE


def test_stemgnn_graph_is_the_batch_mean():
    """StemGNN's forecast of a window depends on the other windows of its batch (NF's graph)."""
    model = StemGNN(h=3, input_size=6, n_series=3, multi_layer=1).eval()
    rng = np.random.default_rng(2)
    batch = mv_batch(rng, 4, 6, 3, 3)
    with ndiv.no_grad():
        full = model(nf_ref.as_tensors(batch)).numpy()
        first = model(nf_ref.as_tensors({k: None if v is None else v[:1] for k, v in batch.items()})).numpy()
        mul_L, graph = model.latent_correlation_layer(ndiv.tensor(batch["insample_y"]))
    assert not np.allclose(full[:1], first)
    np.testing.assert_allclose(graph.numpy(), graph.numpy().T, rtol=1e-6)
    np.testing.assert_array_equal(mul_L.numpy()[0], 0.0)          # NF's zeroth Chebyshev order is zeros


def test_tsmixer_batch_norm_matches_neuralforecast_in_training_and_after():
    """Training mode (dropout 0): the BatchNorm1d over N * L uses batch statistics and updates its
    running statistics (momentum 0.01) as NF's; eval mode then uses them as NF does."""
    nf_ref.nf_models()
    import torch
    kw = dict(h=4, input_size=7, n_series=3, ff_dim=5, dropout=0.0)
    nf_model, nd_model = _pair("TSMixer", kw)
    batch = mv_batch(np.random.default_rng(9), 6, 7, 4, 3)
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
        np.testing.assert_allclose(np.asarray(ours[k]), v, rtol=1e-5, atol=1e-6, err_msg=k)
    assert int(np.asarray(ours["mixing_layers.0.temporal_mixer.temporal_norm.num_batches_tracked"])) == 2
    nf_ref.assert_same_forward(nf_model, nd_model, mv_batch(np.random.default_rng(10), 3, 7, 4, 3))


def test_tsmixer_default_dropout_draws_ninety_percent():
    """NF's default dropout 0.9: in training each dropout zeroes ~90% of the values and scales
    the rest by 10 (the expectation kept); the forecast is random in training, fixed in eval,
    and repeated windows are not deduplicated."""
    model = TSMixer(h=4, input_size=8, n_series=50, ff_dim=4)
    assert model._has_sample_randomness()
    drop = model.mixing_layers[0].temporal_mixer.temporal_drop
    assert drop.p == 0.9
    model.train()
    ndiv.manual_seed(0)
    out = drop(ndiv.tensor(np.ones((64, 8, 50), np.float32))).numpy()
    kept = out != 0
    assert abs(kept.mean() - 0.1) < 0.01
    np.testing.assert_allclose(out[kept], 10.0, rtol=1e-6)
    batch = nf_ref.as_tensors(mv_batch(np.random.default_rng(1), 4, 8, 4, 50))
    assert not np.allclose(model(batch).numpy(), model(batch).numpy())
    model.eval()
    np.testing.assert_array_equal(model(batch).numpy(), model(batch).numpy())


@pytest.mark.parametrize("name", MV)
def test_one_series_works_as_in_neuralforecast(name):
    """NF fits and predicts every multivariate model on AirPassengers as one series (n_series=1)."""
    train, test = nf_ref.air_passengers()
    small = dict(MLPMultivariate=dict(hidden_size=16), TSMixer=dict(ff_dim=4), TSMixerx=dict(ff_dim=4),
                 StemGNN=dict(multi_layer=1), iTransformer=dict(hidden_size=8, n_heads=2, d_ff=8))
    model = MODELS[name](h=12, input_size=24, n_series=1, max_steps=3, enable_progress_bar=False, **small[name])
    pred = ndiv.Forecaster([model], freq="MS").fit(train).predict()
    y = np.asarray(pred[name])
    assert y.shape == (12,) and np.isfinite(y).all()


TINY = {  # float64 gradcheck: deterministic (no dropout), every input kind the model takes
    "MLPMultivariate": (dict(hidden_size=4, **EXOG), EXOG_SIZES),
    "TSMixer": (dict(ff_dim=3, dropout=0.0), {}),
    "TSMixerx": (dict(ff_dim=3, **EXOG), EXOG_SIZES),
    "StemGNN": (dict(multi_layer=1, dropout_rate=0.0), {}),
    "iTransformer": (dict(hidden_size=4, n_heads=2, d_ff=4, dropout=0.0, futr_exog_list=["c"]), dict(futr=1)),
}


@pytest.mark.parametrize("name", MV)
def test_gradcheck_loss_float64(name):
    kw, exog = TINY[name]
    model = MODELS[name](h=2, input_size=4, n_series=3, **kw).double()
    rng = np.random.default_rng(0)
    batch = nf_ref.as_tensors(mv_batch(rng, 3, 4, 2, 3, **exog), np.float64, requires_grad=True)
    y = ndiv.tensor(rng.standard_normal((3, 2, 3)))
    # RevIN (TSMixer, TSMixerx) and iTransformer's use_norm detach the window statistics, as NF
    # does: their gradient with respect to insample_y is not the function's, so check the rest
    detached = {"insample_y"} if name in ("TSMixer", "TSMixerx", "iTransformer") else set()
    inputs = [t for k, t in batch.items() if t is not None and t.requires_grad and k not in detached]
    inputs += list(model.parameters())

    def loss(*_):
        return model.loss(y=y, y_hat=model(batch))

    assert ndiv.autograd.gradcheck(loss, inputs, max_elements=32)


@pytest.mark.parametrize("name", MV)
def test_save_load_gives_the_same_forecast(name, tmp_path):
    """Each model through Forecaster.save / load on 3 ETTh1 series (BatchNorm buffers included)."""
    df = etth1(120, 3)
    kw, _ = TINY[name]
    kw = {k: v for k, v in kw.items() if not k.endswith("exog_list")}
    model = MODELS[name](h=4, input_size=8, n_series=3, max_steps=3, enable_progress_bar=False, **kw)
    fc = ndiv.Forecaster([model], freq="h").fit(df)
    before = fc.predict()
    fc.save(str(tmp_path / "fc"))
    after = ndiv.Forecaster.load(str(tmp_path / "fc")).predict()
    np.testing.assert_array_equal(after[name].to_numpy(), before[name].to_numpy())


@pytest.mark.parametrize("name,kw", [("MLPMultivariate", dict(hidden_size=8, scaler_type="standard")),
                                     ("StemGNN", dict(multi_layer=1, inference_windows_batch_size=4)),
                                     ("TSMixer", dict(ff_dim=4, loss=MQLoss(level=[80])))])
def test_validation_loss_matches_neuralforecast(name, kw):
    """The validation loss (early stopping's signal) over the last val_size steps, windows in
    batches of inference_windows_batch_size, in the data's scale: NF's validation_step's value."""
    nf_ref.nf_models()
    import pandas as pd
    import torch
    from ndiv.data import TimeSeriesDataset
    df = etth1(120, 3)
    args = dict(h=4, input_size=8, n_series=3, **kw)
    nf_model, nd_model = _pair(name, args)
    ds = TimeSeriesDataset.from_df({c: df[c].to_numpy() for c in ("unique_id", "ds", "y")}, freq="h")
    nd_model.val_size = nf_model.val_size = 12
    nf_model.test_size = 0
    nf_model.log = lambda *a, **k: None
    nf_model.validation_step_outputs = []
    nf_model.eval()
    b = ds.batch()
    batch = dict(temporal=torch.tensor(b["temporal"]), temporal_cols=pd.Index(list(b["temporal_cols"])),
                 y_idx=b["y_idx"])
    with torch.no_grad():
        ref = float(nf_model.validation_step(batch, 0))
    got = nd_model.validate(ds)
    assert abs(got - ref) <= 1e-5 * abs(ref), (got, ref)


def test_cli_builds_a_multivariate_model_for_the_datas_series(tmp_path):
    from ndiv import cli
    out = tmp_path / "f.csv"
    assert cli.main(["forecast", "--model", "MLPMultivariate", "--max-steps", "2", "--output", str(out)]) == 0
    assert out.read_text().count("\n") == 1 + 12           # AirPassengers: one series, h=12


@pytest.mark.parametrize("make,match", [
    (lambda: MLPMultivariate(h=4, input_size=8, n_series=2, num_layers=0), "num_layers must be a positive integer"),
    (lambda: TSMixer(h=4, input_size=8, n_series=2, dropout=1.0), "dropout must be a probability"),
    (lambda: TSMixer(h=4, input_size=8, n_series=2, revin="yes"), "revin must be True or False"),
    (lambda: MODELS["TSMixerx"](h=4, input_size=8, n_series=2, ff_dim=0), "ff_dim must be a positive integer"),
    (lambda: MODELS["iTransformer"](h=4, input_size=8, n_series=2, e_layers=0), "e_layers must be a positive"),
    (lambda: MODELS["iTransformer"](h=4, input_size=8, n_series=2, hist_exog_list=["x"]), "does not support hist"),
    (lambda: TSMixer(h=4, input_size=8, n_series=0), "n_series must be a positive integer"),
])
def test_errors_name_the_option(make, match):
    with pytest.raises(ValueError, match=match):
        make()


@pytest.mark.parametrize("name", MV)
def test_model_defaults_are_neuralforecasts(name):
    import inspect
    nf = nf_ref.nf_models()
    ref = {k: p.default for k, p in inspect.signature(getattr(nf, name).__init__).parameters.items()
           if p.default is not inspect.Parameter.empty}
    ours = {k: p.default for k, p in inspect.signature(MODELS[name]).parameters.items()
            if p.default is not inspect.Parameter.empty}
    skip = {"loss", "valid_loss", "optimizer", "lr_scheduler", "enable_progress_bar", "n_series"}
    for k, v in ours.items():
        if k in ref and k not in skip:
            assert v == ref[k], (k, v, ref[k])
    missing = {k for k in ref if k not in ours} - {"val_monitor", "dataloader_kwargs"}
    assert not missing, missing

"""Categorical exogenous inputs (NeuralForecast 3.3's cat_exog_list): NF's embedding layout and
weights, the same forecast on the same windows, the mean embedding of an unseen category, the
Forecaster's vocabulary (fit, predict, save/load) on Stallion, and the errors."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import ndiv
from ndiv import Forecaster
from ndiv.models import MODELS
from ndiv.models.common._modules import resolve_cat_emb_dim

from . import nf_reference as nf_ref

STALLION = Path(__file__).parents[2] / ".." / "shared" / "data" / "stallion"

# hc, fc, sc: categorical hist, futr and static columns; h1, f1, s1 numeric ones
EXOG = dict(hist_exog_list=["h1", "hc"], futr_exog_list=["fc", "f1"], stat_exog_list=["sc", "s1"],
            cat_exog_list=["hc", "fc", "sc"], categorical_cardinalities={"hc": 3, "fc": 7, "sc": 4})
CARDS = {"hc": 3, "fc": 7, "sc": 4}

SMALL = {
    "MLP": dict(num_layers=2, hidden_size=16),
    "NHITS": dict(mlp_units=[[16, 16]] * 3),
    "RNN": dict(encoder_hidden_size=8, decoder_hidden_size=8),
    "LSTM": dict(encoder_hidden_size=8, decoder_hidden_size=8),
    "GRU": dict(encoder_hidden_size=8, decoder_hidden_size=8),
    "TCN": dict(encoder_hidden_size=8, decoder_hidden_size=8),
    "NBEATSx": dict(mlp_units=[[16, 16]] * 3),
    "TiDE": dict(hidden_size=16, decoder_output_dim=4, temporal_decoder_dim=8),
    "DeepNPTS": dict(hidden_size=16),
    "BiTCN": dict(hidden_size=8),
}
CASES = [(n, "fastai") for n in SMALL] + [("MLP", "sqrt"), ("MLP", "half"), ("NHITS", 3), ("LSTM", "half"),
                                          ("TCN", 2)]


def _raw_batch(rng, b, L, h, exog):
    """A windows batch whose categorical columns hold codes 0..K (0: a category unseen in training)."""
    def block(shape, cols):
        x = rng.standard_normal(shape).astype(np.float32)
        for j, c in enumerate(cols):
            if c in CARDS:
                x[..., j] = rng.integers(0, CARDS[c] + 1, shape[:-1])
        return x
    return dict(insample_y=rng.standard_normal((b, L, 1)).astype(np.float32),
                insample_mask=np.ones((b, L, 1), np.float32),
                hist_exog=block((b, L, 2), exog["hist_exog_list"]),
                futr_exog=block((b, L + h, 2), exog["futr_exog_list"]),
                stat_exog=block((b, 2), exog["stat_exog_list"]))


def _nf_forward(nf_model, batch):
    """NF's forward on the batch after its own _embed_stream (what its _parse_windows does)."""
    import torch
    tb = {k: torch.tensor(v) for k, v in batch.items()}
    for kind in ("hist", "futr", "stat"):
        tb[f"{kind}_exog"] = nf_model._embed_stream(
            tb[f"{kind}_exog"], getattr(nf_model, f"{kind}_exog_list"),
            getattr(nf_model, f"{kind}_cat_exog_list"), getattr(nf_model, f"{kind}_cat_embeddings"))
    with torch.no_grad():
        return nf_model(tb).numpy()


@pytest.mark.parametrize("name,emb", CASES, ids=[f"{n}-{e}" for n, e in CASES])
def test_nf_weights_load_strictly_and_give_the_same_forecast(name, emb):
    nf = nf_ref.nf_models()
    if not getattr(getattr(nf, name), "EXOGENOUS_CAT", False):
        pytest.skip(f"NeuralForecast's {name} has no categorical inputs")
    kw = dict(h=4, input_size=8, cat_emb_dim=emb, **EXOG, **SMALL[name])
    nf_model = nf_ref.build(name, **kw)
    nd_model = MODELS[name](**kw)
    assert nd_model.EXOGENOUS_CAT
    nf_ref.assert_same_state_dict_layout(nf_model, nd_model)
    assert "futr_cat_embeddings.0.weight" in nd_model.state_dict()
    assert nd_model.futr_exog_size == nf_model.futr_exog_size == 1 + resolve_cat_emb_dim(emb, 7)
    nf_ref.load_nf_weights(nf_model, nd_model)
    nf_model.eval()
    nd_model.eval()
    batch = _raw_batch(np.random.default_rng(3), 6, 8, 4, EXOG)
    assert (batch["futr_exog"][..., 0] == 0).any()   # some categories unseen in training
    ref = _nf_forward(nf_model, batch)
    with ndiv.no_grad():
        got = nd_model(nd_model._tensors(batch)).numpy()
    assert got.shape == ref.shape
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["MLP", "LSTM", "TCN"])
def test_embedding_gradients_match_nf(name):
    """One backward pass through the embeddings (unseen codes included) gives NF's gradients."""
    nf_ref.nf_models()
    import torch
    kw = dict(h=4, input_size=8, **EXOG, **SMALL[name])
    nf_model, nd_model = nf_ref.build(name, **kw), MODELS[name](**kw)
    nf_ref.load_nf_weights(nf_model, nd_model)
    nf_model.eval()
    nd_model.eval()
    batch = _raw_batch(np.random.default_rng(5), 5, 8, 4, EXOG)
    tb = {k: torch.tensor(v) for k, v in batch.items()}
    for kind in ("hist", "futr", "stat"):
        tb[f"{kind}_exog"] = nf_model._embed_stream(
            tb[f"{kind}_exog"], getattr(nf_model, f"{kind}_exog_list"),
            getattr(nf_model, f"{kind}_cat_exog_list"), getattr(nf_model, f"{kind}_cat_embeddings"))
    (nf_model(tb) ** 2).sum().backward()
    (nd_model(nd_model._tensors(batch)) ** 2).sum().backward()
    for kind in ("hist", "futr", "stat"):
        ref = getattr(nf_model, f"{kind}_cat_embeddings")[0].weight.grad.numpy()
        got = getattr(nd_model, f"{kind}_cat_embeddings")[0].weight.grad
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-5)


def test_unseen_category_gets_the_mean_embedding_with_its_gradient():
    m = MODELS["MLP"](h=2, input_size=3, stat_exog_list=["sc"], cat_exog_list=["sc"],
                      categorical_cardinalities={"sc": 4}, cat_emb_dim=3, hidden_size=4)
    emb = m.stat_cat_embeddings[0]
    out = m._tensors(dict(insample_y=np.zeros((2, 3, 1), np.float32), stat_exog=np.array([[0.0], [2.0]], np.float32)))
    w = emb.weight.data
    np.testing.assert_allclose(out["stat_exog"].numpy(), np.stack([w[1:].mean(0), w[2]]), rtol=1e-6)
    out["stat_exog"].sum().backward()
    grad = np.zeros_like(w)
    grad[1:] += 1 / 4          # the mean spreads its gradient over the trained rows 1..K
    grad[2] += 1
    np.testing.assert_allclose(emb.weight.grad, grad, rtol=1e-6)


@pytest.mark.parametrize("strategy,card,dim", [("fastai", 10, 6), ("fastai", 10000, 50), ("sqrt", 10, 4),
                                               ("half", 9, 5), ("half", 200, 50), (7, 3, 7)])
def test_embedding_widths_are_nfs(strategy, card, dim):
    assert resolve_cat_emb_dim(strategy, card) == dim
    try:
        from neuralforecast.common._base_model import _resolve_cat_emb_dim
    except ImportError:
        return
    assert _resolve_cat_emb_dim(strategy, card) == dim


# -- model options ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kw,err,match", [
    (dict(cat_exog_list=["x"], categorical_cardinalities={"x": 3}), ValueError, r"\['x'\].*must also be listed in"),
    (dict(hist_exog_list=["x"], cat_exog_list=["x"]), ValueError, r"categorical_cardinalities has no entry for \['x'\]"),
    (dict(hist_exog_list=["x"], cat_exog_list=["x"], categorical_cardinalities={"x": 0}), ValueError,
     r"categorical_cardinalities\['x'\] must be a positive int, got 0"),
    (dict(hist_exog_list=["x"], cat_exog_list=["x"], categorical_cardinalities={"x": 3}, cat_emb_dim="log"),
     ValueError, r"cat_emb_dim must be 'fastai', 'sqrt', 'half' or a positive int, got 'log'"),
    (dict(hist_exog_list=["x"], cat_exog_list="x", categorical_cardinalities={"x": 3}), TypeError,
     r"cat_exog_list must be a list of column names"),
])
def test_option_errors_name_the_option(kw, err, match):
    with pytest.raises(err, match=match):
        MODELS["MLP"](h=2, input_size=4, **kw)


def test_a_model_without_categorical_inputs_says_so():
    with pytest.raises(ValueError, match=r"NBEATS does not support categorical exogenous variables"):
        MODELS["NBEATS"](h=2, input_size=4, cat_exog_list=["x"], categorical_cardinalities={"x": 3})


# -- the Forecaster on Stallion --------------------------------------------------------------------
def _stallion(n_series=6):
    pd = pytest.importorskip("pandas")
    if not (STALLION / "stallion_long.csv.gz").exists():
        pytest.skip("../shared/data/stallion is absent")
    df = pd.read_csv(STALLION / "stallion_long.csv.gz", parse_dates=["ds"])
    static = pd.read_csv(STALLION / "stallion_static.csv")
    ids = sorted(df["unique_id"].unique())[:n_series]
    df = df[df["unique_id"].isin(ids)].copy()
    df["month"] = df["ds"].dt.month                  # a future-known categorical (integers)
    df = df[["unique_id", "ds", "y", "price_actual", "month"]]
    static = static[static["unique_id"].isin(ids)][["unique_id", "agency", "sku", "avg_population_2017"]]
    static = static.assign(sku=static["sku"].astype("category"))   # a pandas categorical
    train, test = df[df["ds"] < "2017-07-01"], df[df["ds"] >= "2017-07-01"]
    return train, test.drop(columns="y"), static.reset_index(drop=True)


STALLION_KW = dict(futr_exog_list=["price_actual", "month"], stat_exog_list=["agency", "sku", "avg_population_2017"],
                   cat_exog_list=["agency", "sku", "month"],
                   categorical_cardinalities={"agency": 60, "sku": 25, "month": 12})


def test_stallion_fit_predict_save_load(tmp_path):
    train, futr, static = _stallion()
    models = [MODELS["MLP"](h=6, input_size=12, max_steps=5, hidden_size=16, scaler_type="robust", **STALLION_KW),
              MODELS["NHITS"](h=6, input_size=12, max_steps=5, mlp_units=[[16, 16]] * 3, **STALLION_KW)]
    fc = Forecaster(models, freq="MS", local_scaler_type="standard")
    fc.fit(train, static_df=static)
    assert fc._categories["agency"] == ["Agency_01"]
    assert fc._categories["month"] == list(range(1, 13))
    assert "month" not in fc._scalers and "price_actual" in fc._scalers   # codes are not scaled
    assert fc._raw_dataset.static[:, 0].tolist() == [1.0] * 6                # Agency_01 -> code 1
    pred = fc.predict(futr_df=futr)
    assert len(pred) == 36 and np.isfinite(pred[["MLP", "NHITS"]].to_numpy()).all()
    fc.save(str(tmp_path / "fc"))
    back = Forecaster.load(str(tmp_path / "fc"))
    assert back._categories == fc._categories
    loaded = back.predict(futr_df=futr)
    np.testing.assert_allclose(loaded[["MLP", "NHITS"]].to_numpy(), pred[["MLP", "NHITS"]].to_numpy(), rtol=1e-6)
    # an unseen SKU at predict: code 0 -> the mean embedding, same after load
    other = static.assign(sku=static["sku"].astype(str).replace("SKU_01", "SKU_99"))
    a = fc.predict(df=train, static_df=other, futr_df=futr)
    b = back.predict(df=train, static_df=other, futr_df=futr)
    np.testing.assert_allclose(a[["MLP", "NHITS"]].to_numpy(), b[["MLP", "NHITS"]].to_numpy(), rtol=1e-6)
    first = a["unique_id"] == "Agency_01/SKU_01"
    assert not np.allclose(a.loc[first, "MLP"], pred.loc[first, "MLP"])
    np.testing.assert_allclose(a.loc[~first, "MLP"], pred.loc[~first, "MLP"], rtol=1e-6)


def test_stallion_forecast_matches_neuralforecast_with_its_weights():
    """NF's NeuralForecast and ndiv's Forecaster, same data and weights: the same codes, the
    same unseen-category handling, the same forecast."""
    nf_ref.nf_models()
    from neuralforecast import NeuralForecast
    train, futr, static = _stallion(5)
    kw = dict(h=6, input_size=12, max_steps=1, hidden_size=16, scaler_type="robust", **STALLION_KW)
    nf_model = nf_ref.build("MLP", **kw)
    nfc = NeuralForecast(models=[nf_model], freq="MS")
    nfc.fit(train, static_df=static)
    assert {k: sorted(v, key=v.get) for k, v in nfc.categorical_vocab_.items()} == \
        {"agency": ["Agency_01"], "sku": ["SKU_01", "SKU_02", "SKU_03", "SKU_04", "SKU_05"], "month": list(range(1, 13))}
    fc = Forecaster([MODELS["MLP"](**kw)], freq="MS")
    fc.fit(train, static_df=static)
    nf_ref.load_nf_weights(nfc.models[0], fc.models[0])
    other = static.assign(sku=static["sku"].astype(str).replace("SKU_02", "SKU_77"))   # unseen
    for st in (static, other):
        ref = nfc.predict(df=train, static_df=st, futr_df=futr)
        got = fc.predict(df=train, static_df=st, futr_df=futr)
        np.testing.assert_allclose(got["MLP"].to_numpy(), ref["MLP"].to_numpy(), rtol=1e-4, atol=1e-3)


# -- data errors -----------------------------------------------------------------------------------
def _tiny(cat_values, card=3, where="futr"):
    n = len(cat_values)
    df = {"unique_id": np.zeros(n, int), "ds": np.arange(n), "y": np.arange(n, dtype=float),
          "c": np.asarray(cat_values, dtype=object)}
    kw = dict(hist_exog_list=["c"], cat_exog_list=["c"], categorical_cardinalities={"c": card})
    return df, MODELS["MLP"](h=2, input_size=3, max_steps=1, hidden_size=4, **kw)


@pytest.mark.parametrize("values,card,err,match", [
    (["a", "b", None, "a", "b", "a", "b"], 3, ValueError, r"categorical column 'c' has 1 missing value .*fillna"),
    (["a", "b", "c", "d", "a", "b", "c"], 3, ValueError,
     r"'c' has 4 distinct values .* declares 3 .*categorical_cardinalities=\{'c': 4\}"),
    (["a", 1, "a", 1, "a", 1, "a"], 3, TypeError, r"'c' mixes int and str .*astype\(str\)"),
])
def test_bad_categorical_data_is_named(values, card, err, match):
    df, model = _tiny(values, card)
    fc = Forecaster([model], freq=1)
    with pytest.raises(err, match=match):
        fc.fit(df)
    assert not fc._fitted and fc._categories == {}


def test_integer_and_categorical_codes_and_unseen_at_predict():
    df, model = _tiny([5, 3, 5, 3, 5, 3, 5, 9])
    fc = Forecaster([model], freq=1).fit(df)
    assert fc._categories == {"c": [3, 5, 9]}
    assert fc._raw_dataset.temporal[:, 1].tolist() == [2, 1, 2, 1, 2, 1, 2, 3]
    seen = fc.predict()["MLP"]
    unseen = fc.predict(df=dict(df, c=np.array([5, 3, 5, 3, 5, 3, 5, 4])))["MLP"]   # 4: never seen, code 0
    mean_code = dict(df, c=np.array([5, 3, 5, 3, 5, 3, 5, 9]))
    assert np.isfinite(unseen).all() and not np.allclose(unseen, seen)
    # code 0 embeds as the mean of rows 1..K: set row 3 (category 9) to that mean, same forecast
    emb = fc.models[0].hist_cat_embeddings[0].weight
    emb.data[3] = emb.data[1:].mean(0)
    np.testing.assert_allclose(fc.predict(df=mean_code)["MLP"], unseen, rtol=1e-5)
    cv = Forecaster([_tiny([5, 3, 5, 3, 5, 3, 5, 9])[1]], freq=1).cross_validation(df, n_windows=1)
    assert np.isfinite(cv["MLP"]).all()


def test_a_column_categorical_for_one_model_and_numeric_for_another_is_an_error():
    cat = MODELS["MLP"](h=2, input_size=3, hist_exog_list=["c"], cat_exog_list=["c"],
                        categorical_cardinalities={"c": 3})
    num = MODELS["NHITS"](h=2, input_size=3, hist_exog_list=["c"])
    with pytest.raises(ValueError, match=r"NHITS lists \['c'\] as numeric .* MLP lists 'c' in cat_exog_list"):
        Forecaster([cat, num], freq=1)
    other = MODELS["NHITS"](h=2, input_size=3, hist_exog_list=["c"], cat_exog_list=["c"],
                            categorical_cardinalities={"c": 4})
    with pytest.raises(ValueError, match=r"different categorical_cardinalities for 'c' \(3 and 4\)"):
        Forecaster([cat, other], freq=1)


def test_missing_category_at_predict_is_an_error():
    df, model = _tiny(["a", "b", "a", "b", "a", "b", "a"])
    fc = Forecaster([model], freq=1).fit(df)
    with pytest.raises(ValueError, match=r"df categorical column 'c' has 1 missing value"):
        fc.predict(df=dict(df, c=np.array(["a", "b", "a", "b", "a", None, "a"], dtype=object)))

"""A folder written by NeuralForecast 3.3's `NeuralForecast.save` opens in ndiv (`Forecaster.load`,
`from_neuralforecast`) and forecasts what NeuralForecast forecasts: every model with an NF twin,
local scalers, exogenous columns, MQLoss and DistributionLoss, save_dataset=False, and a process
where torch cannot be imported. Legacy pickle folders are refused without being unpickled."""
from __future__ import annotations

import json
import logging
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest

import ndiv
from ndiv.models import MODELS

pytest.importorskip("torch")
pytest.importorskip("neuralforecast")
os.environ.setdefault("PL_DISABLE_FORK", "1")

from neuralforecast import NeuralForecast  # noqa: E402
import neuralforecast.losses.pytorch as nf_losses  # noqa: E402
import neuralforecast.models as nf_models  # noqa: E402

H = 4
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TINY = dict(MLP=dict(hidden_size=8, num_layers=1), DLinear=dict(moving_avg_window=5), NLinear={},
            NBEATS=dict(mlp_units=[[8, 8]]), NHITS=dict(mlp_units=[[8, 8]]),
            RNN=dict(encoder_hidden_size=8, decoder_hidden_size=8), LSTM=dict(encoder_hidden_size=8, decoder_hidden_size=8),
            GRU=dict(encoder_hidden_size=8, decoder_hidden_size=8), TCN=dict(encoder_hidden_size=8, decoder_hidden_size=8),
            PatchTST=dict(hidden_size=8, n_heads=2, encoder_layers=1, patch_len=4, stride=2, linear_hidden_size=8),
            TiDE=dict(hidden_size=8, decoder_output_dim=4, temporal_decoder_dim=8), BiTCN=dict(hidden_size=4),
            DeepNPTS=dict(hidden_size=8, n_layers=1), NBEATSx=dict(mlp_units=[[8, 8]]))
TINY.update(VanillaTransformer=dict(hidden_size=8, n_head=2, conv_hidden_size=8),
            Informer=dict(hidden_size=8, n_head=2, conv_hidden_size=8))   # factor 3 keeps every query here
TINY.update(Autoformer=dict(hidden_size=8, n_head=2, conv_hidden_size=4, MovingAvg_window=5),
            FEDformer=dict(hidden_size=16, conv_hidden_size=4, MovingAvg_window=5, modes=3))
TINY.update(TFT=dict(hidden_size=8, n_head=2, windows_batch_size=16))
# the multivariate models, on the two series of series()
TINY.update(MLPMultivariate=dict(hidden_size=8, n_series=2), TSMixer=dict(ff_dim=4, n_series=2),
            TSMixerx=dict(ff_dim=4, n_series=2), StemGNN=dict(multi_layer=1, n_series=2),
            iTransformer=dict(hidden_size=8, n_heads=2, d_ff=8, n_series=2))
TINY["DeepAR"] = dict(lstm_hidden_size=8, lstm_dropout=0.0)
SAMPLED = {"DeepAR"}   # quantile columns drawn per step: only the (deterministic) point column is compared
TINY["TimesNet"] = dict(hidden_size=8, conv_hidden_size=8, top_k=2, num_kernels=3, encoder_layers=1)


@pytest.fixture(autouse=True)
def _quiet():
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def nf_model(name, **kw):
    return getattr(nf_models, name)(h=H, input_size=8, max_steps=2, accelerator="cpu", logger=False,
                                    enable_progress_bar=False, enable_model_summary=False, **{**TINY[name], **kw})


def series(n=48):
    """Two monthly series from AirPassengers (the last n months, and a scaled copy), with a
    future exogenous column x (known ahead) and the h months after them."""
    import pandas as pd
    air = ndiv.datasets.load_air_passengers(as_pandas=True).tail(n)
    b = air.assign(unique_id="B", y=air["y"] * 0.5 + 10)
    df = pd.concat([air, b], ignore_index=True)
    df["x"] = np.sin(df["ds"].dt.month.to_numpy() / 12 * 2 * np.pi)
    futr = pd.DataFrame({"unique_id": np.repeat(["AirPassengers", "B"], H),
                         "ds": np.tile(pd.date_range(df["ds"].max() + pd.offsets.MonthBegin(), periods=H, freq="MS"), 2)})
    futr["x"] = np.sin(futr["ds"].dt.month.to_numpy() / 12 * 2 * np.pi)
    return df, futr


def fit_save(models, path, save_dataset=True, exog=False, **nf_kw):
    df, futr = series()
    nf = NeuralForecast(models, freq="MS", **nf_kw)
    nf.fit(df if exog else df.drop(columns="x"))
    ref = nf.predict(futr_df=futr if exog else None)
    nf.save(str(path), save_dataset=save_dataset, overwrite=True)
    return ref, df, futr


def assert_same(got, ref, columns=None):
    assert sorted(got.columns) == sorted(ref.columns)
    assert got["unique_id"].tolist() == ref["unique_id"].tolist()
    assert (got["ds"].to_numpy() == ref["ds"].to_numpy()).all()
    for c in columns or [c for c in ref.columns if c not in ("unique_id", "ds")]:
        np.testing.assert_allclose(got[c].to_numpy(), ref[c].to_numpy(), rtol=1e-4, atol=1e-4, err_msg=c)


# TimeLLM needs a local LLM folder (NF would download GPT-2): tests/models/test_timellm.py builds
# tiny ones and checks NF parity there
@pytest.mark.parametrize("name", sorted(set(MODELS) - {"TimeLLM"}))
def test_every_model_forecasts_as_neuralforecast(name, tmp_path):
    ref, _, _ = fit_save([nf_model(name)], tmp_path)
    fc = ndiv.Forecaster.load(tmp_path)
    assert [type(m).__name__ for m in fc.models] == [name]
    assert_same(fc.predict(), ref, columns=[name] if name in SAMPLED else None)


def test_recurrent_lstm_forecasts_as_neuralforecast(tmp_path):
    ref, _, _ = fit_save([nf_model("LSTM", recurrent=True, h_train=2, inference_input_size=6)], tmp_path)
    fc = ndiv.Forecaster.load(tmp_path)
    assert fc.models[0].RECURRENT and fc.models[0].inference_input_size == 6
    assert_same(fc.predict(), ref)


def test_local_scaler_two_models_and_neuralforecasts_column_order(tmp_path):
    ref, _, _ = fit_save([nf_model("NHITS", scaler_type="robust"), nf_model("MLP"), nf_model("MLP", alias="Other")],
                         tmp_path,
                         local_scaler_type="standard")
    fc = ndiv.from_neuralforecast(tmp_path)
    got = fc.predict()
    assert_same(got, ref)
    # the models in NeuralForecast.load's order (sorted file names), so the columns are its own
    loaded = NeuralForecast.load(str(tmp_path)).predict()
    assert list(got.columns) == list(loaded.columns)
    assert fc.local_scaler_type == "standard" and set(fc._scalers) == {"y"}


def test_two_models_of_one_class_get_neuralforecasts_names(tmp_path):
    ref, _, _ = fit_save([nf_model("MLP"), nf_model("MLP", hidden_size=4)], tmp_path)
    got = ndiv.Forecaster.load(tmp_path).predict()
    assert list(got.columns) == ["unique_id", "ds", "MLP", "MLP1"]
    assert_same(got, ref)


def test_future_exogenous_with_a_scaler(tmp_path):
    models = [nf_model("MLP", futr_exog_list=["x"]), nf_model("NBEATSx", futr_exog_list=["x"]),
              nf_model("TiDE", futr_exog_list=["x"])]
    ref, _, futr = fit_save(models, tmp_path, exog=True, local_scaler_type="minmax")
    fc = ndiv.Forecaster.load(tmp_path)
    assert_same(fc.predict(futr_df=futr), ref)
    with pytest.raises(ValueError, match="futr_df"):
        fc.predict()


def _quantile_of(column: str) -> float:
    """NF's column suffix -> its quantile: -median 0.5, -lo-80 0.1, -hi-80 0.9, -ql0.2 0.2."""
    suffix = column.split("-", 1)[1]
    if suffix == "median":
        return 0.5
    if suffix.startswith(("lo-", "hi-")):
        tail = (100 - float(suffix[3:])) / 200
        return tail if suffix.startswith("lo-") else 1 - tail
    return float(suffix.removeprefix("ql"))


def test_mqloss_and_distribution_loss(tmp_path):
    models = [nf_model("MLP", loss=nf_losses.MQLoss(level=[80, 90]), alias="MQ"),
              nf_model("LSTM", loss=nf_losses.MQLoss(quantiles=[0.2, 0.5, 0.7]), alias="LMQ"),
              nf_model("MLP", loss=nf_losses.DistributionLoss("Normal", level=[80], return_params=True), alias="N")]
    ref, _, _ = fit_save(models, tmp_path)
    got = ndiv.Forecaster.load(tmp_path).predict()
    assert [c for c in got.columns if c.startswith("MQ")] == ["MQ-median", "MQ-lo-90", "MQ-lo-80", "MQ-hi-80",
                                                              "MQ-hi-90"]
    point = [c for c in ref.columns if c.startswith(("MQ", "LMQ"))]
    # ndiv sorts MQLoss outputs along the quantiles at predict (no crossing intervals);
    # NeuralForecast 3.3 does not: compare with NF's values sorted the same way
    for prefix in ("MQ", "LMQ"):
        cols = [c for c in ref.columns if c.split("-", 1)[0] == prefix and c != prefix]
        order = [cols[i] for i in np.argsort([_quantile_of(c) for c in cols], kind="stable")]
        ref[order] = np.sort(ref[order].to_numpy(), axis=1)
    # N's mean and quantiles come from 1000 random samples (NF's generator is not ndiv's): its
    # distribution's parameters must agree exactly, its mean within a few standard errors
    assert_same(got, ref, columns=point + ["N-loc", "N-scale"])
    assert (np.abs(got["N"] - ref["N"]) < 0.2 * ref["N-scale"]).all()


def test_save_dataset_false_then_predict_df(tmp_path):
    ref, df, _ = fit_save([nf_model("NHITS"), nf_model("GRU")], tmp_path, save_dataset=False,
                          local_scaler_type="robust")
    assert "dataset.json" not in os.listdir(tmp_path)
    fc = ndiv.Forecaster.load(tmp_path)
    assert_same(fc.predict(df=df.drop(columns="x")), ref)
    with pytest.raises(ValueError, match="save_dataset=False.*predict\\(df=...\\)"):
        fc.predict()
    with pytest.raises(ValueError, match="save_dataset=True"):
        fc.save(tmp_path / "again")


_NO_TORCH = """
import importlib.abc, json, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("torch", "neuralforecast", "lightning", "pytorch_lightning"):
            raise ImportError(f"{name} is blocked in this test")
        return None
sys.meta_path.insert(0, Block())
sys.path.insert(0, sys.argv[1])
import ndiv
try:
    import torch
    raise SystemExit("torch imported")
except ImportError:
    pass
p = ndiv.Forecaster.load(sys.argv[2]).predict()
assert not any(m.split(".")[0] in ("torch", "neuralforecast", "lightning") for m in sys.modules)
print(json.dumps({c: p[c].astype(str).tolist() if c in ("unique_id", "ds") else p[c].tolist() for c in p.columns}))
"""


def test_load_and_predict_where_torch_cannot_be_imported(tmp_path):
    ref, _, _ = fit_save([nf_model("MLP"), nf_model("LSTM")], tmp_path / "nf", local_scaler_type="standard")
    run = subprocess.run([sys.executable, "-c", _NO_TORCH, ROOT, str(tmp_path / "nf")], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    got = json.loads(run.stdout.strip().splitlines()[-1])
    assert sorted(got) == sorted(ref.columns)
    assert got["unique_id"] == ref["unique_id"].tolist()
    for c in ("MLP", "LSTM"):
        np.testing.assert_allclose(got[c], ref[c].to_numpy(), rtol=1e-4, atol=1e-4)


class _Trap:
    """Unpickling this writes the marker file: a loader that unpickles would leave it behind."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("files", [["MLP_0.ckpt", "configuration.pkl", "dataset.pkl"], ["MLP_0.ckpt"]])
def test_legacy_pickle_folder_is_refused_unopened(tmp_path, files):
    folder, marker = tmp_path / "legacy", tmp_path / "UNPICKLED"
    folder.mkdir()
    for name in files:
        (folder / name).write_bytes(pickle.dumps(_Trap(str(marker))))
    for load in (ndiv.Forecaster.load, ndiv.from_neuralforecast):
        with pytest.raises(ValueError, match=r"MLP_0\.ckpt.*pickle.*never unpickles.*NeuralForecast >= 3\.3.*"
                                             r"nf\.save\(new_path\)"):
            load(folder)
    assert not marker.exists()


def test_a_model_ndiv_lacks_is_named(tmp_path):
    ref, _, _ = fit_save([nf_model("MLP")], tmp_path)
    kan = nf_models.KAN(h=H, input_size=8, max_steps=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    (tmp_path / "KAN_0.safetensors").write_bytes(kan.serialize())
    with pytest.raises(ValueError, match=r"KAN_0\.safetensors: holds NeuralForecast's KAN, which ndiv does not "
                                         r"have; ndiv's models: \[.*'BiTCN', .*'TiDE'.*\]"):
        ndiv.Forecaster.load(tmp_path)


def test_an_ndiv_folder_still_loads_as_before(tmp_path):
    ref, _, _ = fit_save([nf_model("MLP")], tmp_path / "nf")
    fc = ndiv.Forecaster.load(tmp_path / "nf")
    fc.save(tmp_path / "nd")
    assert "forecaster.json" in os.listdir(tmp_path / "nd")
    assert_same(ndiv.Forecaster.load(tmp_path / "nd").predict(), ref)


def test_integer_ids_and_dates_static_exogenous_and_boxcox(tmp_path):
    import pandas as pd
    n, rng = 30, np.random.default_rng(0)
    df = pd.DataFrame({"unique_id": np.repeat([3, 7], n), "ds": np.tile(np.arange(n), 2),
                       "y": rng.normal(10, 1, 2 * n).cumsum()})
    static = pd.DataFrame({"unique_id": [3, 7], "s": [0.0, 1.0]})
    nf = NeuralForecast([nf_model("NHITS", stat_exog_list=["s"]), nf_model("TiDE", stat_exog_list=["s"])], freq=1,
                        local_scaler_type="boxcox")
    nf.fit(df, static_df=static)
    ref = nf.predict()
    nf.save(str(tmp_path))
    fc = ndiv.Forecaster.load(tmp_path)
    assert fc._dataset.static_cols == ["s"] and fc._dataset.uids.tolist() == [3, 7]
    assert_same(fc.predict(), ref)
    # the history comes back in its own units from NF's scaled copy: the y of every insample row
    # is the data's y at that row's series and date
    ins = fc.predict_insample()
    want = df.set_index(["unique_id", "ds"])["y"]
    got_y = ins["y"].to_numpy()
    np.testing.assert_allclose(got_y, want.loc[list(zip(ins["unique_id"], ins["ds"]))].to_numpy(), rtol=1e-5)


def test_boxcox_inverse_is_coreforecasts_below_the_range():
    """u = lambda z + 1 < 0 maps to -|u|^(1/lambda) in coreforecast (which NF uses), not to 0."""
    from coreforecast.grouped_array import GroupedArray
    from coreforecast.scalers import LocalBoxCoxScaler

    from ndiv.data.local_scalers import LocalScaler
    ref = LocalBoxCoxScaler(method="loglik", lower=0.0)
    ref.stats_ = np.array([[1.5, 0.0]], np.float32)
    ours = LocalScaler("boxcox")
    ours.stats_ = ref.stats_.astype(np.float64)
    z = np.array([-3.0, -2.0, -0.5, 0.0, 1.0])
    np.testing.assert_allclose(ours.inverse_transform(z, np.array([0, 5])),
                               ref.inverse_transform(GroupedArray(z.astype(np.float32), np.array([0, 5]))), rtol=1e-5)


def _edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("edit, match", [
    (lambda c: c["configuration"].update(_fitted=False), "saved before fit"),
    (lambda c: c.update(nf_format="1"), "nf_format='1'"),
    (lambda c: c["configuration"].update(scalers_={"y": {"__nf__": "scaler"}}), r"scalers_\['y'\] must be"),
    (lambda c: c["configuration"].update(ds={"__nf__": "datetime64", "unit": "ns"}), "ds is a malformed 'datetime64'"),
    (lambda c: c["configuration"].update(uids={"__nf__": "pickle"}), "uids has the tag 'pickle'"),
    (lambda c: c["configuration"].update(prediction_intervals={"__nf__": "prediction_intervals", "n_windows": 2,
                                                               "method": "conformal_distribution", "step_size": 1}),
     "prediction_intervals is set .* no conformal prediction intervals"),
])
def test_an_edited_configuration_is_named(tmp_path, edit, match):
    fit_save([nf_model("MLP")], tmp_path, local_scaler_type="standard")
    _edit_json(tmp_path / "configuration.json", edit)
    with pytest.raises(ValueError, match=r"configuration\.json: .*" + match):
        ndiv.Forecaster.load(tmp_path)


def test_a_symbolic_link_or_a_corrupt_weight_file_is_refused(tmp_path):
    fit_save([nf_model("MLP")], tmp_path / "nf")
    weights = tmp_path / "nf" / "MLP_0.safetensors"
    (tmp_path / "elsewhere.safetensors").write_bytes(weights.read_bytes())
    weights.write_bytes(weights.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"MLP_0\.safetensors: is not a valid safetensors file"):
        ndiv.Forecaster.load(tmp_path / "nf")
    weights.unlink()
    weights.symlink_to(tmp_path / "elsewhere.safetensors")
    with pytest.raises(ValueError, match="symbolic link"):
        ndiv.Forecaster.load(tmp_path / "nf")


def test_optimizers_map_to_ndiv_and_one_ndiv_lacks_warns(tmp_path):
    import torch
    ref, _, _ = fit_save([nf_model("MLP", optimizer=torch.optim.AdamW, optimizer_kwargs={"weight_decay": 0.1},
                                   lr_scheduler=torch.optim.lr_scheduler.ConstantLR)], tmp_path)
    with pytest.warns(UserWarning, match=r"MLP_0\.safetensors: hyper_parameters\.lr_scheduler is torch's ConstantLR"):
        fc = ndiv.Forecaster.load(tmp_path)
    assert fc.models[0].optimizer is ndiv.optim.AdamW and fc.models[0].optimizer_kwargs == {"weight_decay": 0.1}
    assert fc.models[0].lr_scheduler is None
    assert_same(fc.predict(), ref)

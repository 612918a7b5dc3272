"""NeuralForecast user scripts, written as NF's documentation writes them (quick start,
exogenous variables, cross-validation, prediction intervals, conformal intervals, save/load,
polars), run unchanged on ndiv except for the import lines: `neuralforecast` becomes `ndiv`.
Where NeuralForecast is installed, each script also runs on it and the results must have the
same columns, in the same order, and the same shapes."""
from __future__ import annotations

import logging
import os
import warnings

import numpy as np
import pytest

pytest.importorskip("pandas", reason="NeuralForecast's scripts use pandas")

# Each script leaves its results in variables named in RESULTS (data frames).
QUICK_START = """
from neuralforecast import NeuralForecast
from neuralforecast.models import NHITS, MLP
from neuralforecast.utils import AirPassengersDF

Y_df = AirPassengersDF
Y_train_df = Y_df[Y_df.ds <= '1959-12-31']
Y_test_df = Y_df[Y_df.ds > '1959-12-31']
horizon = 12
models = [MLP(h=horizon, input_size=2 * horizon, hidden_size=32, max_steps=5),
          NHITS(h=horizon, input_size=2 * horizon, mlp_units=[[32, 32]] * 3, max_steps=5)]
nf = NeuralForecast(models=models, freq='ME')
nf.fit(df=Y_train_df)
Y_hat_df = nf.predict()
"""

EXOGENOUS = """
from neuralforecast import NeuralForecast
from neuralforecast.models import NHITS
from neuralforecast.utils import AirPassengersDF

Y_df = AirPassengersDF.copy()
Y_df['month'] = Y_df['ds'].dt.month
Y_df['trend'] = range(len(Y_df))
static_df = Y_df[['unique_id']].drop_duplicates().assign(airline=1.0)
model = NHITS(h=12, input_size=24, mlp_units=[[32, 32]] * 3, max_steps=5,
              futr_exog_list=['month'], hist_exog_list=['trend'], stat_exog_list=['airline'],
              scaler_type='robust')
nf = NeuralForecast(models=[model], freq='ME')
nf.fit(df=Y_df, static_df=static_df)
futr_df = nf.make_future_dataframe()
futr_df['month'] = futr_df['ds'].dt.month
missing = nf.get_missing_future(futr_df)
Y_hat_df = nf.predict(futr_df=futr_df)
"""

CROSS_VALIDATION = """
from neuralforecast import NeuralForecast
from neuralforecast.models import MLP, NHITS
from neuralforecast.utils import AirPassengersDF

Y_df = AirPassengersDF
nf = NeuralForecast(models=[MLP(h=12, input_size=24, hidden_size=32, max_steps=5),
                            NHITS(h=12, input_size=24, mlp_units=[[32, 32]] * 3, max_steps=5)], freq='ME')
cv_df = nf.cross_validation(df=Y_df, n_windows=2, step_size=12)
insample_df = nf.predict_insample(step_size=12)
"""

PREDICTION_INTERVALS = """
from neuralforecast import NeuralForecast
from neuralforecast.models import NHITS, MLP
from neuralforecast.losses.pytorch import MQLoss, DistributionLoss
from neuralforecast.utils import AirPassengersDF

Y_df = AirPassengersDF
models = [NHITS(h=12, input_size=24, mlp_units=[[32, 32]] * 3, max_steps=5, loss=MQLoss(level=[80, 90])),
          MLP(h=12, input_size=24, hidden_size=32, max_steps=5, loss=DistributionLoss('Normal', level=[80, 90]))]
nf = NeuralForecast(models=models, freq='ME')
nf.fit(df=Y_df)
Y_hat_df = nf.predict()
"""

CONFORMAL = """
from neuralforecast import NeuralForecast
from neuralforecast.models import MLP
from neuralforecast.utils import AirPassengersDF, PredictionIntervals

Y_df = AirPassengersDF
nf = NeuralForecast(models=[MLP(h=12, input_size=24, hidden_size=32, max_steps=5)], freq='ME')
nf.fit(df=Y_df, prediction_intervals=PredictionIntervals(n_windows=2))
Y_hat_df = nf.predict(level=[80, 90])
"""

SAVE_LOAD = """
from neuralforecast import NeuralForecast
from neuralforecast.models import MLP, NHITS
from neuralforecast.utils import AirPassengersDF

Y_df = AirPassengersDF
nf = NeuralForecast(models=[MLP(h=12, input_size=24, hidden_size=32, max_steps=5),
                            NHITS(h=12, input_size=24, mlp_units=[[32, 32]] * 3, max_steps=5)], freq='ME')
nf.fit(df=Y_df)
Y_hat_df = nf.predict()
nf.save(path=CHECKPOINTS, model_index=None, overwrite=True, save_dataset=True)
nf2 = NeuralForecast.load(path=CHECKPOINTS)
Y_hat_df2 = nf2.predict()
"""

POLARS = """
import polars as pl
from neuralforecast import NeuralForecast
from neuralforecast.models import MLP
from neuralforecast.utils import AirPassengersDF

Y_df = pl.from_pandas(AirPassengersDF)
nf = NeuralForecast(models=[MLP(h=12, input_size=24, hidden_size=32, max_steps=5)], freq='1mo')
nf.fit(df=Y_df)
Y_hat_df = nf.predict()
"""

SCRIPTS = {
    "quick_start": (QUICK_START, ["Y_hat_df"]),
    "exogenous": (EXOGENOUS, ["Y_hat_df", "futr_df", "missing"]),
    "cross_validation": (CROSS_VALIDATION, ["cv_df", "insample_df"]),
    "prediction_intervals": (PREDICTION_INTERVALS, ["Y_hat_df"]),
    "conformal": (CONFORMAL, ["Y_hat_df"]),
    "save_load": (SAVE_LOAD, ["Y_hat_df", "Y_hat_df2"]),
    "polars": (POLARS, ["Y_hat_df"]),
}


def run(script: str, lib: str, tmp_path) -> dict:
    """Run script with its imports pointing at lib ('neuralforecast' or 'ndiv')."""
    code = script if lib == "neuralforecast" else script.replace("neuralforecast", "ndiv")
    namespace = {"CHECKPOINTS": str(tmp_path / lib)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        exec(compile(code, f"<{lib} script>", "exec"), namespace)
    return namespace


@pytest.fixture(autouse=True)
def _quiet_lightning():
    os.environ.setdefault("PL_DISABLE_FORK", "1")
    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _frame_kind(df) -> str:
    return type(df).__module__.split(".")[0]


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_a_neuralforecast_script_runs_on_ndiv(name, tmp_path):
    script, results = SCRIPTS[name]
    if "polars" in script:
        pytest.importorskip("polars")
    got = run(script, "ndiv", tmp_path)
    for var in results:
        df = got[var]
        assert len(df) > 0 or var == "missing", f"{var} is empty"
        for col in df.columns:
            values = np.asarray(df[col].to_numpy() if hasattr(df[col], "to_numpy") else df[col])
            if values.dtype.kind == "f":
                assert np.isfinite(values).all(), f"{var}[{col!r}] has non-finite values"
    if name == "save_load":
        np.testing.assert_array_equal(got["Y_hat_df"]["MLP"].to_numpy(), got["Y_hat_df2"]["MLP"].to_numpy())
    if name == "polars":
        assert _frame_kind(got["Y_hat_df"]) == "polars"

    pytest.importorskip("torch")
    pytest.importorskip("neuralforecast")
    want = run(script, "neuralforecast", tmp_path)
    for var in results:
        g, w = got[var], want[var]
        assert _frame_kind(g) == _frame_kind(w), var
        assert list(g.columns) == list(w.columns), f"{var}: ndiv columns {list(g.columns)} vs NF {list(w.columns)}"
        assert g.shape == w.shape, f"{var}: ndiv shape {g.shape} vs NF {w.shape}"
        for key in ("unique_id", "ds", "cutoff"):
            if key in w.columns:
                assert list(g[key]) == list(w[key]), f"{var}[{key!r}] differs from NeuralForecast's"

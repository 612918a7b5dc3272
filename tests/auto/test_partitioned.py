"""Partitioned: one copy of a model per partition of the series, here in this process (the
backends' tests run the same fits on workers). Each partition's forecasts are those of a model
fitted on that partition alone; save/load keeps the partitions."""
from __future__ import annotations

import numpy as np
import pytest

from ndiv import Forecaster
from ndiv.auto import Partitioned
from ndiv.datasets import load_air_passengers
from ndiv.models import MLP, MLPMultivariate

H = 12


def panel() -> dict:
    """7 series of different lengths and scales built from AirPassengers (a dict of columns)."""
    ap = load_air_passengers(as_pandas=False)
    uid, ds, y = [], [], []
    for k in range(7):
        n = 144 - 6 * k
        uid += [f"s{k}"] * n
        ds.append(ap["ds"][-n:])
        y.append(ap["y"][-n:] * (1 + 0.3 * k) + 10 * k)
    return {"unique_id": np.array(uid), "ds": np.concatenate(ds), "y": np.concatenate(y)}


def mlp(**kw):
    return MLP(h=H, input_size=24, hidden_size=16, num_layers=1, max_steps=4, windows_batch_size=16, **kw)


def test_partitions_are_contiguous_runs_of_about_equal_rows():
    fc = Forecaster(models=[Partitioned(mlp(), 3)], freq="MS")
    fc.fit(panel())
    p = fc.models[0]
    assert [u.tolist() for u in p.part_uids] == [["s0", "s1"], ["s2", "s3"], ["s4", "s5", "s6"]]
    assert len(p.partitions) == 3 and len(p.train_trajectories) == 3


def test_each_partition_forecasts_as_a_model_fitted_on_it_alone():
    data = panel()
    fc = Forecaster(models=[Partitioned(mlp(), 3)], freq="MS").fit(data)
    out = fc.predict()
    parts = fc.models[0].part_uids
    for uids in parts:
        keep = np.isin(data["unique_id"], uids)
        alone = Forecaster(models=[mlp()], freq="MS").fit({k: v[keep] for k, v in data.items()}).predict()
        mine = np.isin(np.asarray(out["unique_id"]), uids)
        np.testing.assert_array_equal(np.asarray(out["MLP"])[mine], np.asarray(alone["MLP"]))
    # predict(df) in another order of rows gives the same forecasts
    order = np.argsort(data["unique_id"], kind="stable")[::-1]
    again = fc.predict(df={k: v[order] for k, v in data.items()})
    np.testing.assert_array_equal(np.asarray(again["MLP"]), np.asarray(out["MLP"]))


def test_cross_validation_with_refit_and_a_second_fit():
    data = panel()
    fc = Forecaster(models=[Partitioned(mlp(), 2)], freq="MS")
    cv = fc.cross_validation(data, n_windows=2, step_size=H, refit=True)
    assert np.isfinite(np.asarray(cv["MLP"])).all() and len(cv["MLP"]) == 7 * 2 * H
    # a second fit on the same series continues from each copy's weights (NF's second fit)
    fc2 = Forecaster(models=[Partitioned(mlp(), 2)], freq="MS").fit(data)
    first = [m.state_dict()["out.weight"].copy() for m in fc2.models[0].partitions]
    copies = list(fc2.models[0].partitions)
    fc2.fit(data)
    assert all(a is b for a, b in zip(fc2.models[0].partitions, copies))
    assert not np.array_equal(first[0], fc2.models[0].partitions[0].state_dict()["out.weight"])


def test_save_and_load_keep_the_partitions(tmp_path):
    data = panel()
    fc = Forecaster(models=[Partitioned(mlp(), 3), mlp(alias="global")], freq="MS").fit(data)
    fc.save(tmp_path / "f")
    back = Forecaster.load(tmp_path / "f")
    assert isinstance(back.models[0], Partitioned) and len(back.models[0].partitions) == 3
    for a, b in zip(fc.models[0].part_uids, back.models[0].part_uids):
        np.testing.assert_array_equal(a, b)
    y, y2 = fc.predict(), back.predict()
    for col in ("MLP", "global"):
        np.testing.assert_array_equal(np.asarray(y[col]), np.asarray(y2[col]))


def test_clear_errors():
    data = panel()
    with pytest.raises(ValueError, match="multivariate"):
        Partitioned(MLPMultivariate(h=H, input_size=24, n_series=7), 2)
    with pytest.raises(ValueError, match="n_partitions"):
        Partitioned(mlp(), 0)
    with pytest.raises(TypeError, match="one ndiv model"):
        Partitioned(Partitioned(mlp(), 2), 2)
    fc = Forecaster(models=[Partitioned(mlp(), 2)], freq="MS")
    with pytest.raises(ValueError, match="call fit"):
        fc.models[0].predict_dataset(None)
    fc.fit({k: v[data["unique_id"] != "s6"] for k, v in data.items()})
    with pytest.raises(ValueError, match=r"\['s6'\] were not in the fit's partitions"):
        fc.predict(df=data)
    # more partitions than series: one per series
    one = Forecaster(models=[Partitioned(mlp(), 50)], freq="MS").fit(data)
    assert len(one.models[0].partitions) == 7


def test_interpretation_of_a_partitioned_model_is_refused_by_name():
    from ndiv.models import NHITS
    data = panel()
    fc = Forecaster(models=[Partitioned(NHITS(h=H, input_size=24, max_steps=2, mlp_units=[[8, 8]] * 3), 2)],
                    freq="MS").fit(data)
    with pytest.raises(ValueError, match="partitioned"):
        fc.decomposition(model=0)

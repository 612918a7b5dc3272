"""predict(level=, quantiles=) as NeuralForecast's: a DistributionLoss gives intervals at any
level, MQLoss the levels it was trained with, and anything else is a clear error, never the
wrong columns returned in silence. Column names and order are checked against NeuralForecast."""
from __future__ import annotations

import numpy as np
import pytest

import ndiv
from ndiv.losses import MAE, DistributionLoss, MQLoss
from ndiv.models import MLP

KW = dict(h=4, input_size=8, hidden_size=8, num_layers=1, max_steps=2, enable_progress_bar=False)


def data(n=40, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    ys = [10 + 3 * np.sin(t / 2) + rng.normal(0, 0.3, n), 100 + t + rng.normal(0, 2, n)]
    return {"unique_id": np.repeat(["a", "b"], n), "ds": np.tile(t, 2), "y": np.concatenate(ys)}


def arrays(pred) -> dict:
    return pred if isinstance(pred, dict) else {k: pred[k].to_numpy() for k in pred.columns}


def fitted(*losses, **kw) -> ndiv.Forecaster:
    models = [MLP(loss=loss, alias=alias, **{**KW, **kw}) for alias, loss in losses]
    return ndiv.Forecaster(models, freq=1).fit(data())


@pytest.fixture(scope="module")
def normal():
    return fitted(("N", DistributionLoss("Normal", level=[80], num_samples=200)))


def test_distribution_loss_gives_the_requested_level(normal):
    p = arrays(normal.predict(level=[95]))                     # trained with level=[80]
    assert list(p) == ["unique_id", "ds", "N", "N-lo-95", "N-hi-95"]
    p80 = arrays(normal.predict(level=[80]))
    assert list(p80) == ["unique_id", "ds", "N", "N-lo-80", "N-hi-80"]
    # the same seeded samples: the 95% interval holds the 80% one, which holds the mean
    assert (p["N-lo-95"] < p80["N-lo-80"]).all() and (p80["N-lo-80"] < p80["N"]).all()
    assert (p80["N"] < p80["N-hi-80"]).all() and (p80["N-hi-80"] < p["N-hi-95"]).all()
    np.testing.assert_array_equal(p["N"], p80["N"])


def test_levels_are_sorted_and_deduplicated_as_neuralforecast(normal):
    p = arrays(normal.predict(level=[95, 50, 95]))
    assert list(p)[2:] == ["N", "N-lo-95", "N-lo-50", "N-hi-50", "N-hi-95"]


def test_quantiles_give_ql_columns_equal_to_the_matching_level(normal):
    q = arrays(normal.predict(quantiles=[0.9, 0.1, 0.5]))
    assert list(q)[2:] == ["N", "N_ql0.1", "N_ql0.5", "N_ql0.9"]
    lv = arrays(normal.predict(level=[80]))
    np.testing.assert_array_equal(q["N_ql0.1"], lv["N-lo-80"])
    np.testing.assert_array_equal(q["N_ql0.9"], lv["N-hi-80"])


def test_same_seed_same_intervals_and_own_outputs_untouched(normal):
    a = arrays(normal.predict(level=[90]))
    b = arrays(normal.predict(level=[90]))
    for k in ("N", "N-lo-90", "N-hi-90"):
        np.testing.assert_array_equal(a[k], b[k])
    assert list(arrays(normal.predict()))[2:] == ["N", "N-median", "N-lo-80", "N-hi-80"]


def test_level_and_quantiles_are_exclusive_and_checked(normal):
    with pytest.raises(ValueError, match="pass level or quantiles, not both"):
        normal.predict(level=[80], quantiles=[0.1])
    with pytest.raises(ValueError, match=r"level must hold numbers between 0 and 100 .*got \[80, 100\]"):
        normal.predict(level=[80, 100])
    with pytest.raises(ValueError, match=r"quantiles must hold numbers between 0 and 1 .*got \[0.5, 1.5\]"):
        normal.predict(quantiles=[0.5, 1.5])
    with pytest.raises(TypeError, match="level must be a list of numbers"):
        normal.predict(level=80)


def test_point_loss_with_level_is_an_error():
    fc = fitted(("P", MAE()))
    with pytest.raises(ValueError, match=r"P was trained with loss=MAE\(\), which forecasts a single value: it "
                                         r"cannot give level=\[80\]"):
        fc.predict(level=[80])
    with pytest.raises(ValueError, match=r"cannot give quantiles=\[0.5\]"):
        fc.predict(quantiles=[0.5])


def test_mqloss_gives_its_trained_levels_and_refuses_others():
    fc = fitted(("Q", MQLoss(level=[80, 90])))
    own = ["Q-median", "Q-lo-90", "Q-lo-80", "Q-hi-80", "Q-hi-90"]
    plain = arrays(fc.predict())
    for request in (dict(level=[80]), dict(level=[90, 80]), dict(quantiles=[0.1, 0.5, 0.95])):
        p = arrays(fc.predict(**request))        # all trained outputs, as NeuralForecast
        assert list(p)[2:] == own, request
        for k in own:
            np.testing.assert_array_equal(p[k], plain[k])
    with pytest.raises(ValueError, match=r"Q was trained with MQLoss, whose quantiles are \[0.05, 0.1, 0.5, 0.9, "
                                         r"0.95\] \(levels \[80, 90\]\): it cannot give level=\[95\]"):
        fc.predict(level=[95])
    with pytest.raises(ValueError, match=r"cannot give quantiles=\[0.2\] \(quantiles \[0.2\] missing\)"):
        fc.predict(quantiles=[0.2])


def test_a_refused_level_fails_before_any_model_predicts():
    fc = fitted(("N", DistributionLoss("Normal", level=[80], num_samples=50)), ("P", MAE()))
    with pytest.raises(ValueError, match="P was trained with loss=MAE"):
        fc.predict(level=[80])
    with pytest.raises(ValueError, match="P was trained with loss=MAE"):   # before training anything
        fc.cross_validation(data(), n_windows=2, level=[80])


@pytest.mark.parametrize("name, params", [("Normal", ["-loc", "-scale"]), ("StudentT", ["-df", "-loc", "-scale"]),
                                          ("Poisson", ["-loc"])])
def test_return_params_adds_the_parameter_columns(name, params):
    y = data()
    y["y"] = np.abs(y["y"])
    fc = ndiv.Forecaster([MLP(loss=DistributionLoss(name, level=[80], return_params=True, num_samples=50),
                              **KW)], freq=1).fit(y)
    p = arrays(fc.predict())
    assert list(p)[2:] == ["MLP", "MLP-median", "MLP-lo-80", "MLP-hi-80"] + [f"MLP{c}" for c in params]
    assert all(np.isfinite(v).all() for k, v in p.items() if k.startswith("MLP"))
    if "-scale" in params:
        assert (p["MLP-scale"] > 0).all()
    if "-df" in params:
        assert (p["MLP-df"] >= 3).all()                         # softplus + 3, as NeuralForecast
    q = arrays(fc.predict(quantiles=[0.25]))
    assert list(q)[2:] == ["MLP", "MLP_ql0.25"] + [f"MLP{c}" for c in params]
    np.testing.assert_array_equal(q[f"MLP{params[-1]}"], p[f"MLP{params[-1]}"])


def test_cross_validation_and_predict_insample_take_level(normal):
    cv = arrays(normal.cross_validation(data(), n_windows=2, level=[95]))
    assert list(cv) == ["unique_id", "ds", "cutoff", "N", "N-lo-95", "N-hi-95", "y"]
    assert (cv["N-lo-95"] < cv["N-hi-95"]).all()
    ins = arrays(normal.predict_insample(quantiles=[0.5]))
    assert [c for c in ins if c.startswith("N")] == ["N", "N_ql0.5"]


# ----------------------------------------------------------------------------- NeuralForecast
@pytest.fixture(scope="module")
def both():
    """NeuralForecast and ndiv forecasters with the same models and losses, trained 2 steps."""
    pytest.importorskip("torch")
    pytest.importorskip("neuralforecast")
    import logging
    import warnings

    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.losses import pytorch as nfl
    from neuralforecast.models import MLP as NFMLP
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    quiet = dict(enable_model_summary=False, logger=False, enable_checkpointing=False)

    def losses(lib):
        return [("T", lib.DistributionLoss("StudentT", level=[80], return_params=True, num_samples=50)),
                ("N", lib.DistributionLoss("Normal", quantiles=[0.2, 0.5], num_samples=50)),
                ("Q", lib.MQLoss(level=[80, 90]))]

    df = pd.DataFrame(data())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nf = NeuralForecast([NFMLP(loss=loss, alias=a, **KW, **quiet) for a, loss in losses(nfl)], freq=1)
        nf.fit(df)
    nd = ndiv.Forecaster([MLP(loss=loss, alias=a, **KW) for a, loss in losses(ndiv.losses)], freq=1).fit(df)
    # MQLoss refuses levels it was not trained with (NeuralForecast returns its columns anyway)
    nd_dist = ndiv.Forecaster([MLP(loss=loss, alias=a, **KW) for a, loss in losses(ndiv.losses)[:2]],
                              freq=1).fit(df)
    return nf, nd, nd_dist, df


def _columns(fc, cv=False, **kw):
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return list((fc.cross_validation if cv else fc.predict)(**kw).columns)


def test_column_names_and_order_match_neuralforecast(both):
    nf, nd, nd_dist, df = both
    # NeuralForecast's plain predict after one with level gives only '-median' (its loss keeps
    # the last call's quantiles); ndiv always gives the loss's own outputs: compare that one first
    assert _columns(nd) == _columns(nf)
    for request in (dict(level=[95, 50]), dict(quantiles=[0.9, 0.2, 0.5])):
        assert _columns(nd_dist, **request) == [c for c in _columns(nf, **request) if not c.startswith("Q-")]
    assert _columns(nd, level=[80]) == _columns(nf, level=[80])          # MQLoss: its levels include 80
    # with refit NeuralForecast honours level in cross_validation too
    cv = dict(cv=True, df=df, n_windows=2, refit=True, level=[90])
    assert _columns(nd, **cv) == _columns(nf, **cv)

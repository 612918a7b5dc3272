"""Metrics: hand-computed values, and evaluate() against utilsforecast's where installed."""
import numpy as np
import pytest

from ndiv import metrics as M


def test_hand_computed():
    y, f = np.array([2.0, 4.0, 0.0, 5.0]), np.array([1.0, 5.0, 1.0, 5.0])
    assert M.mae(y, f) == 0.75
    assert M.mse(y, f) == 0.75
    assert M.rmse(y, f) == pytest.approx(np.sqrt(0.75))
    assert M.mape(y, f) == pytest.approx((0.5 + 0.25 + 0.0) / 3)            # y = 0 is skipped
    assert M.smape(y, f) == pytest.approx((1 / 3 + 1 / 9 + 1 + 0) / 4)
    assert M.smape([0.0], [0.0]) == 0.0
    train = np.array([1.0, 3.0, 2.0, 6.0])                                   # |diffs| 2, 1, 4 -> 7/3
    assert M.mase(y, f, train, seasonality=1) == pytest.approx(0.75 / (7 / 3))
    assert M.mase(y, f, train, seasonality=2) == pytest.approx(0.75 / 2)     # |2-1|, |6-3|
    assert M.coverage(y, lo=f - 0.5, hi=f + 1) == 0.5                         # 2.0 and 5.0
    np.testing.assert_allclose(M.mae(np.ones((2, 3)), np.zeros((2, 3)), axis=1), [1.0, 1.0])


def test_errors():
    with pytest.raises(ValueError, match=r"y has shape \(2,\) but y_hat has shape \(3,\)"):
        M.mae([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="mase needs more than seasonality=12 training points, got 5"):
        M.mase([1.0], [1.0], np.ones(5), seasonality=12)


def forecasts():
    rng = np.random.default_rng(0)
    n = 6
    uid = np.repeat(["a", "b"], n)
    ds = np.tile(np.arange(10, 10 + n), 2)
    y = rng.normal(size=2 * n) + 5
    return {"unique_id": uid, "ds": ds, "y": y, "MLP": y + rng.normal(size=2 * n), "Naive": np.full(2 * n, 5.0),
            "MLP-lo-80": y - 1, "MLP-hi-80": y + rng.normal(size=2 * n),
            "Naive-lo-80": np.full(2 * n, 4.0), "Naive-hi-80": np.full(2 * n, 6.0)}


def test_evaluate_dict_by_hand():
    fc = forecasts()
    out = M.evaluate(fc, metrics=["mae", "smape"])
    assert list(out) == ["unique_id", "metric", "MLP", "Naive"]
    assert out["unique_id"].tolist() == ["a", "b", "a", "b"] and out["metric"].tolist() == ["mae", "mae", "smape", "smape"]
    assert out["MLP"][1] == pytest.approx(M.mae(fc["y"][6:], fc["MLP"][6:]))
    mean = M.evaluate(fc, metrics=["mae"], agg_fn="mean")
    assert list(mean) == ["metric", "MLP", "Naive"] and mean["Naive"][0] == pytest.approx(out["Naive"][:2].mean())
    with pytest.raises(ValueError, match="unknown metric 'wape'"):
        M.evaluate(fc, metrics=["wape"])
    with pytest.raises(ValueError, match="metric 'mase' needs train_df"):
        M.evaluate(fc, metrics=["mase"])
    with pytest.raises(ValueError, match=r"model columns \['TFT'\] not in df"):
        M.evaluate(fc, models=["TFT"])


def test_evaluate_matches_utilsforecast():
    pd = pytest.importorskip("pandas")
    pytest.importorskip("utilsforecast")
    from utilsforecast import losses as L
    from utilsforecast.evaluation import evaluate as uf_evaluate
    fc = pd.DataFrame(forecasts())
    rng = np.random.default_rng(1)
    train = pd.DataFrame({"unique_id": np.repeat(["a", "b"], 10), "ds": np.tile(np.arange(10), 2),
                          "y": rng.normal(size=20)})
    ours = M.evaluate(fc, metrics=["mae", "mse", "rmse", "mape", "smape", "mase", "coverage"], train_df=train,
                      seasonality=2, level=[80])
    theirs = uf_evaluate(fc, metrics=[L.mae, L.mse, L.rmse, L.mape, L.smape, partial_mase(L), L.coverage],
                         train_df=train, level=[80])
    theirs = theirs.sort_values(["metric", "unique_id"], kind="stable")
    ours = ours.sort_values(["metric", "unique_id"], kind="stable")
    assert ours["metric"].tolist() == theirs["metric"].tolist()
    for m in ("MLP", "Naive"):
        np.testing.assert_allclose(ours[m].to_numpy(float), theirs[m].to_numpy(float), rtol=1e-10)

    # cross-validation: each (series, cutoff) is a group, mase uses the history up to the cutoff
    cv = pd.concat([fc.assign(cutoff=9), fc.assign(cutoff=7, y=fc.y + 1)])
    ours = M.evaluate(cv, metrics=["mae", "mase"], train_df=train, seasonality=1, models=["MLP"])
    theirs = uf_evaluate(cv, metrics=[L.mae, partial_mase(L, 1)], train_df=train, models=["MLP"])
    key = ["metric", "unique_id", "cutoff"]
    np.testing.assert_allclose(ours.sort_values(key)["MLP"].to_numpy(float),
                               theirs.sort_values(key)["MLP"].to_numpy(float), rtol=1e-10)


def partial_mase(L, seasonality=2):
    from functools import partial
    f = partial(L.mase, seasonality=seasonality)
    f.__name__ = "mase"
    return f

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


# ----------------------------------------------------------------------------- M4
def test_m4_smape_is_200_times_smape_and_mase_is_m4s():
    y, f = np.array([10.0, 20.0, 0.0]), np.array([12.0, 15.0, 0.0])
    assert M.m4_smape(y, f) == pytest.approx((200 * 2 / 22 + 200 * 5 / 35 + 0) / 3)
    assert M.m4_smape(y, f) == pytest.approx(200 * M.smape(y, f))
    np.testing.assert_allclose(M.m4_smape(np.ones((2, 2)), np.full((2, 2), 3.0), axis=1), [100.0, 100.0])
    with pytest.raises(ValueError, match=r"y has shape \(3,\) but y_hat has shape \(2,\)"):
        M.m4_smape(y, f[:2])


def test_seasonality_test_both_outcomes():
    season = np.tile([1.0, 3.0, 2.0, 6.0], 6)                   # 24 points, period 4
    assert M.seasonality_test(season, 4)
    noise = np.random.default_rng(0).normal(10.0, 1.0, size=48)
    assert not M.seasonality_test(noise, 4)                     # |acf(4)| under the 90% bound
    assert not M.seasonality_test(season[:11], 4)               # fewer than 3 m points
    assert not M.seasonality_test(season, 1)                    # m = 1 is never seasonal


def test_naive2_by_hand():
    fig = np.array([0.6, 1.5, 0.9])                             # odd m, mean 1
    x = 4.0 * np.tile(fig, 4)[:-2]                              # 10 points, the last at position 0 of the cycle
    # decomposition: the centred 3-term average of level x season is the level, 4, so the
    # ratios are the figure; seasonally adjusted last value 2.4 / 0.6 = 4, reseasonalised
    np.testing.assert_allclose(M.naive2(x, 5, 3), 4.0 * fig[[1, 2, 0, 1, 2]], rtol=1e-12)
    y = np.tile([2.0, 6.0], 12)                                 # m = 2: 2x2 average 4, figure [0.5, 1.5]
    np.testing.assert_allclose(M.naive2(y, 3, 2), [2.0, 6.0, 2.0], rtol=1e-12)
    np.testing.assert_array_equal(M.naive2(y[:8], 3, 2), [6.0, 6.0, 6.0])   # 8 points: |acf(2)| 0.75 < 0.93
    noise = np.random.default_rng(0).normal(10.0, 1.0, size=48)
    np.testing.assert_array_equal(M.naive2(noise, 4, 4), np.full(4, noise[-1]))    # not seasonal: naive
    with pytest.raises(ValueError, match="naive2: h and m must be positive ints, got h=0, m=4"):
        M.naive2(noise, 0, 4)
    with pytest.raises(ValueError, match=r"naive2: y_train must be a non-empty 1-D series, got shape \(0,\)"):
        M.naive2([], 2, 1)


def test_m4_scores_and_owa_by_hand():
    train = {"a": np.array([1.0, 2.0, 4.0, 3.0]), "b": np.array([5.0, 5.0, 7.0])}
    test = {"a": np.array([10.0, 20.0]), "b": np.array([4.0, 4.0])}
    fc = {"a": np.array([12.0, 15.0]), "b": np.array([4.0, 6.0])}
    sc = M.m4_scores(train, test, fc, m=1)
    smape_a, smape_b = (200 * 2 / 22 + 200 * 5 / 35) / 2, (0 + 200 * 2 / 10) / 2
    mase_a, mase_b = 3.5 / (4 / 3), 1.0 / 1.0                  # b: |diffs| 0, 2 -> scale 1
    assert sc == pytest.approx({"smape": (smape_a + smape_b) / 2, "mase": (mase_a + mase_b) / 2})
    naive = {k: M.naive2(train[k], 2, 1) for k in test}         # m = 1: the last value
    n2 = M.m4_scores(train, test, naive, m=1)
    assert n2 == pytest.approx({"smape": (200 * 7 / 13 + 200 * 17 / 23 + 2 * 200 * 3 / 11) / 4,
                                "mase": (12 / (4 / 3) + 3.0) / 2})
    assert M.owa(sc, n2) == pytest.approx(0.5 * (sc["smape"] / n2["smape"] + sc["mase"] / n2["mase"]))
    assert M.owa(n2, n2) == 1.0
    assert M.owa({"smape": 10.0, "mase": 1.0}, {"smape": 20.0, "mase": 0.5}) == pytest.approx(1.25)


def test_m4_scores_errors():
    train, test, fc = {"a": np.ones(3)}, {"a": np.ones(2), "b": np.ones(2)}, {"a": np.ones(2)}
    with pytest.raises(ValueError, match=r"m4_scores: series missing from train or forecasts: \[\('b', 'train'\), "
                                         r"\('b', 'forecasts'\)\]"):
        M.m4_scores(train, test, fc, 1)
    with pytest.raises(ValueError, match=r"MASE needs more than m=4 training points; series \['a'\] have fewer"):
        M.m4_scores(train, {"a": np.ones(2)}, fc, 4)
    with pytest.raises(ValueError, match="m4_scores: test has no series"):
        M.m4_scores(train, {}, fc, 1)

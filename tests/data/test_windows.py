"""Windows, normalization and parsing equal NeuralForecast's; the sampler is seeded and its
dedupe option gives the same weighted batch."""
import numpy as np
import pytest

from ndiv.data import (TemporalNorm, TimeSeriesDataset, TrainWindowSampler, create_windows, normalize_windows,
                       parse_windows)
from tests.data.conftest import long_data

KEYS = ["insample_y", "insample_mask", "outsample_y", "outsample_mask", "hist_exog", "futr_exog", "stat_exog"]


def test_hand_computed_windows():
    """One series y = 1..5, L=2, h=2: NF right-pads h zeros, so the last windows reach past the end."""
    ds = TimeSeriesDataset.from_df({"unique_id": np.zeros(5, int), "ds": np.arange(5), "y": np.arange(1.0, 6.0)})
    windows, static, final = create_windows(ds.batch(), "train", input_size=2, h=2)
    assert windows.shape == (4, 4, 2, 1)             # [Ws, L + h, C, N]: (T + h) - (L + h) + 1 windows
    y, mask = windows[..., 0, 0], windows[..., 1, 0]
    assert y[0].tolist() == [1, 2, 3, 4] and y[2].tolist() == [3, 4, 5, 0] and y[3].tolist() == [4, 5, 0, 0]
    assert mask[2].tolist() == [1, 1, 1, 0] and mask[3].tolist() == [1, 1, 0, 0]
    assert final.tolist() == [0, 1, 2]                 # a window needs >= 1 available target point
    # start padding: input_size - 1 zeros in front, so the first window ends its input at y[0]
    windows, _, final = create_windows(ds.batch(), "train", input_size=2, h=2, start_padding_enabled=True)
    assert windows[final[0], :, 0, 0].tolist() == [0, 1, 2, 3] and windows[final[0], :, 1, 0].tolist() == [0, 1, 1, 1]
    # predict: the last L steps and h placeholder steps
    windows, _, _ = create_windows(ds.batch(), "predict", input_size=2, h=2)
    assert windows[..., 0, 0].tolist() == [[4, 5, 0, 0]]
    # a series shorter than input_size is left-padded for prediction, with mask 0 there
    windows, _, _ = create_windows(ds.batch(), "predict", input_size=7, h=1)
    assert windows[0, :, 1, 0].tolist() == [0, 0, 1, 1, 1, 1, 1, 0]


CASES = [dict(), dict(step_size=3), dict(start_padding_enabled=True), dict(val_size=4, test_size=2, step_size=2),
         dict(training_data_availability_threshold=0.6)]


@pytest.mark.parametrize("kw", CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()) or "default")
def test_matches_neuralforecast(nf_base, kw):
    import torch
    data = long_data()
    static = {"unique_id": np.array(["a", "b", "c"]), "s1": np.array([1.0, 2.0, 3.0]), "s2": np.array([5.0, 4.0, 3.0])}
    import pandas as pd
    nf_ds, *_ = nf_base["Dataset"].from_df(pd.DataFrame(data), static_df=pd.DataFrame(static))
    ours = TimeSeriesDataset.from_df(data, freq="D", static_df=static)
    np.testing.assert_array_equal(nf_ds.temporal.numpy(), ours.temporal)
    nb = next(iter(nf_base["Loader"](nf_ds, batch_size=3, shuffle=False)))
    b = ours.batch()
    np.testing.assert_array_equal(nb["temporal"].numpy(), b["temporal"])

    h, L = 4, 6
    val_size, test_size = kw.get("val_size", 0), kw.get("test_size", 0)
    model_kw = {k: v for k, v in kw.items() if k not in ("val_size", "test_size")}
    m = nf_base["Model"](h, L, hist_exog_list=["x1"], futr_exog_list=["x2"], stat_exog_list=["s2"],
                         scaler_type="robust", **model_kw)
    m.val_size, m.test_size = val_size, test_size
    thr = kw.get("training_data_availability_threshold", 0.0)
    sampler_kw = dict(input_size=L, h=h, step_size=kw.get("step_size", 1), val_size=val_size,
                      test_size=test_size, start_padding_enabled=kw.get("start_padding_enabled", False),
                      min_insample_fraction=thr, min_outsample_fraction=thr)
    W, st, st_cols, fc, _, tc = m._create_windows(dict(nb), "train")
    w, s, f = create_windows(b, "train", **sampler_kw)
    np.testing.assert_array_equal(fc.numpy(), f)
    np.testing.assert_array_equal(W.numpy()[fc.numpy()], w[f])
    np.testing.assert_array_equal(st.numpy()[fc.numpy()], s[f])

    # normalization and parsing of every valid window
    wb = m._normalization(m._sample_windows(W, st, st_cols, tc, torch.arange(len(fc)), fc), 0)
    nf_parsed = m._parse_windows(dict(nb), wb)
    norm = TemporalNorm("robust", dim=1)
    parsed = parse_windows(normalize_windows(w[f], ours.temporal_cols, norm, h, ["x1", "x2"]), ours.temporal_cols,
                           input_size=L, h=h, static=s[f], static_cols=ours.static_cols,
                           hist_exog_list=["x1"], futr_exog_list=["x2"], stat_exog_list=["s2"])
    for key, v in zip(KEYS, nf_parsed):
        assert v.shape == parsed[key].shape, key
        np.testing.assert_allclose(v.numpy(), parsed[key], rtol=1e-5, atol=1e-5, err_msg=key)
    # NF orders the scaled exogenous columns as a Python set does; compare column by column
    nf_order = ["y"] + m._get_temporal_exogenous_cols(nf_ds.temporal_cols)
    perm = [["y", "x1", "x2"].index(c) for c in nf_order]
    np.testing.assert_allclose(m.scaler.x_shift.numpy(), norm.x_shift[:, :, perm], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(m.scaler.x_scale.numpy(), norm.x_scale[:, :, perm], rtol=1e-5, atol=1e-6)

    # validation and prediction windows
    step = kw.get("step_size", 1)
    m.val_size, m.predict_step_size = max(val_size, 5), step
    for which, test in (("val", test_size), ("predict", max(test_size, h)), ("predict", h + 2 * step)):
        m.test_size = test
        W, *_ = m._create_windows(dict(nb), which)
        w, *_ = create_windows(b, which, input_size=L, h=h, step_size=step, predict_step_size=step,
                               val_size=m.val_size, test_size=test)
        np.testing.assert_array_equal(W.numpy(), w, err_msg=which)


def test_multivariate_windows_match_neuralforecast(nf_base):
    import pandas as pd
    data = long_data(sizes=(20, 20, 20))
    nf_ds, *_ = nf_base["Dataset"].from_df(pd.DataFrame(data))
    nb = next(iter(nf_base["Loader"](nf_ds, batch_size=3, shuffle=False)))
    m = nf_base["Model"](3, 5, hist_exog_list=["x1"], futr_exog_list=["x2"])
    m.MULTIVARIATE, m.n_series = True, 3
    W, _, _, fc, _, tc = m._create_windows(dict(nb), "train")
    ours = TimeSeriesDataset.from_df(data)
    w, _, f = create_windows(ours.batch(), "train", input_size=5, h=3, multivariate=True)
    np.testing.assert_array_equal(fc.numpy(), f)
    np.testing.assert_array_equal(W.numpy(), w)                  # [Ws, L + h, C, n_series]
    parsed = parse_windows(w, ours.temporal_cols, input_size=5, h=3, hist_exog_list=["x1"], futr_exog_list=["x2"],
                           multivariate=True)
    assert parsed["insample_y"].shape == (len(w), 5, 3)
    assert parsed["hist_exog"].shape == (len(w), 1, 5, 3) and parsed["futr_exog"].shape == (len(w), 1, 8, 3)


def test_sampler_shapes_and_seed():
    ds = TimeSeriesDataset.from_df(long_data(sizes=(40, 25, 12, 30)),
                                   static_df={"unique_id": np.array(list("abcd")), "s": np.arange(4.0)})
    kw = dict(input_size=8, h=4, batch_size=2, windows_batch_size=16, random_seed=7)
    a, b = TrainWindowSampler(ds, **kw), TrainWindowSampler(ds, **kw)
    seen = set()
    for _ in range(4):                                # two epochs of two batches of two series
        x = a.sample(TemporalNorm("standard", dim=1), ["x1"], ["x2"], ["s"])
        y = b.sample(TemporalNorm("standard", dim=1), ["x1"], ["x2"], ["s"])
        for k in KEYS + ["original_outsample_y", "y_loc", "y_scale"]:
            np.testing.assert_array_equal(x[k], y[k], err_msg=k)
        assert x["insample_y"].shape == (16, 8, 1) and x["outsample_y"].shape == (16, 4, 1)
        assert x["hist_exog"].shape == (16, 8, 1) and x["futr_exog"].shape == (16, 12, 1)
        assert x["stat_exog"].shape == (16, 1) and x["y_loc"].shape == (16, 1, 1)
        seen.update(x["series_idx"].tolist())
    assert seen == {0, 1, 2, 3}
    c = TrainWindowSampler(ds, **{**kw, "random_seed": 8}).sample()
    assert not np.array_equal(c["insample_y"], x["insample_y"]) or not np.array_equal(c["series_idx"], x["series_idx"])


def test_sampler_builds_the_windows_of_a_series_set_once(monkeypatch):
    """Every step takes all 4 series (batch_size >= n_series, shuffled each epoch): their batch and
    window availability are built at the first step only; the draws stay distinct and in range."""
    ds = TimeSeriesDataset.from_df(long_data(sizes=(40, 25, 12, 30)))
    calls = []
    batch = ds.batch
    monkeypatch.setattr(ds, "batch", lambda idx: calls.append(idx) or batch(idx))
    s = TrainWindowSampler(ds, input_size=8, h=4, batch_size=8, windows_batch_size=16, random_seed=3)
    draws = [s.sample()["window_idx"] for _ in range(6)]
    assert len(calls) == 1
    n_valid = len(s._series_windows(np.arange(4))[2])
    for w in draws:
        assert len(np.unique(w)) == 16 and w.min() >= 0 and w.max() < n_valid
    assert not all(np.array_equal(draws[0], w) for w in draws[1:])


@pytest.mark.parametrize("multivariate", [False, True])
def test_sampler_gathers_the_drawn_windows(multivariate):
    static = {"unique_id": np.array(list("abc")), "s": np.arange(3.0)}
    ds = TimeSeriesDataset.from_df(long_data(sizes=(30, 30, 30) if multivariate else (30, 17, 9)), static_df=static)
    kw = dict(input_size=6, h=3, step_size=2, val_size=2)
    s = TrainWindowSampler(ds, batch_size=2, windows_batch_size=7, multivariate=multivariate, random_seed=0, **kw)
    got = s.sample(hist_exog_list=["x1"], futr_exog_list=["x2"], stat_exog_list=["s"])
    ref, st, final = create_windows(ds.batch(got["series_idx"]), "train", multivariate=multivariate, **kw)
    chosen = final[got["window_idx"]]
    expected = parse_windows(ref[chosen], ds.temporal_cols, input_size=6, h=3, hist_exog_list=["x1"],
                             futr_exog_list=["x2"], stat_exog_list=["s"], multivariate=multivariate,
                             static=st if multivariate else st[chosen], static_cols=["s"])
    for k in KEYS:
        np.testing.assert_array_equal(got[k], expected[k], err_msg=k)


def test_sampler_unscaled_target_and_inverse():
    ds = TimeSeriesDataset.from_df(long_data(sizes=(40,)))
    norm = TemporalNorm("robust", dim=1)
    batch = TrainWindowSampler(ds, input_size=8, h=4, windows_batch_size=5).sample(norm)
    back = norm.inverse_transform(batch["outsample_y"][..., None], batch["y_loc"][..., None],
                                  batch["y_scale"][..., None])[..., 0]
    np.testing.assert_allclose(back, batch["original_outsample_y"], rtol=1e-5)


def test_sampler_with_revin_gives_differentiable_loc_scale():
    ds = TimeSeriesDataset.from_df(long_data(sizes=(40,)))
    norm = TemporalNorm("revin", dim=1, num_features=3)
    batch = TrainWindowSampler(ds, input_size=8, h=4, windows_batch_size=5).sample(norm, ["x1"], ["x2"])
    (batch["y_loc"].sum() + batch["y_scale"].sum()).backward()
    assert norm.revin_bias.grad[0, 0, 0, 0] == 5 and norm.revin_bias.grad[0, 0, 1:].sum() == 0


def test_draw_with_and_without_replacement():
    ds = TimeSeriesDataset.from_df(long_data(sizes=(40,)))    # 40 + 4 - 12 + 1 = 33 windows, 32 with a target
    s = TrainWindowSampler(ds, input_size=8, h=4, windows_batch_size=10)
    idx = s.sample()["window_idx"]
    assert len(idx) == len(set(idx.tolist())) == 10               # fewer draws than windows: no repeats
    s = TrainWindowSampler(ds, input_size=8, h=4, windows_batch_size=200)
    idx = s.sample()["window_idx"]
    assert len(idx) == 200 and len(set(idx.tolist())) < 40        # more draws: with replacement
    s = TrainWindowSampler(ds, input_size=8, h=4, windows_batch_size=None)
    assert s.sample()["window_idx"].tolist() == list(range(32))


def test_dedupe_gives_the_same_weighted_loss():
    ds = TimeSeriesDataset.from_df(long_data(sizes=(30, 20)))
    kw = dict(input_size=6, h=3, windows_batch_size=500, random_seed=3)
    full = TrainWindowSampler(ds, **kw).sample(TemporalNorm("standard", dim=1))
    uniq = TrainWindowSampler(ds, **kw).sample(TemporalNorm("standard", dim=1), dedupe=True)
    assert len(uniq["window_idx"]) < 500 and uniq["counts"].sum() == 500
    pred = lambda b: b["insample_y"][:, -1:, :]                  # a naive forecast of each window

    def loss(b):  # NF's weighted mean of |y - y_hat| over the outsample mask
        return np.sum(np.abs(b["outsample_y"] - pred(b)) * b["outsample_mask"]) / np.sum(b["outsample_mask"])
    assert loss(uniq) == pytest.approx(loss(full), rel=1e-6)

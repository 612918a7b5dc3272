"""Every model option out of range is refused when the model is built, with an error naming the
model, the option and the value; NeuralForecast's valid values are accepted; Lightning options
that would change results warn; mixed horizons and a val_size shorter than h are refused."""
from __future__ import annotations

import warnings

import numpy as np
import pytest

import ndiv
from ndiv.data.windows import SeriesSampler
from ndiv.losses import MAE, MQLoss
from ndiv.models import GRU, LSTM, MLP, NBEATS, NHITS, NLinear, PatchTST, RNN, TCN, DLinear

TINY = dict(h=4, input_size=8)


@pytest.mark.parametrize("make,exc,match", [
    (lambda: NHITS(**TINY, mlp_units=[[0, 512]]), ValueError, r"NHITS: mlp_units must be a list of \[in, out\] lists of positive integers.*got \[\[0, 512\]\]"),
    (lambda: NBEATS(**TINY, mlp_units=[[8, -1]]), ValueError, r"NBEATS: mlp_units must be .* got \[\[8, -1\]\]"),
    (lambda: NBEATS(**TINY, n_blocks=[0, 0, 0]), ValueError, r"NBEATS: n_blocks must be .*at least one block"),
    (lambda: NBEATS(**TINY, n_harmonics=0), ValueError, r"NBEATS: n_harmonics must be a positive integer, got 0"),
    (lambda: MLP(**TINY, hidden_size=0), ValueError, r"MLP: hidden_size must be a positive integer, got 0"),
    (lambda: MLP(**TINY, num_layers=0), ValueError, r"MLP: num_layers must be a positive integer, got 0"),
    (lambda: MLP(**TINY, num_layers=2.5), ValueError, r"MLP: num_layers must be a positive integer, got 2.5"),
    (lambda: LSTM(**TINY, encoder_n_layers=0), ValueError, r"LSTM: encoder_n_layers must be a positive integer"),
    (lambda: GRU(**TINY, encoder_hidden_size=0), ValueError, r"GRU: encoder_hidden_size must be a positive integer"),
    (lambda: RNN(**TINY, decoder_layers=0), ValueError, r"RNN: decoder_layers must be a positive integer"),
    (lambda: TCN(**TINY, decoder_hidden_size=-4), ValueError, r"TCN: decoder_hidden_size must be a positive integer, got -4"),
    (lambda: PatchTST(**TINY, hidden_size=0), ValueError, r"PatchTST: hidden_size must be a positive integer, got 0"),
    (lambda: DLinear(**TINY, moving_avg_window=True), ValueError, r"DLinear: moving_avg_window must be a positive odd"),
    (lambda: MLP(**TINY, gradient_clip_val=-1), ValueError, r"MLP: gradient_clip_val must be a finite number > 0, or None/0 .* got -1"),
    (lambda: MLP(**TINY, gradient_clip_val=float("nan")), ValueError, r"gradient_clip_val must be"),
    (lambda: MLP(**TINY, inference_windows_batch_size=0), ValueError, r"MLP: inference_windows_batch_size must be a positive integer, -1 .* got 0"),
    (lambda: MLP(**TINY, valid_batch_size=0), ValueError, r"MLP: valid_batch_size must be a positive integer or None.* got 0"),
    (lambda: MLP(**TINY, valid_batch_size=-1), ValueError, r"valid_batch_size must be"),
    (lambda: MLP(**TINY, windows_batch_size=0), ValueError, r"MLP: windows_batch_size must be a positive integer or None"),
    (lambda: MLP(**TINY, batch_size=True), ValueError, r"MLP: batch_size must be a positive integer, got True"),
    (lambda: MLP(**TINY, learning_rate=float("inf")), ValueError, r"MLP: learning_rate must be a finite number > 0"),
    (lambda: MLP(**TINY, num_lr_decays=1.5), ValueError, r"MLP: num_lr_decays must be an integer"),
    (lambda: MLP(**TINY, random_seed="1"), TypeError, r"MLP: random_seed must be an integer in \[0, 2\*\*32\) or None, got '1'"),
    (lambda: MLP(**TINY, random_seed=1.5), TypeError, r"random_seed must be an integer"),
    (lambda: MLP(**TINY, random_seed=-1), ValueError, r"random_seed must be an integer in \[0, 2\*\*32\)"),
    (lambda: MLP(**TINY, loss=MAE), TypeError, r"MLP: loss=MAE is a class; pass an instance, loss=MAE\(\)"),
    (lambda: NHITS(**TINY, valid_loss=MQLoss), TypeError, r"NHITS: valid_loss=MQLoss is a class; pass an instance, valid_loss=MQLoss\(\)"),
    (lambda: MLP(**TINY, loss="mae"), TypeError, r"MLP: loss must be an ndiv loss such as ndiv.losses.MAE\(\)"),
    (lambda: MLP(**TINY, optimizer=ndiv.optim.SGD([ndiv.nn.Parameter(np.zeros(1, np.float32))], lr=0.1)),
     TypeError, r"MLP: optimizer must be a subclass of ndiv.optim.Optimizer \(the class, not an instance\)"),
    (lambda: MLP(**TINY, hist_exog_list="price"), TypeError, r"MLP: hist_exog_list must be a list of column names or None, got 'price'"),
    (lambda: MLP(**TINY, drop_last_loader="yes"), ValueError, r"MLP: drop_last_loader must be True, False or None"),
    (lambda: MLP(**TINY, training_data_availability_threshold=2), ValueError, r"MLP: training_data_availability_threshold"),
    (lambda: MLP(**TINY, max_epochs=3), ValueError, r"MLP: max_epochs is not supported, use max_steps"),
])
def test_out_of_range_options_are_refused_when_built(make, exc, match):
    with pytest.raises(exc, match=match):
        make()


def test_neuralforecast_values_are_accepted():
    """NF's own values: -1 and None windows, None valid_batch_size, None/0 clipping, None seed."""
    m = MLP(**TINY, inference_windows_batch_size=-1, valid_batch_size=None, gradient_clip_val=0, random_seed=None,
            hidden_size=8)
    assert m.inference_windows_batch_size == -1 and m.valid_batch_size == m.batch_size
    m = MLP(**TINY, inference_windows_batch_size=None, windows_batch_size=64, gradient_clip_val=None, hidden_size=8)
    assert m.inference_windows_batch_size == 64
    # Lightning's seed_everything(None) seeds 0: the same weights as random_seed=0
    a = MLP(**TINY, random_seed=None, hidden_size=8).state_dict()
    b = MLP(**TINY, random_seed=0, hidden_size=8).state_dict()
    assert all(np.array_equal(a[k], b[k]) for k in a)


def test_lightning_options_that_change_results_warn():
    with pytest.warns(UserWarning, match=r"MLP: precision='16-mixed' is a PyTorch Lightning option that ndiv ignores"):
        MLP(**TINY, hidden_size=8, precision="16-mixed")
    with pytest.warns(UserWarning, match=r"MLP: callbacks=.* ndiv ignores"):
        MLP(**TINY, hidden_size=8, callbacks=[object()])
    with pytest.warns(UserWarning, match=r"accumulate_grad_batches=4"):
        MLP(**TINY, hidden_size=8, accumulate_grad_batches=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the neutral values and the bookkeeping options are silent
        MLP(**TINY, hidden_size=8, precision="32-true", callbacks=[], devices=1, logger=False,
            enable_checkpointing=False, accumulate_grad_batches=1, dataloader_kwargs={"num_workers": 2})
    with pytest.raises(TypeError, match=r"unknown option \['hiden_size'\]"):
        MLP(**TINY, hiden_size=8)


def series(n_series=3, n=40, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = np.concatenate([10 + i + np.sin(t / 3) + rng.normal(0, 0.1, n) for i in range(n_series)])
    return {"unique_id": np.repeat([f"s{i}" for i in range(n_series)], n), "ds": np.tile(t, n_series), "y": y}


def small(**kw):
    return MLP(**{"h": 4, "input_size": 8, "hidden_size": 8, "max_steps": 6, "enable_progress_bar": False, **kw})


def test_mixed_horizons_are_refused_naming_each_h():
    with pytest.raises(ValueError, match=r"different horizons h \(MLP: h=4, NLinear: h=6\)"):
        ndiv.Forecaster([small(), NLinear(h=6, input_size=8)], freq=1)


@pytest.mark.parametrize("call", ["fit", "cross_validation"])
def test_val_size_shorter_than_h_is_refused(call):
    fc = ndiv.Forecaster([small()], freq=1)
    with pytest.raises(ValueError, match=r"val_size=2 is shorter than the horizon h=4.*val_size >= 4"):
        getattr(fc, call)(series(), val_size=2)
    fc.fit(series(), val_size=4)   # 0 or >= h trains
    assert fc.models[0].valid_trajectories == []  # val_check_steps=100 > max_steps: no check yet


def test_drop_last_loader_drops_each_epochs_incomplete_batch():
    sampler = SeriesSampler(5, 2, np.random.default_rng(0), drop_last=True)
    seen = [sampler.next() for _ in range(8)]           # 4 epochs of 2 batches of 2
    assert all(len(b) == 2 for b in seen)
    assert sorted(len(set(np.concatenate(seen[i:i + 2]))) for i in range(0, 8, 2)) == [4] * 4
    keep = SeriesSampler(5, 2, np.random.default_rng(0))
    assert [len(keep.next()) for _ in range(3)] == [2, 2, 1]
    # through a model: dropping changes what it trains on; too few series for one batch is an error
    data = series(n_series=3)
    a = ndiv.Forecaster([small(batch_size=2)], freq=1).fit(data).predict()
    b = ndiv.Forecaster([small(batch_size=2, drop_last_loader=True)], freq=1).fit(data).predict()
    assert not np.array_equal(a["MLP"], b["MLP"])
    with pytest.raises(ValueError, match=r"MLP: drop_last_loader=True drops every batch: batch_size=32 is more than the 3 series"):
        ndiv.Forecaster([small(drop_last_loader=True)], freq=1).fit(data)


def test_restore_best_weights_ends_with_the_best_validation_checks_weights():
    data = series(n_series=3)
    kw = dict(max_steps=12, val_check_steps=2, learning_rate=0.05)
    kept, last = small(restore_best_weights=True, **kw), small(**kw)
    fc = ndiv.Forecaster([kept], freq=1).fit(data, val_size=4)
    fc_last = ndiv.Forecaster([last], freq=1).fit(data, val_size=4)
    checks = [v for _, v in kept.valid_trajectories]
    # same seed, same steps: the same checks; the options overshoot, so the best check is not the last
    assert len(checks) == 6 and [v for _, v in last.valid_trajectories] == checks
    assert checks.index(min(checks)) < len(checks) - 1
    assert kept.validate(fc._dataset) == pytest.approx(min(checks), rel=1e-6)
    assert last.validate(fc_last._dataset) == pytest.approx(checks[-1], rel=1e-6)
    assert not np.array_equal(fc.predict()["MLP"], fc_last.predict()["MLP"])


def test_restore_best_weights_needs_a_validation_set():
    with pytest.raises(ValueError, match=r"MLP: restore_best_weights=True .* needs a validation set: pass val_size > 0"):
        ndiv.Forecaster([small(restore_best_weights=True)], freq=1).fit(series())

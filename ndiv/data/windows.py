"""Windows as NeuralForecast's windows models build them, and the sampler the training loop uses.

A window is `input_size + h` consecutive steps of one series (univariate models) or of all series
at once (multivariate models): the first `input_size` are the model's input, the last `h` the
target. Shapes follow NeuralForecast: windows [W, L + h, C, N] with C the temporal columns
(y, exogenous, available_mask) and N = 1 for univariate models (the series axis for multivariate).

The pipeline of one training step (NeuralForecast's `training_step`):

    sampler = TrainWindowSampler(dataset, input_size=24, h=12, batch_size=32,
                                 windows_batch_size=1024, random_seed=1)
    batch = sampler.sample(scaler=TemporalNorm("robust", dim=1),
                           hist_exog_list=[], futr_exog_list=[], stat_exog_list=[])
    batch["insample_y"]    # [W, L, 1] scaled input        batch["insample_mask"]  [W, L, 1]
    batch["outsample_y"]   # [W, h, 1] scaled target       batch["outsample_mask"] [W, h, 1]
    batch["original_outsample_y"]  # [W, h, 1] the target before scaling (DistributionLoss)
    batch["hist_exog"] [W, L, X]  batch["futr_exog"] [W, L + h, F]  batch["stat_exog"] [W, S]
    batch["y_loc"], batch["y_scale"]   # [W, 1, 1] the target's shift and scale (NF's _get_loc_scale)

Its steps are public functions, each a port of one NeuralForecast method, for the validation
and prediction windows the base also needs: `create_windows` (`_create_windows`),
`normalize_windows` (`_normalization`) and `parse_windows` (`_parse_windows`).

Drawing the same window twice. With `windows_batch_size` larger than the number of windows,
NeuralForecast draws windows with replacement (AirPassengers: ~100 windows, 1024 draws).
`sample(..., dedupe=True)` returns each drawn window once with `batch["counts"]` [W] how many
times it was drawn, and multiplies `outsample_mask` by the counts: every loss here is a
mask-weighted mean, so the loss and its gradient are the same as on the full draw, for a
fraction of the work (for models without per-sample randomness such as dropout; with dropout,
the expectation is the same). Without dedupe, `batch["window_idx"]` [W] still names every drawn
window, so a caller can do the same itself.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from ndiv.data.dataset import AVAILABLE_MASK, TimeSeriesDataset


def _windows_view(temporal, window_size, step_size):
    """[B, C, T] -> read-only view [B, C, Ws, window_size] (torch's unfold)."""
    return sliding_window_view(temporal, window_size, axis=-1)[:, :, ::step_size]


def _to_nf_layout(windows, multivariate):
    """[B, C, Ws, L + h] -> [Ws * B, L + h, C, 1] (univariate) or [Ws, L + h, C, B]."""
    if multivariate:
        return windows.transpose(2, 3, 1, 0)
    b, c, ws, w = windows.shape
    return windows.transpose(0, 2, 3, 1).reshape(b * ws, w, c)[..., None]


def _pad_time(temporal, left, right):
    if left == 0 and right == 0:
        return temporal
    return np.pad(temporal, ((0, 0), (0, 0), (left, right)))


def availability_fractions(threshold):
    """training_data_availability_threshold -> (min insample fraction, min outsample fraction)."""
    if isinstance(threshold, bool) or isinstance(threshold, (int, np.integer)):
        raise ValueError("training_data_availability_threshold cannot be an integer - must be a float")
    if isinstance(threshold, float):
        pair = (threshold, threshold)
    elif isinstance(threshold, (list, tuple)) and len(threshold) == 2:
        pair = tuple(threshold)
    else:
        raise ValueError("training_data_availability_threshold must be a float or a list/tuple of two floats")
    for v in pair:
        if not isinstance(v, float) or not 0.0 <= v <= 1.0:
            raise ValueError("training_data_availability_threshold must be floats between 0.0 and 1.0, "
                             f"got {threshold}")
    return pair


def create_windows(batch: dict, step: str, *, input_size: int, h: int, step_size: int = 1,
                   val_size: int = 0, test_size: int = 0, start_padding_enabled: bool = False,
                   predict_step_size: int = 1, multivariate: bool = False,
                   min_insample_fraction: float = 0.0, min_outsample_fraction: float = 0.0):
    """NeuralForecast's `_create_windows` on a batch of series.

    Args:
        batch: `TimeSeriesDataset.batch(idx)`: temporal [B, C, T] (left-padded), static [B, S].
        step: 'train' (windows before the last val_size + test_size steps, right-padded with h
            zeros, left-padded with input_size - 1 zeros when start_padding_enabled, kept when they
            have enough available insample and outsample points), 'val' (the val_size steps before
            the test part, every window) or 'predict' (the last input_size + test_size steps,
            windows every predict_step_size; with test_size=0, h zeros are appended).
    Returns:
        windows [W, L + h, C, N] (a view where possible), static [W, S] (univariate: repeated
        per window) or [N, S] (multivariate) or None, and final_condition: int64 [W'] the indices
        of the windows to use.
    """
    view, final_condition = _unfold(batch, step, input_size=input_size, h=h, step_size=step_size,
                                    val_size=val_size, test_size=test_size,
                                    start_padding_enabled=start_padding_enabled,
                                    predict_step_size=predict_step_size, multivariate=multivariate,
                                    min_insample_fraction=min_insample_fraction,
                                    min_outsample_fraction=min_outsample_fraction)
    n_windows = view.shape[2]
    windows = _to_nf_layout(view, multivariate)
    static = batch.get("static")
    if static is not None and not multivariate:
        static = np.repeat(static, n_windows, axis=0)
    return windows, static, final_condition


def _unfold(batch, step, *, input_size, h, step_size, val_size, test_size, start_padding_enabled,
            predict_step_size, multivariate, min_insample_fraction, min_outsample_fraction):
    """create_windows without the layout change: (view [B, C, Ws, L + h], final_condition)."""
    window_size = input_size + h
    temporal = batch["temporal"]
    mask_idx = batch["temporal_cols"].index(AVAILABLE_MASK)
    n_series = temporal.shape[0] if multivariate else 1
    if step == "train":
        if val_size + test_size > 0:
            temporal = temporal[:, :, :-(val_size + test_size)]
        temporal = _pad_time(temporal, input_size - 1 if start_padding_enabled else 0, h)
        if temporal.shape[-1] < window_size:
            raise ValueError(
                f"time series too short for training: {temporal.shape[-1] - h} steps (after removing "
                f"val_size={val_size} and test_size={test_size}) but a window needs input_size={input_size} "
                "of them; lower input_size or set start_padding_enabled=True")
        # availability of each window from cumulative sums of the mask (no window materialized)
        mask = temporal[:, mask_idx].astype(np.float64)                    # [B, T]
        cs = np.concatenate([np.zeros((mask.shape[0], 1)), np.cumsum(mask, axis=1)], axis=1)
        starts = np.arange(0, temporal.shape[-1] - window_size + 1, step_size)
        insample = cs[:, starts + input_size] - cs[:, starts]                 # [B, Ws]
        outsample = cs[:, starts + window_size] - cs[:, starts + input_size]
        if multivariate:   # summed over series: [Ws]
            insample, outsample = insample.sum(0), outsample.sum(0)
        else:              # series-major, as windows are flattened: [B * Ws]
            insample, outsample = insample.reshape(-1), outsample.reshape(-1)
        min_in = max(1, int(input_size * min_insample_fraction * n_series))
        min_out = max(1, int(h * min_outsample_fraction * n_series))
        condition = insample >= min_in
        if h > 0:
            condition &= outsample >= min_out
        if not condition.any():
            raise ValueError("no windows available for training: every window lacks available insample or "
                             "outsample points; check available_mask, val_size and test_size")
        final_condition = np.flatnonzero(condition)
        windows = _windows_view(temporal, window_size, step_size)
    elif step in ("predict", "val"):
        if step == "predict":
            initial_input = temporal.shape[-1] - test_size
            if initial_input <= input_size:   # not enough history for the first forecast
                temporal = _pad_time(temporal, input_size - initial_input, 0)
            temporal = temporal[:, :, temporal.shape[-1] - input_size - test_size:]
            stride = predict_step_size
            if test_size == 0:
                temporal = _pad_time(temporal, 0, h)
        else:
            stride = step_size
            start = temporal.shape[-1] - input_size - val_size - test_size
            temporal = temporal[:, :, max(start, 0):temporal.shape[-1] - test_size]
            if temporal.shape[-1] < window_size:
                temporal = _pad_time(temporal, input_size - (temporal.shape[-1] - val_size), 0)
        windows = _windows_view(temporal, window_size, stride)
        n_windows = windows.shape[2]
        final_condition = np.arange(n_windows if multivariate else n_windows * temporal.shape[0])
    else:
        raise ValueError(f"step must be 'train', 'val' or 'predict', got {step!r}")

    return windows, final_condition


def normalize_windows(windows: np.ndarray, temporal_cols: Sequence[str], scaler, h: int,
                      temporal_exog: Sequence[str] = (), return_stats: bool = False):
    """NeuralForecast's `_normalization`: scale y and the temporal exogenous columns of each
    window with statistics over its first L steps (the available_mask with the last h steps
    zeroed). Returns a scaled copy [W, L + h, C, N]; `scaler` keeps x_shift/x_scale [W, 1, C', N]
    with C' = 1 + len(temporal_exog), y first. return_stats=True: returns (scaled, x_shift,
    x_scale) instead and leaves `scaler` untouched (per-call statistics, for predictions).

    temporal_exog: the hist and futr exogenous columns that are scaled (NeuralForecast leaves
        categorical ones out), in temporal_cols order.
    """
    idx = [0] + [temporal_cols.index(c) for c in temporal_cols if c in set(temporal_exog)]
    mask = np.array(windows[:, :, temporal_cols.index(AVAILABLE_MASK)])   # [W, L + h, N]
    if h > 0:
        mask[:, -h:] = 0.0
    out = np.array(windows, dtype=np.float32)
    if return_stats:
        out[:, :, idx], x_shift, x_scale = scaler.transform_stats(out[:, :, idx], mask[:, :, None])
        return out, x_shift, x_scale
    out[:, :, idx] = scaler.transform(out[:, :, idx], mask[:, :, None])
    return out


def parse_windows(windows: np.ndarray, temporal_cols: Sequence[str], *, input_size: int, h: int,
                  static=None, static_cols: Sequence[str] = (), hist_exog_list: Sequence[str] = (),
                  futr_exog_list: Sequence[str] = (), stat_exog_list: Sequence[str] = (),
                  multivariate: bool = False) -> dict:
    """NeuralForecast's `_parse_windows` (for direct models): split windows [W, L + h, C, N] into

        insample_y [W, L, N], insample_mask [W, L, N], outsample_y [W, h, N], outsample_mask [W, h, N],
        hist_exog [W, L, X] (multivariate [W, X, L, N]) or None,
        futr_exog [W, L + h, F] (multivariate [W, F, L + h, N]) or None,
        stat_exog [W, S] (multivariate [N, S]) or None.
    """
    y_idx = 0
    mask_idx = temporal_cols.index(AVAILABLE_MASK)
    out = dict(insample_y=windows[:, :input_size, y_idx], insample_mask=windows[:, :input_size, mask_idx],
               outsample_y=None, outsample_mask=None, hist_exog=None, futr_exog=None, stat_exog=None)
    if h > 0:
        out["outsample_y"] = windows[:, input_size:, y_idx]
        out["outsample_mask"] = windows[:, input_size:, mask_idx]
    if len(hist_exog_list):
        x = windows[:, :input_size, [temporal_cols.index(c) for c in hist_exog_list]]   # [W, L, X, N]
        out["hist_exog"] = x.swapaxes(1, 2) if multivariate else x[..., 0]
    if len(futr_exog_list):
        x = windows[:, :, [temporal_cols.index(c) for c in futr_exog_list]]            # [W, L+h, F, N]
        out["futr_exog"] = x.swapaxes(1, 2) if multivariate else x[..., 0]
    if len(stat_exog_list):
        out["stat_exog"] = static[:, [list(static_cols).index(c) for c in stat_exog_list]]
    return out


class SeriesSampler:
    """Which series each training step sees: NeuralForecast's shuffled DataLoader over series.

    Each epoch is a fresh permutation of the series (rng.permutation), cut into batches of
    `batch_size`, the last one smaller or, with drop_last=True, dropped (NeuralForecast's
    drop_last_loader); multivariate models see all series.
    """

    def __init__(self, n_series: int, batch_size: int, rng: np.random.Generator, shuffle: bool = True,
                 all_series: bool = False, drop_last: bool = False):
        if drop_last and not all_series and n_series < batch_size:
            raise ValueError(f"drop_last_loader=True drops every training batch: batch_size={batch_size} is more "
                             f"than the {n_series} series; lower batch_size or set drop_last_loader=False")
        self.n_series, self.batch_size, self.rng = n_series, batch_size, rng
        self.shuffle, self.all_series, self.drop_last = shuffle, all_series, drop_last
        self._queue: list[np.ndarray] = []

    def next(self) -> np.ndarray:
        if self.all_series:
            return np.arange(self.n_series)
        if not self._queue:
            order = self.rng.permutation(self.n_series) if self.shuffle else np.arange(self.n_series)
            end = self.n_series - self.n_series % self.batch_size if self.drop_last else self.n_series
            self._queue = [order[i:i + self.batch_size] for i in range(0, end, self.batch_size)][::-1]
        return self._queue.pop()


class TrainWindowSampler:
    """Training batches as NeuralForecast's windows models draw them.

    Each `sample()`: take the next `batch_size` series (SeriesSampler), build their windows
    (`create_windows(step='train')`), draw `windows_batch_size` of the valid ones (with
    replacement when there are fewer, else a random subset without replacement; all of them
    when windows_batch_size is None), scale them (`normalize_windows`) and split them
    (`parse_windows`). Randomness: one numpy Generator seeded with `random_seed`, so the same
    seed and data give the same batches.

    Args:
        dataset: TimeSeriesDataset. input_size (L), h: window = L + h steps.
        batch_size: series per step. windows_batch_size: windows per step (None: all).
        step_size: distance between consecutive windows. val_size, test_size: steps at the end
            of each series kept out of training. start_padding_enabled: pad input_size - 1
            zeros on the left so the first windows start before the series.
        multivariate: windows over all series at once ([W, L + h, C, n_series]).
        training_data_availability_threshold: float or (insample, outsample) minimum fraction
            of available points a window needs (0.0: at least one).
        random_seed: seeds the Generator. drop_last: skip each epoch's last, incomplete batch of series.
    """

    def __init__(self, dataset: TimeSeriesDataset, *, input_size: int, h: int, batch_size: int = 32,
                 windows_batch_size: int | None = 1024, step_size: int = 1, val_size: int = 0,
                 test_size: int = 0, start_padding_enabled: bool = False, multivariate: bool = False,
                 training_data_availability_threshold=0.0, random_seed: int = 1, drop_last: bool = False):
        for name, v, lo in (("input_size", input_size, 1), ("h", h, 1), ("batch_size", batch_size, 1),
                            ("step_size", step_size, 1), ("val_size", val_size, 0), ("test_size", test_size, 0)):
            if not isinstance(v, (int, np.integer)) or v < lo:
                raise ValueError(f"{name} must be an integer >= {lo}, got {v!r}")
        if windows_batch_size is not None and (not isinstance(windows_batch_size, (int, np.integer))
                                               or windows_batch_size < 1):
            raise ValueError(f"windows_batch_size must be a positive integer or None, got {windows_batch_size!r}")
        self.dataset = dataset
        self.input_size, self.h, self.step_size = input_size, h, step_size
        self.val_size, self.test_size = val_size, test_size
        self.windows_batch_size, self.multivariate = windows_batch_size, multivariate
        self.start_padding_enabled = start_padding_enabled
        self.min_insample_fraction, self.min_outsample_fraction = availability_fractions(
            training_data_availability_threshold)
        self.rng = np.random.default_rng(random_seed)
        self._cache: dict[bytes, tuple] = {}
        batch_size = max(batch_size, dataset.n_series) if multivariate else batch_size
        self.series = SeriesSampler(dataset.n_series, batch_size, self.rng, all_series=multivariate,
                                    drop_last=drop_last)
        self._kw = dict(input_size=input_size, h=h, step_size=step_size, val_size=val_size,
                        test_size=test_size, start_padding_enabled=start_padding_enabled,
                        multivariate=multivariate, min_insample_fraction=self.min_insample_fraction,
                        min_outsample_fraction=self.min_outsample_fraction)
        # fail here, with the message, rather than at the first step
        usable = dataset.max_size - val_size - test_size + (input_size - 1 if start_padding_enabled else 0)
        if usable < input_size:
            raise ValueError(
                f"time series too short for training: the longest series has {dataset.max_size} steps, "
                f"{usable} after removing val_size={val_size} and test_size={test_size}, but a window needs "
                f"input_size={input_size} of them; lower input_size or set start_padding_enabled=True")

    def _series_windows(self, series_idx: np.ndarray):
        """(batch, windows view, valid window indices) of a set of series, kept for the last few
        sets: a fit whose every step takes all series (few long series, multivariate models)
        gathers and checks their windows once instead of every step."""
        key = series_idx.tobytes()
        hit = self._cache.pop(key, None)
        if hit is None:
            batch = self.dataset.batch(series_idx)
            hit = (batch, *_unfold(batch, "train", predict_step_size=1, **self._kw))
            if len(self._cache) >= 4:
                self._cache.pop(next(iter(self._cache)))
        self._cache[key] = hit                       # most recent last
        return hit

    def draw(self, n_windows: int) -> np.ndarray:
        """Indices into the valid windows, as NeuralForecast draws them."""
        wbs = self.windows_batch_size
        if wbs is None:
            return np.arange(n_windows)
        if n_windows < wbs:
            return self.rng.integers(0, n_windows, size=wbs)
        # a uniform random subset in random order, as permutation(n)[:wbs], in O(wbs) instead of O(n)
        # (a long series has ~10^5-10^6 windows: the permutation cost 9 ms a step for 336 windows)
        return self.rng.choice(n_windows, size=wbs, replace=False)

    def sample(self, scaler=None, hist_exog_list: Sequence[str] = (), futr_exog_list: Sequence[str] = (),
               stat_exog_list: Sequence[str] = (), temporal_exog_scaled: Sequence[str] | None = None,
               dedupe: bool = False) -> dict:
        """One training batch (see the module docstring for its keys and shapes).

        scaler: a TemporalNorm (None: no scaling). temporal_exog_scaled: the exogenous columns
        the scaler scales (default: hist_exog_list + futr_exog_list). dedupe: each drawn window
        once, with `counts` folded into outsample_mask.
        Extra keys: window_idx [W] (indices into the valid windows of this step's series),
        counts [W] (ones without dedupe), series_idx (the step's series), y_loc/y_scale
        [W, 1, N] (the target's statistics; None without a scaler).
        """
        series_idx = np.sort(self.series.next())     # the order within a batch does not matter
        batch, view, final = self._series_windows(series_idx)                   # view [B, C, Ws, L + h]
        w_idx = self.draw(len(final))
        counts = np.ones(len(w_idx), dtype=np.float32)
        if dedupe:
            w_idx, counts = np.unique(w_idx, return_counts=True)
            counts = counts.astype(np.float32)
        chosen = final[w_idx]
        cols = self.dataset.temporal_cols
        static = batch["static"]
        # gather only the drawn windows: NF's layout [W, L + h, C, N] without unfolding the rest
        if self.multivariate:
            sample = np.ascontiguousarray(view[:, :, chosen].transpose(2, 3, 1, 0))
        else:
            series, w = np.divmod(chosen, view.shape[2])
            sample = np.ascontiguousarray(view[series, :, w].transpose(0, 2, 1))[..., None]
            static = None if static is None else static[series]
        original_outsample_y = sample[:, self.input_size:, 0].copy()
        y_loc = y_scale = None
        if scaler is not None:
            exog = list(hist_exog_list) + list(futr_exog_list) if temporal_exog_scaled is None else temporal_exog_scaled
            sample = normalize_windows(sample, cols, scaler, self.h, exog)
            y_loc, y_scale = scaler.x_shift[:, :, 0], scaler.x_scale[:, :, 0]
        out = parse_windows(sample, cols, input_size=self.input_size, h=self.h, static=static,
                            static_cols=self.dataset.static_cols, hist_exog_list=hist_exog_list,
                            futr_exog_list=futr_exog_list, stat_exog_list=stat_exog_list,
                            multivariate=self.multivariate)
        if dedupe:
            out["outsample_mask"] = out["outsample_mask"] * counts[:, None, None]
        out.update(original_outsample_y=original_outsample_y, window_idx=w_idx, counts=counts,
                   series_idx=series_idx, y_loc=y_loc, y_scale=y_scale)
        return out

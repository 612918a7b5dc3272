"""NeuralForecast's recurrent mode (`RECURRENT=True`: DeepAR; RNN, LSTM, GRU with recurrent=True),
written once for the shared base.

A recurrent model predicts y_{t+1} from y_t (and the state of its RNN), so its windows are one
step longer than input_size, and NF 3.3 shapes them so (`_parse_windows`, RECURRENT branches):

    window   [W, L1 + H, C]         L1 = input_size + 1 (inference_input_size + 1 at predict),
                                    H = h_train in training, h otherwise
    insample_y   = [y_0 .. y_{L1-1}, y_{L1} .. y_{L1+H-2}]   [W, L1 + H - 1, 1]  (shifted target)
    futr_exog    = window[:, 1:]                               [W, L1 + H - 1, F]
    hist_exog    = window[:, 1:] with the steps past L1 zeroed [W, L1 + H - 1, X]

- training: teacher forcing; the network's outputs at the last H steps are the forecasts of
  y_{L1} .. y_{L1+H-1} (`network(.., 'train')`);
- validation and prediction: the first L1 inputs, then one step at a time carrying the RNN
  state, the value fed back being the point forecast in the scaled space (MQLoss: the mean of
  its quantiles) or, for a DistributionLoss, the distribution's mean scaled back as NF does
  (`scaler.scaler(distr.mean, loc, scale)`); a prediction also samples each step's distribution
  (`n_samples` draws) for its quantile columns, so the point column is deterministic.

The model's `forward(windows_batch)` in this mode returns its output at every input step
[W, T, n_out] and reads/writes the RNN state under windows_batch["rnn_state"] (None: zeros):
the state travels with the call, never on the model.
"""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv.data.scalers import scale as _scale
from ndiv.device import to_device


def window_spec(model, step: str) -> tuple:
    """(window input_size, window h, hist_exog_list, futr_exog_list) for 'train', 'val' or 'predict'.
    The hist exogenous columns are parsed with the future ones, over the whole window."""
    L1 = (model.inference_input_size if step == "predict" else model.input_size) + 1
    h = model.h_train if step == "train" else model.h
    return L1, h, [], list(model.futr_exog_list) + list(model.hist_exog_list)


def shifted_inputs(model, batch: dict) -> dict:
    """A parsed batch (window_spec's layout) -> the model's input dict (Tensors), shifted by one step."""
    L1 = batch["insample_y"].shape[1]
    cat = np.concatenate
    out = dict(insample_y=cat([batch["insample_y"], batch["outsample_y"][:, :-1]], axis=1),
               insample_mask=cat([batch["insample_mask"], batch["outsample_mask"][:, :-1]], axis=1),
               futr_exog=None, hist_exog=None, stat_exog=batch.get("stat_exog"))
    temporal = batch.get("futr_exog")                        # [W, L1 + H, F + X]
    n_futr = len(model.futr_exog_list)
    if n_futr:
        out["futr_exog"] = temporal[:, 1:, :n_futr]
    if model.hist_exog_list:
        hist = np.array(temporal[:, :, n_futr:])
        hist[:, L1:] = 0.0                                   # the future of a historical input is unknown
        out["hist_exog"] = hist[:, 1:]
    return model._tensors(out)


def network(model, batch: dict, step: str):
    """The raw output [W, H, n_out]: teacher-forced over the window ('train'), or one step at a
    time feeding back the forecast ('val')."""
    inputs = shifted_inputs(model, batch)
    if step == "train":
        return model(inputs)[:, -model.h_train:]
    loc, scale = _loc_scale(batch, model.device)
    return ndiv.cat([raw for raw, _ in _recursion(model, inputs, batch, loc, scale)], axis=1)


def _loc_scale(batch, device):
    loc, scale = batch["y_loc"], batch["y_scale"]
    if not isinstance(loc, ndiv.Tensor):
        loc, scale = ndiv.tensor(loc, device=device), ndiv.tensor(scale, device=device)
    return loc, scale


def _recursion(model, inputs: dict, batch: dict, loc, scale):
    """Yields (raw output [W, 1, n_out], mapped output) per forecast step, NF's
    `_{validate,predict}_step_recurrent_batch`: the first step sees the L1 inputs, each next one
    the fed-back value and that step's exogenous inputs, with the carried RNN state."""
    L1, H = batch["insample_y"].shape[1], batch["outsample_y"].shape[1]
    step_inputs = {k: None if v is None or k == "stat_exog" else v[:, :L1] for k, v in inputs.items()}
    step_inputs["stat_exog"] = inputs["stat_exog"]
    state = feedback = None
    for tau in range(H):
        if tau:
            t = L1 + tau - 1
            step_inputs = dict(insample_y=feedback, insample_mask=None, stat_exog=inputs["stat_exog"],
                               hist_exog=None if inputs["hist_exog"] is None else inputs["hist_exog"][:, t:t + 1],
                               futr_exog=None if inputs["futr_exog"] is None else inputs["futr_exog"][:, t:t + 1])
        step_inputs["rnn_state"] = state
        raw = model(step_inputs)[:, -1:]                     # [W, 1, n_out]
        state = step_inputs["rnn_state"]
        mapped = model.loss.domain_map(raw)
        if model.loss.is_distribution_output:
            distr_args = model.loss.scale_decouple(output=mapped, loc=loc, scale=scale)
            mean = model.loss.get_distribution(distr_args).mean                   # [W, 1, 1]
            feedback = _scale(model.scaler.scaler_type, mean, loc, scale)
            mapped = (distr_args, mean)
        else:
            feedback = mapped.mean(axis=-1) if mapped.ndim == 4 else mapped      # MQLoss: the quantiles' mean
            mapped = feedback
        yield raw, mapped


def predict(model, batch: dict, loc, scale, rng, quantiles=None) -> np.ndarray:
    """Recursive forecasts of a parsed 'predict' batch -> float32 [W, h, K], K the loss's
    prediction outputs: [mean, quantiles (n_samples draws per step), params?] for a
    DistributionLoss, the point forecast otherwise (MQLoss: its quantiles' mean in every column,
    as NF's recurrent prediction gives)."""
    loss = model.loss
    inputs = shifted_inputs(model, batch)
    n_out = len(loss.predict_output_names(quantiles, who=str(model)))
    steps = []
    for _, mapped in _recursion(model, inputs, batch, loc, scale):
        if loss.is_distribution_output:
            distr_args, mean = mapped
            _, _, quants = loss.sample(distr_args=distr_args, num_samples=model.n_samples, rng=rng,
                                       quantiles=quantiles)                        # [W, 1, 1, Q]
            parts = [to_device(mean.data, "cpu")[..., None], to_device(quants, "cpu")]
            if loss.return_params:
                params = np.stack([to_device(a.data, "cpu") for a in distr_args], axis=-1)
                parts.append(params.reshape(params.shape[:3] + (-1,)))
            y = np.concatenate([p.astype(np.float32, copy=False) for p in parts], axis=-1)
        else:
            y = model.scaler.inverse_transform(mapped, loc, scale).numpy()[..., None]   # [W, 1, 1, 1]
            y = np.broadcast_to(y, y.shape[:3] + (n_out,))
        steps.append(y[:, :, 0])                                                   # [W, 1, K]
    return np.concatenate(steps, axis=1).astype(np.float32)

"""What a trained model can say about its own forecast: NHITS/NBEATS stacks, PatchTST attention.

Both run the model's own forward on the last input window of every series (the window that
`Forecaster.predict()` forecasts from), with forward hooks attached for that one call only.
"""
from __future__ import annotations

import inspect

import numpy as np

import ndiv
from ndiv.device import to_device

DECOMPOSABLE = ("NHITS", "NBEATS", "NBEATSx")


def _pick(forecaster, model):
    m = _find(forecaster, model)
    if type(m).__name__ == "Partitioned":
        raise ValueError(f"{m} is partitioned (ndiv.auto.Partitioned): each partition has its own copy, so there is "
                         "no one model to interpret; fit it unpartitioned to read its weights")
    return m


def _find(forecaster, model):
    models = forecaster.models
    if model is None:
        return models[0]
    if isinstance(model, int):
        return models[model]
    if isinstance(model, str):
        for m in models:
            if str(m) == model:
                return m
        raise ValueError(f"model={model!r} is not one of the forecaster's models {[str(m) for m in models]}")
    return model


def _last_windows(forecaster, m, futr_df=None):
    """The model's prediction batches (scaled windows with their y_loc, y_scale) for fit data;
    futr_df: the future exogenous values, as for predict (needed when a model has futr_exog_list)."""
    forecaster._require_fit("an interpretation")
    if m.futr_exog_list and futr_df is None:
        raise ValueError(f"{m} uses future exogenous columns {list(m.futr_exog_list)}: pass futr_df with unique_id, "
                         f"ds and those columns for the {forecaster.h} dates after each series' end, as to predict")
    ds = forecaster._dataset
    if ds is None:
        raise ValueError("this Forecaster holds no training data (loaded with save_dataset=False): "
                         "an interpretation needs the history it forecasts from")
    futr = sorted({c for mm in forecaster.models for c in mm.futr_exog_list}) if futr_df is not None else []
    full = ds.append_future(forecaster.h, _encoded(forecaster, futr_df), futr)
    if forecaster._scalers and futr:
        from ndiv.forecaster import _rescale_future
        full = _rescale_future(full, ds, forecaster._scalers, forecaster.h)
    uid, dates = ds.future_dates(forecaster.h)
    return m._windows(full, "predict", step_size=1, test_size=forecaster.h), uid, dates


def _encoded(forecaster, futr_df):
    from ndiv.data.categorical import encode_frame
    return encode_frame(futr_df, forecaster._categories, "futr_df")


def decomposition(forecaster, model=None, futr_df=None) -> dict:
    """Per-stack forecasts of an NHITS, NBEATS or NBEATSx model in the data's units.

    forecaster: a fitted ndiv.Forecaster; model: which of its models (index, alias or the model;
    default the first); futr_df: as for predict (NBEATSx with futr_exog_list). Returns {'unique_id': [S], 'ds': [S * h], 'level': [S, h, n_out] (the
    last value, NHITS/NBEATS's start), 'stacks': [n_stacks, S, h, n_out] (the sum of each stack's
    block forecasts), 'forecast': [S, h, n_out] = level + stacks.sum(0)} (with a local scaler, in
    the scaled units). Raises ValueError for a model without stacks.
    """
    m = _pick(forecaster, model)
    if type(m).__name__ not in DECOMPOSABLE:
        raise ValueError(f"{m} has no decomposition; decomposition() explains {list(DECOMPOSABLE)}")
    stack_of = []
    n_blocks = _n_blocks(m)
    for s, n in enumerate(n_blocks):
        stack_of += [s] * n
    batches, uid, dates = _last_windows(forecaster, m, futr_df)
    levels, stacks = [], []
    captured = []
    handles = [b.register_forward_hook(lambda mod, args, out: captured.append(to_device(out[1].data, "cpu")))
               for b in m.blocks]
    try:
        with ndiv.no_grad():
            m.eval()
            for batch in batches:
                captured.clear()
                inputs = m._tensors(batch)
                m(inputs)
                loc = np.asarray(to_device(batch["y_loc"], "cpu"))[:, :, :1, None]       # [B, 1, 1, 1]
                scale = np.asarray(to_device(batch["y_scale"], "cpu"))[:, :, :1, None]
                y_last = to_device(inputs["insample_y"].data, "cpu")[:, -1:, :][..., None]  # [B, 1, 1, 1]
                per_stack = np.zeros((len(n_blocks),) + captured[0].shape)
                for s, f in zip(stack_of, captured):
                    per_stack[s] += f
                levels.append((loc + scale * y_last)[:, :, 0] * np.ones_like(captured[0]))  # [B, h, n_out]
                stacks.append(per_stack * scale[None, :, :, 0])
    finally:
        for h in handles:
            h.remove()
    level = np.concatenate(levels, 0)
    stacks = np.concatenate(stacks, 1)
    kinds = _option(m, "stack_types")
    names = [f"stack {s} ({kinds[s]})" if kinds and len(kinds) == len(n_blocks) else f"stack {s}"
             for s in range(len(n_blocks))]
    return {"unique_id": np.unique(uid), "ds": dates, "level": level, "stacks": stacks,
            "forecast": level + stacks.sum(0), "model": str(m), "stack_names": names}


def _option(m, name):
    """An option the model was built with, or its signature's default."""
    cfg = m.__dict__.get("_init_config", {})
    if name in cfg:
        return cfg[name]
    p = inspect.signature(type(m)).parameters.get(name)
    return None if p is None else p.default


def _n_blocks(m):
    """Blocks per stack, from the options the model was built with (NHITS/NBEATS default: 1 each)."""
    n = tuple(int(v) for v in _option(m, "n_blocks"))
    if sum(n) != len(m.blocks):
        raise ValueError(f"{m}: n_blocks={list(n)} does not add up to its {len(m.blocks)} blocks")
    return n


def attention(forecaster, model=None) -> dict:
    """PatchTST's attention weights on the last window of every series.

    Returns {'weights': list per encoder layer of [S * n_vars, n_heads, n_patches, n_patches]
    (rows: the patch that attends, columns: the patches it reads; rows sum to 1), 'model': name}.
    The weights are recomputed from the layer's queries and keys (softmax(q k * scale + prev)), so
    they are there with the fused attention path too.
    """
    m = _pick(forecaster, model)
    layers = [mod for mod in m.modules() if type(mod).__name__ == "_ScaledDotProductAttention"]
    if not layers:
        raise ValueError(f"{m} has no attention layers; attention() explains PatchTST")
    weights = [[] for _ in layers]

    def hook_for(i):
        def hook(mod, args, out):
            q, k = args[0], args[1]
            prev = args[3] if len(args) > 3 else None          # (q, k, v, prev)
            scores = (q @ k) * mod.scale
            if prev is not None:
                scores = scores + prev
            weights[i].append(to_device(ndiv.nn.functional.softmax(scores, -1).data, "cpu"))
        return hook

    batches, _, _ = _last_windows(forecaster, m)
    handles = [mod.register_forward_hook(hook_for(i)) for i, mod in enumerate(layers)]
    try:
        with ndiv.no_grad():
            m.eval()
            for batch in batches:
                m(m._tensors(batch))
    finally:
        for h in handles:
            h.remove()
    return {"weights": [np.concatenate(w, 0) for w in weights], "model": str(m)}


def tft_interpretation(forecaster, model=None, futr_df=None) -> dict:
    """What a TFT read in the last window of every series (the window predict() forecasts from).

    forecaster: a fitted ndiv.Forecaster; model: which of its models (index, alias or the model;
    default the first TFT); futr_df: as for predict (needed with futr_exog_list). Returns
    {'unique_id': [S], 'past_names', 'future_names', 'static_names' (lists), 'past': [S, L, n_past],
    'future': [S, h, n_future], 'static': [S, n_static] or None (variable-selection weights: each
    row sums to 1), 'attention': [S, n_head, L + h, L + h] (row t: how step t, counted from the
    window's first step, attends to the steps up to itself), 'input_size', 'h', 'model'}.
    """
    if model is None:
        tfts = [m for m in forecaster.models if type(m).__name__ == "TFT"]
        if not tfts:
            raise ValueError(f"none of the forecaster's models {[str(m) for m in forecaster.models]} is a TFT; "
                             "variable importances and attention weights explain TFT")
        m = tfts[0]
    else:
        m = _pick(forecaster, model)
    if not hasattr(m, "forward_interpretable"):
        raise ValueError(f"{m} has no variable selection; feature_importances() and attention_weights() explain TFT")
    batches, _, _ = _last_windows(forecaster, m, futr_df)
    parts = {"past": [], "future": [], "static": [], "attention": []}
    keys = {"past": "history_vsn_wgts", "future": "future_vsn_wgts", "static": "static_encoder_sparse_weights",
            "attention": "attn_wts"}
    with ndiv.no_grad():
        m.eval()
        for batch in batches:
            _, w = m.forward_interpretable(m._tensors(batch))
            for k, key in keys.items():
                if w[key] is not None:
                    parts[k].append(np.asarray(to_device(w[key].data, "cpu"), dtype=np.float64))
    out = {k: np.concatenate(v, 0) if v else None for k, v in parts.items()}
    return dict(out, unique_id=np.asarray(forecaster._dataset.uids), past_names=m.past_variable_names(),
                future_names=list(m.futr_exog_list) or ["repeated_target"], static_names=list(m.stat_exog_list),
                input_size=m.input_size, h=m.h, model=str(m))

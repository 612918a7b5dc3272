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


def _last_windows(forecaster, m):
    """The model's prediction batches (scaled windows with their y_loc, y_scale) for fit data."""
    forecaster._require_fit("an interpretation")
    if m.futr_exog_list:
        raise ValueError(f"{m}: interpretation of models with futr_exog_list is not supported (it needs futr_df)")
    ds = forecaster._dataset
    full = ds.append_future(forecaster.h, None, [])
    uid, dates = ds.future_dates(forecaster.h)
    return m._windows(full, "predict", step_size=1, test_size=forecaster.h), uid, dates


def decomposition(forecaster, model=None) -> dict:
    """Per-stack forecasts of an NHITS, NBEATS or NBEATSx model in the data's units.

    forecaster: a fitted ndiv.Forecaster; model: which of its models (index, alias or the model;
    default the first). Returns {'unique_id': [S], 'ds': [S * h], 'level': [S, h, n_out] (the
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
    batches, uid, dates = _last_windows(forecaster, m)
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

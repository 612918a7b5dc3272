"""The doubly residual stacking that NBEATS, NBEATSx and NHITS share (NF writes it in each model).

    blocks = build_blocks(stack_types, n_blocks, shared_weights, make_block)
    forecast = doubly_residual(blocks, windows_batch, lambda block, residuals: block(residuals))
"""
from __future__ import annotations

from ndiv import nn


def build_blocks(stack_types, n_blocks, shared_weights: bool, make_block) -> nn.ModuleList:
    """One block per (stack, block_id), in order: make_block(stack_type, stack_index) builds it.

    shared_weights: a stack's blocks after its first are that same module again (as NF), so its
    parameters appear once in parameters() and under every block's keys in the state_dict."""
    blocks = []
    for i, (stack, n) in enumerate(zip(stack_types, n_blocks)):
        for block_id in range(n):
            if shared_weights and block_id > 0:
                blocks.append(blocks[-1])
                continue
            blocks.append(make_block(stack, i))
    return nn.ModuleList(blocks)


def doubly_residual(blocks, windows_batch: dict, run):
    """insample_y, insample_mask [B, L, 1] -> forecast [B, h, n_out].

    Each block sees the residual of the (time-reversed, newest first) input left by the blocks
    before it, masked; the forecast is the last value plus the sum of the blocks' forecasts.
    run(block, residuals [B, L]) -> (backcast [B, L], block forecast [B, h, n_out])."""
    y = windows_batch["insample_y"].squeeze(-1)                       # [B, L]
    residuals = y.flip(-1)                                            # the newest value first
    mask = windows_batch["insample_mask"].squeeze(-1).flip(-1)
    forecast = y[:, -1:, None]                                        # [B, 1, 1]: level with naive-1
    for block in blocks:
        backcast, block_forecast = run(block, residuals)
        residuals = (residuals - backcast) * mask
        forecast = forecast + block_forecast                          # [B, h, n_out]
    return forecast

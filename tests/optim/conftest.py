"""Shared helpers for the optimizer tests: parameters as real ndiv Tensors.

Until `ndiv.tensor` exists (the autograd issue), `make_param` falls back to a minimal stand-in
with the same three attributes the optimizers use (.data, .grad, .requires_grad).
"""
import numpy as np
import pytest


class StandInParam:
    """The parameter interface ndiv.optim relies on, and nothing else."""

    def __init__(self, data):
        self.data = data
        self.grad = None
        self.requires_grad = True


def _make_param(arr):
    arr = np.array(arr)
    try:
        import ndiv
        tensor = ndiv.tensor
    except (ImportError, AttributeError):
        return StandInParam(arr)
    p = tensor(arr, requires_grad=True, dtype=arr.dtype)
    assert p.data.dtype == arr.dtype and p.data.shape == arr.shape
    return p


@pytest.fixture
def make_param():
    return _make_param


@pytest.fixture
def rng():
    return np.random.default_rng(0)

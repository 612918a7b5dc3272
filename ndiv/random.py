"""The global random generator: `ndiv.manual_seed(seed)` makes randn, init and dropout repeatable."""
from __future__ import annotations

import numpy as np

_RNG = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator that ndiv.randn, nn.init and dropout draw from."""
    global _RNG
    _RNG = np.random.default_rng(seed)
    return _RNG


def get_rng() -> np.random.Generator:
    return _RNG

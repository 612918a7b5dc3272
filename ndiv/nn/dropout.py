"""Dropout: zero elements with probability p while training (scale the rest by 1/(1-p))."""
from __future__ import annotations

from ndiv.nn import functional as F
from ndiv.nn.module import Module


class Dropout(Module):
    """Draws its masks from ndiv's global generator (`ndiv.manual_seed`); identity in eval()."""

    def __init__(self, p: float = 0.5, inplace: bool = False):
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}, inplace={self.inplace}"


class Dropout1d(Dropout):
    pass

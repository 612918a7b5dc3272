"""Function: one differentiable operation, forward and backward on raw arrays.

A subclass writes `forward(self, *arrays, **params)` returning an array (or a tuple of arrays)
and `backward(self, *grad_outputs)` returning one gradient per array input (a tuple when there
are several). None is allowed for any input: where `self.needs_input_grad[i]` is False, and also
as "no gradient flows this way" for an input that needs one (the tape treats it as a zero
contribution; a leaf reached by no real gradient keeps `.grad` None, as in torch). Returning
fewer gradients than inputs is an error naming the Function. A gradient may keep the broadcast
shape: the tape sums it back to the input's shape in one place
(`ndiv.autograd.tensor._sum_to_shape`).

    class Tanh(Function):
        def forward(self, x):
            y = array_module(x).tanh(x)
            self.save_for_backward(y)
            return y
        def backward(self, gy):
            (y,) = self.saved
            return gy * (1 - y * y)

`Tanh.apply(t)` takes Tensors (positional) and plain parameters (keywords), and returns a Tensor
(or a tuple of Tensors) whose graph node is the Function instance.
"""
from __future__ import annotations

from ndiv.autograd.grad_mode import _GradState

_make = None  # set by ndiv.autograd.tensor (it needs Tensor, which needs this module)


class Function:
    # parents: the input Tensors (None once the graph is freed); n_out: outputs; out_meta:
    # (shape, dtype) per output, to build zero gradients for outputs that received none.
    __slots__ = ("parents", "needs_input_grad", "saved", "n_out", "out_meta", "hooks", "retained", "__dict__")

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def forward(self, *args, **kwargs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define forward")

    def backward(self, *grad_outputs):  # pragma: no cover - abstract
        raise NotImplementedError(f"{type(self).__name__} must define backward")

    @classmethod
    def apply(cls, *tensors, **params):
        ctx = cls.__new__(cls)
        needs = tuple([t.requires_grad for t in tensors])
        record = _GradState.enabled and True in needs
        ctx.needs_input_grad = needs
        out = ctx.forward(*[t.data for t in tensors], **params)
        if type(out) is tuple:
            outs = tuple([_make(o, record, ctx if record else None, i) for i, o in enumerate(out)])
            if record:
                ctx.n_out = len(out)
                ctx.out_meta = [(o.shape, o.dtype) for o in out]
        else:
            outs = _make(out, record, ctx if record else None, 0)
            ctx.n_out = 1
        if record:
            ctx.parents = tensors
            ctx.hooks = None
            ctx.retained = None
        return outs

    def __repr__(self):
        return f"<{type(self).__name__} backward>"

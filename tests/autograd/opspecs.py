"""One row per public differentiable op: the ndiv call, the torch call, and how to sample inputs.

`kind` picks the input generator: 'unary' (any shape, incl. 0-d and zero-size), 'binary'
(mutually broadcastable shapes), 'reduce' (shape + axis + keepdims) or 'fixed' (the listed
shape tuples only). `low`/`high` bound the values (e.g. log needs x > 0); `gap` keeps values
away from kinks (relu/abs at 0).
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field

import numpy as np

import ndiv


@dataclass
class OpSpec:
    name: str
    fn: object                 # ndiv: (*tensors, **params) -> Tensor
    torch_fn: object = None    # (torch, *tensors, **params) -> torch.Tensor
    kind: str = "unary"
    shapes: list = field(default_factory=list)   # for kind='fixed': list of tuples of shapes
    low: float = -2.0
    high: float = 2.0
    gap: float = 0.0           # |x| >= gap (kinks at 0)
    complex_input: bool = False

    def __str__(self):
        return self.name

    def draw(self, rng, shape, dtype):
        x = rng.uniform(self.low, self.high, size=shape)
        if self.gap:
            x = np.where(np.abs(x) < self.gap, np.sign(x + 1e-12) * self.gap + x, x)
        return x.astype(dtype)


def _t(torch_fn):
    return torch_fn


UNARY = [
    OpSpec("neg", operator.neg, lambda t, x: -x),
    OpSpec("exp", lambda x: x.exp(), lambda t, x: t.exp(x)),
    OpSpec("log", lambda x: x.log(), lambda t, x: t.log(x), low=0.2, high=3.0),
    OpSpec("log1p", lambda x: x.log1p(), lambda t, x: t.log1p(x), low=-0.5, high=3.0),
    OpSpec("expm1", lambda x: x.expm1(), lambda t, x: t.expm1(x)),
    OpSpec("sqrt", lambda x: x.sqrt(), lambda t, x: t.sqrt(x), low=0.2, high=3.0),
    OpSpec("rsqrt", lambda x: x.rsqrt(), lambda t, x: t.rsqrt(x), low=0.2, high=3.0),
    OpSpec("abs", lambda x: x.abs(), lambda t, x: t.abs(x), gap=0.05),
    OpSpec("tanh", lambda x: x.tanh(), lambda t, x: t.tanh(x)),
    OpSpec("sigmoid", lambda x: x.sigmoid(), lambda t, x: t.sigmoid(x), low=-30, high=30),
    OpSpec("relu", lambda x: x.relu(), lambda t, x: t.relu(x), gap=0.05),
    OpSpec("elu", lambda x: ndiv.nn.functional.elu(x), lambda t, x: t.nn.functional.elu(x), low=-5, high=3, gap=0.05),
    OpSpec("elu_alpha", lambda x: ndiv.nn.functional.elu(x, alpha=0.5),
           lambda t, x: t.nn.functional.elu(x, alpha=0.5), low=-5, high=3, gap=0.05),
    OpSpec("sin", lambda x: x.sin(), lambda t, x: t.sin(x)),
    OpSpec("cos", lambda x: x.cos(), lambda t, x: t.cos(x)),
    OpSpec("erf", lambda x: x.erf(), lambda t, x: t.erf(x)),
    OpSpec("square", lambda x: x.square(), lambda t, x: t.square(x)),
    OpSpec("pow_scalar_3", lambda x: x ** 3, lambda t, x: x ** 3),
    OpSpec("pow_scalar_half", lambda x: x ** 0.5, lambda t, x: x ** 0.5, low=0.2, high=3.0),
    OpSpec("rpow_scalar", lambda x: 2.0 ** x, lambda t, x: 2.0 ** x),
    OpSpec("rsub_scalar", lambda x: 1.5 - x, lambda t, x: 1.5 - x),
    OpSpec("rdiv_scalar", lambda x: 1.5 / x, lambda t, x: 1.5 / x, gap=0.3),
    OpSpec("div_scalar", lambda x: x / 4.0, lambda t, x: x / 4.0),
    OpSpec("clip", lambda x: x.clip(-0.5, 0.7), lambda t, x: t.clamp(x, -0.5, 0.7), gap=0.0),
    OpSpec("clone", lambda x: x.clone(), lambda t, x: x.clone()),
    OpSpec("flatten", lambda x: x.flatten(), lambda t, x: x.flatten()),
    OpSpec("transpose_all", lambda x: x.transpose(), lambda t, x: x.permute(tuple(reversed(range(x.ndim))))),
    OpSpec("unsqueeze0", lambda x: x.unsqueeze(0), lambda t, x: x.unsqueeze(0)),
    OpSpec("unsqueeze_neg", lambda x: x.unsqueeze(-1), lambda t, x: x.unsqueeze(-1)),
    OpSpec("squeeze", lambda x: x.squeeze(), lambda t, x: x.squeeze()),
    OpSpec("logsigmoid", lambda x: ndiv.nn.functional.logsigmoid(x), lambda t, x: t.nn.functional.logsigmoid(x), low=-30, high=30),
    OpSpec("nan_to_num", lambda x: x.nan_to_num(), lambda t, x: t.nan_to_num(x)),
]

BINARY = [
    OpSpec("add", operator.add, lambda t, a, b: a + b, kind="binary"),
    OpSpec("sub", operator.sub, lambda t, a, b: a - b, kind="binary"),
    OpSpec("mul", operator.mul, lambda t, a, b: a * b, kind="binary"),
    OpSpec("div", operator.truediv, lambda t, a, b: a / b, kind="binary", gap=0.3),
    OpSpec("pow", operator.pow, lambda t, a, b: a ** b, kind="binary", low=0.3, high=2.0),
    OpSpec("maximum", ndiv.maximum, lambda t, a, b: t.maximum(a, b), kind="binary"),
    OpSpec("minimum", ndiv.minimum, lambda t, a, b: t.minimum(a, b), kind="binary"),
    OpSpec("where", lambda a, b: ndiv.where(a > b, a, b * 2), lambda t, a, b: t.where(a > b, a, b * 2), kind="binary"),
]

REDUCE = [
    OpSpec("sum", lambda x, axis, keepdims: x.sum(axis, keepdims), lambda t, x, axis, keepdims: x.sum(axis, keepdim=keepdims) if axis is not None else (x.sum() if not keepdims else x.sum(dim=tuple(range(x.ndim)), keepdim=True)), kind="reduce"),
    OpSpec("mean", lambda x, axis, keepdims: x.mean(axis, keepdims), lambda t, x, axis, keepdims: x.mean(axis, keepdim=keepdims) if axis is not None else (x.mean() if not keepdims else x.mean(dim=tuple(range(x.ndim)), keepdim=True)), kind="reduce"),
    OpSpec("var", lambda x, axis, keepdims: x.var(axis, keepdims), lambda t, x, axis, keepdims: x.var(dim=axis, keepdim=keepdims), kind="reduce"),
    OpSpec("std", lambda x, axis, keepdims: x.std(axis, keepdims), lambda t, x, axis, keepdims: x.std(dim=axis, keepdim=keepdims), kind="reduce"),
    OpSpec("var_pop", lambda x, axis, keepdims: x.var(axis, keepdims, correction=0), lambda t, x, axis, keepdims: x.var(dim=axis, keepdim=keepdims, correction=0), kind="reduce"),
    OpSpec("amax", lambda x, axis, keepdims: x.amax(axis, keepdims), lambda t, x, axis, keepdims: t.amax(x, dim=() if axis is None else axis, keepdim=keepdims), kind="reduce"),
    OpSpec("amin", lambda x, axis, keepdims: x.amin(axis, keepdims), lambda t, x, axis, keepdims: t.amin(x, dim=() if axis is None else axis, keepdim=keepdims), kind="reduce"),
    OpSpec("logsumexp", lambda x, axis, keepdims: x.logsumexp(axis, keepdims), lambda t, x, axis, keepdims: t.logsumexp(x, dim=tuple(range(x.ndim)) if axis is None else axis, keepdim=keepdims), kind="reduce"),
    OpSpec("prod", lambda x, axis, keepdims: x.prod(axis, keepdims), lambda t, x, axis, keepdims: (x.prod(axis, keepdim=keepdims) if isinstance(axis, int) else x.prod()), kind="reduce", low=0.5, high=1.5),
]

FIXED = [
    OpSpec("glu", lambda x: ndiv.nn.functional.glu(x), lambda t, x: t.nn.functional.glu(x), kind="fixed",
           low=-6, high=6, shapes=[((3, 6),), ((2, 3, 4),), ((0, 4),)]),
    OpSpec("glu_dim1", lambda x: ndiv.nn.functional.glu(x, dim=1), lambda t, x: t.nn.functional.glu(x, dim=1),
           kind="fixed", low=-6, high=6, shapes=[((2, 4, 3),)]),
    OpSpec("max_axis", lambda x: x.max(axis=1), lambda t, x: x.max(dim=1).values, kind="fixed", shapes=[((3, 5),), ((2, 4, 3),)]),
    OpSpec("min_axis_keep", lambda x: x.min(axis=-1, keepdims=True), lambda t, x: x.min(dim=-1, keepdim=True).values, kind="fixed", shapes=[((3, 5),)]),
    OpSpec("max_all", lambda x: x.max(), lambda t, x: x.max(), kind="fixed", shapes=[((3, 5),)]),
    OpSpec("matmul_2d", operator.matmul, lambda t, a, b: a @ b, kind="fixed", shapes=[((3, 4), (4, 5)), ((1, 4), (4, 1))]),
    OpSpec("matmul_batched", operator.matmul, lambda t, a, b: a @ b, kind="fixed", shapes=[((2, 3, 4), (4, 5)), ((2, 1, 3, 4), (3, 4, 2)), ((3, 4), (2, 4, 5))]),
    OpSpec("matmul_vec", operator.matmul, lambda t, a, b: a @ b, kind="fixed", shapes=[((4,), (4, 3)), ((2, 3, 4), (4,)), ((4,), (4,)), ((4,), (2, 4, 3))]),
    OpSpec("einsum_bmm", lambda a, b: ndiv.einsum("bij,bjk->bik", a, b), lambda t, a, b: t.einsum("bij,bjk->bik", a, b), kind="fixed", shapes=[((2, 3, 4), (2, 4, 5))]),
    OpSpec("einsum_reduce", lambda a, b: ndiv.einsum("ij,kj->k", a, b), lambda t, a, b: t.einsum("ij,kj->k", a, b), kind="fixed", shapes=[((3, 4), (5, 4))]),
    OpSpec("einsum_outer3", lambda a, b, c: ndiv.einsum("i,j,k->ijk", a, b, c), lambda t, a, b, c: t.einsum("i,j,k->ijk", a, b, c), kind="fixed", shapes=[((2,), (3,), (4,))]),
    OpSpec("reshape", lambda x: x.reshape(4, -1), lambda t, x: x.reshape(4, -1), kind="fixed", shapes=[((2, 6),), ((4, 3, 1),)]),
    OpSpec("permute", lambda x: x.permute(2, 0, 1), lambda t, x: x.permute(2, 0, 1), kind="fixed", shapes=[((2, 3, 4),)]),
    OpSpec("transpose_pair", lambda x: x.transpose(0, -1), lambda t, x: x.transpose(0, -1), kind="fixed", shapes=[((2, 3, 4),)]),
    OpSpec("swapaxes", lambda x: x.swapaxes(1, 2), lambda t, x: x.swapaxes(1, 2), kind="fixed", shapes=[((2, 3, 4),)]),
    OpSpec("expand", lambda x: x.expand(2, 3, 4), lambda t, x: x.expand(2, 3, 4), kind="fixed", shapes=[((3, 1),), ((1, 3, 4),)]),
    OpSpec("expand_neg", lambda x: x.expand(5, -1), lambda t, x: x.expand(5, -1), kind="fixed", shapes=[((1, 3),)]),
    OpSpec("repeat", lambda x: x.repeat(2, 3), lambda t, x: x.repeat(2, 3), kind="fixed", shapes=[((2, 3),)]),
    OpSpec("getitem_basic", lambda x: x[1:, None, ::2, -1], lambda t, x: x[1:, None, ::2, -1], kind="fixed", shapes=[((3, 5, 4),)]),
    OpSpec("getitem_ellipsis", lambda x: x[..., 1], lambda t, x: x[..., 1], kind="fixed", shapes=[((3, 5, 4),)]),
    OpSpec("getitem_int_array", lambda x: x[np.array([0, 2, 0]), 1:], lambda t, x: x[t.tensor([0, 2, 0]), 1:], kind="fixed", shapes=[((3, 4),)]),
    OpSpec("getitem_bool", lambda x: x[np.array([True, False, True])], lambda t, x: x[t.tensor([True, False, True])], kind="fixed", shapes=[((3, 4),)]),
    OpSpec("cat", lambda a, b: ndiv.cat([a, b], axis=1), lambda t, a, b: t.cat([a, b], dim=1), kind="fixed", shapes=[((2, 3), (2, 4)), ((2, 0), (2, 2))]),
    OpSpec("stack", lambda a, b: ndiv.stack([a, b], axis=-1), lambda t, a, b: t.stack([a, b], dim=-1), kind="fixed", shapes=[((2, 3), (2, 3))]),
    OpSpec("flip", lambda x: x.flip(1), lambda t, x: x.flip(1), kind="fixed", shapes=[((2, 3),)]),
    OpSpec("roll", lambda x: x.roll(2, 1), lambda t, x: x.roll(2, 1), kind="fixed", shapes=[((2, 5),)]),
    OpSpec("pad", lambda x: ndiv.pad(x, ((0, 0), (2, 1))), lambda t, x: t.nn.functional.pad(x, (2, 1)), kind="fixed", shapes=[((2, 3),)]),
    OpSpec("pad_crop", lambda x: ndiv.pad(x, ((0, 0), (-1, 2))), lambda t, x: t.nn.functional.pad(x, (-1, 2)), kind="fixed", shapes=[((2, 3),)]),
    OpSpec("gather", lambda x: ndiv.gather(x, 1, np.array([[0, 0, 2], [1, 3, 3]])), lambda t, x: t.gather(x, 1, t.tensor([[0, 0, 2], [1, 3, 3]])), kind="fixed", shapes=[((2, 4),)]),
    OpSpec("topk", lambda x: ndiv.topk(x, 2, dim=1)[0], lambda t, x: t.topk(x, 2, dim=1)[0], kind="fixed", shapes=[((3, 5),)]),
    OpSpec("cumsum", lambda x: x.cumsum(axis=1), lambda t, x: x.cumsum(dim=1), kind="fixed", shapes=[((3, 5),)]),
    OpSpec("masked_fill", lambda x: x.masked_fill(np.array([True, False, True]), 0.0), lambda t, x: x.masked_fill(t.tensor([True, False, True]), 0.0), kind="fixed", shapes=[((2, 3),)]),
    OpSpec("rfft", lambda x: ndiv.fft.rfft(x).abs(), lambda t, x: t.fft.rfft(x).abs(), kind="fixed", shapes=[((2, 8),), ((3, 7),)]),
    OpSpec("rfft_n_ortho", lambda x: ndiv.fft.rfft(x, n=10, norm="ortho").real, lambda t, x: t.fft.rfft(x, n=10, norm="ortho").real, kind="fixed", shapes=[((2, 8),)]),
    OpSpec("rfft_irfft", lambda x: ndiv.fft.irfft(ndiv.fft.rfft(x) * ndiv.fft.rfft(x), n=8), lambda t, x: t.fft.irfft(t.fft.rfft(x) * t.fft.rfft(x), n=8), kind="fixed", shapes=[((2, 8),)]),
    OpSpec("irfft_n", lambda x: ndiv.fft.irfft(ndiv.complex(x, x * 0.5), n=9, dim=0), lambda t, x: t.fft.irfft(t.complex(x, x * 0.5), n=9, dim=0), kind="fixed", shapes=[((4, 3),)]),
]

# index_put / scatter / sort / median / fft / triangles / diff (issue 12, part 6). Informer's
# ProbAttention writes context[b, h, top_idx] = values with broadcast index arrays.
_B, _H, _TOP = np.arange(2)[:, None, None], np.arange(3)[None, :, None], np.array([[[4, 1], [0, 2], [3, 4]], [[1, 0], [2, 3], [4, 3]]])
_SC_IDX = np.array([[0, 2], [1, 4], [3, 0]])
NEW = [
    OpSpec("index_put", lambda x, v: ndiv.index_put(x, (np.array([0, 2]),), v), lambda t, x, v: t.index_put(x, (t.tensor([0, 2]),), v), kind="fixed", shapes=[((3, 4), (2, 4)), ((3, 4), (4,)), ((3, 4), ())]),
    OpSpec("index_put_pairs", lambda x, v: x.index_put((np.array([0, 2, 1]), np.array([3, -1, 0])), v), lambda t, x, v: x.index_put((t.tensor([0, 2, 1]), t.tensor([3, -1, 0])), v), kind="fixed", shapes=[((3, 4), (3,))]),
    OpSpec("index_put_accumulate", lambda x, v: ndiv.index_put(x, (np.array([0, 2, 0]),), v, accumulate=True), lambda t, x, v: t.index_put(x, (t.tensor([0, 2, 0]),), v, accumulate=True), kind="fixed", shapes=[((3, 4), (3, 4)), ((3, 4), (1,))]),
    OpSpec("index_put_informer", lambda x, v: ndiv.index_put(x, (_B, _H, _TOP), v), lambda t, x, v: t.index_put(x, (t.tensor(_B), t.tensor(_H), t.tensor(_TOP)), v), kind="fixed", shapes=[((2, 3, 5, 4), (2, 3, 2, 4))]),
    OpSpec("index_put_mask", lambda x, v: ndiv.index_put(x, (np.array([True, False, True]),), v), lambda t, x, v: t.index_put(x, (t.tensor([True, False, True]),), v), kind="fixed", shapes=[((3, 2), (2, 2))]),
    OpSpec("scatter", lambda x, s: x.scatter(1, _SC_IDX, s), lambda t, x, s: x.scatter(1, t.tensor(_SC_IDX), s), kind="fixed", shapes=[((3, 5), (3, 2))]),  # torch 2.13 cannot backward a larger src
    OpSpec("scatter_add", lambda x, s: ndiv.scatter_add(x, 0, np.array([[0, 1], [0, 0], [2, 0]]), s), lambda t, x, s: t.scatter_add(x, 0, t.tensor([[0, 1], [0, 0], [2, 0]]), s), kind="fixed", shapes=[((3, 2), (3, 2))]),
    OpSpec("fft", lambda x: ndiv.fft.fft(x).abs(), lambda t, x: t.fft.fft(x).abs(), kind="fixed", shapes=[((2, 8),), ((3, 7),)]),
    OpSpec("fft_n_ortho", lambda x: (lambda y: y.real + 0.5 * y.imag)(ndiv.fft.fft(x, n=10, dim=0, norm="ortho")), lambda t, x: (lambda y: y.real + 0.5 * y.imag)(t.fft.fft(x, n=10, dim=0, norm="ortho")), kind="fixed", shapes=[((6, 3),)]),
    OpSpec("fft_complex", lambda a, b: (lambda y: y.real * y.imag)(ndiv.fft.fft(ndiv.complex(a, b), n=5, norm="forward")), lambda t, a, b: (lambda y: y.real * y.imag)(t.fft.fft(t.complex(a, b), n=5, norm="forward")), kind="fixed", shapes=[((2, 7), (2, 7)), ((4,), (4,))]),
    OpSpec("ifft_complex", lambda a, b: (lambda y: y.real - 2 * y.imag)(ndiv.fft.ifft(ndiv.complex(a, b) * ndiv.complex(b, a))), lambda t, a, b: (lambda y: y.real - 2 * y.imag)(t.fft.ifft(t.complex(a, b) * t.complex(b, a))), kind="fixed", shapes=[((2, 6), (2, 6))]),
    OpSpec("ifft_fft", lambda x: ndiv.fft.ifft(ndiv.fft.fft(x) * ndiv.fft.fft(x), n=9, norm="ortho").abs(), lambda t, x: t.fft.ifft(t.fft.fft(x) * t.fft.fft(x), n=9, norm="ortho").abs(), kind="fixed", shapes=[((2, 8),)]),
    OpSpec("tril", lambda x: x.tril(-1), lambda t, x: x.tril(-1), kind="fixed", shapes=[((4, 5),), ((2, 3, 3),)]),
    OpSpec("triu", lambda x: ndiv.triu(x, 1), lambda t, x: t.triu(x, 1), kind="fixed", shapes=[((4, 5),), ((2, 3, 3),)]),
    OpSpec("diag_1d", lambda x: ndiv.diag(x, 1), lambda t, x: t.diag(x, 1), kind="fixed", shapes=[((3,),)]),
    OpSpec("diag_2d", lambda x: x.diag(-1), lambda t, x: x.diag(-1), kind="fixed", shapes=[((4, 3),), ((2, 5),)]),
    OpSpec("diff", lambda x: x.diff(n=2, dim=0), lambda t, x: x.diff(n=2, dim=0), kind="fixed", shapes=[((5, 3),)]),
    OpSpec("diff_prepend_append", lambda x, p, a: ndiv.diff(x, dim=1, prepend=p, append=a), lambda t, x, p, a: t.diff(x, dim=1, prepend=p, append=a), kind="fixed", shapes=[((3, 4), (3, 2), (3, 1))]),
    OpSpec("median_all", lambda x: x.median(), lambda t, x: x.median(), kind="fixed", shapes=[((3, 5),), ((4,),)]),
    OpSpec("median_dim", lambda x: x.median(1).values, lambda t, x: x.median(1).values, kind="fixed", shapes=[((3, 5),), ((2, 4, 3),)]),
    OpSpec("median_keepdim", lambda x: ndiv.median(x, dim=0, keepdim=True)[0], lambda t, x: t.median(x, dim=0, keepdim=True)[0], kind="fixed", shapes=[((4, 3),)]),
    OpSpec("sort", lambda x: x.sort(dim=0).values, lambda t, x: x.sort(dim=0).values, kind="fixed", shapes=[((4, 3),)]),
    OpSpec("sort_descending", lambda x: ndiv.sort(x, descending=True)[0], lambda t, x: t.sort(x, descending=True)[0], kind="fixed", shapes=[((3, 5),), ((6,),)]),
]

OPS = UNARY + BINARY + REDUCE + FIXED + NEW

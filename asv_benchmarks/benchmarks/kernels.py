"""asv suites for the fused kernels (ndiv.autograd.ops.fused), forward + backward, float32,
2 threads, with PyTorch side by side (backend='torch'; skipped when torch is missing) and the
same computation composed of ndiv ops (backend='composed'), DESIGN's "fused beats composed".

Shapes are issue 4's. `asv_benchmarks/compare_kernels.py` runs these cases without asv and
prints the ratio table.
"""
import math
import os
import sys

import numpy as np

_HERE = os.path.dirname(os.path.abspath(__file__))
_ROOT = os.path.dirname(os.path.dirname(_HERE))
if _ROOT not in sys.path:                       # the composed oracles live with the tests
    sys.path.insert(0, _ROOT)

THREADS = 2


def _threads():
    import ndiv  # noqa: F401  (before Numba starts its threads: ndiv sets their wait policy)
    import numba
    numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


def _torch():
    try:
        import torch
    except ImportError:
        raise NotImplementedError("torch is not installed") from None
    torch.set_num_threads(THREADS)
    return torch


class _Case:
    """setup builds inputs for `backend`; time_fwd_bwd runs forward + backward once."""
    backends = ["ndiv", "composed", "torch"]

    def setup(self, backend, *shape):
        _threads()
        rng = np.random.default_rng(0)
        self.arrays = self.make(rng, *shape)
        if backend == "torch":
            torch = _torch()
            self.inputs = [torch.tensor(a, requires_grad=True) for a in self.arrays]
            self.run = lambda: self.torch_fn(torch, *self.inputs, *shape)
        else:
            import ndiv
            self.inputs = [ndiv.tensor(a, requires_grad=True) for a in self.arrays]
            fn = self.fused_fn if backend == "ndiv" else self.composed_fn
            self.run = lambda: fn(*self.inputs, *shape)
        self.time_fwd_bwd(backend, *shape)      # compile and warm up outside the timing

    def time_fwd_bwd(self, backend, *shape):
        out = self.run()
        outs = out if isinstance(out, (tuple, list)) else (out,)
        outs[0].sum().backward()
        for x in self.inputs:
            x.grad = None


def _rnn_weights(rng, n_gates, I, H, layers):
    k = 1 / math.sqrt(H)
    ws = []
    for layer in range(layers):
        inp = I if layer == 0 else H
        ws += [rng.uniform(-k, k, (n_gates * H, inp)), rng.uniform(-k, k, (n_gates * H, H)),
               rng.uniform(-k, k, n_gates * H), rng.uniform(-k, k, n_gates * H)]
    return [w.astype(np.float32) for w in ws]


class LSTM(_Case):
    """batch 32, hidden 128; params: backend, input size, sequence length, layers."""
    params = (_Case.backends, [1, 8], [24, 96], [1, 2])
    param_names = ["backend", "input_size", "seq_len", "layers"]
    n_gates = 4

    def make(self, rng, I, L, layers):
        x = rng.standard_normal((L, 32, I)).astype(np.float32)
        return [x] + _rnn_weights(rng, self.n_gates, I, 128, layers)

    def fused_fn(self, x, *w_and_shape):
        from ndiv.autograd.ops.fused import lstm_seq
        return self._stack(lstm_seq, x, *w_and_shape)

    def composed_fn(self, x, *w_and_shape):
        from tests.kernels.composed import lstm_seq
        return self._stack(lstm_seq, x, *w_and_shape)

    def _stack(self, layer_fn, x, *w_and_shape):
        import ndiv
        ws = w_and_shape[:-3]
        B = x.shape[1]
        for i in range(0, len(ws), 4):
            states = [ndiv.zeros(B, 128)] * (2 if self.n_gates == 4 else 1)
            x = layer_fn(x, *states, *ws[i:i + 4])[0]
        return x

    def torch_fn(self, torch, x, *w_and_shape):
        ws = list(w_and_shape[:-3])
        layers = w_and_shape[-1]
        h0 = torch.zeros(layers, x.shape[1], 128)
        if self.n_gates == 4:
            return torch._VF.lstm(x, (h0, h0), ws, True, layers, 0.0, True, False, False)[0]
        if self.n_gates == 1:
            return torch._VF.rnn_tanh(x, h0, ws, True, layers, 0.0, True, False, False)[0]
        return torch._VF.gru(x, h0, ws, True, layers, 0.0, True, False, False)[0]


class GRU(LSTM):
    n_gates = 3

    def fused_fn(self, x, *w_and_shape):
        from ndiv.autograd.ops.fused import gru_seq
        return self._stack(gru_seq, x, *w_and_shape)

    def composed_fn(self, x, *w_and_shape):
        from tests.kernels.composed import gru_seq
        return self._stack(gru_seq, x, *w_and_shape)


class RNN(LSTM):
    """Elman RNN, tanh (NF's RNN); the same grid as LSTM."""
    n_gates = 1

    def fused_fn(self, x, *w_and_shape):
        from ndiv.autograd.ops.fused import rnn_seq
        return self._stack(rnn_seq, x, *w_and_shape)

    def composed_fn(self, x, *w_and_shape):
        from tests.kernels.composed import rnn_seq
        return self._stack(rnn_seq, x, *w_and_shape)


class Conv1d(_Case):
    """batch 32, 64 -> 64 channels, kernel 2, causal padding; params: backend, length, dilation."""
    params = (_Case.backends, [96, 512], [1, 2, 4, 8, 16])
    param_names = ["backend", "length", "dilation"]

    def make(self, rng, L, d):
        return [rng.standard_normal((32, 64, L)).astype(np.float32),
                (rng.standard_normal((64, 64, 2)) / 8).astype(np.float32), np.zeros(64, np.float32)]

    def fused_fn(self, x, w, b, L, d):
        from ndiv.autograd.ops.fused import conv1d_dilated
        return conv1d_dilated(x, w, b, padding=(d, 0), dilation=d)

    def composed_fn(self, x, w, b, L, d):
        from tests.kernels.composed import conv1d_dilated
        return conv1d_dilated(x, w, b, padding=(d, 0), dilation=d)

    def torch_fn(self, torch, x, w, b, L, d):
        return torch.nn.functional.conv1d(torch.nn.functional.pad(x, (d, 0)), w, b, dilation=d)


class Conv2d(_Case):
    """TimesNet's Inception block on one fold: batch 64, 64 -> 64 channels, the merged 11x11
    kernel with 'same' padding (NF runs 6 convs of 1..11); params: backend, grid rows, period."""
    params = (_Case.backends, [2, 6], [6, 18])
    param_names = ["backend", "rows", "period"]

    def make(self, rng, rows, period):
        return [rng.standard_normal((64, 64, rows, period)).astype(np.float32),
                (rng.standard_normal((64, 64, 11, 11)) / 88).astype(np.float32), np.zeros(64, np.float32)]

    def fused_fn(self, x, w, b, rows, period):
        from ndiv.autograd.ops.fused import conv2d
        return conv2d(x, w, b, padding=(5, 5, 5, 5))

    def composed_fn(self, x, w, b, rows, period):
        from tests.kernels.composed import conv2d
        return conv2d(x, w, b, padding=(5, 5, 5, 5))

    def torch_fn(self, torch, x, w, b, rows, period):
        return torch.nn.functional.conv2d(x, w, b, padding=5)


class Attention(_Case):
    """batch 32, 4 heads; params: backend, length, head dim, causal."""
    params = (_Case.backends, [42, 512], [16, 64], [False, True])
    param_names = ["backend", "length", "head_dim", "causal"]

    def make(self, rng, L, D, causal):
        return [rng.standard_normal((32, 4, L, D)).astype(np.float32) for _ in range(3)]

    def fused_fn(self, q, k, v, L, D, causal):
        from ndiv.autograd.ops.fused import flash_attention
        return flash_attention(q, k, v, is_causal=causal)

    def composed_fn(self, q, k, v, L, D, causal):
        from tests.kernels.composed import attention
        return attention(q, k, v, is_causal=causal)

    def torch_fn(self, torch, q, k, v, L, D, causal):
        return torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=causal)


class Rows(_Case):
    """[32, 96, 128] float32; params: backend, op."""
    params = (_Case.backends, ["softmax", "log_softmax", "layer_norm", "gelu"])
    param_names = ["backend", "op"]

    def make(self, rng, op):
        x = rng.standard_normal((32, 96, 128)).astype(np.float32)
        return [x, np.ones(128, np.float32), np.zeros(128, np.float32)] if op == "layer_norm" else [x]

    def fused_fn(self, *a):
        from ndiv.autograd.ops import fused
        return self._call(fused, *a)

    def composed_fn(self, *a):
        from tests.kernels import composed
        return self._call(composed, *a)

    def _call(self, mod, *a):
        op = a[-1]
        return mod.layer_norm(a[0], (128,), a[1], a[2]) if op == "layer_norm" else getattr(mod, op)(a[0])

    def torch_fn(self, torch, *a):
        op, F = a[-1], torch.nn.functional
        if op == "layer_norm":
            return F.layer_norm(a[0], (128,), a[1], a[2])
        return {"softmax": F.softmax, "log_softmax": F.log_softmax}.get(op, lambda x, dim: F.gelu(x))(a[0], dim=-1)


class AddLayerNorm(_Case):
    """layer_norm(x + r) over the last axis, weight and bias, forward + backward; params: backend,
    rows x D: PatchTST-like (32 windows x 42 patches, 128), TiDE-like (1024, 512), (4096, 64).
    'composed' here is x + r, then the fused layer_norm op (what the models ran before the fusion)."""
    params = (_Case.backends, ["1344x128", "1024x512", "4096x64"])
    param_names = ["backend", "shape"]

    def make(self, rng, shape):
        N, D = (int(v) for v in shape.split("x"))
        return [rng.standard_normal((N, D)).astype(np.float32), rng.standard_normal((N, D)).astype(np.float32),
                np.ones(D, np.float32), np.zeros(D, np.float32)]

    def fused_fn(self, x, r, w, b, shape):
        from ndiv.autograd.ops.fused import add_layer_norm
        return add_layer_norm(x, r, w.shape, w, b)

    def composed_fn(self, x, r, w, b, shape):
        from ndiv.autograd.ops.fused import layer_norm
        return layer_norm(x + r, w.shape, w, b)

    def torch_fn(self, torch, x, r, w, b, shape):
        return torch.nn.functional.layer_norm(x + r, w.shape, w, b)


class AttentionMemory:
    """Extra memory of forward + backward attention at L = 4096 (B = H = 1, d = 64, float32);
    the naive score matrix alone is 64 MiB. Measured with tracemalloc (numpy reports its
    allocations to it); asv's track_ records MiB."""
    params = (["ndiv"],)
    param_names = ["backend"]
    unit = "MiB"

    def setup(self, backend):
        _threads()
        import ndiv
        from ndiv.autograd.ops.fused import flash_attention
        rng = np.random.default_rng(0)
        self.qkv = [ndiv.tensor(rng.standard_normal((1, 1, 4096, 64)).astype(np.float32), requires_grad=True)
                    for _ in range(3)]
        self.fn = flash_attention
        self.fn(*self.qkv).sum().backward()

    def track_peak_extra_mib(self, backend):
        import tracemalloc
        tracemalloc.start()
        self.fn(*self.qkv).sum().backward()
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        return peak / 2**20


class BatchNorm(_Case):
    """training-mode batch norm, C 128; params: backend, (B, S, layout): PatchTST's [B, d_model,
    patches] seen through a transpose, DeepNPTS's [B, C], and a long contiguous run."""
    params = (_Case.backends, ["1024x3-transposed", "1024x1", "256x96"])
    param_names = ["backend", "shape"]

    def make(self, rng, shape):
        B, S = (int(v) for v in shape.split("-")[0].split("x"))
        x = rng.standard_normal((B, S, 128) if "transposed" in shape else (B, 128, S)).astype(np.float32)
        return [x, np.ones(128, np.float32), np.zeros(128, np.float32)]

    @staticmethod
    def _x(x, shape):
        return x.transpose(1, 2) if "transposed" in shape else x

    def fused_fn(self, x, w, b, shape):
        from ndiv.nn import functional as F
        return F.batch_norm(self._x(x, shape), None, None, w, b, training=True)

    def composed_fn(self, x, w, b, shape):
        from tests.kernels.composed import batch_norm_train
        return batch_norm_train(self._x(x, shape), w, b)

    def torch_fn(self, torch, x, w, b, shape):
        return torch.nn.functional.batch_norm(self._x(x, shape), None, None, w, b, training=True)


class LinearReLU(_Case):
    """relu(x @ W^T + b) forward + backward; params: backend, (rows, in, out)."""
    params = (_Case.backends, ["1024x512x512", "128x512x512", "1024x96x32"])
    param_names = ["backend", "shape"]

    def make(self, rng, shape):
        N, I, O = (int(v) for v in shape.split("x"))
        return [rng.standard_normal((N, I)).astype(np.float32),
                (rng.standard_normal((O, I)) / math.sqrt(I)).astype(np.float32), np.zeros(O, np.float32)]

    def fused_fn(self, x, w, b, shape):
        from ndiv.autograd.ops.fused import linear_act
        return linear_act(x, w, b)

    def composed_fn(self, x, w, b, shape):
        from tests.kernels.composed import linear_act
        return linear_act(x, w, b)

    def torch_fn(self, torch, x, w, b, shape):
        return torch.relu(torch.nn.functional.linear(x, w, b))


class LinearBF16:
    """nn.Linear forward + backward in float32 and with bfloat16 GEMM factors (ndiv.autocast /
    torch.autocast on the CPU, NF's precision='bf16-mixed'); params: backend, (rows, in, out)."""
    params = (["ndiv", "ndiv_bf16", "torch", "torch_bf16"], ["1024x1024x1024", "12288x128x512", "1024x96x1024"])
    param_names = ["backend", "shape"]

    def setup(self, backend, shape):
        _threads()
        N, I, O = (int(v) for v in shape.split("x"))
        rng = np.random.default_rng(0)
        x = rng.standard_normal((N, I)).astype(np.float32)
        w = (rng.standard_normal((O, I)) / math.sqrt(I)).astype(np.float32)
        b = np.zeros(O, np.float32)
        if backend.startswith("torch"):
            torch = _torch()
            self.inputs = [torch.tensor(a, requires_grad=True) for a in (x, w, b)]
            ctx = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if backend == "torch_bf16" else None
            lin = lambda x, w, b: torch.nn.functional.linear(x, w, b)  # noqa: E731
        else:
            import ndiv
            from ndiv.kernels.cpu.bf16 import mkl_status
            if backend == "ndiv_bf16" and not mkl_status()[0]:
                raise NotImplementedError("oneMKL is not installed (pip install 'ndiv[bf16]')")
            self.inputs = [ndiv.tensor(a, requires_grad=True) for a in (x, w, b)]
            ctx = (lambda: ndiv.autocast("cpu", dtype="bfloat16")) if backend == "ndiv_bf16" else None
            from ndiv.nn.functional import linear as lin
        self.run = lambda: lin(*self.inputs)
        self.ctx = ctx
        self.time_fwd_bwd(backend, shape)

    def time_fwd_bwd(self, backend, shape):
        if self.ctx is None:
            y = self.run()
            y.float().sum().backward() if hasattr(y, "float") else y.sum().backward()
        else:
            with self.ctx():
                y = self.run()
                (y.float().sum() if hasattr(y, "float") else y.sum()).backward()
        for t in self.inputs:
            t.grad = None

"""Recurrent layers RNN, LSTM, GRU and their cells, composed per time step from Tensor ops.

Parameter names, shapes and gate orders are torch's (weight_ih_l{k}[_reverse] [G*H, in],
weight_hh_l{k} [G*H, H], bias_ih_l{k}, bias_hh_l{k}; LSTM gates i, f, g, o; GRU gates r, z, n),
so torch state_dicts load unchanged. This composed version is the oracle for the fused
whole-sequence kernels. The input projection of all time steps is one matmul per layer and
direction; each step then adds one [B, H] @ [H, G*H] matmul and the gate arithmetic.
"""
from __future__ import annotations

import math

import numpy as np

import ndiv
from ndiv.autograd.ops.nn_ops import Split, Unbind
from ndiv.autograd.tensor import DEFAULT_DTYPE, Tensor
from ndiv.nn import functional as F
from ndiv.nn import init
from ndiv.nn.module import Module
from ndiv.nn.parameter import Parameter

_GATES = {"RNN_TANH": 1, "RNN_RELU": 1, "LSTM": 4, "GRU": 3}


def _rnn_step(xw_t, h, w_hh, b_hh, relu: bool):
    """xw_t = x_t W_ih^T + b_ih [B, H]; h [B, H] -> h' = act(xw_t + h W_hh^T + b_hh)."""
    pre = xw_t + F.linear(h, w_hh, b_hh)
    return pre.relu() if relu else pre.tanh()


def _lstm_step(xw_t, h, c, w_hh, b_hh, w_hr=None):
    """xw_t [B, 4H] (gates i, f, g, o from the input), h [B, H] (with w_hr [P, H]: [B, P]),
    c [B, H] -> (h', c'); w_hr projects h' = (o tanh(c')) W_hr^T, torch's proj_size."""
    H = c.shape[-1]
    i, f, g, o = Split.apply(xw_t + F.linear(h, w_hh, b_hh), sizes=(H, H, H, H), axis=-1)
    c = f.sigmoid() * c + i.sigmoid() * g.tanh()
    h = o.sigmoid() * c.tanh()
    return (h if w_hr is None else F.linear(h, w_hr)), c


def _gru_step(xw_t, h, w_hh, b_hh):
    """xw_t [B, 3H] (gates r, z, n from the input, b_ih included), h [B, H] -> h'."""
    H = h.shape[-1]
    xr, xz, xn = Split.apply(xw_t, sizes=(H, H, H), axis=-1)
    hr, hz, hn = Split.apply(F.linear(h, w_hh, b_hh), sizes=(H, H, H), axis=-1)
    r = (xr + hr).sigmoid()
    z = (xz + hz).sigmoid()
    n = (xn + r * hn).tanh()
    return n + z * (h - n)  # (1 - z) n + z h


def recurrence_composed(mode: str, x, h, c, w_ih, w_hh, b_ih, b_hh, reverse: bool = False, w_hr=None):
    """One layer, one direction, composed from Tensor ops (the oracle for the fused kernels).

    mode: 'LSTM', 'GRU', 'RNN_TANH' or 'RNN_RELU'; x [L, B, in]; h, c [B, H] (c: LSTM only,
    else None) -> (y [L, B, H], h_L, c_L). reverse runs t = L-1 .. 0 (the backward direction).
    w_hr [P, H] (LSTM with proj_size P): h and y are [.., P].
    """
    L = x.shape[0]
    # the input part of every step in one matmul, then split into L views [B, G*H]
    xw = Unbind.apply(F.linear(x, w_ih, b_ih))
    ys = [None] * L
    for t in (range(L - 1, -1, -1) if reverse else range(L)):
        if mode == "LSTM":
            h, c = _lstm_step(xw[t], h, c, w_hh, b_hh, w_hr)
        elif mode == "GRU":
            h = _gru_step(xw[t], h, w_hh, b_hh)
        else:
            h = _rnn_step(xw[t], h, w_hh, b_hh, mode == "RNN_RELU")
        ys[t] = h
    return ndiv.stack(ys, 0), h, c


def recurrence(mode: str, x, h, c, w_ih, w_hh, b_ih, b_hh, reverse: bool = False, w_hr=None):
    """recurrence_composed's signature and results; every mode on float arrays of one dtype and
    one device runs its fused whole-sequence kernel (ndiv.autograd.ops.fused, whose kernels_for(x)
    picks Numba or CUDA); anything else (and an LSTM with proj_size) the composed version.
    h, c carry a state in and out: a recursive forecast calls this one step at a time."""
    tensors = [t for t in (x, h, c, w_ih, w_hh, b_ih, b_hh) if t is not None]
    if mode not in _GATES or w_hr is not None or x.dtype not in (np.float32, np.float64) \
            or not all(t.dtype == x.dtype and t.device == x.device for t in tensors):
        return recurrence_composed(mode, x, h, c, w_ih, w_hh, b_ih, b_hh, reverse, w_hr)
    from ndiv.autograd.ops import fused
    if reverse:
        x = x[::-1]                      # a view, on either device
    if mode == "LSTM":
        y, h, c = fused.lstm_seq(x, h, c, w_ih, w_hh, b_ih, b_hh)
    elif mode == "GRU":
        y, h = fused.gru_seq(x, h, w_ih, w_hh, b_ih, b_hh)
    else:
        y, h = fused.rnn_seq(x, h, w_ih, w_hh, b_ih, b_hh, "relu" if mode == "RNN_RELU" else "tanh")
    return (y[::-1] if reverse else y), h, c


class RNNBase(Module):
    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__()
        name = type(self).__name__
        if not isinstance(hidden_size, int) or hidden_size <= 0:
            raise ValueError(f"{name}: hidden_size must be a positive int, got {hidden_size!r}")
        if not isinstance(num_layers, int) or num_layers <= 0:
            raise ValueError(f"{name}: num_layers must be a positive int, got {num_layers!r}")
        if not 0 <= dropout <= 1 or isinstance(dropout, bool):
            raise ValueError(f"{name}: dropout must be a number in [0, 1], got {dropout!r}")
        if proj_size and mode != "LSTM":
            raise ValueError(f"{name}: proj_size is an LSTM option only, got proj_size={proj_size!r}")
        if isinstance(proj_size, bool) or not isinstance(proj_size, int) or not 0 <= proj_size < hidden_size:
            raise ValueError(f"{name}: proj_size must be an int in [0, hidden_size={hidden_size}), got {proj_size!r}")
        self.mode, self.input_size, self.hidden_size, self.num_layers = mode, input_size, hidden_size, num_layers
        self.bias, self.batch_first, self.dropout, self.bidirectional = bias, batch_first, float(dropout), bidirectional
        self.proj_size = proj_size
        D = 2 if bidirectional else 1
        G = _GATES[mode] * hidden_size
        H_out = proj_size or hidden_size   # the width of h (and of each layer's output)
        dt = np.dtype(dtype or DEFAULT_DTYPE)
        self._weight_names = []  # per (layer, direction): [w_ih, w_hh, b_ih, b_hh] (+ w_hr) names
        for layer in range(num_layers):
            layer_in = input_size if layer == 0 else H_out * D
            for direction in range(D):
                sfx = f"_l{layer}" + ("_reverse" if direction else "")
                names = [f"weight_ih{sfx}", f"weight_hh{sfx}"]
                setattr(self, names[0], Parameter(np.empty((G, layer_in), dtype=dt)))
                setattr(self, names[1], Parameter(np.empty((G, H_out), dtype=dt)))
                if bias:
                    names += [f"bias_ih{sfx}", f"bias_hh{sfx}"]
                    setattr(self, names[2], Parameter(np.empty(G, dtype=dt)))
                    setattr(self, names[3], Parameter(np.empty(G, dtype=dt)))
                if proj_size:
                    names.append(f"weight_hr{sfx}")
                    setattr(self, names[-1], Parameter(np.empty((proj_size, hidden_size), dtype=dt)))
                self._weight_names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        stdv = 1.0 / math.sqrt(self.hidden_size) if self.hidden_size > 0 else 0
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _weights(self, idx: int):
        """(w_ih, w_hh, b_ih, b_hh, w_hr) of layer-direction idx (None where absent)."""
        d = self.__dict__
        names = self._weight_names[idx]
        w_hr = d[names[-1]] if self.proj_size else None
        if self.bias:
            return d[names[0]], d[names[1]], d[names[2]], d[names[3]], w_hr
        return d[names[0]], d[names[1]], None, None, w_hr

    def _check_hidden(self, h, B: int, batched: bool, what: str):
        D = 2 if self.bidirectional else 1
        H = self.proj_size if self.proj_size and what != "c0" else self.hidden_size
        expected = (self.num_layers * D, B, H) if batched else (self.num_layers * D, H)
        if tuple(h.shape) != expected:
            raise ValueError(f"{type(self).__name__}: expected {what} of shape {expected}, got {tuple(h.shape)}")
        return h if batched else h.unsqueeze(1)

    def forward(self, input: Tensor, hx=None):
        """input [L, B, in] ([B, L, in] if batch_first, or unbatched [L, in]); hx [layers*D, B, H]
        (LSTM: (h0, c0)) or None (zeros) -> (output [L, B, D*H], h_n) (LSTM: (output, (h_n, c_n)))."""
        name = type(self).__name__
        if input.ndim not in (2, 3):
            raise ValueError(f"{name}: expected input of 2 or 3 dims ([L, B, in] or unbatched [L, in]), got shape {tuple(input.shape)}")
        if input.shape[-1] != self.input_size:
            raise ValueError(f"{name}: input.size(-1) must be equal to input_size. Expected {self.input_size}, got {input.shape[-1]}")
        batched = input.ndim == 3
        x = input if not batched or not self.batch_first else input.swapaxes(0, 1)
        if not batched:
            x = x.unsqueeze(1)
        L, B = x.shape[0], x.shape[1]
        if L == 0:
            raise ValueError(f"{name}: the input sequence is empty (shape {tuple(input.shape)})")
        lstm = self.mode == "LSTM"
        h0 = c0 = None
        if hx is not None:
            if lstm:
                if not isinstance(hx, (tuple, list)) or len(hx) != 2:
                    raise TypeError(f"{name}: hx must be a tuple (h0, c0), got {type(hx).__name__}")
                h0 = self._check_hidden(hx[0], B, batched, "h0")
                c0 = self._check_hidden(hx[1], B, batched, "c0")
            else:
                h0 = self._check_hidden(hx, B, batched, "hx")
        D = 2 if self.bidirectional else 1
        zeros = ndiv.zeros(B, self.hidden_size, dtype=x.dtype, device=x.device) if h0 is None else None
        zeros_h = ndiv.zeros(B, self.proj_size, dtype=x.dtype, device=x.device) if self.proj_size else zeros
        h_n, c_n = [], []
        layer_input = x
        for layer in range(self.num_layers):
            outs = []
            for direction in range(D):
                idx = layer * D + direction
                w_ih, w_hh, b_ih, b_hh, w_hr = self._weights(idx)
                h = zeros_h if h0 is None else h0[idx]
                c = zeros if c0 is None and lstm else (c0[idx] if lstm else None)
                y, h, c = recurrence(self.mode, layer_input, h, c, w_ih, w_hh, b_ih, b_hh, reverse=direction == 1,
                                     w_hr=w_hr)
                outs.append(y)
                h_n.append(h)
                if lstm:
                    c_n.append(c)
            layer_input = outs[0] if D == 1 else ndiv.cat(outs, axis=2)
            if self.dropout and self.training and layer < self.num_layers - 1:
                layer_input = F.dropout(layer_input, self.dropout, True)
        output = layer_input
        h_n = ndiv.stack(h_n, 0)
        c_n = ndiv.stack(c_n, 0) if lstm else None
        if not batched:
            output, h_n = output.squeeze(1), h_n.squeeze(1)
            c_n = c_n.squeeze(1) if lstm else None
        elif self.batch_first:
            output = output.swapaxes(0, 1)
        return (output, (h_n, c_n)) if lstm else (output, h_n)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if not self.bias:
            s += ", bias=False"
        if self.batch_first:
            s += ", batch_first=True"
        if self.dropout:
            s += f", dropout={self.dropout}"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return s


class RNN(RNNBase):
    """Elman RNN: h_t = act(x_t W_ih^T + b_ih + h_{t-1} W_hh^T + b_hh), act 'tanh' or 'relu'.

    >>> out, h_n = RNN(3, 8, num_layers=2, batch_first=True)(ndiv.randn(4, 10, 3))
    >>> out.shape, h_n.shape
    ((4, 10, 8), (2, 4, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, nonlinearity: str = "tanh",
                 bias: bool = True, batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False,
                 device=None, dtype=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNN: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        super().__init__("RNN_TANH" if nonlinearity == "tanh" else "RNN_RELU", input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, dtype=dtype)
        self.nonlinearity = nonlinearity


class LSTM(RNNBase):
    """LSTM, gates i, f, g, o. forward(input, (h0, c0)=None) -> (output, (h_n, c_n)).
    proj_size P > 0 (torch's): h_t = (o_t tanh(c_t)) W_hr^T, so output and h_n are [.., P]
    (weight_hr_l{k} [P, H], weight_hh_l{k} [4H, P]); c_n stays [.., H].

    >>> out, (h, c) = LSTM(3, 8, bidirectional=True)(ndiv.randn(10, 4, 3))
    >>> out.shape, h.shape
    ((10, 4, 16), (2, 4, 8))
    """

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, proj_size: int = 0,
                 device=None, dtype=None):
        super().__init__("LSTM", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         proj_size, dtype=dtype)


class GRU(RNNBase):
    """GRU, gates r, z, n: n = tanh(W_in x + b_in + r (W_hn h + b_hn)), h' = (1 - z) n + z h."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1, bias: bool = True,
                 batch_first: bool = False, dropout: float = 0.0, bidirectional: bool = False, device=None, dtype=None):
        super().__init__("GRU", input_size, hidden_size, num_layers, bias, batch_first, dropout, bidirectional,
                         dtype=dtype)


class _CellBase(Module):
    def __init__(self, input_size: int, hidden_size: int, bias: bool, gates: int, dtype=None):
        super().__init__()
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bias
        dt = np.dtype(dtype or DEFAULT_DTYPE)
        self.weight_ih = Parameter(np.empty((gates * hidden_size, input_size), dtype=dt))
        self.weight_hh = Parameter(np.empty((gates * hidden_size, hidden_size), dtype=dt))
        if bias:
            self.bias_ih = Parameter(np.empty(gates * hidden_size, dtype=dt))
            self.bias_hh = Parameter(np.empty(gates * hidden_size, dtype=dt))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        stdv = 1.0 / math.sqrt(hidden_size)
        for p in self.parameters():
            init.uniform_(p, -stdv, stdv)

    def _zeros(self, x):
        shape = (x.shape[0], self.hidden_size) if x.ndim == 2 else (self.hidden_size,)
        return ndiv.zeros(*shape, dtype=x.dtype, device=x.device)


class RNNCell(_CellBase):
    """One step: x [B, in], h [B, H] or None -> h' [B, H]."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, nonlinearity: str = "tanh",
                 device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 1, dtype)
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"RNNCell: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity

    def forward(self, x, hx=None):
        h = self._zeros(x) if hx is None else hx
        return _rnn_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh,
                         self.nonlinearity == "relu")


class LSTMCell(_CellBase):
    """One step: x [B, in], (h, c) [B, H] each or None -> (h', c')."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 4, dtype)

    def forward(self, x, hx=None):
        h, c = (self._zeros(x), self._zeros(x)) if hx is None else hx
        return _lstm_step(F.linear(x, self.weight_ih, self.bias_ih), h, c, self.weight_hh, self.bias_hh)


class GRUCell(_CellBase):
    """One step: x [B, in], h [B, H] or None -> h' [B, H]."""

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True, device=None, dtype=None):
        super().__init__(input_size, hidden_size, bias, 3, dtype)

    def forward(self, x, hx=None):
        h = self._zeros(x) if hx is None else hx
        return _gru_step(F.linear(x, self.weight_ih, self.bias_ih), h, self.weight_hh, self.bias_hh)

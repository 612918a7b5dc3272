"""TFT: the Temporal Fusion Transformer (NeuralForecast's TFT, a windows-based direct model).

The blocks keep NeuralForecast's module and parameter names (GLU, GRN, MaybeLayerNorm,
TFTEmbedding, VariableSelectionNetwork, InterpretableMultiHeadAttention with its persistent
`_mask` buffer, StaticCovariateEncoder, TemporalCovariateEncoder, TemporalFusionDecoder), so NF's
state_dict loads strictly and gives the same forecast.
"""
from __future__ import annotations

import numpy as np

import ndiv
from ndiv import nn
from ndiv.autograd.ops.nn_ops import Split
from ndiv.nn import functional as F
from ndiv.models._checks import POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel

# NF's get_activation_fn, without its silent fallback to ELU for an unknown name and without 'GLU'
# (which halves the width and fails inside NF's GRN)
GRN_ACTIVATIONS = {"ReLU": F.relu, "Softplus": F.softplus, "Tanh": F.tanh, "SELU": F.selu,
                   "LeakyReLU": F.leaky_relu, "Sigmoid": F.sigmoid, "ELU": F.elu, "GELU": F.gelu}


class MaybeLayerNorm(nn.Module):
    """LayerNorm over output_size (or hidden_size when output_size is None), Identity when output_size == 1."""

    def __init__(self, output_size, hidden_size, eps):
        super().__init__()
        self.ln = nn.Identity() if output_size == 1 else nn.LayerNorm(output_size or hidden_size, eps=eps)

    def forward(self, x):
        return self.ln(x)

    def add_forward(self, x, residual):
        """self(x + residual), the LayerNorm's fused Add & Norm where there is one."""
        if isinstance(self.ln, nn.Identity) or self._has_hooks:
            return self(x + residual)
        return self.ln.add_forward(x, residual)


class GLU(nn.Module):
    """x [..., hidden_size] -> glu(lin(x)) [..., output_size] (a Linear to 2 * output_size, halves gated)."""

    def __init__(self, hidden_size, output_size):
        super().__init__()
        self.lin = nn.Linear(hidden_size, output_size * 2)

    def forward(self, x):
        return F.glu(self.lin(x))


class GRN(nn.Module):
    """Gated residual network: a [..., input_size], context c [B, context_hidden_size] (added to every
    step of a [B, T, ...]) -> LayerNorm(GLU(dropout(lin_i(act(lin_a(a) + lin_c(c))))) + skip(a))
    [..., output_size or input_size]; skip is out_proj when output_size is given, else the identity."""

    def __init__(self, input_size, hidden_size, output_size=None, context_hidden_size=None, dropout=0,
                 activation="ELU"):
        super().__init__()
        self.layer_norm = MaybeLayerNorm(output_size, hidden_size, eps=1e-3)
        self.lin_a = nn.Linear(input_size, hidden_size)
        if context_hidden_size is not None:
            self.lin_c = nn.Linear(context_hidden_size, hidden_size, bias=False)
        self.lin_i = nn.Linear(hidden_size, hidden_size)
        self.glu = GLU(hidden_size, output_size if output_size else hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(input_size, output_size) if output_size else None
        self.activation = activation

    def forward(self, a, c=None):
        x = self.lin_a(a)
        if c is not None:
            x = x + self.lin_c(c).unsqueeze(1)
        x = self.glu(self.dropout(self.lin_i(GRN_ACTIVATIONS[self.activation](x))))
        return self.layer_norm.add_forward(x, a if self.out_proj is None else self.out_proj(a))


class TFTEmbedding(nn.Module):
    """One learned vector and bias per continuous input: x [..., n] -> x[..., None] * vectors + bias
    [..., n, hidden_size]. Parameters `{stat,futr,hist}_exog_embedding_{vectors,bias}` and
    `tgt_embedding_*` ([n, hidden_size]; None for an input of size 0)."""

    def __init__(self, hidden_size, stat_input_size, futr_input_size, hist_input_size, tgt_size):
        super().__init__()
        self.hidden_size = hidden_size
        for attr, size in (("stat_exog_embedding", stat_input_size), ("futr_exog_embedding", futr_input_size),
                           ("hist_exog_embedding", hist_input_size), ("tgt_embedding", tgt_size)):
            if size:
                vectors = nn.Parameter(np.empty((size, hidden_size), np.float32))
                nn.init.xavier_normal_(vectors)
                setattr(self, attr + "_vectors", vectors)
                setattr(self, attr + "_bias", nn.Parameter(np.zeros((size, hidden_size), np.float32)))
            else:
                setattr(self, attr + "_vectors", None)
                setattr(self, attr + "_bias", None)

    @staticmethod
    def _apply_embedding(cont, vectors, bias):
        return None if cont is None else cont.unsqueeze(-1) * vectors + bias

    def forward(self, target_inp, stat_exog=None, futr_exog=None, hist_exog=None):
        """target_inp [B, L, 1], stat_exog [B, S], futr_exog [B, L + h, F], hist_exog [B, L, X] ->
        (s [B, S, H] | None, k [B, L + h, F, H], o [B, L, X, H] | None, t [B, L, 1, H])."""
        s = self._apply_embedding(stat_exog, self.stat_exog_embedding_vectors, self.stat_exog_embedding_bias)
        k = self._apply_embedding(futr_exog, self.futr_exog_embedding_vectors, self.futr_exog_embedding_bias)
        o = self._apply_embedding(hist_exog, self.hist_exog_embedding_vectors, self.hist_exog_embedding_bias)
        t = self._apply_embedding(target_inp, self.tgt_embedding_vectors, self.tgt_embedding_bias)
        return s, k, o, t


class VariableSelectionNetwork(nn.Module):
    """x [..., n, H], context [B, H] or None -> (sum_i w_i var_grns[i](x_i) [..., H], weights w [..., n]);
    w = softmax(joint_grn(x flattened, context)) sums to 1 over the n inputs."""

    def __init__(self, hidden_size, num_inputs, dropout, grn_activation):
        super().__init__()
        self.joint_grn = GRN(input_size=hidden_size * num_inputs, hidden_size=hidden_size, output_size=num_inputs,
                             context_hidden_size=hidden_size, activation=grn_activation)
        self.var_grns = nn.ModuleList([GRN(input_size=hidden_size, hidden_size=hidden_size, dropout=dropout,
                                           activation=grn_activation) for _ in range(num_inputs)])

    def forward(self, x, context=None):
        flat = x.reshape(*x.shape[:-2], -1)
        sparse_weights = F.softmax(self.joint_grn(flat, c=context), dim=-1)              # [..., n]
        transformed = ndiv.stack([m(x[..., i, :]) for i, m in enumerate(self.var_grns)], axis=-1)  # [..., H, n]
        variable_ctx = (transformed @ sparse_weights.unsqueeze(-1)).squeeze(-1)           # [..., H]
        return variable_ctx, sparse_weights


class InterpretableMultiHeadAttention(nn.Module):
    """Heads with their own queries and keys and one shared value head, averaged over heads.

    x [B, T, H] -> (out [B, T, H], attention probabilities [B, n_head, T, T]); with
    mask_future_timesteps a step attends to itself and the steps before it only (the persistent
    buffer `_mask` [1, T, T]: -inf above the diagonal, 0 elsewhere, part of the state_dict as in NF)."""

    def __init__(self, n_head, hidden_size, example_length, attn_dropout, dropout):
        super().__init__()
        if hidden_size % n_head:
            raise ValueError(f"TFT: hidden_size={hidden_size} must be a multiple of n_head={n_head}")
        self.n_head = n_head
        self.d_head = hidden_size // n_head
        self.qkv_linears = nn.Linear(hidden_size, (2 * n_head + 1) * self.d_head, bias=False)
        self.out_proj = nn.Linear(self.d_head, hidden_size, bias=False)
        self.attn_dropout = nn.Dropout(attn_dropout)
        self.out_dropout = nn.Dropout(dropout)
        self.scale = self.d_head ** -0.5
        mask = np.triu(np.full((example_length, example_length), -np.inf, np.float32), 1)[None]
        self.register_buffer("_mask", ndiv.tensor(mask))

    def forward(self, x, mask_future_timesteps: bool = True):
        bs, t, _ = x.shape
        n, d = self.n_head, self.d_head
        q, k, v = Split.apply(self.qkv_linears(x), sizes=(n * d, n * d, d), axis=-1)
        q = q.reshape(bs, t, n, d).permute(0, 2, 1, 3)                                 # [B, n, T, d]
        k = k.reshape(bs, t, n, d).permute(0, 2, 3, 1)                                 # [B, n, d, T]
        score = (q @ k) * self.scale                                                   # [B, n, T, T]
        if mask_future_timesteps:
            score = score + self._mask
        prob = self.attn_dropout(F.softmax(score, dim=3))
        out = (prob @ v.unsqueeze(1)).mean(axis=1)                                     # [B, T, d]
        return self.out_dropout(self.out_proj(out)), prob


class StaticCovariateEncoder(nn.Module):
    """Static embeddings [B, S, H] -> (cs, ce [B, H]: the variable-selection and enrichment contexts,
    ch, cc [n_rnn_layers, B, H]: the LSTM's initial hidden and cell states (GRU: cc = ch),
    static variable weights [B, S]). `context_grns` keep NF's default ELU activation."""

    def __init__(self, hidden_size, num_static_vars, dropout, grn_activation, rnn_type="lstm", n_rnn_layers=1,
                 one_rnn_initial_state=False):
        super().__init__()
        self.vsn = VariableSelectionNetwork(hidden_size=hidden_size, num_inputs=num_static_vars, dropout=dropout,
                                            grn_activation=grn_activation)
        self.rnn_type = rnn_type.lower()
        self.n_rnn_layers = n_rnn_layers
        self.n_states = 1 if one_rnn_initial_state else n_rnn_layers
        n_contexts = 2 + 2 * self.n_states if rnn_type == "lstm" else 2 + self.n_states
        self.context_grns = nn.ModuleList([GRN(input_size=hidden_size, hidden_size=hidden_size, dropout=dropout)
                                           for _ in range(n_contexts)])

    def forward(self, x):
        variable_ctx, sparse_weights = self.vsn(x)
        grns = list(self.context_grns)
        cs, ce = (m(variable_ctx) for m in grns[:2])
        repeat = self.n_rnn_layers if self.n_states == 1 else 1
        ch = ndiv.cat([m(variable_ctx).unsqueeze(0) for m in grns[2:self.n_states + 2]] * repeat, axis=0)
        cc = ndiv.cat([m(variable_ctx).unsqueeze(0) for m in grns[self.n_states + 2:]] * repeat, axis=0) \
            if self.rnn_type == "lstm" else ch
        return cs, ce, ch, cc, sparse_weights


class TemporalCovariateEncoder(nn.Module):
    """history_vsn -> history_encoder (LSTM/GRU from the static state) -> its final state starts
    future_encoder over future_vsn's features; a shared gated skip connection (input_gate,
    input_gate_ln) over both. -> (features [B, L + h, H], past weights [B, L, n_hist], future
    weights [B, h, n_futr])."""

    def __init__(self, hidden_size, num_historic_vars, num_future_vars, dropout, grn_activation, rnn_type="lstm",
                 n_rnn_layers=1):
        super().__init__()
        self.rnn_type = rnn_type.lower()
        self.n_rnn_layers = n_rnn_layers
        self.history_vsn = VariableSelectionNetwork(hidden_size=hidden_size, num_inputs=num_historic_vars,
                                                    dropout=dropout, grn_activation=grn_activation)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU}.get(self.rnn_type)
        if rnn is None:
            raise ValueError(f"TFT: rnn_type must be 'lstm' or 'gru', got {rnn_type!r}")
        self.history_encoder = rnn(input_size=hidden_size, hidden_size=hidden_size, batch_first=True,
                                   num_layers=n_rnn_layers)
        self.future_encoder = rnn(input_size=hidden_size, hidden_size=hidden_size, batch_first=True,
                                  num_layers=n_rnn_layers)
        self.future_vsn = VariableSelectionNetwork(hidden_size=hidden_size, num_inputs=num_future_vars,
                                                   dropout=dropout, grn_activation=grn_activation)
        self.input_gate = GLU(hidden_size, hidden_size)
        self.input_gate_ln = nn.LayerNorm(hidden_size, eps=1e-3)

    def forward(self, historical_inputs, future_inputs, cs, ch, cc):
        historical_features, history_wts = self.history_vsn(historical_inputs, cs)    # [B, L, H], [B, L, n]
        history, state = self.history_encoder(historical_features, (ch, cc) if self.rnn_type == "lstm" else ch)
        future_features, future_wts = self.future_vsn(future_inputs, cs)               # [B, h, H], [B, h, F]
        future, _ = self.future_encoder(future_features, state)
        input_embedding = ndiv.cat([historical_features, future_features], axis=1)
        temporal_features = self.input_gate_ln.add_forward(self.input_gate(ndiv.cat([history, future], axis=1)),
                                                           input_embedding)
        return temporal_features, history_wts, future_wts


class TemporalFusionDecoder(nn.Module):
    """Static enrichment (enrichment_grn with ce), masked interpretable self-attention over the
    L + h steps, gated skips and the position-wise GRN; keeps the h future steps:
    features [B, L + h, H], ce [B, H] -> ([B, h, H], attention [B, n_head, L + h, L + h])."""

    def __init__(self, n_head, hidden_size, example_length, encoder_length, attn_dropout, dropout, grn_activation):
        super().__init__()
        self.encoder_length = encoder_length
        self.enrichment_grn = GRN(input_size=hidden_size, hidden_size=hidden_size, context_hidden_size=hidden_size,
                                  dropout=dropout, activation=grn_activation)
        self.attention = InterpretableMultiHeadAttention(n_head=n_head, hidden_size=hidden_size,
                                                         example_length=example_length, attn_dropout=attn_dropout,
                                                         dropout=dropout)
        self.attention_gate = GLU(hidden_size, hidden_size)
        self.attention_ln = nn.LayerNorm(hidden_size, eps=1e-3)
        self.positionwise_grn = GRN(input_size=hidden_size, hidden_size=hidden_size, dropout=dropout,
                                    activation=grn_activation)
        self.decoder_gate = GLU(hidden_size, hidden_size)
        self.decoder_ln = nn.LayerNorm(hidden_size, eps=1e-3)

    def forward(self, temporal_features, ce):
        enriched = self.enrichment_grn(temporal_features, c=ce)
        x, attn = self.attention(enriched, mask_future_timesteps=True)
        L = self.encoder_length
        x = self.attention_ln.add_forward(self.attention_gate(x[:, L:]), enriched[:, L:])
        x = self.positionwise_grn(x)
        return self.decoder_ln.add_forward(self.decoder_gate(x), temporal_features[:, L:]), attn


class TFT(BaseModel):
    """TFT: embeddings of every input -> variable selection (static, past, future) -> history LSTM
    started from the static context, whose final state starts the future LSTM -> static enrichment
    -> interpretable masked self-attention -> gated decoder -> `output_adapter` -> [B, h, n_out].

    Args: h (int) horizon; input_size (int) window length L; tgt_size (int) number of targets
        (1: ndiv's models are univariate); hidden_size (int) width of embeddings and encoders;
        n_head (int) attention heads (a divisor of hidden_size); attn_dropout (float) dropout of
        the attention probabilities; grn_activation (str) one of GRN_ACTIVATIONS; n_rnn_layers
        (int); rnn_type ('lstm' or 'gru'); one_rnn_initial_state (bool) every RNN layer starts
        from one static state; dropout (float) in the GRNs and after the attention;
        **kwargs: the shared options (loss, max_steps, learning_rate, futr/hist/stat_exog_list, ...),
        see BaseModel.
    Exogenous: futr, hist, stat. Without future exogenous columns NeuralForecast's TFT feeds the
    last insample y, repeated over the L + h steps, as its one "future" input: so does this one.
    Interpretation: `forward_interpretable` also returns the variable-selection weights and the
    attention; ndiv.Forecaster.feature_importances() and .attention_weights() read them.
    References: Lim et al. (2021), "Temporal Fusion Transformers for interpretable multi-horizon
    time series forecasting".

    >>> model = TFT(h=12, input_size=24, hidden_size=32, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=1024,
                    inference_windows_batch_size=1024, scaler_type="robust")
    OPTION_RULES = dict(hidden_size=POSITIVE_INT, n_head=POSITIVE_INT, n_rnn_layers=POSITIVE_INT,
                        dropout=PROBABILITY, attn_dropout=PROBABILITY)

    def __init__(self, h, input_size, tgt_size=1, hidden_size=128, n_head=4, attn_dropout=0.0, grn_activation="ELU",
                 n_rnn_layers=1, rnn_type="lstm", one_rnn_initial_state=False, dropout=0.1, **kwargs):
        if tgt_size != 1:
            raise ValueError(f"TFT: tgt_size must be 1 (one target per series), got {tgt_size!r}")
        if grn_activation not in GRN_ACTIVATIONS:
            raise ValueError(f"TFT: grn_activation must be one of {sorted(GRN_ACTIVATIONS)}, got {grn_activation!r}")
        if not isinstance(rnn_type, str) or rnn_type.lower() not in ("lstm", "gru"):
            raise ValueError(f"TFT: rnn_type must be 'lstm' or 'gru', got {rnn_type!r}")
        super().__init__(h=h, input_size=input_size, **kwargs)
        if hidden_size % n_head:
            raise ValueError(f"TFT: hidden_size={hidden_size} must be a multiple of n_head={n_head}")
        self.hidden_size, self.n_head, self.tgt_size = hidden_size, n_head, tgt_size
        self.attn_dropout, self.dropout, self.grn_activation = attn_dropout, dropout, grn_activation
        self.n_rnn_layers, self.rnn_type = n_rnn_layers, rnn_type.lower()
        self.one_rnn_initial_state = one_rnn_initial_state
        self.example_length = input_size + h
        futr_size = max(self.futr_exog_size, 1)          # the repeated last y when there is no futr exog
        self.embedding = TFTEmbedding(hidden_size=hidden_size, stat_input_size=self.stat_exog_size,
                                      futr_input_size=futr_size, hist_input_size=self.hist_exog_size,
                                      tgt_size=tgt_size)
        if self.stat_exog_size > 0:
            self.static_encoder = StaticCovariateEncoder(
                hidden_size=hidden_size, num_static_vars=self.stat_exog_size, dropout=dropout,
                grn_activation=grn_activation, rnn_type=self.rnn_type, n_rnn_layers=n_rnn_layers,
                one_rnn_initial_state=one_rnn_initial_state)
        self.temporal_encoder = TemporalCovariateEncoder(
            hidden_size=hidden_size, num_historic_vars=futr_size + self.hist_exog_size + tgt_size,
            num_future_vars=futr_size, dropout=dropout, grn_activation=grn_activation, n_rnn_layers=n_rnn_layers,
            rnn_type=self.rnn_type)
        self.temporal_fusion_decoder = TemporalFusionDecoder(
            n_head=n_head, hidden_size=hidden_size, example_length=self.example_length, encoder_length=input_size,
            attn_dropout=attn_dropout, dropout=dropout, grn_activation=grn_activation)
        self.output_adapter = nn.Linear(hidden_size, self.loss.outputsize_multiplier)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out]."""
        return self.forward_interpretable(windows_batch)[0]

    def forward_interpretable(self, windows_batch):
        """forward's forecast and what it attended to, NF's interpretability_params:
        -> (y_hat [B, h, n_out], {'history_vsn_wgts': [B, L, n_past] (past inputs: hist exog,
        futr exog or the repeated y, observed y), 'future_vsn_wgts': [B, h, max(F, 1)],
        'static_encoder_sparse_weights': [B, S] or None, 'attn_wts': [B, n_head, L + h, L + h]})."""
        y = windows_batch["insample_y"]
        futr, hist, stat = (_present(windows_batch.get(k)) for k in ("futr_exog", "hist_exog", "stat_exog"))
        b, L = y.shape[0], self.input_size
        if futr is None:                                   # NF: the last y as the one future input
            futr = y[:, -1:].expand(b, self.example_length, y.shape[2])
        s_inp, k_inp, o_inp, t_obs = self.embedding(target_inp=y, stat_exog=stat, futr_exog=futr, hist_exog=hist)
        if s_inp is not None:
            cs, ce, ch, cc, static_wts = self.static_encoder(s_inp)
        else:
            H, dt, dev = self.hidden_size, t_obs.dtype, t_obs.device
            cs = ce = ndiv.zeros(b, H, dtype=dt, device=dev)
            ch = cc = ndiv.zeros(self.n_rnn_layers, b, H, dtype=dt, device=dev)
            static_wts = None
        past = [k_inp[:, :L], t_obs[:, :L]] if o_inp is None else [o_inp[:, :L], k_inp[:, :L], t_obs[:, :L]]
        temporal, history_wts, future_wts = self.temporal_encoder(
            historical_inputs=ndiv.cat(past, axis=-2), future_inputs=k_inp[:, L:], cs=cs, ch=ch, cc=cc)
        temporal, attn = self.temporal_fusion_decoder(temporal_features=temporal, ce=ce)
        weights = {"history_vsn_wgts": history_wts, "future_vsn_wgts": future_wts,
                   "static_encoder_sparse_weights": static_wts, "attn_wts": attn}
        return self.output_adapter(temporal), weights

    def past_variable_names(self) -> list:
        """The names of the columns of history_vsn_wgts, in the order the model reads them. (NF's
        feature_importances() labels them hist + futr + ['observed_target', 'repeated_target'],
        which puts the last two in the wrong order when there is no future exogenous input.)"""
        futr = list(self.futr_exog_list) or ["repeated_target"]
        return list(self.hist_exog_list) + futr + ["observed_target"]


def _present(x):
    """A windows_batch entry, or None when it is missing or has no columns."""
    return None if x is None or x.shape[-1] == 0 else x

"""RNN: a multi-layer Elman RNN encoder with an MLP decoder (NeuralForecast's RNN), and the
encoder-decoder that NF's RNN, LSTM and GRU share (NF writes it out three times)."""
from __future__ import annotations

import warnings

import ndiv
from ndiv import nn
from ndiv.models._checks import POSITIVE_INT
from ndiv.models.base import BaseModel
from ndiv.models.common._modules import MLP, encoder_input as _encoder_input, resolve_decoder_activation

# NeuralForecast's defaults shared by RNN, LSTM, GRU and TCN where its models disagree
RECURRENT_DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=-1, windows_batch_size=128,
                          inference_windows_batch_size=1024, scaler_type="robust")


def resolve_input_size(name: str, h: int, input_size: int) -> int:
    """NF's protection for its recurrent-era models: input_size < 1 means 3 * h."""
    if isinstance(input_size, int) and input_size < 1:
        warnings.warn(f"{name}: input_size={input_size} < 1, using 3 * h = {3 * h}")
        return 3 * h
    return input_size


def recurrent_sizes(model, inference_input_size, h_train) -> tuple:
    """NF's (inference_input_size, h_train): None or < 1 means input_size; a loss with a
    horizon_weight trains on the whole horizon."""
    name = type(model).__name__
    if inference_input_size is None:
        inference_input_size = model.input_size
    elif inference_input_size < 1:
        warnings.warn(f"{name}: inference_input_size={inference_input_size} < 1, using input_size={model.input_size}")
        inference_input_size = model.input_size
    if getattr(model.loss, "horizon_weight", None) is not None and h_train != model.h:
        warnings.warn(f"{name}: setting h_train={model.h} to match the horizon_weight length")
        h_train = model.h
    return int(inference_input_size), int(h_train)


class RecurrentEncoderMLP(BaseModel):
    """The forecaster of NF's RNN, LSTM and GRU.

    recurrent=False (direct): [y | hist exog | stat exog | futr exog] over the window
    [B, L, 1 + X + S + F] -> `hist_encoder` (the subclass's ENCODER, batch-first) -> hidden states
    [B, L, H] -> the last h of them (or, when h > L, `upsample_sequence`: a Linear over time L -> h)
    -> [.. | futr exog of the horizon] [B, h, H + F] -> `mlp_decoder` (MLP, decoder_layers) -> [B, h, n_out].

    recurrent=True (NF's recurrent mode, ndiv/models/_recurrent.py): the same encoder input over
    the shifted sequence [B, T, 1 + X + S + F] -> `hist_encoder` from windows_batch["rnn_state"]
    -> its output at every step [B, T, n_out] (LSTM: proj_size=n_out; RNN, GRU: a Linear `proj`);
    no MLP decoder. Trained on h_train steps, predicted one step at a time.
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = True
    EXOGENOUS_CAT = True   # cat_exog_list: embedded in the shared base (NF 3.3)
    MULTIVARIATE = RECURRENT = False
    DEFAULTS = RECURRENT_DEFAULTS
    ENCODER: type = nn.RNN  # the subclass's torch-named recurrent layer
    OPTION_RULES = dict(encoder_n_layers=POSITIVE_INT, encoder_hidden_size=POSITIVE_INT,
                        decoder_hidden_size=POSITIVE_INT, decoder_layers=POSITIVE_INT, h_train=POSITIVE_INT)
    n_samples = 100   # NF's BaseModel n_samples: draws per step of a recurrent distribution forecast

    def __init__(self, h, input_size=-1, inference_input_size=None, h_train=1, encoder_n_layers=2,
                 encoder_hidden_size=128, encoder_bias=True, encoder_dropout=0.0, context_size=None,
                 decoder_hidden_size=128, decoder_layers=2, decoder_activation=None, recurrent=False,
                 **kwargs):
        name = type(self).__name__
        if not isinstance(recurrent, bool):
            raise TypeError(f"{name}: recurrent must be True or False, got {recurrent!r}")
        if context_size is not None:
            warnings.warn(f"{name}: context_size is deprecated (NeuralForecast) and has no effect")
        input_size = resolve_input_size(name, h, input_size)
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.RECURRENT = recurrent   # NF sets the class flag per instance
        # inference_input_size and h_train only matter to recurrent=True, as in NF
        self.inference_input_size, self.h_train = recurrent_sizes(self, inference_input_size, h_train)
        self.encoder_n_layers, self.encoder_hidden_size = encoder_n_layers, encoder_hidden_size
        self.encoder_bias, self.encoder_dropout = encoder_bias, encoder_dropout
        self.decoder_hidden_size, self.decoder_layers = decoder_hidden_size, decoder_layers
        self.decoder_activation = resolve_decoder_activation(
            decoder_activation, "recurrent=True, since the model has no MLP decoder" if recurrent else
            "decoder_layers=1, since the decoder is then a single linear layer" if decoder_layers == 1 else None)

        input_encoder = 1 + self.hist_exog_size + self.stat_exog_size + self.futr_exog_size
        n_out = self.loss.outputsize_multiplier
        proj = dict(proj_size=n_out) if recurrent and self.ENCODER is nn.LSTM else {}
        if proj and n_out >= encoder_hidden_size:
            raise ValueError(f"{name}: recurrent=True projects the LSTM state to the loss's {n_out} outputs, which "
                             f"needs encoder_hidden_size > {n_out}, got {encoder_hidden_size}")
        self.hist_encoder = self.ENCODER(input_encoder, encoder_hidden_size, num_layers=encoder_n_layers,
                                         bias=encoder_bias, dropout=encoder_dropout, batch_first=True, **proj)
        if recurrent:
            if not proj:
                self.proj = nn.Linear(encoder_hidden_size, n_out)
            return
        self.mlp_decoder = MLP(in_features=encoder_hidden_size + self.futr_exog_size,
                               out_features=self.loss.outputsize_multiplier, hidden_size=decoder_hidden_size,
                               num_layers=decoder_layers, activation=self.decoder_activation, dropout=0.0)
        if self.h > self.input_size:
            self.upsample_sequence = nn.Linear(self.input_size, self.h)

    def _has_sample_randomness(self) -> bool:
        # the encoder's dropout between layers is no nn.Dropout module: declare it (no window dedupe)
        return super()._has_sample_randomness() or (self.encoder_dropout > 0 and self.encoder_n_layers > 1)

    def forward(self, windows_batch):
        """insample_y [B, L, 1], hist_exog [B, L, X], futr_exog [B, L + h, F], stat_exog [B, S]
        -> [B, h, n_out] (recurrent: [B, L, n_out], the state in windows_batch["rnn_state"])."""
        encoder_input = _encoder_input(windows_batch, self.hist_exog_size, self.stat_exog_size,
                                       self.futr_exog_size)          # [B, L, 1 + X + S + F]
        if self.RECURRENT:
            output, windows_batch["rnn_state"] = self.hist_encoder(encoder_input, windows_batch.get("rnn_state"))
            return output if self.hist_encoder.proj_size else self.proj(output)   # [B, L, n_out]
        hidden, _ = self.hist_encoder(encoder_input)                              # [B, L, H]
        if self.h > self.input_size:
            hidden = self.upsample_sequence(hidden.swapaxes(1, 2)).swapaxes(1, 2)  # [B, h, H]
        else:
            hidden = hidden[:, -self.h:]                                          # [B, h, H]
        if self.futr_exog_size:
            hidden = ndiv.cat([hidden, windows_batch["futr_exog"][:, -self.h:]], axis=2)          # [B, h, H + F]
        return self.mlp_decoder(hidden)                                           # [B, h, n_out]


class RNN(RecurrentEncoderMLP):
    """RNN: multi-layer Elman RNN encoder (tanh) + MLP decoder.

    Args: h (int) horizon; input_size (int) window length L (< 1: 3 * h); encoder_n_layers,
        encoder_hidden_size, encoder_bias, encoder_dropout: the nn.RNN; encoder_activation
        ('tanh' or 'relu'): no effect, tanh always, as NeuralForecast 3.3 builds it;
        decoder_hidden_size, decoder_layers, decoder_activation: the MLP decoder;
        recurrent (bool): False (NF's default) forecasts h steps at once through the MLP decoder; True
        predicts one step at a time (NF's recurrent mode, trained on h_train steps; inference_input_size:
        the window at prediction); context_size: deprecated, no effect;
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.
    Exogenous: futr, hist, stat.

    >>> model = RNN(h=12, input_size=24, max_steps=100)
    """
    ENCODER = nn.RNN

    def __init__(self, h, input_size=-1, inference_input_size=None, h_train=1, encoder_n_layers=2,
                 encoder_hidden_size=128, encoder_activation="tanh", encoder_bias=True, encoder_dropout=0.0,
                 context_size=None, decoder_hidden_size=128, decoder_layers=2, decoder_activation=None,
                 recurrent=False, **kwargs):
        if encoder_activation not in ("tanh", "relu"):
            raise ValueError(f"RNN: encoder_activation must be 'tanh' or 'relu', got {encoder_activation!r}")
        if encoder_activation != "tanh":
            # NF 3.3 stores encoder_activation but builds nn.RNN without it; we keep its tanh so that
            # its checkpoints give the same forecasts here, and say so
            warnings.warn(f"RNN: encoder_activation={encoder_activation!r} has no effect, as in NeuralForecast "
                          "(its RNN encoder always uses tanh)")
        super().__init__(h, input_size, inference_input_size, h_train, encoder_n_layers, encoder_hidden_size,
                         encoder_bias, encoder_dropout, context_size, decoder_hidden_size, decoder_layers,
                         decoder_activation, recurrent, **kwargs)
        self.encoder_activation = encoder_activation

"""DeepAR: an autoregressive LSTM with a distribution head, on the shared recurrent mode."""
from __future__ import annotations

import ndiv
from ndiv import nn
from ndiv.models._checks import NON_NEGATIVE_INT, POSITIVE_INT, PROBABILITY
from ndiv.models.base import BaseModel
from ndiv.models.common._modules import MLP, resolve_decoder_activation
from ndiv.models.rnn import recurrent_sizes, resolve_input_size


class DeepAR(BaseModel):
    """DeepAR: LSTM over [y_t | hist exog | futr exog | stat exog] -> MLP decoder -> the
    distribution's parameters for y_{t+1}; trained on h_train teacher-forced steps and predicted
    one step at a time, the distribution's mean fed back (ndiv/models/_recurrent.py).

    Args: h (int) horizon; input_size (int) window length L (< 1: 3 * h); h_train (int) steps of
        each training window's loss; lstm_n_layers, lstm_hidden_size, lstm_dropout: the nn.LSTM;
        decoder_hidden_layers (0: one Linear), decoder_hidden_size, decoder_activation: the MLP
        decoder; trajectory_samples (int): draws of each step's distribution for the quantile
        columns (the point column is the mean, deterministic);
        **kwargs: the shared options; loss defaults to DistributionLoss('StudentT', level=[80, 90]),
        valid_loss to MAE(), as in NeuralForecast.
    Exogenous: futr, hist (zeroed past the window's input), stat.
    References: Salinas et al. (2020), "DeepAR: Probabilistic forecasting with autoregressive
    recurrent networks".

    >>> model = DeepAR(h=12, input_size=24, max_steps=100)
    """
    EXOGENOUS_FUTR = EXOGENOUS_HIST = EXOGENOUS_STAT = EXOGENOUS_CAT = True
    MULTIVARIATE = False
    RECURRENT = True
    DEFAULTS = dict(max_steps=1000, learning_rate=1e-3, num_lr_decays=3, windows_batch_size=1024,
                    inference_windows_batch_size=-1, scaler_type="identity")
    OPTION_RULES = dict(h_train=POSITIVE_INT, lstm_n_layers=POSITIVE_INT, lstm_hidden_size=POSITIVE_INT,
                        lstm_dropout=PROBABILITY, decoder_hidden_layers=NON_NEGATIVE_INT,
                        decoder_hidden_size=NON_NEGATIVE_INT, trajectory_samples=POSITIVE_INT)

    def __init__(self, h, input_size=-1, h_train=1, lstm_n_layers=2, lstm_hidden_size=128, lstm_dropout=0.1,
                 decoder_hidden_layers=0, decoder_hidden_size=0, decoder_activation=None, trajectory_samples=100,
                 **kwargs):
        from ndiv.losses import MAE, DistributionLoss
        if kwargs.get("exclude_insample_y"):
            raise ValueError("DeepAR: exclude_insample_y=True is not possible (its input is the past of y)")
        if kwargs.get("loss") is None:
            kwargs["loss"] = DistributionLoss("StudentT", level=[80, 90], return_params=False)
        if kwargs.get("valid_loss") is None:
            kwargs["valid_loss"] = MAE()
        if decoder_hidden_layers > 0 and decoder_hidden_size < 1:
            raise ValueError(f"DeepAR: decoder_hidden_size must be > 0 when decoder_hidden_layers > 0, got "
                             f"decoder_hidden_layers={decoder_hidden_layers}, decoder_hidden_size={decoder_hidden_size}")
        input_size = resolve_input_size("DeepAR", h, input_size)
        super().__init__(h=h, input_size=input_size, **kwargs)
        self.inference_input_size, self.h_train = recurrent_sizes(self, None, h_train)
        self.n_samples = trajectory_samples
        self.encoder_n_layers, self.encoder_hidden_size, self.encoder_dropout = (
            lstm_n_layers, lstm_hidden_size, lstm_dropout)
        input_encoder = 1 + self.hist_exog_size + self.futr_exog_size + self.stat_exog_size
        self.hist_encoder = nn.LSTM(input_encoder, lstm_hidden_size, num_layers=lstm_n_layers,
                                    dropout=lstm_dropout, batch_first=True)
        decoder_activation = resolve_decoder_activation(
            decoder_activation, "decoder_hidden_layers=0, since the decoder is then a single linear layer"
            if decoder_hidden_layers == 0 else None)
        self.decoder = MLP(in_features=lstm_hidden_size, out_features=self.loss.outputsize_multiplier,
                           hidden_size=decoder_hidden_size, num_layers=decoder_hidden_layers + 1,
                           activation=decoder_activation, dropout=0.0)

    def _has_sample_randomness(self) -> bool:
        # the LSTM's dropout between layers is no nn.Dropout module: declare it (no window dedupe)
        return super()._has_sample_randomness() or (self.encoder_dropout > 0 and self.encoder_n_layers > 1)

    def forward(self, windows_batch):
        """insample_y [B, T, 1], hist_exog [B, T, X], futr_exog [B, T, F], stat_exog [B, S],
        rnn_state (h, c) or None -> [B, T, n_out] (the new state in windows_batch["rnn_state"])."""
        y = windows_batch["insample_y"]
        b, T = y.shape[:2]
        parts = [y]                                   # NF's order here: y, hist, futr, stat
        if self.hist_exog_size:
            parts.append(windows_batch["hist_exog"])
        if self.futr_exog_size:
            parts.append(windows_batch["futr_exog"])
        if self.stat_exog_size:
            parts.append(windows_batch["stat_exog"].unsqueeze(1).expand(b, T, self.stat_exog_size))
        x = ndiv.cat(parts, axis=2) if len(parts) > 1 else y                  # [B, T, 1 + X + F + S]
        hidden, windows_batch["rnn_state"] = self.hist_encoder(x, windows_batch.get("rnn_state"))
        return self.decoder(hidden)                                           # [B, T, n_out]

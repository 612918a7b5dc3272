"""LSTM: a multi-layer LSTM encoder with an MLP decoder (NeuralForecast's LSTM)."""
from __future__ import annotations

from ndiv import nn
from ndiv.models.rnn import RecurrentEncoderMLP


class LSTM(RecurrentEncoderMLP):
    """LSTM: multi-layer LSTM encoder over the window + MLP decoder of its last h hidden states.

    Args: h (int) horizon; input_size (int) window length L (< 1: 3 * h); encoder_n_layers,
        encoder_hidden_size, encoder_bias, encoder_dropout: the nn.LSTM (fused sequence kernel);
        decoder_hidden_size, decoder_layers, decoder_activation: the MLP decoder;
        recurrent (bool): False (NF's default) forecasts h steps at once through the MLP decoder; True
        predicts one step at a time (NF's recurrent mode, trained on h_train steps; inference_input_size:
        the window at prediction); context_size: deprecated, no effect;
        **kwargs: the shared options (loss, max_steps, learning_rate, ...), see BaseModel.
    Exogenous: futr, hist, stat. Layout: see RecurrentEncoderMLP.

    >>> model = LSTM(h=12, input_size=24, max_steps=100)
    """
    ENCODER = nn.LSTM

    def __init__(self, h, input_size=-1, inference_input_size=None, h_train=1, encoder_n_layers=2,
                 encoder_hidden_size=128, encoder_bias=True, encoder_dropout=0.0, context_size=None,
                 decoder_hidden_size=128, decoder_layers=2, decoder_activation=None, recurrent=False, **kwargs):
        super().__init__(h, input_size, inference_input_size, h_train, encoder_n_layers, encoder_hidden_size,
                         encoder_bias, encoder_dropout, context_size, decoder_hidden_size, decoder_layers,
                         decoder_activation, recurrent, **kwargs)

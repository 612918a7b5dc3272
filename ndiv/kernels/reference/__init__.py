"""Reference kernels: plain NumPy, obviously correct, the ground truth that ndiv.kernels.cpu and
ndiv.kernels.cuda are tested against. Same names and signatures as those packages."""
from ndiv.kernels.reference.attention import flash_attn_bwd, flash_attn_fwd, small_attn_bwd, small_attn_fwd
from ndiv.kernels.reference.dropout import dropout_bwd, dropout_fwd
from ndiv.kernels.reference.conv import conv1d_dilated_bwd, conv1d_dilated_fwd, conv2d_bwd, conv2d_fwd
from ndiv.kernels.reference.norm import (add_layer_norm_bwd, add_layer_norm_fwd, elu_bwd, elu_fwd, gelu_bwd, gelu_fwd,
                                         glu_bwd, glu_fwd, layer_norm_bwd, layer_norm_fwd,
                                         log_softmax_bwd, log_softmax_fwd, softmax_bwd, softmax_fwd)
from ndiv.kernels.reference.batchnorm import batch_norm_bwd, batch_norm_fwd
from ndiv.kernels.reference.linear import linear_act_bwd, linear_act_fwd
from ndiv.kernels.reference.rnn import (gru_seq_bwd, gru_seq_fwd, lstm_seq_bwd, lstm_seq_fwd, rnn_seq_bwd,
                                        rnn_seq_fwd)
from ndiv.kernels.reference.stats import grad_update_stats

KERNELS = ("lstm_seq_fwd", "lstm_seq_bwd", "gru_seq_fwd", "gru_seq_bwd", "conv1d_dilated_fwd",
           "conv1d_dilated_bwd", "flash_attn_fwd", "flash_attn_bwd", "softmax_fwd", "softmax_bwd",
           "log_softmax_fwd", "log_softmax_bwd", "layer_norm_fwd", "layer_norm_bwd", "gelu_fwd", "gelu_bwd",
           "grad_update_stats", "conv2d_fwd", "conv2d_bwd", "dropout_fwd", "dropout_bwd",
           "rnn_seq_fwd", "rnn_seq_bwd", "linear_act_fwd", "linear_act_bwd", "batch_norm_fwd", "batch_norm_bwd",
           "small_attn_fwd", "small_attn_bwd", "add_layer_norm_fwd", "add_layer_norm_bwd", "glu_fwd", "glu_bwd",
           "elu_fwd", "elu_bwd")

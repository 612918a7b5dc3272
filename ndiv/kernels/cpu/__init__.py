"""Compiled CPU kernels (Numba): same names and signatures as ndiv.kernels.reference.

Importing this package compiles nothing: each kernel compiles on its first call (cached on disk,
`cache=True`), with the flags of ndiv.kernels.config.
"""
from ndiv.kernels.cpu.attention import flash_attn_bwd, flash_attn_fwd, small_attn_bwd, small_attn_fwd
from ndiv.kernels.cpu.dropout import dropout_bwd, dropout_fwd
from ndiv.kernels.cpu.conv import conv1d_dilated_bwd, conv1d_dilated_fwd, conv2d_bwd, conv2d_fwd
from ndiv.kernels.cpu.norm import (add_layer_norm_bwd, add_layer_norm_fwd, elu_bwd, elu_fwd, gelu_bwd, gelu_fwd,
                                   glu_bwd, glu_fwd, layer_norm_bwd, layer_norm_fwd,
                                   log_softmax_bwd, log_softmax_fwd, softmax_bwd, softmax_fwd)
from ndiv.kernels.cpu.batchnorm import batch_norm_bwd, batch_norm_fwd
from ndiv.kernels.cpu.linear import linear_act_bwd, linear_act_fwd
from ndiv.kernels.cpu.rnn import (gru_seq_bwd, gru_seq_fwd, lstm_seq_bwd, lstm_seq_fwd, rnn_seq_bwd,
                                  rnn_seq_fwd)
from ndiv.kernels.cpu.stats import grad_update_stats

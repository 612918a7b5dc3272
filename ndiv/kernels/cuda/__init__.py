"""CUDA kernels (CuPy RawKernels, cuBLAS through cupy.matmul): same names and signatures as
ndiv.kernels.reference and ndiv.kernels.cpu.

Importing this package imports no CuPy and compiles nothing: each kernel's module compiles with
NVRTC on its first call and is cached for the process (ndiv.kernels.cuda._compile). `SOURCES`
lists every CUDA source with the (dtype, defines) variants the kernels compile, so that a machine
without a GPU can still check that they compile (tests/test_device.py).
"""
from ndiv.kernels.cuda import attention, conv, linear, norm, rnn
from ndiv.kernels.cuda.attention import flash_attn_bwd, flash_attn_fwd, small_attn_bwd, small_attn_fwd
from ndiv.kernels.cuda.dropout import dropout_bwd, dropout_fwd
from ndiv.kernels.cuda.conv import conv1d_dilated_bwd, conv1d_dilated_fwd, conv2d_bwd, conv2d_fwd
from ndiv.kernels.cuda.norm import (add_layer_norm_bwd, add_layer_norm_fwd, elu_bwd, elu_fwd, gelu_bwd, gelu_fwd,
                                    glu_bwd, glu_fwd, layer_norm_bwd, layer_norm_fwd,
                                    log_softmax_bwd, log_softmax_fwd, softmax_bwd, softmax_fwd)
from ndiv.kernels.cuda.batchnorm import batch_norm_bwd, batch_norm_fwd
from ndiv.kernels.cuda.linear import linear_act_bwd, linear_act_fwd
from ndiv.kernels.cuda.rnn import (gru_seq_bwd, gru_seq_fwd, lstm_seq_bwd, lstm_seq_fwd, rnn_seq_bwd,
                                   rnn_seq_fwd)
from ndiv.kernels.cuda.stats import grad_update_stats

SOURCES = {m.__name__.rsplit(".", 1)[1]: (m.SOURCE, m.VARIANTS) for m in (attention, conv, linear, norm, rnn)}

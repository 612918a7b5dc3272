"""ndiv.nn: Module, Parameter, layers, functional (F) and init, interchangeable with torch.nn state_dicts."""
from ndiv.nn import functional, init, utils  # noqa: F401
from ndiv.nn.activation import (  # noqa: F401
    CELU, ELU, GELU, GLU, Hardtanh, LeakyReLU, LogSigmoid, LogSoftmax, PReLU, ReLU, ReLU6, SELU, Sigmoid, SiLU, Softmax, Softmin,
    Softplus, Softsign, Tanh,
)
from ndiv.nn.attention import MultiheadAttention  # noqa: F401
from ndiv.nn.containers import Identity, ModuleDict, ModuleList, Sequential  # noqa: F401
from ndiv.nn.conv import (  # noqa: F401
    AdaptiveAvgPool1d, AvgPool1d, ConstantPad1d, Conv1d, Conv2d, MaxPool1d, ReplicationPad1d, Upsample,
)
from ndiv.nn.dropout import Dropout, Dropout1d  # noqa: F401
from ndiv.nn.embedding import Embedding  # noqa: F401
from ndiv.nn.linear import Bilinear, Flatten, Linear, Unflatten  # noqa: F401
from ndiv.nn.module import Module, RemovableHandle  # noqa: F401
from ndiv.nn.norm import BatchNorm1d, BatchNorm2d, GroupNorm, LayerNorm, RMSNorm  # noqa: F401
from ndiv.nn.parameter import Buffer, Parameter  # noqa: F401
from ndiv.nn.rnn import GRU, LSTM, RNN, GRUCell, LSTMCell, RNNBase, RNNCell  # noqa: F401
from ndiv.nn.transformer import (  # noqa: F401
    TransformerDecoder, TransformerDecoderLayer, TransformerEncoder, TransformerEncoderLayer,
)

"""The forecasting models, one file each, on the shared BaseModel.

`MODELS` maps each model's name to its class (the CLI and Forecaster.load use it).
"""
from ndiv.models.base import BaseModel
from ndiv.models.mlp import MLP
from ndiv.models.dlinear import DLinear
from ndiv.models.nlinear import NLinear
from ndiv.models.nbeats import NBEATS
from ndiv.models.nhits import NHITS
from ndiv.models.patchtst import PatchTST
from ndiv.models.rnn import RNN
from ndiv.models.lstm import LSTM
from ndiv.models.gru import GRU
from ndiv.models.tcn import TCN
from ndiv.models.tide import TiDE
from ndiv.models.bitcn import BiTCN
from ndiv.models.deepnpts import DeepNPTS
from ndiv.models.nbeatsx import NBEATSx
from ndiv.models.timesnet import TimesNet

MODELS = {cls.__name__: cls for cls in (MLP, DLinear, NLinear, NBEATS, NHITS, RNN, LSTM, GRU, TCN, PatchTST, TiDE, BiTCN, DeepNPTS, NBEATSx)}
MODELS["TimesNet"] = TimesNet

__all__ = ["BaseModel", "MODELS", *MODELS]

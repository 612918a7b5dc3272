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
from ndiv.models.vanillatransformer import VanillaTransformer
from ndiv.models.informer import Informer
from ndiv.models.autoformer import Autoformer
from ndiv.models.fedformer import FEDformer
from ndiv.models.tft import TFT
from ndiv.models.timellm import TimeLLM
from ndiv.models.deepar import DeepAR
from ndiv.models.timesnet import TimesNet
# the multivariate models (MULTIVARIATE=True: n_series, a batch holds all series)
from ndiv.models.mlpmultivariate import MLPMultivariate
from ndiv.models.stemgnn import StemGNN
from ndiv.models.tsmixer import TSMixer
from ndiv.models.tsmixerx import TSMixerx
from ndiv.models.itransformer import iTransformer

MODELS = {cls.__name__: cls for cls in (
    MLP, DLinear, NLinear, NBEATS, NHITS, RNN, LSTM, GRU, TCN, PatchTST, TiDE, BiTCN, DeepNPTS, NBEATSx,
    VanillaTransformer, Informer, Autoformer, FEDformer, TFT, TimeLLM, DeepAR, TimesNet,
    MLPMultivariate, StemGNN, TSMixer, TSMixerx, iTransformer)}

__all__ = ["BaseModel", "MODELS", *MODELS]

"""Layers: TimeDistributed, ConvLSTM, Stateful and a from-scratch LSTM cell."""

from .convlstm import ConvLSTM, ConvLSTMCell
from .lstm import LSTM, LSTMCell
from .stateful import Stateful
from .time_distributed import TimeDistributed

__all__ = ["ConvLSTM", "ConvLSTMCell", "LSTM", "LSTMCell", "Stateful", "TimeDistributed"]

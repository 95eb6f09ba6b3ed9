"""Layers: TimeDistributed, ConvLSTM, Stateful and a from-scratch LSTM cell."""

from torch import nn

from .convlstm import ConvLSTM, ConvLSTMCell
from .lstm import LSTM, LSTMCell
from .stateful import Stateful
from .time_distributed import TimeDistributed

__all__ = ["ConvLSTM", "ConvLSTMCell", "LSTM", "LSTMCell", "RECURRENT_TYPES", "Stateful",
           "TimeDistributed"]

# Every recurrent layer and cell, torch's and ours: what the trainer's recurrent-only weight
# decay selects, and what the app probes for the hidden state.
RECURRENT_TYPES: tuple[type[nn.Module], ...] = (
    nn.RNNBase, nn.LSTMCell, nn.GRUCell, nn.RNNCell, ConvLSTM, ConvLSTMCell, LSTM, LSTMCell,
)

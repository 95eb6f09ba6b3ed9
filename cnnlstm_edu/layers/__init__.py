"""Layers: TimeDistributed, ConvLSTM (and its cell), Stateful and a from-scratch LSTM, one family per file.

- :mod:`.time_distributed`: one module applied to every time step (fold or loop);
- :mod:`.convlstm` the sequence layer, :mod:`.convlstm_cell` the single step, :mod:`.conv_ops` the
  arithmetic both share, :mod:`.keras_convlstm` the mapping of Keras ``ConvLSTM2D`` weights;
- :mod:`.lstm`: an LSTM written out gate by gate; :mod:`.state`: the check of a state handed in;
- :mod:`.stateful`: a recurrent layer or cell that keeps its state between calls (streaming).
"""

from ..axes import recurrent_types
from .convlstm import ConvLSTM, ConvLSTMCell
from .lstm import LSTM, LSTMCell
from .stateful import Stateful
from .time_distributed import TimeDistributed

__all__ = ["ConvLSTM", "ConvLSTMCell", "LSTM", "LSTMCell", "RECURRENT_TYPES", "Stateful",
           "TimeDistributed"]

# Every recurrent layer and cell, torch's and ours: what the trainer's recurrent-only weight
# decay selects, and what the app probes for the hidden state. Defined once, in cnnlstm_edu.axes.
RECURRENT_TYPES: tuple[type, ...] = recurrent_types()

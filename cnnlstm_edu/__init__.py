"""cnnlstm_edu: see a per-frame CNN meet a recurrent layer, in PyTorch.

>>> import torch
>>> from cnnlstm_edu import fold_time, unfold_time
>>> x = torch.randn(2, 4, 1, 14, 14)          # (B, T, C, H, W)
>>> fold_time(x).shape                        # (B*T, C, H, W)
torch.Size([8, 1, 14, 14])
"""

__version__ = "0.1.0"

from .checkpoint import load_checkpoint, save_checkpoint
from .explain import explain, explain_shapes
from .layers import ConvLSTM, Stateful, TimeDistributed
from .shapes import ShapeError, flatten_spatial, fold_time, unfold_time
from .trace import ShapeTrace, trace_shapes

__all__ = [
    "ConvLSTM", "ShapeError", "ShapeTrace", "Stateful", "TimeDistributed", "explain", "explain_shapes",
    "flatten_spatial", "fold_time", "load_checkpoint", "save_checkpoint", "trace_shapes", "unfold_time",
]

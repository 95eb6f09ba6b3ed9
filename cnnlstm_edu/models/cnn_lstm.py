"""CNNLSTM: a CNN reads each frame, an LSTM reads the sequence of frame features.

The classic architecture of seeds 000, 002 and 004 (Donahue et al. 2015, "Long-term Recurrent
Convolutional Networks"): the same CNN, one set of weights, turns every frame into a feature
vector; an ``nn.LSTM`` reads those vectors in order; a linear classifier reads the LSTM's
hidden state. On MNIST quadrants (seed 004) the "video" is a digit seen one 14x14 quarter at a
time, and the classifier applied after every step shows what the model believes after 1, 2, 3
and 4 quarters.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..layers.time_distributed import TimeDistributed
from ..shapes import check_float, check_shape
from .encoders import FrameCNN

__all__ = ["CNNLSTM", "CNNLSTMConfig"]


@dataclass
class CNNLSTMConfig:
    in_channels: int = 1                 # C: channels of one frame (1 for MNIST)
    frame_size: int = 14                 # H = W of one frame (a quadrant of a 28x28 digit)
    channels: tuple[int, ...] = (16, 32)  # widths of the conv blocks; each block halves H and W
    hidden_size: int = 128               # LSTM hidden units
    num_layers: int = 1                  # stacked LSTM layers
    num_classes: int = 10                # digits 0-9
    dropout: float = 0.0                 # on the LSTM's input and output, and between stacked layers
    td_mode: str = "fold"                # TimeDistributed mode: "fold" (fast) or "loop"


class CNNLSTM(nn.Module):
    """``(B, T, C, H, W)`` frames -> class logits ``(B, num_classes)``.

    >>> model = CNNLSTM(CNNLSTMConfig())
    >>> x = torch.randn(2, 4, 1, 14, 14)        # (B, T, C, H, W): 4 quadrants of 2 digits
    >>> model(x).shape                          # logits after the last step
    torch.Size([2, 10])
    >>> model(x, all_steps=True).shape          # logits after every step: (B, T, classes)
    torch.Size([2, 4, 10])
    """

    def __init__(self, config: CNNLSTMConfig | None = None, **overrides) -> None:
        super().__init__()
        config = config or CNNLSTMConfig()
        if overrides:
            config = CNNLSTMConfig(**{**asdict(config), **overrides})
        self.config = config
        if isinstance(config.num_classes, bool) or not isinstance(config.num_classes, int) or config.num_classes < 1:
            raise ValueError(f"CNNLSTM: num_classes must be a positive int, got {config.num_classes!r}")
        cnn = FrameCNN(config.in_channels, config.channels, config.frame_size, flatten=True)
        self.encoder = TimeDistributed(cnn, mode=config.td_mode)
        (feature_size,) = cnn.out_shape
        self.lstm = nn.LSTM(feature_size, config.hidden_size, num_layers=config.num_layers,
                            batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        c = self.config
        check_shape(x, "B T C H W", what="CNNLSTM input", C=c.in_channels, H=c.frame_size,
                    W=c.frame_size,
                    hint="Quadrant sequences come from quadrant_sequences(images): (N, 4, 1, 14, 14).")
        check_float(x, "CNNLSTM input")
        feats = self.encoder(x)                # (B, T, F): fold -> CNN -> unfold
        seq, _ = self.lstm(self.dropout(feats))  # (B, T, hidden): h_t at every step
        if not all_steps:
            seq = seq[:, -1]                   # (B, hidden): the state after the whole sequence
        return self.classifier(self.dropout(seq))  # (B, classes) or (B, T, classes)

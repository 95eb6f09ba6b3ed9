"""CNNLSTM: a CNN reads each frame, an LSTM reads the sequence of frame features.

The classic architecture of seeds 000, 002 and 004 (Donahue et al. 2015, "Long-term Recurrent
Convolutional Networks"): the same CNN, one set of weights, turns every frame into a feature
vector; an ``nn.LSTM`` reads those vectors in order; a linear classifier reads the LSTM's
hidden state. On MNIST quadrants (seed 004) the "video" is a digit seen one 14x14 quarter at a
time, and the classifier applied after every step shows what the model believes after 1, 2, 3
and 4 quarters.

Issue 16 adds what real clips need. ``encoder`` picks the frame CNN: trained from scratch, the
shipped MNIST-pretrained one (:mod:`.pretrained`), or a torchvision backbone; ``trainable=False``
freezes it (seed 002's Keras ``trainable``). ``forward(x, lengths=...)`` reads clips of
different lengths, padded to one T: ``pack_padded_sequence`` makes the LSTM stop at each clip's
own last frame, so the padding can't change the answer (without it, the LSTM reads the black
padding frames too, and its last state is about them).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from ..layers.time_distributed import TimeDistributed
from ..shapes import check_float, check_shape
from .encoders import BACKBONES, FrameCNN, TorchvisionBackbone
from .pretrained import MNIST_CHANNELS, mnist_frame_cnn

__all__ = ["CNNLSTM", "CNNLSTMConfig"]


@dataclass
class CNNLSTMConfig:
    in_channels: int = 1                 # C: channels of one frame (1 for MNIST)
    frame_size: int | tuple[int, int] = 14  # H = W of one frame (a quadrant of a 28x28 digit), or (H, W)
    channels: tuple[int, ...] = (16, 32)  # widths of the conv blocks; each block halves H and W
    hidden_size: int = 128               # LSTM hidden units
    num_layers: int = 1                  # stacked LSTM layers
    num_classes: int = 10                # digits 0-9
    dropout: float = 0.0                 # on the LSTM's input and output, and between stacked layers
    td_mode: str = "fold"                # TimeDistributed mode: "fold" (fast) or "loop"
    encoder: str = "scratch"             # frame CNN: "scratch", "mnist" (shipped, pretrained) or a torchvision name
    trainable: bool = True               # False freezes the frame CNN (seed 002's Keras `trainable`)


class CNNLSTM(nn.Module):
    """``(B, T, C, H, W)`` frames -> class logits ``(B, num_classes)``.

    >>> model = CNNLSTM(CNNLSTMConfig())
    >>> x = torch.randn(2, 4, 1, 14, 14)        # (B, T, C, H, W): 4 quadrants of 2 digits
    >>> model(x).shape                          # logits after the last step
    torch.Size([2, 10])
    >>> model(x, all_steps=True).shape          # logits after every step: (B, T, classes)
    torch.Size([2, 4, 10])
    """

    def __init__(self, config: CNNLSTMConfig | None = None, *, weights=None, **overrides) -> None:
        super().__init__()
        config = config or CNNLSTMConfig()
        if overrides:
            config = CNNLSTMConfig(**{**asdict(config), **overrides})
        self.config = config
        if isinstance(config.num_classes, bool) or not isinstance(config.num_classes, int) or config.num_classes < 1:
            raise ValueError(f"CNNLSTM: num_classes must be a positive int, got {config.num_classes!r}")
        if not isinstance(config.trainable, bool):
            raise ValueError(f"CNNLSTM: trainable must be True or False, got {config.trainable!r}")
        cnn, feature_size = _frame_encoder(config, weights)
        self.encoder = TimeDistributed(cnn, mode=config.td_mode)
        self.lstm = nn.LSTM(feature_size, config.hidden_size, num_layers=config.num_layers,
                            batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_size, config.num_classes)
        if not config.trainable:
            self.encoder.requires_grad_(False)
            self.encoder.eval()

    def train(self, mode: bool = True) -> CNNLSTM:
        # A frozen frame CNN stays in eval mode while the rest trains: its BatchNorm keeps the
        # statistics it was trained with, as a frozen Keras layer runs in inference mode.
        super().train(mode)
        if not self.config.trainable:
            self.encoder.eval()
        return self

    def forward(self, x: torch.Tensor, all_steps: bool = False,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        c = self.config
        H, W = _frame_hw(c.frame_size)
        check_shape(x, "B T C H W", what="CNNLSTM input", C=c.in_channels, H=H, W=W,
                    hint="Quadrant sequences come from quadrant_sequences(images): (N, 4, 1, 14, 14).")
        check_float(x, "CNNLSTM input")
        feats = self.encoder(x)                # (B, T, F): fold -> CNN -> unfold
        return self.classify_features(feats, all_steps=all_steps, lengths=lengths)

    def classify_features(self, feats: torch.Tensor, all_steps: bool = False,
                          lengths: torch.Tensor | None = None) -> torch.Tensor:
        """The part after the frame CNN: features ``(B, T, F)`` -> logits (see ``FeatureHead``).

        ``lengths`` ``(B,)`` gives each clip's real frames (the rest of T is padding): the LSTM
        then reads a packed sequence and stops at each clip's own last frame. With
        ``all_steps``, the steps past a clip's end repeat its last belief.
        """
        if lengths is None:
            seq, _ = self.lstm(self.dropout(feats))  # (B, T, hidden): h_t at every step
            if not all_steps:
                seq = seq[:, -1]               # (B, hidden): the state after the whole sequence
            return self.classifier(self.dropout(seq))  # (B, classes) or (B, T, classes)
        B, T = feats.shape[:2]
        lengths = _check_lengths(lengths, B, T)
        packed = pack_padded_sequence(self.dropout(feats), lengths, batch_first=True, enforce_sorted=False)
        out, (h_n, _) = self.lstm(packed)      # h_n: (layers, B, hidden), after each clip's last real frame
        if not all_steps:
            return self.classifier(self.dropout(h_n[-1]))  # (B, classes)
        seq, _ = pad_packed_sequence(out, batch_first=True, total_length=T)  # (B, T, hidden), zeros past the end
        last = seq[torch.arange(B), lengths - 1]                              # (B, hidden)
        past = torch.arange(T)[None, :] >= lengths[:, None]                   # (B, T): padding steps
        seq = torch.where(past.to(seq.device)[..., None], last[:, None], seq)  # (B, T, hidden)
        return self.classifier(self.dropout(seq))  # (B, T, classes)


def _frame_hw(frame_size) -> tuple[int, int]:
    return (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)


def _check_lengths(lengths: torch.Tensor, B: int, T: int) -> torch.Tensor:
    """``lengths`` as int64 on the CPU (where pack_padded_sequence wants them), each in 1..T."""
    lengths = torch.as_tensor(lengths).cpu()
    if lengths.shape != (B,) or lengths.is_floating_point() or lengths.dtype == torch.bool:
        raise ValueError(f"CNNLSTM: lengths must be B={B} whole numbers of shape ({B},), got "
                         f"{lengths.dtype} of shape {tuple(lengths.shape)}")
    if B and (int(lengths.min()) < 1 or int(lengths.max()) > T):
        raise ValueError(f"CNNLSTM: lengths must lie in 1..T={T} (real frames per clip), got "
                         f"{int(lengths.min())} to {int(lengths.max())}")
    return lengths.long()


def _frame_encoder(config: CNNLSTMConfig, weights) -> tuple[nn.Module, int]:
    """The frame CNN named by ``config.encoder`` and the size of its feature vector."""
    name = config.encoder
    if name in ("scratch", "mnist"):
        if name == "mnist" and tuple(config.channels) != MNIST_CHANNELS:
            raise ValueError(f"CNNLSTM: encoder='mnist' is the shipped CNN with channels={MNIST_CHANNELS}; "
                             f"got channels={tuple(config.channels)}. Drop channels=, or use encoder='scratch'")
        if weights is not None:
            raise ValueError(f"CNNLSTM: weights= is for torchvision encoders, not encoder={name!r}")
        cnn = FrameCNN(config.in_channels, config.channels, config.frame_size, flatten=True)
        if name == "mnist" and not next(cnn.parameters()).is_meta:    # a meta skeleton holds no values
            cnn.load_state_dict(mnist_frame_cnn(config.in_channels, config.frame_size).state_dict())
        (feature_size,) = cnn.out_shape
        return cnn, feature_size
    if name not in BACKBONES:
        raise ValueError(f"CNNLSTM: unknown encoder {name!r}; choose 'scratch', 'mnist' or one of "
                         f"{sorted(BACKBONES)}")
    if config.in_channels != 3:
        raise ValueError(f"CNNLSTM: the torchvision encoder {name!r} reads RGB frames; got "
                         f"in_channels={config.in_channels}. Read the clips with channels=3")
    backbone = TorchvisionBackbone(name, weights=weights)
    # Global average pooling, as Keras' video example uses InceptionV3(pooling="avg"): one
    # vector per frame, whatever the frame size.
    cnn = nn.Sequential(backbone, nn.AdaptiveAvgPool2d(1), nn.Flatten())   # (N, 3, H, W) -> (N, C')
    return cnn, backbone.out_channels

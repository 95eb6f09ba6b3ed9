"""CNNConvLSTM: a CNN keeps each frame's feature *map*; a ConvLSTM runs over time on that map.

Seed 002's second architecture. A CNN-LSTM flattens every frame's map ``(C, H, W)`` into one
vector before the LSTM, and the LSTM's gates are dense layers over that vector. A ConvLSTM
(Shi et al. 2015) keeps the grid: its gates are convolutions, so each position of the hidden
state looks only at its neighbourhood, and the gate weights are shared across positions.
That is why it needs far fewer parameters for the same map; :func:`recurrent_parameters`
writes the two counts out as formulas.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..layers.convlstm import ConvLSTM
from ..layers.time_distributed import TimeDistributed
from ..modes import eval_mode
from ..shapes import check_float, check_shape
from .encoders import FrameCNN, TorchvisionBackbone

__all__ = ["CNNConvLSTM", "CNNConvLSTMConfig", "recurrent_parameters", "count_parameters"]


@dataclass
class CNNConvLSTMConfig:
    in_channels: int = 1                  # C: channels of one frame (1 for MNIST)
    frame_size: int = 14                  # H = W of one frame (a quadrant of a 28x28 digit)
    channels: tuple[int, ...] = (16, 32)  # widths of the conv blocks; each block halves H and W
    hidden_channels: int = 32             # F: channels of the ConvLSTM's h and c
    kernel_size: int = 3                  # the ConvLSTM's gate convolutions
    num_layers: int = 1                   # stacked ConvLSTM layers
    num_classes: int = 10                 # digits 0-9
    dropout: float = 0.0                  # on the ConvLSTM's input and output, and between layers
    td_mode: str = "fold"                 # TimeDistributed mode: "fold" (fast) or "loop"
    backbone: str | None = None           # a torchvision CNN per frame instead ("mobilenet_v3_small",
                                          # "resnet18": seed 002); then frames are RGB and `channels` unused


class CNNConvLSTM(nn.Module):
    """``(B, T, C, H, W)`` frames -> class logits ``(B, num_classes)``, through a ConvLSTM.

    >>> model = CNNConvLSTM(CNNConvLSTMConfig())
    >>> x = torch.randn(2, 4, 1, 14, 14)       # (B, T, C, H, W)
    >>> model(x).shape                         # logits after the last step
    torch.Size([2, 10])
    >>> model(x, all_steps=True).shape         # logits after every step
    torch.Size([2, 4, 10])

    Seed 002's action-recognition model, an ImageNet MobileNet on every RGB frame:

    >>> video = CNNConvLSTM(backbone="mobilenet_v3_small", in_channels=3, frame_size=64,
    ...                     hidden_channels=64, num_classes=5)
    >>> video(torch.randn(1, 8, 3, 64, 64)).shape   # (B, T, 3, H, W) -> (B, classes)
    torch.Size([1, 5])

    ``backbone_weights`` (e.g. ``"DEFAULT"``) loads torchvision's pretrained weights; it is not
    part of the config because a saved checkpoint already holds the weights.
    """

    def __init__(self, config: CNNConvLSTMConfig | None = None, backbone_weights=None, **overrides) -> None:
        super().__init__()
        config = config or CNNConvLSTMConfig()
        if overrides:
            config = CNNConvLSTMConfig(**{**asdict(config), **overrides})
        self.config = config
        if isinstance(config.num_classes, bool) or not isinstance(config.num_classes, int) or config.num_classes < 1:
            raise ValueError(f"CNNConvLSTM: num_classes must be a positive int, got {config.num_classes!r}")
        if config.backbone is None:
            cnn = FrameCNN(config.in_channels, config.channels, config.frame_size, flatten=False)
            C, H, W = cnn.out_shape
        else:
            if config.in_channels != 3:
                raise ValueError(f"CNNConvLSTM: backbone {config.backbone!r} reads RGB frames, so "
                                 f"in_channels must be 3, got {config.in_channels}")
            cnn = TorchvisionBackbone(config.backbone, weights=backbone_weights)
            C, H, W = _map_shape(cnn, config.frame_size)
        self.encoder = TimeDistributed(cnn, mode=config.td_mode)
        self.convlstm = ConvLSTM(C, config.hidden_channels, config.kernel_size,
                                 num_layers=config.num_layers,
                                 dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(config.hidden_channels * H * W, config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        c = self.config
        check_shape(x, "B T C H W", what="CNNConvLSTM input", C=c.in_channels, H=c.frame_size,
                    W=c.frame_size,
                    hint="Quadrant sequences come from quadrant_sequences(images): (N, 4, 1, 14, 14).")
        check_float(x, "CNNConvLSTM input")
        maps = self.encoder(x)                  # (B, T, C', H', W'): one map per frame
        seq, _ = self.convlstm(self.dropout(maps))  # (B, T, F, H', W'): h_t at every step, still a map
        if not all_steps:
            seq = seq[:, -1]                    # (B, F, H', W'): the state after the whole sequence
        feats = seq.flatten(-3)                 # (B, F*H'*W') or (B, T, F*H'*W')
        return self.classifier(self.dropout(feats))


@torch.no_grad()
def _map_shape(cnn: nn.Module, frame_size: int) -> tuple[int, int, int]:
    """(C', H', W') of ``cnn``'s output for one frame, found by running it once on zeros."""
    with eval_mode(cnn):                        # BatchNorm cannot train on a single frame
        C, H, W = cnn(torch.zeros(1, 3, frame_size, frame_size)).shape[1:]
    return C, H, W


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters.

    >>> count_parameters(nn.Linear(3, 2))      # 3*2 weights + 2 biases
    8
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def recurrent_parameters(channels: int, height: int, width: int, hidden: int,
                         kernel_size: int | tuple[int, int] = 3) -> dict[str, int]:
    """Parameters of the recurrent layer that reads a ``(C, H, W)`` feature map, two ways.

    - ``"lstm"``: ``nn.LSTM(C*H*W, hidden)`` on the flattened map (the CNN-LSTM). Each of its 4
      gates has a dense weight from every input value and from every hidden unit, plus two
      biases (PyTorch keeps ``bias_ih`` and ``bias_hh``): ``4 * (C*H*W*hidden + hidden**2 + 2*hidden)``.
    - ``"convlstm"``: ``ConvLSTM(C, hidden, k)`` on the map itself (the CNN-ConvLSTM). Each gate
      has a ``kh x kw`` kernel from every input and hidden *channel*, shared by all H*W
      positions: ``4 * (hidden*C*kh*kw + hidden*hidden*kh*kw + 2*hidden)``. H and W do not appear.

    Seed 002's model, MobileNet's 7x7x1024 map into 256 units:

    >>> counts = recurrent_parameters(1024, 7, 7, hidden=256)
    >>> counts["lstm"], counts["convlstm"]
    (51644416, 11798528)
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    flat = channels * height * width
    return {
        "lstm": 4 * (flat * hidden + hidden * hidden + 2 * hidden),
        "convlstm": 4 * (hidden * channels * kh * kw + hidden * hidden * kh * kw + 2 * hidden),
    }

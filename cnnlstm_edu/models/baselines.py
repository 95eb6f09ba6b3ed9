"""Baselines for the CNN-LSTM: what does the recurrence buy, and what would do without it? (issue 15)

Each model has the call contract of :class:`~cnnlstm_edu.models.CNNLSTM`: ``(B, T, C, H, W)``
float frames -> class logits ``(B, num_classes)``, so ``train.fit``, ``train.predict`` and the
CLI treat them alike. The per-frame CNN is the same :class:`~.encoders.FrameCNN` the CNN-LSTM
uses, so a comparison changes one thing at a time.

- :class:`FrameAverage`: the per-frame CNN, its features averaged over time, a classifier.
  Order-blind by construction, like Keras' ``TimeDistributed`` + ``GlobalAveragePooling1D``:
  shuffling or reversing the frames changes nothing (the tests prove it exactly).
- :class:`LastFrame`: the CNN on the last frame alone; the other frames are never read.
- :class:`Conv3D`: a small 3-D CNN over ``(C, T, H, W)``, the usual alternative for video
  (C3D, Tran et al. 2015): its kernels span 3 frames, so it sees motion, but only locally.
- :class:`WholeImage`: a CNN on the full 28x28 digit that MNIST quadrant sequences were cut
  from. For quadrants only (elsewhere there is no whole image): the non-sequential upper bound.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from ..checks import check_number
from ..data.quadrants import tile_quadrants
from ..layers.time_distributed import TimeDistributed
from ..shapes import check_float, check_shape
from .encoders import FrameCNN

__all__ = ["PerFrameConfig", "FrameAverage", "LastFrame", "Conv3DConfig", "Conv3D",
           "WholeImageConfig", "WholeImage"]


@dataclass
class PerFrameConfig:
    in_channels: int = 1                  # C: channels of one frame (1 for MNIST)
    frame_size: int = 14                  # H = W of one frame (a quadrant of a 28x28 digit)
    channels: tuple[int, ...] = (16, 32)  # widths of the conv blocks; each block halves H and W
    num_classes: int = 10                 # digits 0-9 (8 for direction)
    dropout: float = 0.0                  # before the classifier


def _configure(cls, config, overrides: dict, owner: str):
    """The config, with keyword overrides applied, and num_classes checked."""
    config = config or cls()
    if overrides:
        config = cls(**{**asdict(config), **overrides})
    check_number(config.num_classes, "num_classes", integer=True, low=1, owner=owner)
    return config


def _check_frames(x: torch.Tensor, config, what: str) -> None:
    check_shape(x, "B T C H W", what=what, C=config.in_channels, H=config.frame_size,
                W=config.frame_size, hint=f"Build the model with frame_size={x.shape[-1]} for "
                "these clips." if x.dim() == 5 and x.shape[-1] == x.shape[-2] else "")
    check_float(x, what)


class FrameAverage(nn.Module):
    """Per-frame CNN features, averaged over time, then a classifier: order-blind.

    ``all_steps=True`` gives the belief after each step t: the average of frames 0..t,
    classified (exactly what the model says about the first t+1 frames alone).

    >>> model = FrameAverage(PerFrameConfig())
    >>> x = torch.randn(2, 4, 1, 14, 14)            # (B, T, C, H, W)
    >>> model(x).shape                              # (B, classes)
    torch.Size([2, 10])
    >>> model(x, all_steps=True).shape              # (B, T, classes)
    torch.Size([2, 4, 10])
    """

    def __init__(self, config: PerFrameConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = _configure(PerFrameConfig, config, overrides, "FrameAverage")
        cnn = FrameCNN(config.in_channels, config.channels, config.frame_size, flatten=True)
        self.encoder = TimeDistributed(cnn)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(cnn.out_shape[0], config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        _check_frames(x, self.config, "FrameAverage input")
        T = x.shape[1]
        feats = self.encoder(x)                                 # (B, T, F)
        if all_steps:
            counts = torch.arange(1, T + 1, device=x.device, dtype=feats.dtype).view(1, T, 1)
            pooled = feats.cumsum(1) / counts                   # (B, T, F): mean of frames 0..t
        else:
            pooled = feats.mean(1)                              # (B, F): the order is gone here
        return self.classifier(self.dropout(pooled))            # (B, [T,] classes)


class LastFrame(nn.Module):
    """The per-frame CNN on the last frame alone, then a classifier.

    ``all_steps=True`` classifies every frame on its own: the belief after step t is what
    frame t shows.

    >>> model = LastFrame(PerFrameConfig())
    >>> model(torch.randn(2, 4, 1, 14, 14)).shape   # (B, T, C, H, W) -> (B, classes)
    torch.Size([2, 10])
    """

    def __init__(self, config: PerFrameConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = _configure(PerFrameConfig, config, overrides, "LastFrame")
        self.cnn = FrameCNN(config.in_channels, config.channels, config.frame_size, flatten=True)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.cnn.out_shape[0], config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        _check_frames(x, self.config, "LastFrame input")
        if all_steps:
            feats = TimeDistributed(self.cnn)(x)                # (B, T, F): every frame alone
        else:
            feats = self.cnn(x[:, -1])                          # (B, F): frames 0..T-2 never read
        return self.classifier(self.dropout(feats))             # (B, [T,] classes)


@dataclass
class Conv3DConfig:
    in_channels: int = 1                  # C: channels of one frame
    frame_size: int = 14                  # H = W of one frame
    channels: tuple[int, ...] = (16, 32)  # widths of the 3-D conv blocks; each halves H and W, keeps T
    num_classes: int = 10                 # digits 0-9 (8 for direction)
    dropout: float = 0.0                  # before the classifier


def conv3d_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 3x3x3 over (T, H, W) -> MaxPool (1, 2, 2) -> BatchNorm -> ReLU: keeps T, halves H and W.

    >>> conv3d_block(1, 16)(torch.zeros(2, 1, 4, 14, 14)).shape   # (B, C, T, H, W)
    torch.Size([2, 16, 4, 7, 7])
    """
    return nn.Sequential(
        nn.Conv3d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.MaxPool3d((1, 2, 2)),
        nn.BatchNorm3d(out_channels),
        nn.ReLU(inplace=True),
    )


class Conv3D(nn.Module):
    """A small 3-D CNN: kernels over time as well as space, averaged over time, then a classifier.

    Each block's kernel spans 3 frames, so two blocks see motion over 5 frames; what happens
    further apart in time is averaged away. ``all_steps=True`` runs the model on the first
    1, 2, ..., T frames (T calls: a 3-D CNN has no state to carry from one step to the next).

    >>> model = Conv3D(Conv3DConfig())
    >>> model(torch.randn(2, 4, 1, 14, 14)).shape   # (B, T, C, H, W) -> (B, classes)
    torch.Size([2, 10])
    """

    def __init__(self, config: Conv3DConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = _configure(Conv3DConfig, config, overrides, "Conv3D")
        # FrameCNN checks the sizes and tells the spatial shape the blocks leave behind.
        C_out, H, W = FrameCNN(config.in_channels, config.channels, config.frame_size).feature_map_shape
        widths = (config.in_channels,) + tuple(config.channels)
        self.blocks = nn.Sequential(*[conv3d_block(a, b) for a, b in zip(widths, widths[1:])])
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(C_out * H * W, config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        _check_frames(x, self.config, "Conv3D input")
        if all_steps:
            T = x.shape[1]
            return torch.stack([self(x[:, :t]) for t in range(1, T + 1)], dim=1)  # (B, T, classes)
        video = x.transpose(1, 2)                               # (B, C, T, H, W): Conv3d's layout
        maps = self.blocks(video)                               # (B, C', T, H', W')
        pooled = maps.mean(2).flatten(1)                        # (B, C'*H'*W')
        return self.classifier(self.dropout(pooled))            # (B, classes)


@dataclass
class WholeImageConfig:
    channels: tuple[int, ...] = (16, 32)  # widths of the conv blocks; each block halves H and W
    num_classes: int = 10                 # digits 0-9
    order: str = "1234"                   # the quadrant order of the sequences it is given
    dropout: float = 0.0                  # before the classifier


class WholeImage(nn.Module):
    """MNIST quadrant sequences tiled back into the 28x28 digit, then a plain CNN on it.

    It takes the same input as the sequence models, ``(B, 4, 1, 14, 14)`` from
    ``quadrant_sequences(images, order)``, and refuses anything else: on other tasks there is
    no whole image to put back together.

    >>> model = WholeImage(WholeImageConfig())
    >>> model(torch.randn(2, 4, 1, 14, 14)).shape   # (B, T=4, C, H, W) -> (B, classes)
    torch.Size([2, 10])
    """

    def __init__(self, config: WholeImageConfig | None = None, **overrides) -> None:
        super().__init__()
        self.config = config = _configure(WholeImageConfig, config, overrides, "WholeImage")
        tile_quadrants(torch.zeros(1, 4, 1, 14, 14), order=config.order)   # checks the order now
        self.cnn = FrameCNN(1, config.channels, 28, flatten=True)
        self.dropout = nn.Dropout(config.dropout)
        self.classifier = nn.Linear(self.cnn.out_shape[0], config.num_classes)

    def forward(self, x: torch.Tensor, all_steps: bool = False) -> torch.Tensor:
        if all_steps:
            raise ValueError("WholeImage sees the whole digit at once, so it has no belief after "
                             "each step; all_steps=True is for the sequence models")
        check_shape(x, "B T C H W", what="WholeImage input", T=4, C=1, H=14, W=14,
                    hint="whole_image is for MNIST quadrants only: it tiles the 4 quadrants of "
                         "quadrant_sequences(images) back into the 28x28 digit. Other tasks "
                         "(direction, track) have no whole image; use frame_average, last_frame "
                         "or conv3d as their baselines.")
        check_float(x, "WholeImage input")
        image = tile_quadrants(x, order=self.config.order)     # (B, 28, 28)
        feats = self.cnn(image.unsqueeze(1))                    # (B, 1, 28, 28) -> (B, F)
        return self.classifier(self.dropout(feats))             # (B, classes)

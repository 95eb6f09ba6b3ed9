"""Frame encoders: the CNN that looks at one frame at a time.

A CNN-LSTM never shows its CNN a video. The CNN sees single frames ``(N, C, H, W)``;
``TimeDistributed`` feeds it all ``B*T`` frames of a batch at once. This file holds the small
CNNs the course trains from scratch on 14x14 MNIST quadrants, and torchvision's ImageNet
models cut down to feature extractors, as seed 002 uses a pretrained MobileNet per frame.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from ..shapes import check_float, check_shape

__all__ = ["BACKBONES", "FrameCNN", "TorchvisionBackbone", "conv_block"]


def conv_block(in_channels: int, out_channels: int) -> nn.Sequential:
    """Conv 3x3 -> MaxPool 2x2 -> BatchNorm -> ReLU: halves H and W (rounding down).

    BatchNorm is what lets these small CNNs take a large learning rate and learn in a few
    hundred steps; the conv has no bias because BatchNorm's shift replaces it. Pooling comes
    *before* BatchNorm and ReLU, not after: max-pooling commutes with ReLU and with any
    increasing per-channel map, so the result is nearly the same network, but the two
    elementwise layers then touch a quarter of the pixels (measured: a training step 1.7x
    faster on a 2-core CPU, with channels-last; see benchmarks/train_speed.md).

    >>> conv_block(1, 16)(torch.zeros(8, 1, 14, 14)).shape   # (N, C, H, W) -> (N, 16, 7, 7)
    torch.Size([8, 16, 7, 7])
    """
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel_size=3, padding=1, bias=False),
        nn.MaxPool2d(2),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class FrameCNN(nn.Module):
    """A stack of :func:`conv_block`, then (optionally) one flattened feature vector per frame.

    ``out_shape`` tells what one frame becomes, so the next layer can be sized without guessing:
    ``(C', H', W')`` for a feature map, or ``(C'*H'*W',)`` when ``flatten=True``.

    >>> cnn = FrameCNN(in_channels=1, channels=(16, 32), frame_size=14)
    >>> cnn.out_shape                     # 14 -> 7 -> 3 after two poolings; 32*3*3 = 288
    (288,)
    >>> cnn(torch.zeros(8, 1, 14, 14)).shape     # (N, C, H, W) -> (N, F)
    torch.Size([8, 288])
    >>> FrameCNN(1, (16, 32), 14, flatten=False).out_shape
    (32, 3, 3)
    """

    def __init__(self, in_channels: int = 1, channels: Sequence[int] = (16, 32),
                 frame_size: int | tuple[int, int] = 14, flatten: bool = True) -> None:
        super().__init__()
        channels = tuple(int(c) for c in channels)
        if in_channels < 1 or not channels or min(channels) < 1:
            raise ValueError(f"FrameCNN: in_channels and channels must be positive, got "
                             f"in_channels={in_channels}, channels={channels}")
        H, W = (frame_size, frame_size) if isinstance(frame_size, int) else tuple(frame_size)
        if min(H, W) < 2 ** len(channels):
            raise ValueError(
                f"FrameCNN: {len(channels)} blocks halve the frame {len(channels)} times, so "
                f"frames must be at least {2 ** len(channels)} pixels; got frame_size={(H, W)}"
            )
        self.in_channels = in_channels
        self.blocks = nn.Sequential(*[conv_block(c_in, c_out)
                                      for c_in, c_out in zip((in_channels,) + channels, channels)])
        for _ in channels:
            H, W = H // 2, W // 2
        self.feature_map_shape = (channels[-1], H, W)
        self.flatten = flatten
        self.out_shape = (channels[-1] * H * W,) if flatten else self.feature_map_shape

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        check_shape(frames, "N C H W", what="FrameCNN input", C=self.in_channels,
                    hint="A video (B, T, C, H, W) must be folded first: wrap the CNN in "
                         "TimeDistributed, or call fold_time(x).")
        check_float(frames, "FrameCNN input", like=self.blocks[0][0].weight)
        maps = self.blocks(frames)                 # (N, C', H', W')
        return maps.flatten(1) if self.flatten else maps  # (N, C'*H'*W') or (N, C', H', W')


# name -> (how to cut the classifier head off, channels of the map that remains)
BACKBONES = {
    "mobilenet_v3_small": (lambda m: m.features, lambda m: m.classifier[0].in_features),
    "mobilenet_v3_large": (lambda m: m.features, lambda m: m.classifier[0].in_features),
    "resnet18": (lambda m: nn.Sequential(*list(m.children())[:-2]), lambda m: m.fc.in_features),
    "resnet34": (lambda m: nn.Sequential(*list(m.children())[:-2]), lambda m: m.fc.in_features),
}


class TorchvisionBackbone(nn.Module):
    """An ImageNet CNN from torchvision without its pooling and classifier: frames -> feature maps.

    Seed 002 runs a pretrained MobileNet over every frame of a video with Keras'
    ``TimeDistributed``; this is the PyTorch piece for that. ``weights=None`` (the default)
    builds it untrained and needs no network. ``weights="DEFAULT"`` (or any torchvision weights
    enum) loads ImageNet weights from torchvision's cache, downloading them once if needed;
    with no network that fails fast with a clear error instead of hanging.

    >>> backbone = TorchvisionBackbone("mobilenet_v3_small")
    >>> backbone(torch.zeros(2, 3, 64, 64)).shape     # (N, 3, H, W) -> (N, 576, H/32, W/32)
    torch.Size([2, 576, 2, 2])
    >>> backbone.out_channels
    576
    """

    def __init__(self, name: str = "mobilenet_v3_small", weights=None, download_timeout: float = 20.0) -> None:
        super().__init__()
        if name not in BACKBONES:
            raise ValueError(f"TorchvisionBackbone: unknown backbone {name!r}; choose one of {sorted(BACKBONES)}")
        import torchvision

        model = _load_torchvision(torchvision.models.get_model, name, weights, download_timeout)
        cut, channels = BACKBONES[name]
        self.name = name
        self.out_channels = channels(model)
        self.features = cut(model)

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        check_shape(frames, "N C H W", what=f"{self.name} input", C=3,
                    hint="ImageNet backbones read RGB frames; a video (B, T, 3, H, W) must be "
                         "folded first: wrap the backbone in TimeDistributed.")
        return self.features(frames)           # (N, C', H/32, W/32)

    def extra_repr(self) -> str:
        return f"{self.name!r}, out_channels={self.out_channels}"


def _load_torchvision(get_model, name: str, weights, timeout: float) -> nn.Module:
    if weights is None:
        return get_model(name, weights=None)
    import socket
    import urllib.error

    # torchvision's download has no timeout of its own: on a network that drops packets it would
    # wait forever. A default socket timeout, only while loading, turns that into an error.
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        return get_model(name, weights=weights)
    except (urllib.error.URLError, OSError, ConnectionError) as e:
        raise RuntimeError(
            f"could not load pretrained {name} weights ({weights}): {e}. They come from the "
            "internet the first time and are cached under $TORCH_HOME/hub/checkpoints. With no "
            "network, use weights=None (an untrained backbone), or copy the weight file into "
            "that folder on a machine that has one."
        ) from e
    finally:
        socket.setdefaulttimeout(previous)

"""A frame CNN pretrained on single MNIST digits, shipped with the package, and frozen features.

Seed 002 builds its CNN-LSTM on a pretrained ImageNet CNN and chooses, with Keras' ``trainable``,
whether that CNN keeps learning (fine-tuned) or stays as it is (frozen). Keras' CNN-RNN video
example goes further with a frozen InceptionV3: it computes each frame's features *once*, then
trains only the recurrent part on them. ImageNet weights need a download; this file gives the
same comparison offline:

- :class:`DigitClassifier` is the course's :class:`~.encoders.FrameCNN` (two conv blocks, 16 and
  32 channels, the CNN-LSTM's default) plus a linear layer, trained on single 28x28 MNIST
  digits by ``scripts/train_frame_encoder.py``. Its weights ship as
  ``cnnlstm_edu/weights/mnist_frame_cnn.safetensors`` (provenance in ``weights/README.md``).
- :func:`mnist_frame_cnn` returns that FrameCNN with its pretrained weights, for any frame
  size (convolutions don't care) and 1 or 3 channels.
- :func:`frame_features` runs a model's frame CNN over every frame once: ``(N, T, F)``;
  :class:`FeatureHead` is the rest of the same model (LSTM and classifier, weights shared), so
  ``fit(FeatureHead(model), (features, y))`` trains a frozen CNN-LSTM at the cost of its LSTM.

>>> cnn = mnist_frame_cnn(in_channels=1, frame_size=32)
>>> cnn(torch.zeros(2, 1, 32, 32)).shape       # (N, C, H, W) -> (N, 32*8*8)
torch.Size([2, 2048])
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

import torch
from torch import nn

from ..modes import eval_mode
from ..shapes import check_shape
from .encoders import FrameCNN

__all__ = ["DigitClassifier", "FeatureHead", "MNIST_CHANNELS", "WEIGHTS_FILE", "frame_features",
           "load_digit_classifier", "mnist_frame_cnn"]

MNIST_CHANNELS = (16, 32)                      # the widths of the shipped frame CNN's two blocks
WEIGHTS_FILE = "mnist_frame_cnn.safetensors"


class DigitClassifier(nn.Module):
    """The shipped frame CNN with the head it was trained with: ``(N, 1, 28, 28)`` -> ``(N, 10)``.

    >>> DigitClassifier()(torch.zeros(4, 1, 28, 28)).shape
    torch.Size([4, 10])
    """

    def __init__(self) -> None:
        super().__init__()
        self.cnn = FrameCNN(1, MNIST_CHANNELS, 28, flatten=True)
        (features,) = self.cnn.out_shape                          # 32 * 7 * 7 = 1568
        self.head = nn.Linear(features, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.cnn(images))                         # (N, 1, 28, 28) -> (N, 10)


def _weights_path():
    return resources.files("cnnlstm_edu").joinpath("weights", WEIGHTS_FILE)


def load_digit_classifier() -> DigitClassifier:
    """The shipped :class:`DigitClassifier` (read from the package, no network)."""
    from safetensors.torch import load

    path = _weights_path()
    if not path.is_file():
        raise FileNotFoundError(f"the pretrained frame CNN {path} is missing from the package; "
                                "rebuild it with `python scripts/train_frame_encoder.py`")
    model = DigitClassifier()
    model.load_state_dict(load(path.read_bytes()))
    return model


def mnist_frame_cnn(in_channels: int = 1, frame_size: int | tuple[int, int] = 28) -> FrameCNN:
    """The pretrained frame CNN, sized for ``frame_size`` frames of ``in_channels`` channels.

    Colour frames (3 channels) get the grey filter divided by 3 on each channel, so a colour
    frame gives the features of its grey (mean) version: the trick timm uses to adapt
    pretrained first layers to another number of channels.
    """
    if in_channels not in (1, 3):
        raise ValueError(f"mnist_frame_cnn: in_channels must be 1 (grey) or 3 (colour), got {in_channels!r}")
    state = load_digit_classifier().cnn.state_dict()
    first = "blocks.0.0.weight"                                   # (16, 1, 3, 3)
    state[first] = state[first].repeat(1, in_channels, 1, 1) / in_channels   # (16, C, 3, 3)
    cnn = FrameCNN(in_channels, MNIST_CHANNELS, frame_size, flatten=True)
    cnn.load_state_dict(state)
    return cnn


@torch.no_grad()
def frame_features(model: nn.Module, clips: torch.Tensor, batch_size: int = 256,
                   cache_dir: str | os.PathLike | None = None) -> torch.Tensor:
    """Every frame of ``clips`` ``(N, T, C, H, W)`` through ``model.encoder`` once: float ``(N, T, F)``.

    In eval mode (BatchNorm uses its running statistics, as a frozen Keras layer does), on the
    model's device, in batches of clips; returned on the CPU. Train on them with :class:`FeatureHead`.
    With ``cache_dir``, the features are also kept there, keyed on the clips' bytes and the
    encoder's weights: the same clips through the same frozen CNN are computed once, ever.
    """
    from ..pixels import to_float

    check_shape(clips, "B T C H W", what="frame_features clips")
    path = _features_file(model, clips, cache_dir) if cache_dir is not None else None
    if path is not None and path.is_file():
        from safetensors.torch import load_file

        return load_file(str(path))["features"]
    device = next(model.parameters()).device
    out = []
    with eval_mode(model):
        for start in range(0, len(clips), batch_size):
            x = to_float(clips[start:start + batch_size].to(device))
            out.append(model.encoder(x).float().cpu())                 # (b, T, F)
    feats = torch.cat(out)                                             # (N, T, F)
    if path is not None:
        from safetensors.torch import save_file

        from ..atomic import atomic_path

        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp:
            save_file({"features": feats}, tmp)
    return feats


def _features_file(model: nn.Module, clips: torch.Tensor, cache_dir) -> Path:
    """``cache_dir/features-<key>.safetensors``, the key hashing the clips and the encoder's state."""
    digest = hashlib.sha256(str((tuple(clips.shape), str(clips.dtype))).encode())
    digest.update(clips.detach().cpu().contiguous().numpy().tobytes())
    for name, tensor in sorted(model.encoder.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return Path(cache_dir) / f"features-{digest.hexdigest()[:32]}.safetensors"


class FeatureHead(nn.Module):
    """A CNN-LSTM without its frame CNN: frame features ``(B, T, F)`` -> logits, weights shared.

    The LSTM and classifier *are* the model's (the same modules), so training this trains the
    model's recurrent part, and the whole model then classifies clips.

    >>> from cnnlstm_edu.models import CNNLSTM
    >>> model = CNNLSTM(frame_size=28, num_classes=3)
    >>> head = FeatureHead(model)
    >>> head.lstm is model.lstm
    True
    >>> head(torch.zeros(2, 5, 1568)).shape     # (B, T, F) -> (B, classes)
    torch.Size([2, 3])
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.config = model.config                 # fit reads num_classes from it
        self.lstm, self.dropout, self.classifier = model.lstm, model.dropout, model.classifier
        self._classify = type(model).classify_features

    def forward(self, feats: torch.Tensor, all_steps: bool = False,
                lengths: torch.Tensor | None = None) -> torch.Tensor:
        check_shape(feats, "B T F", what="FeatureHead input", F=self.lstm.input_size,
                    hint="Features come from frame_features(model, clips).")
        return self._classify(self, feats, all_steps=all_steps, lengths=lengths)

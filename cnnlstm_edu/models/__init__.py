"""Models, and a registry so the CLI, the app and checkpoints can build them by name."""

from __future__ import annotations

from dataclasses import asdict, fields

from torch import nn

from .baselines import (Conv3D, Conv3DConfig, FrameAverage, LastFrame, PerFrameConfig, WholeImage,
                        WholeImageConfig)
from .cnn_convlstm import CNNConvLSTM, CNNConvLSTMConfig, count_parameters, recurrent_parameters
from .cnn_lstm import CNNLSTM, CNNLSTMConfig
from .encoders import FrameCNN, TorchvisionBackbone
from .next_frame import NextFrame, NextFrameConfig, NextFrameObjective
from .pretrained import DigitClassifier, FeatureHead, frame_features, load_digit_classifier, mnist_frame_cnn
from .variable_length import MaskedClassification, with_lengths
from .tracker import Tracker, TrackerConfig, TrackingObjective

__all__ = [
    "CNNConvLSTM", "CNNConvLSTMConfig", "CNNLSTM", "CNNLSTMConfig", "Conv3D", "Conv3DConfig",
    "FrameAverage", "FrameCNN", "LastFrame", "MODELS", "NextFrame", "NextFrameConfig",
    "NextFrameObjective", "PerFrameConfig", "TorchvisionBackbone", "Tracker", "TrackerConfig",
    "TrackingObjective", "WholeImage", "WholeImageConfig", "build_model", "count_parameters",
    "model_config", "recurrent_parameters",
    # issue 16: the shipped MNIST frame CNN, frozen features, variable-length clips
    "DigitClassifier", "FeatureHead", "MaskedClassification", "frame_features", "load_digit_classifier",
    "mnist_frame_cnn", "with_lengths",
]

# name -> (model class, config dataclass); every model takes its config as first argument.
MODELS: dict[str, tuple[type[nn.Module], type]] = {
    "cnn_lstm": (CNNLSTM, CNNLSTMConfig),
    "cnn_convlstm": (CNNConvLSTM, CNNConvLSTMConfig),
    "next_frame": (NextFrame, NextFrameConfig),
    # issue 15: the baselines that show what the recurrence buys, and the Re3-style tracker
    "whole_image": (WholeImage, WholeImageConfig),
    "frame_average": (FrameAverage, PerFrameConfig),
    "last_frame": (LastFrame, PerFrameConfig),
    "conv3d": (Conv3D, Conv3DConfig),
    "tracker": (Tracker, TrackerConfig),
}


def build_model(name: str, **config) -> nn.Module:
    """Build a registered model from its name and config fields.

    >>> build_model("cnn_lstm", hidden_size=32).lstm.hidden_size
    32
    """
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    cls, config_cls = MODELS[name]
    known = {f.name for f in fields(config_cls)}
    unknown = set(config) - known
    if unknown:
        raise ValueError(f"{name}: unknown config field(s) {sorted(unknown)}; known: {sorted(known)}")
    # JSON turns tuples into lists; the dataclass fields want tuples back.
    config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
    return cls(config_cls(**config))


def model_config(model: nn.Module) -> tuple[str, dict]:
    """The registry name and config dict that rebuild ``model`` with :func:`build_model`."""
    for name, (cls, _) in MODELS.items():
        if type(model) is cls:
            return name, asdict(model.config)
    raise ValueError(f"{type(model).__name__} is not a registered model ({sorted(MODELS)})")

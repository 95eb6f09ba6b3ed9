"""``train --data FOLDER``: a classifier on a folder of your own clips, one sub-folder per class.

The folder is read by :func:`~cnnlstm_edu.data.video_folder` (decoded once, then from its cache
beside the data) and split by :meth:`~cnnlstm_edu.data.VideoClips.split` (the same clips held
out on every run). The model is sized for the clips (frame size, channels, one output per class).
``--backbone mnist`` starts ``cnn_lstm``'s frame CNN from the shipped MNIST weights, a torchvision
name from ImageNet weights already in torch's cache (never downloaded); ``--freeze`` keeps it as
it is, and then, as in Keras' CNN-RNN video example, every frame goes through it once
(:func:`~cnnlstm_edu.models.frame_features`) and only the LSTM and classifier train.

>>> from cnnlstm_edu.cli import build_parser
>>> check_clip_options(build_parser().parse_args(["train", "--freeze"]))
Traceback (most recent call last):
ValueError: --freeze sets how clips are read and learned: it needs --data FOLDER (a folder with one sub-folder of clips per class)
>>> setting(build_parser().parse_args(["train", "--data", "clips"]), "frames")   # the default
8
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

import torch

__all__ = ["CLIP_DEFAULTS", "CLIP_MODELS", "ClipData", "backbone_weights", "check_clip_options",
           "clip_fields", "clip_result", "per_class_accuracy", "read_clips", "setting", "training_data"]

# 60-100 clips learn best in small batches: a few steps per epoch, ten epochs.
CLIP_DEFAULTS = {"batch_size": 16, "lr": 4e-3, "epochs": 10.0}
# The classifiers that read any (B, T, C, H, W) clips; all but cnn_lstm want square frames.
CLIP_MODELS = ("cnn_lstm", "cnn_convlstm", "frame_average", "last_frame", "conv3d")
# What the flags of the clips group default to, when --data is given.
SETTINGS = {"frames": 8, "size": None, "channels": None, "short": "loop", "backbone": "scratch",
            "test_fraction": 0.25}
_FLAGS = ("frames", "size", "channels", "short", "backbone", "freeze", "test_fraction")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def setting(args: argparse.Namespace, name: str):
    """The value of a clips flag, or its default when it was left out."""
    value = getattr(args, name)
    return SETTINGS[name] if value is None else value


def check_clip_options(args: argparse.Namespace) -> None:
    """Refuse every flag that can't go with ``--data`` (or needs it), before anything is read."""
    if args.data is None:
        given = [name for name in _FLAGS if getattr(args, name) not in (None, False)]
        if given:
            raise ValueError(f"{_flag(given[0])} sets how clips are read and learned: it needs --data FOLDER "
                             "(a folder with one sub-folder of clips per class)")
        return
    _check_folder(Path(args.data))
    if args.task != "quadrants":
        raise ValueError(f"--data trains on your clips, whose classes are its sub-folders; --task {args.task} "
                         "is one of the built-in MNIST tasks: leave --task out")
    if args.order != "1234":
        raise ValueError(f"--order {args.order} reorders MNIST quadrants; --data clips have none: leave --order out")
    if args.model not in CLIP_MODELS:
        why = {"whole_image": "tiles four MNIST quadrants back into a digit",
               "next_frame": "forecasts frames, with no classes",
               "tracker": "follows a box, with no classes"}.get(args.model, "is not a clip classifier")
        raise ValueError(f"--model {args.model} {why}; --data trains a classifier: use one of {', '.join(CLIP_MODELS)}")
    if args.curriculum is not None:
        raise ValueError("--curriculum cuts clips into short windows to train a tracker; a clip classifier "
                         "needs the whole clip to see its class: leave --curriculum out")
    backbone = setting(args, "backbone")
    only = [flag for flag, used in (("--backbone", args.backbone is not None), ("--freeze", args.freeze),
                                    ("--short pad", args.short == "pad")) if used]
    if args.model != "cnn_lstm" and only:
        raise ValueError(f"{only[0]} is an option of cnn_lstm's frame CNN and LSTM; --model {args.model} "
                         "has neither: use --model cnn_lstm, or leave it out")
    if args.freeze and backbone == "scratch":
        raise ValueError("--freeze keeps a pretrained frame CNN as it is, and --backbone scratch has learned "
                         "nothing: add --backbone mnist (or a torchvision backbone), or leave --freeze out")
    size = args.size
    if size is not None and len(size) > 2:
        raise ValueError(f"--size takes H W, or one number for square frames; got {len(size)} numbers "
                         f"{' '.join(map(str, size))}")
    if size is not None and len(set(size)) > 1 and args.model != "cnn_lstm":
        raise ValueError(f"--size {size[0]} {size[1]}: --model {args.model} reads square frames only; "
                         f"pass one number, e.g. --size {max(size)}")
    if backbone not in ("scratch", "mnist"):
        if args.channels != 3:
            raise ValueError(f"--backbone {backbone} reads colour (RGB) frames, as on ImageNet: add --channels 3")
        backbone_weights(backbone)


def _check_folder(root: Path) -> None:
    if not root.exists():
        raise ValueError(f"--data {root}: no such folder")
    if not root.is_dir():
        hint = ": unpack it first" if root.suffix.lower() == ".zip" else ""
        raise ValueError(f"--data {root} is a file{hint}; give a folder with one sub-folder of clips per class")


def backbone_weights(name: str) -> str:
    """``"DEFAULT"`` when torchvision's ImageNet weights for ``name`` are already in torch's cache;
    otherwise a ``ValueError`` saying where to put them. Nothing here (or later) downloads them."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)
    if not cached.is_file():
        raise ValueError(f"--backbone {name} starts from ImageNet weights, and they are not on this machine "
                         f"({cached} is missing). This package never downloads: copy {url} there (or set "
                         "TORCH_HOME to a folder whose hub/checkpoints holds it), or use --backbone mnist, "
                         "which ships with the package")
    return "DEFAULT"


@dataclass
class ClipData:
    """A folder read for training: the split clips and what the result and checkpoint report."""

    root: Path
    train: object           # VideoClips
    test: object            # VideoClips

    @property
    def classes(self) -> list[str]:
        return self.train.classes

    @property
    def settings(self) -> dict:
        return self.train.settings


def read_clips(args: argparse.Namespace) -> ClipData:
    """The folder of ``--data``, read with the clip flags and split; a refusal names ``--data``."""
    from ..data import video_folder

    root = Path(args.data)
    size = args.size if args.size is None or len(args.size) == 2 else args.size * 2
    try:
        data = video_folder(root, frames=setting(args, "frames"), size=size, channels=args.channels,
                            short=setting(args, "short"))
        train, test = data.split(test_fraction=setting(args, "test_fraction"), seed=0)
    except ValueError as e:
        # The library names its keywords (size=, channels=); the command line's are flags.
        raise ValueError(f"--data {root}: {e} (flags: --frames T, --size H W, --channels C, "
                         "--short loop|pad)") from None
    return ClipData(root, train, test)


def clip_fields(args: argparse.Namespace, size: list[int], channels: int, num_classes: int) -> dict:
    """The model config fields that fit clips of ``size`` ``(H, W)`` and ``channels``."""
    H, W = size
    if args.model != "cnn_lstm" and H != W:
        raise ValueError(f"--model {args.model} reads square frames, and the clips of --data are {H}x{W}: "
                         f"pass --size {max(H, W)}, or use --model cnn_lstm")
    # one number for square frames, as the other models and deploy.export_onnx expect
    fields = {"frame_size": H if H == W else (H, W), "in_channels": channels, "num_classes": num_classes}
    if args.model == "cnn_lstm":
        fields.update(encoder=setting(args, "backbone"), trainable=not args.freeze)
    return fields


def training_data(args: argparse.Namespace, model: torch.nn.Module, data: ClipData):
    """``(net, train, test, objective)`` for ``fit``: the model on the clips, or with ``--freeze``
    its LSTM and classifier (:class:`~cnnlstm_edu.models.FeatureHead`) on each frame's features,
    computed once and cached beside the data. With ``--short pad``, labels carry the lengths."""
    from ..models import FeatureHead, MaskedClassification, frame_features, with_lengths

    net, x, test_x = model, data.train.clips, data.test.clips
    if args.freeze:
        cache = data.root / ".cnnlstm_edu-cache"
        cache = cache if os.access(data.root, os.W_OK) else None    # a read-only folder: computed each run
        net = FeatureHead(model)
        x, test_x = (frame_features(model, clips, cache_dir=cache) for clips in (x, test_x))  # (N, T, F)
    if setting(args, "short") == "pad":
        return (net, (x, with_lengths(data.train.labels, data.train.lengths)),
                (test_x, with_lengths(data.test.labels, data.test.lengths)), MaskedClassification())
    return net, (x, data.train.labels), (test_x, data.test.labels), None


@torch.no_grad()
def per_class_accuracy(net: torch.nn.Module, test, classes: list[str], batch_size: int = 256) -> dict:
    """``{class: {"accuracy", "correct", "clips"}}`` of ``net`` on ``test`` (as ``training_data``
    made it): the same predictions the overall test accuracy counts."""
    from ..modes import eval_mode
    from ..pixels import to_float

    x, y = test
    labels, lengths = (y[:, 0], y[:, 1]) if y.dim() == 2 else (y, None)
    device = next(net.parameters()).device
    preds = []
    with eval_mode(net):
        for i in range(0, len(x), batch_size):
            xb = to_float(x[i:i + batch_size].to(device))
            logits = net(xb) if lengths is None else net(xb, lengths=lengths[i:i + batch_size])
            preds.append(logits.argmax(-1).cpu())                      # (b,)
    right = torch.cat(preds) == labels.cpu()                           # (N,)
    out = {}
    for k, name in enumerate(classes):
        members = labels.cpu() == k
        correct, count = int(right[members].sum()), int(members.sum())
        out[name] = {"accuracy": correct / count if count else None, "correct": correct, "clips": count}
    return out


def clip_result(args: argparse.Namespace, data: ClipData, per_class: dict) -> dict:
    """The keys ``--json`` adds for a folder of clips."""
    return {"task": "clips", "data": str(data.root), "classes": data.classes, "per_class": per_class,
            "chance": 1 / len(data.classes), **data.settings, "backbone": setting(args, "backbone"),
            "freeze": args.freeze, "train_clips": len(data.train), "test_clips": len(data.test),
            "skipped": data.train.skipped}

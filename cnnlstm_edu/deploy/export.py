"""export_onnx: write a streaming model's one-step graph to ONNX, with its state as inputs and outputs.

The file holds the graph of :func:`~cnnlstm_edu.deploy.steps.step_module`: inputs ``frame``
``(B, C, H, W)`` then every state tensor; outputs the step's result then the new state, named
``<state>_next``, in the same order. The batch axis ``B`` is dynamic. ``torch.onnx.export(...,
dynamo=True)`` traces it (``torch.export``) and onnxscript translates it; onnxruntime runs it
(:class:`~cnnlstm_edu.deploy.OnnxStreamer`), and so can any ONNX runtime, in any language.

The file also says how to use it, in its ``metadata_props`` (string keys, JSON values), read
back by :func:`read_metadata`: the model's registry name and config, the class names, the
preprocessing a frame needs, the state tensors with their axes, shapes and starting values.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from ..atomic import atomic_path, check_writable
from .steps import step_module

__all__ = ["FORMAT", "PREPROCESSING", "export_onnx", "read_metadata", "default_class_names"]

FORMAT = "cnnlstm_edu.onnx/1"
# Every model here reads float32 pixels in [0, 1] (cnnlstm_edu.pixels.to_float).
PREPROCESSING = {"layout": "B C H W", "dtype": "float32", "range": [0.0, 1.0],
                 "from_uint8": "divide by 255 (frames as load_mnist gives them: 0..255)"}


def default_class_names(name: str, num_classes: int | None, info: dict | None = None) -> list[str]:
    """The class names of a model trained by this package, from its checkpoint's ``info``: the
    directions of the direction task, else the class indices (MNIST's digits are their own).

    >>> default_class_names("cnn_lstm", 10, {"order": "1234"})[:3]
    ['0', '1', '2']
    >>> default_class_names("cnn_lstm", 8, {"task": "direction"})[:2]
    ['right', 'up-right']
    >>> default_class_names("tracker", None)
    []
    """
    info = info or {}
    if isinstance(info.get("class_names"), list):
        return [str(c) for c in info["class_names"]]
    if num_classes is None:
        return []                                       # a forecast frame, a box: no classes
    if info.get("task") == "direction":
        from ..data import DIRECTIONS
        return list(DIRECTIONS)
    return [str(k) for k in range(num_classes)]


def _metadata(step, class_names, info) -> dict[str, str]:
    from .. import __version__
    from ..models import model_config

    name, config = model_config(step.model)
    C, H, W = step.model.config.in_channels, step.model.config.frame_size, step.model.config.frame_size
    meta = {
        "format": FORMAT,
        "model": name,
        "config": config,
        "class_names": class_names,
        "preprocessing": {**PREPROCESSING, "frame": [C, H, W]},
        "inputs": ["frame"] + [s.name for s in step.states],
        "outputs": [step.result] + [f"{s.name}_next" for s in step.states],
        "result": step.result,
        "state": [s.as_dict() for s in step.states],
        # The tracker's first frame has no previous frame: it only fills the state, and the box
        # for it is the one the user gave (Tracker.track does the same).
        "first_frame": "runs" if step.name != "tracker" else "fills the state; its box is the given one",
        "version": __version__,
        "info": info or {},
    }
    return {k: json.dumps(v) for k, v in meta.items()}


def export_onnx(model: nn.Module, path: str | os.PathLike, *, class_names: list[str] | None = None,
                info: dict | None = None, verbose: bool = False) -> Path:
    """Write ``model``'s one-step graph to ``path`` (an ``.onnx`` file); returns the path.

    ``class_names`` default to :func:`default_class_names` (the class indices, or the directions
    of the direction task when ``info`` says so). ``info`` (JSON values: the checkpoint's facts) is kept
    in the metadata. A model that cannot stream is refused with the reason, before any work.

    An export takes seconds (``torch.export`` traces the step), so the example that runs is the
    package's (``cnnlstm_edu.deploy``); in short:

    >>> path = export_onnx(model, "model.onnx")                        # doctest: +SKIP
    >>> read_metadata(path)["state"][0]                                # doctest: +SKIP
    {'name': 'h', 'axes': ['num_layers', 'B', 'hidden'], 'shape': [1, 0, 128], 'init': 'zeros'}
    """
    step = step_module(model)
    path = check_writable(path)
    classes = getattr(step.model.config, "num_classes", None)
    if class_names is None:
        class_names = default_class_names(step.name, classes, info)
    if classes is not None and len(class_names) != classes:
        raise ValueError(f"export_onnx: {len(class_names)} class names for a model of {classes} classes: "
                         f"{class_names[:12]}")
    try:
        json.dumps(info or {})
    except (TypeError, ValueError) as e:
        raise TypeError(f"export_onnx: info must hold JSON values, got {info!r}: {e}") from None
    program = _export(step)
    proto = program.model_proto
    for key, value in _metadata(step, list(class_names), info).items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    import onnx

    with atomic_path(path) as tmp:
        onnx.save(proto, tmp)
    return path


def _export(step):
    """``torch.onnx.export(dynamo=True)`` of the step on a batch of 2, with ``B`` dynamic."""
    B = torch.export.Dim("B", min=1, max=1 << 16)
    # Batch 2, not 1: torch.export specialises a size-1 axis to the constant 1.
    example = (_example_frame(step),) + tuple(s.zeros(2) for s in step.states)
    batch_axes = {"frame": {0: B}} | {s.name: {s.axes.index("B"): B} for s in step.states}
    names = ["frame"] + [s.name for s in step.states]
    with warnings.catch_warnings(), torch.no_grad():
        # The exporter warns about internals of nn.LSTM (its flat weights) and of torch itself.
        warnings.simplefilter("ignore")
        return torch.onnx.export(
            step, example, dynamo=True, verbose=False, input_names=names,
            output_names=[step.result] + [f"{n}_next" for n in names[1:]],
            # forward(frame, *state): the state's axes nest as one tuple, as the arguments do
            dynamic_shapes=(batch_axes["frame"], tuple(batch_axes[n] for n in names[1:])))


def _example_frame(step) -> torch.Tensor:
    c = step.model.config
    return torch.rand(2, c.in_channels, c.frame_size, c.frame_size)    # (B, C, H, W), pixels in [0, 1]


def read_metadata(path: str | os.PathLike) -> dict:
    """The ``metadata_props`` that :func:`export_onnx` wrote, JSON-decoded; refuses other files."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no ONNX file at {path}")
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001  onnx raises DecodeError and others for a foreign file
        raise ValueError(f"{path} is not an ONNX file: {e}") from None
    props = {p.key: p.value for p in proto.metadata_props}
    if props.get("format") != json.dumps(FORMAT):
        raise ValueError(f"{path} is an ONNX file without cnnlstm_edu's metadata (format "
                         f"{props.get('format')!r}); export it with cnnlstm_edu.deploy.export_onnx")
    return {k: json.loads(v) for k, v in props.items()}

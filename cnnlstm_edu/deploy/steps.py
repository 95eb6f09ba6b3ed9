"""One step of a streaming model, with its state as plain inputs and outputs (seed 003, point 5).

Seed 003 deploys its LSTM in TensorFlow 1 with a placeholder for ``(h, c)`` and a ``sess.run``
that returns the new state beside the prediction: the program that runs the model carries the
state, the graph keeps none. A step module here is that graph in PyTorch:
``step(frame, *state) -> (result, *new_state)``, the new state in the order of the state
inputs, so a loop in any runtime can feed each output back as the next input. It is what
:func:`~cnnlstm_edu.deploy.export_onnx` writes to ONNX.

What each model carries from frame to frame:

- ``cnn_lstm``: the LSTM's ``h`` and ``c``, ``(num_layers, B, hidden)``; the result is the logits.
- ``cnn_convlstm``: the ConvLSTM's ``h`` and ``c``, ``(num_layers, B, F, H', W')``; logits.
- ``next_frame``: the ConvLSTM's ``h``, ``c`` and the previous frame (each step reads the frame
  and its difference from the last one); the result is the forecast of the next frame.
- ``tracker``: the LSTM's ``h``, ``c``, the previous frame and the previous box (Re3 reads the
  last frame around the last box); the result is this frame's box, fed back as the next box.

The other registered models cannot stream and are refused with the reason (:data:`REFUSED`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["REFUSED", "StateSpec", "StepModule", "check_streamable", "frame_axes", "step_module"]

# Why a registered model has no one-step graph with a state.
REFUSED = {
    "whole_image": "it reads the whole 28x28 digit at once (the four quadrants tiled back together), "
                   "so there is no frame to feed and no state to carry",
    "frame_average": "its answer is the mean of every frame's features over the whole clip; it keeps no "
                     "state from frame to frame, so a one-frame step would see one frame only",
    "last_frame": "it classifies each frame on its own and keeps no state; export its frame CNN with "
                  "torch.onnx.export directly",
    "conv3d": "its 3-D convolutions read several frames at once (a window in time), not a state "
              "carried from the last frame, so it has no one-frame step",
}


@dataclass(frozen=True)
class StateSpec:
    """One state tensor: its name, its axes (``B`` is the dynamic batch) and where it starts."""

    name: str
    axes: tuple[str, ...]        # e.g. ("num_layers", "B", "hidden")
    shape: tuple[int, ...]       # the sizes, 0 where the axis is B
    init: str                    # "zeros", "first_frame" (the first frame itself) or "given"

    def zeros(self, batch: int) -> torch.Tensor:
        return torch.zeros([batch if a == "B" else n for a, n in zip(self.axes, self.shape)])

    def as_dict(self) -> dict:
        return {"name": self.name, "axes": list(self.axes), "shape": list(self.shape), "init": self.init}


def check_streamable(model: nn.Module) -> str:
    """The model's registry name, or a ``ValueError`` that says why it cannot stream.

    >>> from cnnlstm_edu.models import build_model
    >>> check_streamable(build_model("cnn_lstm"))
    'cnn_lstm'
    >>> check_streamable(build_model("conv3d"))
    Traceback (most recent call last):
    ValueError: conv3d cannot be exported as a one-step graph: its 3-D convolutions read several frames at once (a window in time), not a state carried from the last frame, so it has no one-frame step
    """
    from ..models import model_config

    if not isinstance(model, nn.Module):
        raise TypeError(f"export needs a model (an nn.Module), got {type(model).__name__}")
    name, _ = model_config(model)                    # refuses models outside the registry
    if name in REFUSED:
        raise ValueError(f"{name} cannot be exported as a one-step graph: {REFUSED[name]}")
    for where, module in model.named_modules():
        if getattr(module, "bidirectional", False) is True:
            raise ValueError(
                f"{name} cannot stream: its {where} is bidirectional, and the backward direction reads "
                "each clip from the last frame to the first, so every output needs frames a stream "
                "has not received yet. Train it with bidirectional=False to deploy it frame by frame.")
    return name


class StepModule(nn.Module):
    """``forward(frame, *state) -> (result, *new_state)`` for one model; built by :func:`step_module`."""

    def __init__(self, model: nn.Module, name: str, result: str, states: list[StateSpec]) -> None:
        super().__init__()
        self.model, self.name, self.result, self.states = model, name, result, states

    def forward(self, frame: torch.Tensor, *state: torch.Tensor):
        if self.name in ("cnn_lstm", "cnn_convlstm"):
            return self._classify(frame, *state)
        if self.name == "next_frame":
            return self._forecast(frame, *state)
        return self._track(frame, *state)

    def _classify(self, frame, h, c):
        m = self.model
        rnn = m.lstm if self.name == "cnn_lstm" else m.convlstm
        feats = m.encoder(frame.unsqueeze(1))             # (B, 1, F) or (B, 1, C', H', W')
        seq, (h, c) = rnn(feats, (h, c))                  # (B, 1, hidden) or (B, 1, F, H', W')
        return m.classifier(seq[:, -1].flatten(1)), h, c  # (B, classes), then the new state

    def _forecast(self, frame, h, c, prev_frame):
        """``NextFrame.step`` for one frame, painted in a form ONNX can keep batch-free.

        ``NextFrame.step`` moves each clip's frame by its own kernels with one grouped
        convolution whose group count is ``B*C``; ONNX needs a convolution's groups fixed when
        the file is written, so the batch could not stay dynamic. Here the same sum is spelled
        out: the ``M*M`` shifted copies of the frame, weighted by each clip's kernels. The tests
        hold it equal to ``NextFrame.step``."""
        m, (K, M) = self.model, (self.model.config.num_motions, self.model.config.motion_size)
        B, C, H, W = frame.shape
        inputs = torch.cat([frame, frame - prev_frame], dim=1).unsqueeze(1)  # (B, 1, 2C, H, W)
        hs, (h, c) = m.rnn(m.encoder(inputs), (h, c))                       # (B, 1, F, H/4, W/4)
        state = hs[:, 0]                                                    # (B, F, H/4, W/4)
        kernels = m.motion(state.flatten(1)).view(B, K, M * M).softmax(-1)  # (B, K, M*M): sum to 1
        padded = F.pad(frame, (M // 2,) * 4)                                # (B, C, H+M-1, W+M-1)
        shifted = torch.stack([padded[:, :, i:i + H, j:j + W]               # (B, C, M*M, H, W)
                               for i in range(M) for j in range(M)], dim=2)
        moved = torch.einsum("bcshw,bks->bckhw", shifted, kernels)          # (B, C, K, H, W)
        masks = F.interpolate(m.masks(state), size=(H, W), mode="bilinear", align_corners=False)
        masks = masks.softmax(1)                                            # (B, K+1, H, W)
        nxt = (moved * masks[:, None, :K]).sum(2)                           # (B, C, H, W); mask K is black
        return nxt, h, c, frame                                             # this frame is the next one's previous

    def _track(self, frame, h, c, prev_frame, prev_box):
        boxes, (h, c) = self.model.steps(prev_frame.unsqueeze(1), frame.unsqueeze(1),
                                         prev_box.unsqueeze(1), (h, c))   # (B, 1, 4)
        box = boxes[:, 0]                                 # (B, 4): this frame's box
        return box, h, c, frame, box                      # the box is the next step's previous box


def _rnn_state(model: nn.Module, name: str) -> list[StateSpec]:
    c = model.config
    if name in ("cnn_lstm", "tracker"):
        axes, shape = ("num_layers", "B", "hidden"), (c.num_layers, 0, c.hidden_size)
    else:
        rnn = model.convlstm if name == "cnn_convlstm" else model.rnn
        grid = _grid(model, name)
        axes = ("num_layers", "B", "F", "H'", "W'")
        shape = (c.num_layers, 0, rnn.hidden_channels, *grid)
    return [StateSpec("h", axes, shape, "zeros"), StateSpec("c", axes, shape, "zeros")]


@torch.no_grad()
def _grid(model: nn.Module, name: str) -> tuple[int, int]:
    """(H', W') of the ConvLSTM's state, found by running the encoder once on one zero frame."""
    c = model.config
    channels = 2 * c.in_channels if name == "next_frame" else c.in_channels
    x = torch.zeros(1, 1, channels, c.frame_size, c.frame_size)   # (B, T, C, H, W) = one frame
    return tuple(model.encoder(x).shape[-2:])


def frame_axes(model: nn.Module) -> tuple[int, int, int]:
    """``(C, H, W)`` of one frame the model reads."""
    c = model.config
    return c.in_channels, c.frame_size, c.frame_size


def step_module(model: nn.Module) -> StepModule:
    """The one-step module of a streaming model, in eval mode (the caller's model is not changed).

    >>> from cnnlstm_edu.models import build_model
    >>> step = step_module(build_model("cnn_lstm", hidden_size=8))
    >>> [s.name for s in step.states], step.states[0].axes
    (['h', 'c'], ('num_layers', 'B', 'hidden'))
    >>> logits, h, c = step(torch.zeros(2, 1, 14, 14), *[s.zeros(2) for s in step.states])
    >>> tuple(logits.shape), tuple(h.shape)            # (B, classes), (num_layers, B, hidden)
    ((2, 10), (1, 2, 8))
    """
    import copy

    name = check_streamable(model)
    # A copy in eval mode: dropout off and BatchNorm on its running statistics, as deployed,
    # without switching the caller's model out of training.
    model = copy.deepcopy(model).eval()
    states = _rnn_state(model, name)
    C, H, W = frame_axes(model)
    if name in ("next_frame", "tracker"):
        states.append(StateSpec("prev_frame", ("B", "C", "H", "W"), (0, C, H, W), "first_frame"))
    if name == "tracker":
        states.append(StateSpec("prev_box", ("B", "xyxy"), (0, 4), "given"))
    result = {"cnn_lstm": "logits", "cnn_convlstm": "logits", "next_frame": "next_frame",
              "tracker": "box"}[name]
    return StepModule(model, name, result, states).eval()

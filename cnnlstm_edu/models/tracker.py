"""Tracker: a Re3-style CNN-LSTM that follows one object's box from frame to frame (issue 15).

Re3 (Gordon, Farhadi and Fox 2018, "Re3: Real-Time Recurrent Regression Networks for Visual
Tracking"; seed 003) is where the training tricks of lesson 05 come from. The user draws a box
around the object in the first frame; at each next frame the network looks at the previous
frame and the current one *around the previous box*, and its LSTM says where the box is now.
Re3 crops both frames around the previous box; here the box comes in as an extra input
channel (a mask of the pixels it covers), which keeps the whole 64x64 frame and the shapes
simple: each step reads ``(previous frame, frame, previous-box mask)``, ``(2C + 1, H, W)``.

The previous box is where seed 003's point 4 bites:

- in training it can be the true box (**teacher forcing**): :meth:`Tracker.forward` takes them
  all at once and runs every step in one call;
- at deployment it is the tracker's own previous output (:meth:`Tracker.track`), so its errors
  are fed back and can compound (drift);
- :meth:`Tracker.rollout` sits between the two: each step is fed the tracker's own previous box
  with probability ``sampling_p`` (**scheduled sampling**; Re3 raises it by 0.25 each time its
  unroll curriculum doubles the clip length).

A box is ``(x0, y0, x1, y1)`` in pixels, as :func:`cnnlstm_edu.data.track` labels it. The
network predicts a *change* of the previous box (centre shift, log of the size ratio), and starts
at zero change: an untrained tracker is the static-box baseline, and every box it gives has a
positive width and height.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from ..checks import check_number
from ..data.tracking import HORIZONS, box_iou, constant_velocity, iou_by_horizon, static_box
from ..layers.time_distributed import TimeDistributed
from ..modes import eval_mode
from ..shapes import check_float, check_shape
from ..pixels import to_float
from .encoders import FrameCNN

__all__ = ["Tracker", "TrackerConfig", "TrackingObjective", "box_mask"]


@dataclass
class TrackerConfig:
    in_channels: int = 1                      # C of a frame
    frame_size: int = 64                      # H = W (the track task's canvas)
    channels: tuple[int, ...] = (16, 32, 32)  # conv blocks, each halving H and W: 64 -> 8
    hidden_size: int = 128                    # LSTM hidden units
    num_layers: int = 1                       # stacked LSTM layers
    dropout: float = 0.0                      # on the LSTM's input and output


def box_mask(boxes: torch.Tensor, size: int) -> torch.Tensor:
    """How much of each pixel a box covers, 0..1: ``(N, 4)`` pixel boxes -> ``(N, size, size)``.

    Fractional at the edges, so the mask moves smoothly with a box that moves by less than a pixel.

    >>> box_mask(torch.tensor([[1.0, 0.5, 3.0, 2.0]]), size=4)[0]    # x 1..3, y 0.5..2
    tensor([[0.0000, 0.5000, 0.5000, 0.0000],
            [0.0000, 1.0000, 1.0000, 0.0000],
            [0.0000, 0.0000, 0.0000, 0.0000],
            [0.0000, 0.0000, 0.0000, 0.0000]])
    """
    edges = torch.arange(size, device=boxes.device, dtype=boxes.dtype)  # (size,): pixel j spans j..j+1

    def cover(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:     # (N,) -> (N, size)
        return (torch.minimum(edges + 1, hi[:, None]) - torch.maximum(edges, lo[:, None])).clamp(0, 1)

    x0, y0, x1, y1 = boxes.unbind(-1)
    return cover(y0, y1)[:, :, None] * cover(x0, x1)[:, None, :]      # (N, H, W)


class Tracker(nn.Module):
    """Frames and previous boxes in, boxes out: ``(B, T, C, H, W)``, ``(B, T-1, 4)`` -> ``(B, T-1, 4)``.

    Step t = 1 .. T-1 reads frame t-1, frame t and the box of frame t-1, and gives the box of
    frame t. BatchNorm makes a training-mode batch of T-1 steps differ slightly from T-1 calls
    of one step; in eval mode :meth:`rollout` with the true boxes equals :meth:`forward`.

    >>> model = Tracker(TrackerConfig())
    >>> frames = torch.rand(2, 5, 1, 64, 64)                    # (B, T, C, H, W)
    >>> boxes = torch.tensor([10., 10, 30, 40]).repeat(2, 5, 1)  # (B, T, 4): true boxes
    >>> model(frames, boxes[:, :-1]).shape                      # teacher forcing: (B, T-1, 4)
    torch.Size([2, 4, 4])
    >>> model.track(frames, boxes[:, 0]).shape                  # free-running, first box given
    torch.Size([2, 5, 4])
    """

    def __init__(self, config: TrackerConfig | None = None, **overrides) -> None:
        super().__init__()
        config = config or TrackerConfig()
        if overrides:
            config = TrackerConfig(**{**asdict(config), **overrides})
        check_number(config.hidden_size, "hidden_size", integer=True, low=1, owner="Tracker")
        check_number(config.dropout, "dropout", low=0, high=1, owner="Tracker")
        self.config = config
        cnn = FrameCNN(2 * config.in_channels + 1, config.channels, config.frame_size, flatten=True)
        self.encoder = TimeDistributed(cnn)
        self.lstm = nn.LSTM(cnn.out_shape[0], config.hidden_size, num_layers=config.num_layers,
                            batch_first=True, dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden_size, 4)             # (dcx, dcy, log dw, log dh)
        # Zero change at the start: the untrained tracker keeps the box where it was.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _check(self, frames: torch.Tensor, boxes: torch.Tensor, what: str, fewer: int = 0) -> None:
        """Frames ``(B, T, C, H, W)`` of this tracker's size, boxes ``(B, T - fewer, 4)``."""
        c = self.config
        check_shape(frames, "B T C H W", what=f"{what} frames", C=c.in_channels, H=c.frame_size,
                    W=c.frame_size, hint="Clips of the track task come from data.track(): "
                                         "(N, T, 1, 64, 64).")
        check_float(frames, f"{what} frames")
        B, T = frames.shape[:2]
        if T < 2:
            raise ValueError(f"{what}: a clip of {T} frame has nothing to track; give at least 2")
        check_shape(boxes, "B T X", what=f"{what} boxes", B=B, T=T - fewer, X=4,
                    hint="Boxes are (x0, y0, x1, y1) in pixels, one per frame.")

    def steps(self, prev_frames: torch.Tensor, frames: torch.Tensor, prev_boxes: torch.Tensor,
              state=None):
        """The core, for t steps at once: ``(B, t, C, H, W)`` x 2, ``(B, t, 4)`` -> ``(B, t, 4)``, state."""
        B, t, C, H, W = frames.shape
        masks = box_mask(prev_boxes.reshape(B * t, 4), H).view(B, t, 1, H, W)  # (B, t, 1, H, W)
        inputs = torch.cat([prev_frames, frames, masks.to(frames.dtype)], dim=2)  # (B, t, 2C+1, H, W)
        feats = self.encoder(inputs)                                    # (B, t, F)
        seq, state = self.lstm(self.dropout(feats), state)              # (B, t, hidden)
        change = self.head(self.dropout(seq)).float()                   # (B, t, 4)
        # Centre and size of the previous box, as fractions of the frame.
        lo, hi = prev_boxes[..., :2] / W, prev_boxes[..., 2:] / W       # (B, t, 2) each
        centre, size = (lo + hi) / 2 + change[..., :2], (hi - lo) * change[..., 2:].exp()
        boxes = torch.cat([centre - size / 2, centre + size / 2], dim=-1) * W  # (B, t, 4), pixels
        return boxes, state

    def forward(self, frames: torch.Tensor, boxes_in: torch.Tensor) -> torch.Tensor:
        """Teacher forcing, all steps in one call: ``boxes_in[:, t-1]`` is the box fed at step t."""
        self._check(frames, boxes_in, "Tracker", fewer=1)
        boxes, _ = self.steps(frames[:, :-1], frames[:, 1:], boxes_in)
        return boxes                                                    # (B, T-1, 4)

    def rollout(self, frames: torch.Tensor, boxes: torch.Tensor, sampling_p: float = 0.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """One step at a time; step t is fed the true box of frame t-1, ``boxes[:, t-1]``, or,
        with probability ``sampling_p`` (per clip and step), its own prediction of it.

        ``boxes`` ``(B, T, 4)`` are the true boxes; returns the predictions ``(B, T-1, 4)``.
        ``sampling_p=1`` is free-running from the first box.
        """
        self._check(frames, boxes, "Tracker.rollout")
        if not 0.0 <= sampling_p <= 1.0:
            raise ValueError(f"Tracker.rollout: sampling_p is a probability, got {sampling_p}")
        B, T = frames.shape[:2]
        # use_own[:, t] decides the box fed at step t+1; step 1 always gets the given first box.
        use_own = (torch.rand(B, T - 1, generator=generator) < sampling_p).to(frames.device)
        box, state, out = boxes[:, 0], None, []
        for t in range(1, T):
            pred, state = self.steps(frames[:, t - 1:t], frames[:, t:t + 1], box[:, None], state)
            out.append(pred)                                            # (B, 1, 4)
            if t + 1 < T:
                # Fed back without its gradient: sampling decides what the tracker sees next;
                # it is not a path for the loss.
                box = torch.where(use_own[:, t, None], pred[:, 0].detach(), boxes[:, t])
        return torch.cat(out, dim=1)                                    # (B, T-1, 4)

    @torch.no_grad()
    def track(self, frames: torch.Tensor, first_box: torch.Tensor) -> torch.Tensor:
        """Deployment: free-running from ``first_box`` ``(B, 4)``; boxes ``(B, T, 4)``, frame 0's given."""
        check_shape(first_box, "B X", what="Tracker.track first_box", X=4,
                    hint="The box a user draws in frame 0: (x0, y0, x1, y1) in pixels, one per clip.")
        T = frames.shape[1] if isinstance(frames, torch.Tensor) and frames.dim() == 5 else 2
        boxes = first_box[:, None].expand(-1, T, -1)                  # only frame 0's is read
        pred = self.rollout(frames, boxes, sampling_p=1.0)             # (B, T-1, 4)
        return torch.cat([first_box[:, None].to(pred.dtype), pred], dim=1)  # (B, T, 4)


class TrackingObjective:
    """What ``train.fit`` optimises and reports for a :class:`Tracker`; ``y`` are the boxes ``(N, T, 4)``.

    Training loss: L1 between predicted and true boxes, in fractions of the frame (Re3's loss),
    with each step fed the truth or, with ``sampling_p``, the tracker's own previous box. With an
    unroll curriculum each batch is a random window of ``unroll + 1`` frames.

    Test metrics, free-running from the first box as a user would deploy it: ``test_iou`` is the
    mean IoU over frames 1..``horizon`` (20), ``iou_by_horizon`` at 5, 10, 20, 40 frames where
    the clips are long enough, and ``baseline_iou`` the better of :func:`static_box` and
    :func:`constant_velocity` over the same frames (``static_iou``, ``velocity_iou``).
    """

    name = "tracking"
    feeds_back_output = True

    def __init__(self, horizon: int = 20, batch_size: int = 250) -> None:
        self.horizon = check_number(horizon, "horizon", integer=True, low=1, owner="TrackingObjective")
        self.batch_size = batch_size

    def loss(self, model, x, y, *, unroll=None, sampling_p=0.0, generator=None):
        if unroll is not None and unroll + 1 < x.shape[1]:
            start = int(torch.randint(x.shape[1] - unroll, (1,), generator=generator))
            x, y = x[:, start:start + unroll + 1], y[:, start:start + unroll + 1]
        size = x.shape[-1]
        if sampling_p == 0.0:
            pred = model(x, y[:, :-1])                                  # (b, t-1, 4), one call
        else:
            pred = model.rollout(x, y, sampling_p=sampling_p, generator=generator)
        return F.l1_loss(pred / size, y[:, 1:].float() / size), torch.zeros((), device=x.device)

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        with eval_mode(model), torch.no_grad():
            t = unroll + 1 if unroll else x.shape[1]
            clips, boxes = to_float(x[:, :t]).to(device), y[:, :t].to(device)
            return self.loss(model, clips, boxes)[0].item()

    @torch.no_grad()
    def evaluate(self, model, x, y, device) -> dict:
        if x.shape[1] <= self.horizon:
            raise ValueError(f"TrackingObjective: test clips have {x.shape[1]} frames; scoring "
                             f"{self.horizon} frames after the first needs {self.horizon + 1}")
        with eval_mode(model):
            pred = torch.cat([model.track(to_float(x[i:i + self.batch_size]).to(device),
                                          y[i:i + self.batch_size, 0].to(device)).cpu()
                              for i in range(0, len(x), self.batch_size)])  # (N, T, 4)
        y = y.cpu().float()
        h = self.horizon
        frames = slice(1, h + 1)
        ious = {name: box_iou(boxes[:, frames], y[:, frames]).mean().item()
                for name, boxes in (("test", pred), ("static", static_box(y)),
                                    ("velocity", constant_velocity(y)))}
        size = x.shape[-1]
        return {"test_loss": F.l1_loss(pred[:, frames] / size, y[:, frames] / size).item(),
                "test_iou": ious["test"], "iou_by_horizon": iou_by_horizon(pred, y, HORIZONS),
                "static_iou": ious["static"], "velocity_iou": ious["velocity"],
                "baseline_iou": max(ious["static"], ious["velocity"])}

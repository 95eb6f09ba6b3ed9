"""Drift experiments on a :class:`~cnnlstm_edu.models.Tracker`: what it is fed, and what it forgets.

A tracker's step t reads frame t-1, frame t, the box of frame t-1 and the LSTM state. At
deployment the box is its own previous answer, so an error is fed back and can grow (drift);
the state is what lets it keep following *this* digit when another one crosses it. Lesson 08
pulls each of those levers on a trained tracker, with one function:

- :func:`rollout_with` runs the tracker one step at a time, fed either the true previous box
  (``feed="true"``, teacher forcing, what training with Re3's first unrolls looks like) or its own
  (``feed="own"``, deployment), and can throw the LSTM state away at chosen frames
  (``reset_at``), as Re3 itself does every 32 frames at test time.
- :func:`iou_per_frame` scores the answer frame by frame, so a curve shows where drift starts.

Both are identities with the tracker's own methods when no lever is pulled: ``feed="own"`` is
:meth:`Tracker.track`, ``feed="true"`` is :meth:`Tracker.forward` (the doctest checks both).
"""

from __future__ import annotations

import torch

from .data.tracking import box_iou
from .modes import eval_mode

__all__ = ["rollout_with", "iou_per_frame"]

_FEEDS = ("own", "true")


@torch.no_grad()
def rollout_with(model, frames: torch.Tensor, boxes: torch.Tensor, *, feed: str = "own",
                 reset_at: tuple[int, ...] = ()) -> torch.Tensor:
    """Boxes ``(B, T, 4)`` for clips ``(B, T, C, H, W)``; frame 0's box is ``boxes[:, 0]``, given.

    ``boxes`` are the true boxes ``(B, T, 4)``: ``feed="own"`` reads only ``boxes[:, 0]`` and
    feeds the tracker its own answers after it; ``feed="true"`` feeds the true box of frame t-1
    at every step t. At each frame t in ``reset_at`` (1 .. T-1) the LSTM state is zeroed before
    step t, as if the tracker had just been started with that step's box.

    >>> from cnnlstm_edu.models import Tracker, TrackerConfig
    >>> _ = torch.manual_seed(0)
    >>> model = Tracker(TrackerConfig(frame_size=16, channels=(4,), hidden_size=8)).eval()
    >>> _ = torch.nn.init.normal_(model.head.weight, std=0.1)      # not the zero-change start
    >>> frames = torch.rand(2, 5, 1, 16, 16)                       # (B, T, C, H, W)
    >>> boxes = torch.tensor([2., 3, 9, 12]).repeat(2, 5, 1)       # (B, T, 4)
    >>> own = rollout_with(model, frames, boxes)                   # (B, T, 4)
    >>> torch.allclose(own, model.track(frames, boxes[:, 0]))      # deployment
    True
    >>> true = rollout_with(model, frames, boxes, feed="true")
    >>> torch.allclose(true[:, 1:], model(frames, boxes[:, :-1]), atol=1e-5)   # teacher forcing
    True
    >>> torch.allclose(rollout_with(model, frames, boxes, reset_at=(3,)), own)  # forgets at frame 3
    False
    """
    if feed not in _FEEDS:
        raise ValueError(f"rollout_with: feed must be 'own' (deployment) or 'true' (teacher forcing), "
                         f"got {feed!r}")
    model._check(frames, boxes, "rollout_with")
    B, T = frames.shape[:2]
    resets = tuple(reset_at)
    bad = [t for t in resets if isinstance(t, bool) or not isinstance(t, int) or not 1 <= t < T]
    if bad:
        raise ValueError(f"rollout_with: reset_at holds frames to forget before, 1 .. T-1 = {T - 1} "
                         f"for these clips; got {bad}")
    boxes = boxes.to(frames.dtype)
    box, state, out = boxes[:, 0], None, [boxes[:, 0]]
    with eval_mode(model):
        for t in range(1, T):
            if t in resets:
                state = None                                           # a fresh LSTM, same box
            pred, state = model.steps(frames[:, t - 1:t], frames[:, t:t + 1], box[:, None], state)
            out.append(pred[:, 0])                                     # (B, 4)
            box = pred[:, 0] if feed == "own" else boxes[:, t]
    return torch.stack(out, dim=1)                                     # (B, T, 4)


def iou_per_frame(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Mean IoU of each frame over the clips: ``(N, T, 4)`` x 2 -> ``(T,)``; frame 0's box is given.

    >>> true = torch.tensor([[[0., 0, 2, 2], [1, 0, 3, 2]]])         # (N, T, 4)
    >>> iou_per_frame(true[:, :1].expand_as(true), true)            # the static box: 1, then 1/3
    tensor([1.0000, 0.3333])
    """
    if pred.shape != true.shape or pred.dim() != 3:
        raise ValueError(f"iou_per_frame: expected pred and true of the same shape (N, T, 4), got "
                         f"{tuple(pred.shape)} and {tuple(true.shape)}")
    return box_iou(pred, true).mean(0)                                 # (T,)

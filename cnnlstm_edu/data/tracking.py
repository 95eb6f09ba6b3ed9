"""``track``: follow one of two bouncing digits, given its box in the first frame (issue 15).

The task Re3 (Gordon et al. 2018; seed 003) was built for, in miniature. Two digits move on a
64x64 canvas, bounce off the walls and cross each other (the brighter pixel wins where they
overlap). The user draws a box around one of them in the first frame, as a Re3 user does; the
label is that digit's box in every frame.

- A detector without memory cannot know which digit is the target: both are digits, and after
  a crossing only the history says which one was followed.
- Most clips bounce within 20 frames (speeds of 2-4 px per frame on 36 px of room), so
  extrapolating the first motion is not enough: :func:`constant_velocity` is a baseline to beat,
  as is :func:`static_box` (the first box, kept).

Boxes are ``(x0, y0, x1, y1)`` floats **in pixels**, with exclusive ends: the tight box around
the target's inked (non-zero) pixels covers columns ``x0 .. x1 - 1`` and rows ``y0 .. y1 - 1``,
so its width is ``x1 - x0``. Where the other digit covers the target, the box is still the
whole target's: it is where the target *is*, seen or not. :func:`box_iou` compares boxes.
"""

from __future__ import annotations

import math

import torch

from ..checks import check_number
from .canvas import ink_boxes, paint, pick_digits

__all__ = ["track", "box_iou", "static_box", "constant_velocity", "mean_iou", "iou_by_horizon",
           "HORIZONS"]

HORIZONS = (5, 10, 20, 40)    # frames after the first box at which Re3-style drift is measured


def track(num_clips: int, split: str = "train", seq_len: int = 21, size: int = 64,
          digit_size: int = 28, num_digits: int = 2, speed: tuple[float, float] = (2.0, 4.0),
          seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of bouncing digits and the target's box in every frame: ``(N, T, 1, H, W)``, ``(N, T, 4)``.

    The target is digit 0 of each clip; ``boxes[:, 0]`` is the box a user would draw in the
    first frame, and a tracker is asked for ``boxes[:, 1:]``. Each digit starts at a random
    place, in a random direction, at a random speed from ``speed`` (pixels per frame), and
    reflects off the walls. The default 21 frames are the given first frame and 20 to track.

    >>> clips, boxes = track(4, split="test", seed=0)
    >>> clips.shape, clips.dtype                    # (N, T, C, H, W)
    (torch.Size([4, 21, 1, 64, 64]), torch.uint8)
    >>> boxes.shape, boxes.dtype                    # (N, T, 4): x0, y0, x1, y1 in pixels
    (torch.Size([4, 21, 4]), torch.float32)
    >>> bool((boxes[..., 2:] > boxes[..., :2]).all() and boxes.min() >= 0 and boxes.max() <= 64)
    True
    """
    owner = "track"
    check_number(num_clips, "num_clips", integer=True, low=1, owner=owner)
    check_number(seq_len, "seq_len", integer=True, low=2, owner=owner)
    check_number(num_digits, "num_digits", integer=True, low=1, owner=owner)
    check_number(digit_size, "digit_size", integer=True, low=1, high=28, owner=owner)
    check_number(size, "size", integer=True, low=digit_size + 1, owner=owner)  # room to move
    if not (isinstance(speed, (tuple, list)) and len(speed) == 2):
        raise ValueError(f"{owner}: speed must be (low, high) in pixels per frame, got {speed!r}")
    low = check_number(speed[0], "speed[0]", low=0, low_open=True, owner=owner)
    high = check_number(speed[1], "speed[1]", low=low, high=size - digit_size, owner=owner)

    N, D, T = num_clips, num_digits, seq_len
    gen = torch.Generator().manual_seed(seed)
    stamps, _ = pick_digits(N * D, split, digit_size, gen, owner)
    stamps = stamps.view(N, D, digit_size, digit_size)                  # (N, D, S, S)
    room = size - digit_size
    pos = torch.rand(N, D, 2, generator=gen) * room                     # (N, D, 2): (y, x), float
    angle = torch.rand(N, D, generator=gen) * 2 * math.pi
    v = low + (high - low) * torch.rand(N, D, generator=gen)
    vel = torch.stack([v * torch.sin(angle), v * torch.cos(angle)], dim=-1)  # (N, D, 2): (dy, dx)
    corners = []
    for _ in range(T):
        corners.append(pos.round().long())                              # whole pixels, painted exactly
        pos, vel = _bounce(pos + vel, vel, room)
    corners = torch.stack(corners, dim=1)                               # (N, T, D, 2)
    clips = paint(stamps, corners, size)                                # (N, T, 1, H, W)
    ink = ink_boxes(stamps[:, 0])                                       # (N, 4): in the target's stamp
    y, x = corners[:, :, 0].float().unbind(-1)                          # (N, T) each: target's corner
    shift = torch.stack([x, y, x, y], dim=-1)                           # (N, T, 4)
    return clips, ink[:, None] + shift                                  # (N, T, 4)


def _bounce(pos: torch.Tensor, vel: torch.Tensor, room: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflect positions that left ``[0, room]`` back inside, and flip their velocity."""
    below, above = pos < 0, pos > room
    pos = torch.where(below, -pos, torch.where(above, 2 * room - pos, pos))
    vel = torch.where(below | above, -vel, vel)
    return pos.clamp(0, room), vel


def _check_boxes(boxes: torch.Tensor, what: str) -> None:
    if not isinstance(boxes, torch.Tensor) or boxes.dim() < 1 or boxes.shape[-1] != 4:
        got = tuple(boxes.shape) if isinstance(boxes, torch.Tensor) else type(boxes).__name__
        raise ValueError(f"{what}: expected boxes (..., 4) as (x0, y0, x1, y1), got {got}")
    if not bool(torch.isfinite(boxes).all()):
        raise ValueError(f"{what}: boxes hold NaN or infinite values")
    if bool((boxes[..., 2:] < boxes[..., :2]).any()):
        raise ValueError(f"{what}: a box has x1 < x0 or y1 < y0; boxes are (x0, y0, x1, y1) with "
                         "the smaller coordinates first")


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Intersection over union of boxes ``(..., 4)`` and ``(..., 4)`` (broadcast): ``(...)``, in 0..1.

    >>> box_iou(torch.tensor([0., 0, 2, 2]), torch.tensor([1., 1, 3, 3]))   # overlap 1, union 7
    tensor(0.1429)
    >>> box_iou(torch.tensor([0., 0, 2, 2]), torch.tensor([[0., 0, 2, 2], [5, 5, 6, 6]]))  # (2,)
    tensor([1., 0.])
    """
    _check_boxes(a, "box_iou: a")
    _check_boxes(b, "box_iou: b")
    a, b = a.float(), b.float()
    wh = (torch.minimum(a[..., 2:], b[..., 2:]) - torch.maximum(a[..., :2], b[..., :2])).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]                                     # (...)
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    union = area_a + area_b - inter
    if bool((union <= 0).any()):
        raise ValueError("box_iou: two empty boxes (zero area) have no IoU; give boxes an area")
    return inter / union


def static_box(boxes: torch.Tensor) -> torch.Tensor:
    """Baseline: the first box, kept for every frame. ``(N, T, 4) -> (N, T, 4)``; reads ``boxes[:, 0]`` only.

    >>> boxes = torch.tensor([[[0., 0, 2, 2], [1, 0, 3, 2], [2, 0, 4, 2]]])   # (N, T, 4)
    >>> static_box(boxes)[0, -1].tolist()
    [0.0, 0.0, 2.0, 2.0]
    """
    _check_track(boxes, "static_box", 1)
    return boxes[:, :1].expand_as(boxes).clone()


def constant_velocity(boxes: torch.Tensor) -> torch.Tensor:
    """Baseline: the motion between the first two boxes, extrapolated. Reads ``boxes[:, :2]`` only.

    Frame t gets ``b0 + t * (b1 - b0)``; it knows nothing of walls, so it is right until the
    target bounces (or the true first motion was rounded), and wrong after.

    >>> boxes = torch.tensor([[[0., 0, 2, 2], [1, 0, 3, 2], [0, 0, 2, 2]]])   # bounces at t=2
    >>> constant_velocity(boxes)[0, -1].tolist()                               # (N, T, 4)[0, 2]
    [2.0, 0.0, 4.0, 2.0]
    """
    _check_track(boxes, "constant_velocity", 2)
    t = torch.arange(boxes.shape[1], dtype=boxes.dtype, device=boxes.device).view(1, -1, 1)  # (1, T, 1)
    return boxes[:, :1] + t * (boxes[:, 1:2] - boxes[:, :1])            # (N, T, 4)


def _check_track(boxes: torch.Tensor, what: str, frames: int) -> None:
    _check_boxes(boxes, what)
    if boxes.dim() != 3 or boxes.shape[1] < frames:
        raise ValueError(f"{what}: expected boxes (N, T, 4) with T >= {frames}, got {tuple(boxes.shape)}")


def mean_iou(pred: torch.Tensor, true: torch.Tensor, horizon: int) -> float:
    """Mean IoU over frames ``1 .. horizon`` (frame 0's box is given, so it is not scored).

    >>> true = torch.tensor([[[0., 0, 2, 2], [1, 0, 3, 2], [2, 0, 4, 2]]])    # (N, T, 4)
    >>> round(mean_iou(static_box(true), true, horizon=2), 4)                 # (1/3 + 0) / 2
    0.1667
    """
    _check_track(true, "mean_iou", 2)
    if pred.shape != true.shape:
        raise ValueError(f"mean_iou: pred and true must have the same shape (N, T, 4), got "
                         f"{tuple(pred.shape)} and {tuple(true.shape)}")
    check_number(horizon, "horizon", integer=True, low=1, high=true.shape[1] - 1, owner="mean_iou")
    return box_iou(pred[:, 1:horizon + 1], true[:, 1:horizon + 1]).mean().item()


def iou_by_horizon(pred: torch.Tensor, true: torch.Tensor,
                   horizons: tuple[int, ...] = HORIZONS) -> dict[int, float]:
    """:func:`mean_iou` at each horizon the clips are long enough for: ``{5: 0.93, 10: 0.88, ...}``.

    >>> true = track(3, split="test", seq_len=11, seed=0)[1]                  # (N, T=11, 4)
    >>> sorted(iou_by_horizon(true, true))                                    # 20, 40: too long
    [5, 10]
    """
    return {h: mean_iou(pred, true, h) for h in horizons if h < true.shape[1]}

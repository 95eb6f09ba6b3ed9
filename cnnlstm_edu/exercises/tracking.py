"""Lesson 08's exercises (tracking): ``box_iou``, ``into_window`` and ``scheduled_mix``.

``box_iou`` is checked against :func:`cnnlstm_edu.data.box_iou` on boxes that overlap, nest, touch
and miss each other. ``into_window`` is Re3's crop-and-scale step (Gordon et al. 2018): the
tracker sees a search window around the previous box, resized to a fixed size, and a box is
expressed in that window's pixels. ``scheduled_mix`` is one step of scheduled sampling (Bengio
et al. 2015), as :meth:`cnnlstm_edu.models.Tracker.rollout` does it: per clip, the tracker's own
previous box with probability ``p``, else the true one, fed back without its gradient.
"""

from __future__ import annotations

import torch

from ..data import tracking as _library
from .core import Exercise, Wrong, call, expect_tensor, generator, matching_slip, max_gap

__all__ = ["EXERCISES", "box_iou", "into_window", "scheduled_mix"]

_TOL = 1e-5


def box_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Boxes a, b (N, 4) as (x0, y0, x1, y1) -> their intersection over union (N,), in 0..1."""
    wh = (torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])).clamp(min=0)  # (N, 2)
    inter = wh[:, 0] * wh[:, 1]                              # (N,): 0 where the boxes miss each other
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / (area_a + area_b - inter)                 # the overlap is in both areas: count it once


def into_window(boxes: torch.Tensor, windows: torch.Tensor, size: int) -> torch.Tensor:
    """Boxes (N, 4) in image pixels -> the same boxes in the pixels of ``windows`` (N, 4) resized to size x size."""
    origin = windows[:, :2].repeat(1, 2)                     # (N, 4): (wx0, wy0, wx0, wy0)
    scale = size / (windows[:, 2:] - windows[:, :2])         # (N, 2): window pixels per image pixel, x and y
    return (boxes - origin) * scale.repeat(1, 2)             # (N, 4): shift to the window's corner, then scale


def scheduled_mix(truth: torch.Tensor, own: torch.Tensor, p: float, coin: torch.Tensor) -> torch.Tensor:
    """The boxes (N, 4) fed to the next step: clip n gets its ``own`` box where coin[n] < p, else the ``truth``."""
    use_own = (coin < p)[:, None]                            # (N, 1): one draw per clip, for all 4 coordinates
    return torch.where(use_own, own.detach(), truth)         # the own box is an input, not a path for the loss


# ---------------------------------------------------------------- box_iou

def _box_pairs(seed: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n random pairs, then pairs that nest, miss on x, miss on both axes, and coincide."""
    g = generator(seed)
    corner = torch.rand(n, 2, 2, generator=g) * 20                        # (N, box, xy)
    size = torch.rand(n, 2, 2, generator=g) * 10 + 2
    a, b = (torch.cat([corner[:, k], corner[:, k] + size[:, k]], dim=1) for k in (0, 1))
    special_a = torch.tensor([[0., 0, 10, 10], [0, 0, 4, 4], [0, 0, 2, 2], [3, 1, 7, 9]])
    special_b = torch.tensor([[2., 3, 6, 5], [6, 1, 9, 3], [5, 6, 8, 9], [3, 1, 7, 9]])
    return torch.cat([a, special_a]), torch.cat([b, special_b])


def _check_iou(answer) -> str:
    for seed, n in enumerate((6, 3)):
        a, b = _box_pairs(800 + seed, n)
        N = len(a)
        case = f"{N} pairs of boxes (N={N}, 4): overlapping, nested, apart, and equal"
        out = expect_tensor(call(answer, a.clone(), b.clone(), case=case), "What box_iou returns")
        if tuple(out.shape) != (N,):
            raise Wrong(f"On {case} box_iou should give one number per pair, shape (N={N},), but yours gives "
                        f"{tuple(out.shape)}.")
        want = _library.box_iou(a, b)
        if max_gap(out, want) <= _TOL:
            continue
        raise Wrong(_iou_feedback(out, a, b, want, case))
    return ("Right, on boxes that overlap, nest, miss each other and coincide: 1 for the same box, 0 for boxes "
            "apart. IoU is scale-free: a box off by 2 pixels costs more on a small digit than on a big one.")


def _iou_feedback(out, a, b, want, case) -> str:
    w = torch.minimum(a[:, 2:], b[:, 2:]) - torch.maximum(a[:, :2], b[:, :2])   # (N, 2), negative where apart
    raw = w[:, 0] * w[:, 1]
    inter = w.clamp(min=0).prod(1)
    area = lambda box, extra=0: (box[:, 2] - box[:, 0] + extra) * (box[:, 3] - box[:, 1] + extra)  # noqa: E731
    inter1 = (w + 1).clamp(min=0).prod(1)
    slips = [
        (raw / (area(a) + area(b) - raw),
         "boxes that miss each other get a number other than 0 (pairs apart on both axes even get a positive "
         "IoU: two negative widths multiply to a positive area). Clamp the overlap's width and height at 0"),
        (inter / (area(a) + area(b)),
         "the same box gets 0.5, not 1: the union area_a + area_b counts the overlap twice. Subtract it once: "
         "union = area_a + area_b - intersection"),
        (inter / area(a),
         "you divided the overlap by a's area: that is how much of a is covered, and a box that swallows a gets "
         "1. IoU divides by the union of both boxes"),
        (inter1 / (area(a, 1) + area(b, 1) - inter1),
         "you added 1 to every width and height: the convention of boxes given as inclusive pixel indices. These "
         "boxes are continuous coordinates, x1 - x0 is the width"),
    ]
    why = matching_slip(out, slips, _TOL)
    if why:
        return f"On {case}, {why}."
    n = int(((out.detach().float() - want).abs() > _TOL).nonzero()[0, 0])
    return (f"On {case} pair {n}, a = {[round(v, 2) for v in a[n].tolist()]} and b = "
            f"{[round(v, 2) for v in b[n].tolist()]}, has IoU {want[n]:.4f}; "
            f"you gave {float(out[n]):.4f}.")


# ---------------------------------------------------------------- into_window

def _check_window(answer) -> str:
    for seed, (N, size) in enumerate(((4, 32), (3, 100))):
        g = generator(820 + seed)
        corner = torch.rand(N, 2, generator=g) * 30
        windows = torch.cat([corner, corner + torch.rand(N, 2, generator=g) * 20 + 5], dim=1)   # not square
        inside = torch.rand(N, 4, generator=g).sort(-1).values                                  # fractions
        boxes = torch.cat([windows[:, :2] + inside[:, :2] * (windows[:, 2:] - windows[:, :2]),
                           windows[:, :2] + inside[:, 2:] * (windows[:, 2:] - windows[:, :2])], dim=1)
        case = f"{N} boxes and windows that are not square, resized to {size}x{size}"
        out = expect_tensor(call(answer, boxes.clone(), windows.clone(), size, case=case), "What into_window returns")
        if tuple(out.shape) != (N, 4):
            raise Wrong(f"On {case} into_window should give one box per window, (N={N}, 4), but yours gives "
                        f"{tuple(out.shape)}.")
        want = into_window(boxes, windows, size)
        if max_gap(out, want) <= 1e-3:
            continue
        raise Wrong(_window_feedback(out, boxes, windows, size, want, case))
    return ("Right: shift to the window's corner, then scale each axis by size / the window's extent on it. Re3's "
            "network answers in these window coordinates; to draw the box on the frame, undo both steps: divide "
            "by the scale, add the corner back.")


def _window_feedback(out, boxes, windows, size, want, case) -> str:
    origin = windows[:, :2].repeat(1, 2)
    extent = (windows[:, 2:] - windows[:, :2]).repeat(1, 2)     # (N, 4): width, height, width, height
    slips = [
        (boxes * size / extent,
         "you scaled without shifting: a box at the window's top-left corner must come out at (0, 0). Subtract "
         "the window's (x0, y0) first"),
        (boxes - origin,
         f"you shifted to the window's corner but did not resize: the window becomes {size}x{size} pixels, so "
         f"multiply each axis by {size} / the window's width (or height)"),
        ((boxes - origin) * extent / size,
         f"your scale is upside down: a window w pixels wide becomes {size} pixels, so each image pixel is "
         f"{size} / w window pixels, not w / {size}"),
        ((boxes - origin) * size / extent[:, :1],
         "you scaled y by the window's width: these windows are not square, so x scales by size / width and y "
         "by size / height"),
        ((boxes - windows) * size / extent,
         "you subtracted the whole window box, so x1 and y1 lost the far corner: every coordinate is measured "
         "from the window's top-left corner, (x0, y0, x0, y0)"),
    ]
    why = matching_slip(out, slips, 1e-3)
    if why:
        return f"On {case}, {why}."
    return f"On {case} your boxes differ from the window coordinates by up to {max_gap(out, want):.3g} pixels."


# ---------------------------------------------------------------- scheduled_mix

def _check_mix(answer) -> str:
    # N = 4 clips first: the boxes are (4, 4), so a coin of shape (N,) broadcasts along the coordinates silently.
    for seed, (N, p) in enumerate(((4, 0.5), (5, 0.3), (6, 0.0), (3, 1.0))):
        g = generator(840 + seed)
        truth = torch.rand(N, 4, generator=g) * 20
        own = (truth + torch.randn(N, 4, generator=g)).requires_grad_()
        coin = torch.rand(N, generator=g)
        case = f"N={N} clips, p={p}, coin={[round(c, 2) for c in coin.tolist()]}"
        out = expect_tensor(call(answer, truth.clone(), own, p, coin.clone(), case=case, grad=True,
                                 on_error=_coin_hint), "What scheduled_mix returns")
        if tuple(out.shape) != (N, 4):
            raise Wrong(f"On {case} scheduled_mix should give one box per clip, (N={N}, 4), but yours gives "
                        f"{tuple(out.shape)}.")
        want = scheduled_mix(truth, own, p, coin)
        if max_gap(out, want) > _TOL:
            raise Wrong(_mix_feedback(out, truth, own.detach(), p, coin, case))
        if out.requires_grad:
            raise Wrong(f"On {case} the boxes are right, but the tracker's own boxes still carry their gradient: the "
                        "loss would flow back through the box fed in, into the step that predicted it. Scheduled "
                        "sampling decides what the tracker sees; feed own.detach().")
    return ("Right: one coin per clip picks its whole box, own with probability p, true otherwise, and the own "
            "box goes in without its gradient. At p = 0 this is teacher forcing, at p = 1 the free-running "
            "tracker of deployment; scheduled sampling raises p between the two as training goes on.")


def _mix_feedback(out, truth, own, p, coin, case) -> str:
    slips = [
        (torch.where((coin < p)[:, None], truth, own),
         "truth and own are swapped: p is the probability of feeding the tracker its own box. At the start of "
         "training p = 0, and every clip must get the true box (teacher forcing)"),
        (torch.where(coin < p, own, truth),
         "your boxes mix coordinates of the true and the own box: the coin of shape (N,) was broadcast along "
         "the 4 coordinates, not the clips (here N = 4, so nothing complained). One coin picks a whole box: "
         "(coin < p)[:, None], shape (N, 1)"),
        (p * own + (1 - p) * truth,
         "you blended the boxes, p * own + (1 - p) * truth: a box no one ever predicted. Scheduled sampling "
         "picks one of the two per clip, with the coin"),
    ]
    why = matching_slip(out, slips, _TOL)
    if why:
        return f"On {case}, {why}."
    want = torch.where((coin < p)[:, None], own, truth)
    return f"On {case} your boxes differ from the scheduled mix by up to {max_gap(out, want):.3g}."


def _coin_hint(error: BaseException) -> str | None:
    if "non-singleton dimension 1" in str(error):
        return ("The coin has one entry per clip, shape (N,), and the boxes are (N, 4): broadcasting lines up the "
                "last axes, N against 4. Give the coin a coordinates axis, (coin < p)[:, None] of shape (N, 1), "
                "so one coin picks a whole box.")
    return None


_IOU_SKELETON = '''\
def box_iou(a, b):
    """Intersection over union of boxes a and b, each (N, 4) as (x0, y0, x1, y1) with x0 < x1, y0 < y1,
    in pixels (continuous coordinates). Return (N,): 1 for the same box, 0 for boxes apart."""
    ...  # your code here'''

_WINDOW_SKELETON = '''\
def into_window(boxes, windows, size):
    """Re3's crop-and-scale: the search window windows[n] (x0, y0, x1, y1) is cut out of the frame and
    resized to size x size pixels. Return boxes (N, 4) in that resized window's pixel coordinates."""
    ...  # your code here'''

_MIX_SKELETON = '''\
def scheduled_mix(truth, own, p, coin):
    """One step of scheduled sampling: the boxes (N, 4) fed to the tracker's next step.
    Clip n gets its own previous prediction own[n] if coin[n] < p, else the true box truth[n].
    coin (N,) holds uniform random numbers in [0, 1); `own` comes from the model (it has a gradient)."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="box_iou", lesson=8,
        title="Score a box: intersection over union of two boxes (x0, y0, x1, y1).",
        skeleton=_IOU_SKELETON,
        hint="The overlap runs from the larger x0 to the smaller x1 (torch.maximum, torch.minimum), and the same "
             "in y; where the boxes miss each other that width is negative: .clamp(min=0). "
             "Union = area_a + area_b - overlap.",
        reference=box_iou, grade=_check_iou),
    Exercise(
        name="into_window", lesson=8,
        title="Re3's crop-and-scale: express a box in the pixels of a search window resized to size x size.",
        skeleton=_WINDOW_SKELETON,
        hint="Subtract the window's top-left corner (x0, y0) from both corners of the box, then multiply x by "
             "size / the window's width and y by size / its height.",
        reference=into_window, grade=_check_window),
    Exercise(
        name="scheduled_mix", lesson=8,
        title="One step of scheduled sampling: per clip, the tracker's own box with probability p, else the truth.",
        skeleton=_MIX_SKELETON,
        hint="torch.where(condition, own, truth) with a condition of shape (N, 1), one coin per whole box, and "
             "own.detach(): the box fed back is an input, not a path for the loss.",
        reference=scheduled_mix, grade=_check_mix),
)

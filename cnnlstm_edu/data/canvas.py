"""Painting MNIST digits onto blank frames: the one drawing routine behind the synthetic tasks.

``direction``, ``first_digit`` and ``track`` (in :mod:`.tasks` and :mod:`.tracking`) all do the
same three things: pick digits from one MNIST split (train digits for training clips, test
digits for test clips, so a model is never tested on a digit it trained on), shrink them to
the size a task wants, and stamp them at integer positions on a black canvas, frame by frame.
Where two digits overlap the brighter pixel wins, as in Moving MNIST (Srivastava et al. 2015).

Positions are whole pixels on purpose: a digit moved by a whole number of pixels is the same
image shifted, exactly, which lets the tests prove things like "a left-moving clip played
backwards *is* a right-moving clip" bit for bit.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ..checks import check_number
from .mnist import SPLITS, load_mnist

__all__ = ["pick_digits", "paint", "ink_boxes"]


def pick_digits(count: int, split: str, digit_size: int, generator: torch.Generator,
                owner: str = "pick_digits") -> tuple[torch.Tensor, torch.Tensor]:
    """``count`` random digits of ``split``, resized: uint8 ``(count, S, S)`` and labels ``(count,)``.

    >>> gen = torch.Generator().manual_seed(0)
    >>> stamps, labels = pick_digits(5, "test", 14, gen)
    >>> stamps.shape, stamps.dtype, labels.shape          # (N, S, S), (N,)
    (torch.Size([5, 14, 14]), torch.uint8, torch.Size([5]))
    """
    if split not in SPLITS:
        raise ValueError(f"{owner}: split must be one of {SPLITS}, got {split!r}")
    check_number(digit_size, "digit_size", integer=True, low=1, high=28, owner=owner)
    images, labels = load_mnist(split)                                 # (M, 28, 28), (M,)
    picks = torch.randint(len(images), (count,), generator=generator)
    digits = images[picks].float()                                     # (count, 28, 28)
    if digit_size != 28:
        # Area averaging keeps the strokes' brightness when shrinking, unlike nearest-neighbour.
        digits = F.interpolate(digits[:, None], size=(digit_size, digit_size), mode="area")[:, 0]
    return digits.round().clamp(0, 255).to(torch.uint8), labels[picks]  # (count, S, S), (count,)


def paint(stamps: torch.Tensor, positions: torch.Tensor, size: int, wrap: bool = False) -> torch.Tensor:
    """Stamp digits on black frames: ``(N, D, S, S)`` stamps at ``(N, T, D, 2)`` positions -> ``(N, T, 1, size, size)``.

    ``positions[n, t, d]`` is the ``(y, x)`` of digit d's top-left corner in frame t, in whole
    pixels. Without ``wrap`` it must lie in 0..``size - S`` (the digit stays inside the frame);
    with ``wrap`` the frame is a torus, like an arcade screen: what leaves on the right comes
    back on the left, and any position is taken modulo ``size``. Overlaps keep the brighter pixel.

    >>> stamps = torch.full((1, 1, 2, 2), 9, dtype=torch.uint8)       # (N, D, S, S): one 2x2 digit
    >>> positions = torch.tensor([[[[0, 0]], [[1, 2]]]])              # (N, T, D, 2): two frames
    >>> paint(stamps, positions, size=4)[0, 1, 0]                      # frame 1: the digit at y=1, x=2
    tensor([[0, 0, 0, 0],
            [0, 0, 9, 9],
            [0, 0, 9, 9],
            [0, 0, 0, 0]], dtype=torch.uint8)
    >>> shifted = positions + torch.tensor([0, 1])                    # frame 1: y=1, x=3
    >>> paint(stamps, shifted, size=4, wrap=True)[0, 1, 0]             # column 4 is column 0 again
    tensor([[0, 0, 0, 0],
            [9, 0, 0, 9],
            [9, 0, 0, 9],
            [0, 0, 0, 0]], dtype=torch.uint8)
    """
    N, D, S = stamps.shape[:3]
    T = positions.shape[1]
    if S > size:
        raise ValueError(f"paint: {S}-pixel digits do not fit a {size}-pixel frame")
    if not wrap and (positions.min() < 0 or positions.max() > size - S):
        raise ValueError(f"paint: positions must lie in 0..{size - S} so that {S}-pixel digits stay "
                         f"inside a {size}-pixel frame, got {positions.min().item()}.."
                         f"{positions.max().item()}")
    r = torch.arange(S)
    flat_stamps = stamps.reshape(N, D * S * S)                         # (N, D*S*S)
    video = torch.zeros(N, T, size * size, dtype=torch.uint8)
    # One frame at a time: the index tensor of all frames at once would be N*T*D*S*S int64s.
    for t in range(T):
        y, x = positions[:, t].long().unbind(-1)                       # (N, D) each
        rows = (y[..., None] + r) % size                               # (N, D, S): the digit's rows
        cols = (x[..., None] + r) % size                               # (N, D, S): and columns
        index = rows[..., :, None] * size + cols[..., None, :]         # (N, D, S, S): flat pixel ids
        video[:, t].scatter_reduce_(1, index.view(N, D * S * S), flat_stamps, reduce="amax")
    return video.view(N, T, 1, size, size)                             # (N, T, C=1, H, W)


def ink_boxes(stamps: torch.Tensor) -> torch.Tensor:
    """The tight box around each stamp's inked (non-zero) pixels: ``(..., S, S) -> (..., 4)``.

    Boxes are ``(x0, y0, x1, y1)`` in pixels, float, with exclusive ends: the box covers columns
    ``x0 .. x1 - 1``, so its width is ``x1 - x0`` (a single pixel at column 3 is ``x0=3, x1=4``).
    A stamp with no ink has no box: that is an error, not a zero box.

    >>> stamp = torch.zeros(5, 5, dtype=torch.uint8)
    >>> stamp[1:3, 2:5] = 200                        # ink on rows 1-2, columns 2-4
    >>> ink_boxes(stamp[None])                       # (N, 4): x0, y0, x1, y1
    tensor([[2., 1., 5., 3.]])
    """
    ink = stamps > 0                                                   # (..., S, S)
    cols, rows = ink.any(-2), ink.any(-1)                              # (..., S) each: inked x / y
    if not bool(cols.any(-1).all()):
        raise ValueError("ink_boxes: a stamp has no inked pixel, so it has no box")
    S = stamps.shape[-1]
    r = torch.arange(S)

    def first_last(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first = torch.where(mask, r, S).amin(-1)                       # (...,): first inked index
        last = torch.where(mask, r, -1).amax(-1)                       # (...,): last inked index
        return first, last + 1                                         # exclusive end

    x0, x1 = first_last(cols)
    y0, y1 = first_last(rows)
    return torch.stack([x0, y0, x1, y1], dim=-1).float()               # (..., 4)

"""Two classification tasks that a per-frame CNN cannot solve and a CNN-LSTM can (issue 15).

On MNIST quadrants a plain CNN on the whole digit does as well as any sequence model: time
there is only a way of cutting up an image. These two tasks put the answer *in the order of
the frames*, so a model that looks at frames one at a time, or pools them without order,
cannot get it:

- :func:`direction`: a digit slides in a straight line in one of 8 directions, on a canvas
  that wraps around; the label is the direction. Played backwards, a left-moving clip *is* a right-moving clip, frame for frame
  (same images, reverse order), so order-blind pooling can tell the axis, never the way along it.
- :func:`first_digit`: two different digits are shown one after the other, each for half of
  the clip; the label is the first one. A memory task: the answer has left the screen by the
  last frame, and the clip "A then B" holds the very same frames as "B then A".

Both are deterministic given ``seed``, need no network (they draw from the bundled MNIST), and
take their digits from MNIST's training images for ``split="train"`` and from its test images
for ``split="test"``. Clips are uint8 ``(N, T, 1, H, W)``, as ``train.fit`` takes them.
"""

from __future__ import annotations

import torch

from ..checks import check_number
from .canvas import paint, pick_digits

__all__ = ["DIRECTIONS", "direction", "first_digit", "opposite", "slide"]

# Label k is DIRECTIONS[k], counter-clockwise from "right" in steps of 45 degrees, so the
# opposite of label k is label (k + 4) % 8.
DIRECTIONS = ("right", "up-right", "up", "up-left", "left", "down-left", "down", "down-right")
# One step of each direction as (dy, dx) in image coordinates (y grows downwards).
_STEPS = torch.tensor([(0, 1), (-1, 1), (-1, 0), (-1, -1), (0, -1), (1, -1), (1, 0), (1, 1)])


def opposite(label: int) -> int:
    """The label of the opposite direction.

    >>> DIRECTIONS[opposite(DIRECTIONS.index("up-left"))]
    'down-right'
    """
    return (label + 4) % len(DIRECTIONS)


def _check_motion(owner: str, seq_len, size, digit_size, speed) -> None:
    """Validate the sizes of a sliding-digit clip on a wrapping canvas."""
    check_number(seq_len, "seq_len", integer=True, low=2, owner=owner)   # one frame shows no motion
    check_number(digit_size, "digit_size", integer=True, low=1, high=28, owner=owner)
    check_number(size, "size", integer=True, low=1, owner=owner)
    check_number(speed, "speed", integer=True, low=1, owner=owner)
    if size < digit_size:
        raise ValueError(f"{owner}: size={size} is too small for {digit_size}-pixel digits; make "
                         f"size at least {digit_size}, or digit_size smaller")
    if 2 * speed >= size:
        raise ValueError(
            f"{owner}: speed={speed} is too fast for a {size}-pixel canvas that wraps around: a "
            f"step of {speed} px one way looks like a step of {size - speed} px the other way. "
            f"Keep speed below size / 2 = {size / 2:g}"
        )


def _label_of(name, owner: str) -> int:
    if name not in DIRECTIONS:
        raise ValueError(f"{owner}: unknown direction {name!r}; choose from {DIRECTIONS}")
    return DIRECTIONS.index(name)


def _path(starts: torch.Tensor, labels: torch.Tensor, seq_len: int, speed: int) -> torch.Tensor:
    """Top-left corners ``(N, T, 1, 2)`` of digits starting at ``starts`` ``(N, 2)``, moving straight."""
    t = torch.arange(seq_len).view(1, seq_len, 1)                       # (1, T, 1)
    step = speed * _STEPS[labels].view(-1, 1, 2)                        # (N, 1, 2): (dy, dx) per frame
    return (starts.view(-1, 1, 2) + t * step).unsqueeze(2)              # (N, T, D=1, 2)


def slide(stamp: torch.Tensor, start: tuple[int, int], direction: str, seq_len: int = 8,
          size: int = 32, speed: int = 2) -> torch.Tensor:
    """One clip of ``stamp`` ``(S, S)`` sliding from ``start`` = (y, x): uint8 ``(T, 1, size, size)``.

    The building block of :func:`direction`, for one digit placed by hand, on the same wrapping
    canvas. Played backwards, a clip is the opposite direction's clip from where this one ends:

    >>> stamp = torch.full((3, 3), 255, dtype=torch.uint8)
    >>> right = slide(stamp, (4, 1), "right", seq_len=4, size=10)       # x = 1, 3, 5, 7
    >>> right.shape                                                     # (T, C, H, W)
    torch.Size([4, 1, 10, 10])
    >>> left = slide(stamp, (4, 7), "left", seq_len=4, size=10)         # x = 7, 5, 3, 1
    >>> torch.equal(right.flip(0), left)
    True
    """
    _check_motion("slide", seq_len, size, stamp.shape[-1], speed)
    label = torch.tensor([_label_of(direction, "slide")])
    path = _path(torch.tensor([start]), label, seq_len, speed)          # (1, T, 1, 2)
    return paint(stamp.view(1, 1, *stamp.shape), path, size, wrap=True)[0]  # (T, 1, size, size)


def direction(num_clips: int, split: str = "train", seq_len: int = 6, size: int = 24,
              digit_size: int = 12, speed: int = 2, directions: tuple[str, ...] = DIRECTIONS,
              seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Digits sliding in a straight line: uint8 clips ``(N, T, 1, size, size)``, labels ``(N,)``.

    Each clip shows one digit (shrunk to ``digit_size``) moving ``speed`` pixels per frame along
    x, y, or both (the diagonals); the label is the index of its direction in
    :data:`DIRECTIONS` (``directions`` picks a subset; labels keep their global index).

    The canvas wraps around, like an arcade screen: what leaves on the right comes back on the
    left, so a digit never bounces and never stops. It starts at a uniformly random place, so
    every frame of every clip shows its digit at a uniformly random place, whatever the
    direction: **a single frame says nothing about the direction** (``last_frame`` stays at
    chance, 1 in 8). And since the start is uniform, so is the end: the clips of a direction,
    played backwards, are distributed exactly like the clips of the opposite direction. That is
    why a model that averages its frames without order (``frame_average``) stops near 50 %: it
    can tell the axis, never which way along it.

    >>> clips, labels = direction(16, split="test", seed=0)
    >>> clips.shape, clips.dtype                   # (N, T, C, H, W)
    (torch.Size([16, 6, 1, 24, 24]), torch.uint8)
    >>> labels.shape, int(labels.max()) < len(DIRECTIONS)    # (N,)
    (torch.Size([16]), True)
    >>> torch.equal(clips, direction(16, split="test", seed=0)[0])   # same seed, same clips
    True

    The defaults are sized for a CPU lesson: a CNN-LSTM learns them in about 100 steps of 32
    clips (``benchmarks/baselines.md``).
    """
    owner = "direction"
    check_number(num_clips, "num_clips", integer=True, low=1, owner=owner)
    _check_motion(owner, seq_len, size, digit_size, speed)
    if isinstance(directions, str) or not directions:
        raise ValueError(f"{owner}: directions must be a non-empty tuple of names from "
                         f"{DIRECTIONS}, got {directions!r}")
    allowed = torch.tensor([_label_of(d, owner) for d in directions])

    gen = torch.Generator().manual_seed(seed)
    stamps, _ = pick_digits(num_clips, split, digit_size, gen, owner)  # (N, S, S)
    labels = allowed[torch.randint(len(allowed), (num_clips,), generator=gen)]  # (N,)
    starts = torch.randint(size, (num_clips, 2), generator=gen)         # (N, 2): anywhere on the torus
    clips = paint(stamps[:, None], _path(starts, labels, seq_len, speed), size, wrap=True)
    return clips, labels                                                # (N, T, 1, H, W), (N,)


def first_digit(num_clips: int, split: str = "train", seq_len: int = 4, size: int = 28,
                digit_size: int = 28, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Two different digits, one after the other; the label is the first: ``(N, T, 1, H, W)``, ``(N,)``.

    Digit A is shown (at a random place, the same for its frames) in frames ``0 .. T/2 - 1``,
    digit B, of another class, in frames ``T/2 .. T - 1``; the label is A's class, 0-9.

    Why it needs memory, not just a good CNN:

    - a single frame shows A or B, never which came first, and the last frame always shows the
      wrong digit: ``last_frame`` can only learn "not this one" (about 1 in 9);
    - the clip "A then B" holds exactly the frames of "B then A" (each half as long, and A and
      B drawn the same way), so a model that pools its frames without order (``frame_average``)
      sees the same input for both labels and gets at most 50 %;
    - a recurrent model must keep A in its state through B's frames, and say it at the end.

    >>> clips, labels = first_digit(8, split="test", seed=0)
    >>> clips.shape, clips.dtype                   # (N, T, C, H, W): A, A, B, B
    (torch.Size([8, 4, 1, 28, 28]), torch.uint8)
    >>> bool(torch.equal(clips[:, 0], clips[:, 1]) and not torch.equal(clips[:, 1], clips[:, 2]))
    True
    """
    owner = "first_digit"
    check_number(num_clips, "num_clips", integer=True, low=1, owner=owner)
    check_number(seq_len, "seq_len", integer=True, low=2, owner=owner)
    if seq_len % 2:
        raise ValueError(f"{owner}: seq_len must be even, so that both digits are shown equally "
                         f"long (otherwise the longer-shown one gives the answer away), got {seq_len}")
    check_number(digit_size, "digit_size", integer=True, low=1, high=28, owner=owner)
    check_number(size, "size", integer=True, low=digit_size, owner=owner)

    gen = torch.Generator().manual_seed(seed)
    first, first_labels = pick_digits(num_clips, split, digit_size, gen, owner)     # (N, S, S), (N,)
    second, second_labels = pick_digits(num_clips, split, digit_size, gen, owner)
    # Redraw B where it has A's class: with equal classes the order would not matter.
    same = second_labels == first_labels
    while bool(same.any()):
        redraw, redraw_labels = pick_digits(int(same.sum()), split, digit_size, gen, owner)
        second[same], second_labels[same] = redraw, redraw_labels
        same = second_labels == first_labels
    stamps = torch.stack([first, second], dim=1)                        # (N, D=2, S, S)
    corner = torch.randint(size - digit_size + 1, (num_clips, 2, 2), generator=gen)  # (N, D, 2)
    half = seq_len // 2
    clips = torch.cat([paint(stamps[:, d:d + 1], corner[:, None, d:d + 1].expand(-1, half, -1, -1), size)
                       for d in range(2)], dim=1)                       # (N, T, 1, H, W)
    return clips, first_labels

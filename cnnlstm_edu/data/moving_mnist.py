"""Moving MNIST: digits from the bundled MNIST bouncing around a square frame.

The video benchmark of Srivastava et al. (2015), used by Shi et al. (2015) to introduce the
ConvLSTM: a few digits glide in straight lines and bounce off the walls; where they overlap, the
brighter pixel wins. Predicting the next frames means learning each digit's position and
velocity from the frames seen so far, which is exactly what a recurrent state is for.

Everything is generated here from a seed, so the same call gives the same videos on every
machine, and nothing is downloaded. Digits for ``split="train"`` come from MNIST's training
images and for ``split="test"`` from its test images, so a model is never tested on a digit it
was trained on. The defaults are sized for a CPU lesson (one digit at half size in a 32x32
frame, 10 frames); ``moving_mnist(n, seq_len=20, size=64, num_digits=2, digit_size=28)`` is the
classic benchmark.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F

from ..checks import check_number
from .mnist import load_mnist

__all__ = ["moving_mnist"]


def moving_mnist(num_sequences: int, seq_len: int = 10, size: int = 32, num_digits: int = 1,
                 digit_size: int = 14, speed: tuple[float, float] = (1.0, 2.5), split: str = "train",
                 seed: int = 0) -> torch.Tensor:
    """``num_sequences`` videos of bouncing digits: uint8 ``(N, T, 1, size, size)``.

    Each digit starts at a random place with a random direction and a speed (pixels per
    frame) drawn from ``speed``, and reflects off the frame's edges.

    >>> videos = moving_mnist(8, seq_len=10, size=32, seed=0)
    >>> videos.shape, videos.dtype                  # (N, T, C, H, W)
    (torch.Size([8, 10, 1, 32, 32]), torch.uint8)
    >>> torch.equal(videos, moving_mnist(8, seq_len=10, size=32, seed=0))   # same seed, same videos
    True
    """
    for name, value in (("num_sequences", num_sequences), ("seq_len", seq_len),
                        ("num_digits", num_digits), ("digit_size", digit_size)):
        check_number(value, name, integer=True, low=1, owner="moving_mnist")
    if digit_size > size:
        raise ValueError(f"moving_mnist: digits of {digit_size} px do not fit a {size} px frame; "
                         "make size larger or digit_size smaller")
    lo, hi = speed
    if not 0 <= lo <= hi:
        raise ValueError(f"moving_mnist: speed must be (low, high) with 0 <= low <= high, got {speed}")

    gen = torch.Generator().manual_seed(seed)
    images, _ = load_mnist(split)                                      # (M, 28, 28) uint8
    N, D, T, S = num_sequences, num_digits, seq_len, digit_size
    picks = torch.randint(len(images), (N * D,), generator=gen)
    digits = images[picks].float()                                     # (N*D, 28, 28)
    if S != 28:
        # Area averaging keeps the strokes' brightness when shrinking, unlike nearest-neighbour.
        digits = F.interpolate(digits[:, None], size=(S, S), mode="area")[:, 0]  # (N*D, S, S)
    digits = digits.round().clamp(0, 255).to(torch.uint8).view(N, D, S * S)

    # Trajectories, all digits at once: positions (N, D, 2) in pixels, reflected at the walls.
    limit = size - S
    pos = torch.rand(N, D, 2, generator=gen) * limit
    angle = torch.rand(N, D, generator=gen) * 2 * math.pi
    v = lo + (hi - lo) * torch.rand(N, D, generator=gen)
    vel = torch.stack([v * torch.sin(angle), v * torch.cos(angle)], dim=-1)  # (N, D, 2): (dy, dx)

    # Pixel offsets of a digit's S*S pixels inside the frame, relative to its top-left corner.
    r = torch.arange(S)
    offsets = (r[:, None] * size + r[None, :]).view(1, 1, S * S)       # (1, 1, S*S)
    video = torch.zeros(N, T, size * size, dtype=torch.uint8)
    for t in range(T):
        y, x = pos.round().long().unbind(-1)                           # (N, D) each
        index = (y * size + x)[..., None] + offsets                    # (N, D, S*S): flat pixel ids
        # Overlapping digits: the brighter pixel wins, as in the original data set.
        video[:, t].scatter_reduce_(1, index.view(N, D * S * S), digits.view(N, D * S * S),
                                    reduce="amax")
        pos, vel = _bounce(pos + vel, vel, limit)
    return video.view(N, T, 1, size, size)                             # (N, T, C=1, H, W)


def _bounce(pos: torch.Tensor, vel: torch.Tensor, limit: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Reflect positions that left ``[0, limit]`` back inside, and flip their velocity."""
    low, high = pos < 0, pos > limit
    pos = torch.where(low, -pos, torch.where(high, 2 * limit - pos, pos))
    vel = torch.where(low | high, -vel, vel)
    return pos.clamp(0, limit), vel

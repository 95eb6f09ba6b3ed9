"""Pixels as the models want them: uint8 ``0..255`` in, float32 ``[0, 1]`` out.

Data sets here keep frames as uint8 (a quarter of the memory, and MNIST's own bytes); every
model reads float32. One conversion, used by training, the models' objectives, the app and viz.

>>> import torch
>>> to_float(torch.tensor([0, 255], dtype=torch.uint8))
tensor([0., 1.])
"""

from __future__ import annotations

import torch

__all__ = ["to_float"]


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [0, 1]; float input is returned as float32.

    >>> to_float(torch.tensor([0.5], dtype=torch.float64))
    tensor([0.5000])
    """
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()

"""MNIST digits as sequences of quadrants: the smallest video a CNN-LSTM can learn from.

The idea comes from a Stack Overflow question (seed 004, "Keras: reshape to connect lstm and
conv"): cut each 28x28 digit into four 14x14 quadrants and feed them to the model one after
the other, so a per-frame CNN sees 14x14 frames and an LSTM has to put the digit together::

    +----+----+
    |  1 |  2 |      order "1234" -> frames 1, 2, 3, 4
    +----+----+      order "4321" -> frames 4, 3, 2, 1
    |  3 |  4 |      order "1324" -> frames 1, 3, 2, 4
    +----+----+      order "4231" -> frames 4, 2, 3, 1

Quadrant 1 is top-left, 2 top-right, 3 bottom-left, 4 bottom-right. Everything here is a pure
rearrangement: the same pixel values and dtype, only moved.

- :func:`quadrant_sequences`: ``(N, 28, 28) -> (N, 4, 1, 14, 14)``, one order.
- :func:`tile_quadrants`: its inverse, ``(N, 4, 1, 14, 14) -> (N, 28, 28)``.
- :func:`stacked_quadrant_sequences`: ``(N, 28, 28) -> (N, 4, 1, 56, 14)``, the seed's own layout,
  with the four orders of :data:`QUADRANT_ORDERS` stacked in one frame.
"""

from __future__ import annotations

import numpy as np
import torch

from ..shapes import ShapeError

__all__ = ["QUADRANT_ORDERS", "quadrant_sequences", "stacked_quadrant_sequences", "tile_quadrants"]

QUADRANT_ORDERS = ("1234", "4321", "1324", "4231")


def quadrant_sequences(images: torch.Tensor | np.ndarray, order: str = "1234") -> torch.Tensor:
    """Cut ``(N, 28, 28)`` images into quadrant sequences ``(N, 4, 1, 14, 14)``, taken in ``order``.

    Step ``t`` holds quadrant ``int(order[t])``. ``order`` is any permutation of ``"1234"``.
    Images may also come as ``(N, 1, 28, 28)`` (the channel is dropped) or as a numpy array
    (the result is a torch tensor). The result is a new tensor of the input's dtype.

    >>> images = torch.arange(2 * 28 * 28).reshape(2, 28, 28)    # (N, H, W)
    >>> seq = quadrant_sequences(images, order="4321")
    >>> seq.shape                                                # (N, T, C, H, W)
    torch.Size([2, 4, 1, 14, 14])
    >>> torch.equal(seq[:, 0, 0], images[:, 14:, 14:])           # step 0 is quadrant 4, bottom-right
    True
    >>> torch.equal(seq[:, 3, 0], images[:, :14, :14])           # step 3 is quadrant 1, top-left
    True
    """
    steps = _check_order(order, "quadrant_sequences")
    x = _as_images(images, "quadrant_sequences")
    N = x.shape[0]
    blocks = x.reshape(N, 2, 14, 2, 14)        # (N, row, h, col, w): row/col pick the half
    blocks = blocks.permute(0, 1, 3, 2, 4)     # (N, row, col, h, w)
    quads = blocks.reshape(N, 4, 14, 14)       # (N, Q, h, w): Q = 2*row + col, i.e. quadrant number - 1
    seq = quads[:, steps]                      # (N, T, h, w): indexing with a list copies, in `order`
    return seq.unsqueeze(2)                    # (N, T, C=1, H=14, W=14)


def tile_quadrants(seq: torch.Tensor | np.ndarray, order: str = "1234") -> torch.Tensor:
    """Put quadrant sequences back together: ``(N, 4, 1, 14, 14) -> (N, 28, 28)``.

    The inverse of :func:`quadrant_sequences` with the same ``order``.

    >>> images = torch.randint(0, 256, (3, 28, 28), dtype=torch.uint8)
    >>> seq = quadrant_sequences(images, order="1324")          # (N, T, C, H, W)
    >>> tile_quadrants(seq, order="1324").shape                  # (N, H, W)
    torch.Size([3, 28, 28])
    >>> torch.equal(tile_quadrants(seq, order="1324"), images)
    True
    """
    steps = _check_order(order, "tile_quadrants")
    if isinstance(seq, np.ndarray):
        seq = _from_numpy(seq, "tile_quadrants")
    if not isinstance(seq, torch.Tensor):
        raise TypeError(f"tile_quadrants: expected a torch.Tensor or numpy array, got {type(seq).__name__}")
    if tuple(seq.shape[1:]) != (4, 1, 14, 14):
        raise ShapeError(
            f"tile_quadrants: expected quadrant sequences (N, 4, 1, 14, 14), got {tuple(seq.shape)}. "
            "It undoes quadrant_sequences; pass its output unchanged."
        )
    N = seq.shape[0]
    back = [steps.index(q) for q in range(4)]  # the step at which each quadrant 1..4 was taken
    quads = seq[:, back, 0]                    # (N, Q, h, w), quadrants back in 1, 2, 3, 4 order
    blocks = quads.reshape(N, 2, 2, 14, 14)    # (N, row, col, h, w)
    blocks = blocks.permute(0, 1, 3, 2, 4)     # (N, row, h, col, w)
    return blocks.reshape(N, 28, 28)           # (N, H, W)


def stacked_quadrant_sequences(images: torch.Tensor | np.ndarray) -> torch.Tensor:
    """The seed's layout: all four :data:`QUADRANT_ORDERS` in one sequence, ``(N, 4, 1, 56, 14)``.

    At step ``t`` the 56-pixel axis holds four 14x14 quadrants one after the other: rows
    ``14*k : 14*(k+1)`` are step ``t`` of order ``QUADRANT_ORDERS[k]``. So frame ``t`` is four
    tiles, of ``"1234"``, ``"4321"``, ``"1324"``, ``"4231"`` from top to bottom. The seed calls
    this axis "width" (its Theano-era array is ``[60000, 4, 1, 56, 14]``); in PyTorch's
    ``(N, T, C, H, W)`` it is the H axis, so the tiles are stacked vertically.

    >>> images = torch.arange(28 * 28).reshape(1, 28, 28)        # (N, H, W)
    >>> stacked = stacked_quadrant_sequences(images)
    >>> stacked.shape                                            # (N, T, C, 4*14, 14)
    torch.Size([1, 4, 1, 56, 14])
    >>> torch.equal(stacked[:, 0, 0, 14:28], images[:, 14:, 14:])  # step 0 of "4321": quadrant 4
    True
    >>> torch.equal(stacked[:, :, :, 28:42], quadrant_sequences(images, "1324"))
    True
    """
    x = _as_images(images, "stacked_quadrant_sequences")                     # (N, 28, 28)
    per_order = [quadrant_sequences(x, order) for order in QUADRANT_ORDERS]  # 4 x (N, T, 1, 14, 14)
    return torch.cat(per_order, dim=3)                                       # (N, T, 1, 4*14, 14)


def _check_order(order: object, where: str) -> list[int]:
    """Validate ``order`` and return it as 0-based quadrant indices, one per time step."""
    if not isinstance(order, str) or sorted(order) != ["1", "2", "3", "4"]:
        hint = " (an int: pass the string instead)" if isinstance(order, int) else ""
        raise ValueError(
            f"{where}: order must be a permutation of '1234' (each quadrant 1-4 once, e.g. one of "
            f"{QUADRANT_ORDERS}), got {order!r}{hint}"
        )
    return [int(c) - 1 for c in order]


def _from_numpy(array: np.ndarray, where: str) -> torch.Tensor:
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{where}: expected an array of numbers (uint8 or float pixels), got dtype "
                        f"{array.dtype} of shape {array.shape}. Convert it, e.g. array.astype(np.uint8).")
    # from_numpy shares memory; a read-only array is copied first, as torch cannot mark it so.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _as_images(images: object, where: str) -> torch.Tensor:
    """``images`` as a torch tensor of shape (N, 28, 28), or a ShapeError that says what came."""
    if isinstance(images, np.ndarray):
        images = _from_numpy(images, where)
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"{where}: expected a torch.Tensor or numpy array, got {type(images).__name__}")
    if images.dim() == 4 and images.shape[1] == 1:
        images = images[:, 0]  # (N, 28, 28): a channel axis of 1 is dropped
    if images.dim() != 3 or tuple(images.shape[1:]) != (28, 28):
        hint = (
            " A single image needs a batch axis: images.unsqueeze(0)."
            if tuple(images.shape) == (28, 28)
            else " Pass MNIST-sized images, as load_mnist returns them."
        )
        raise ShapeError(f"{where}: expected images (N, 28, 28) (or (N, 1, 28, 28)), got {tuple(images.shape)}.{hint}")
    return images

"""Data for the lessons: bundled MNIST and the quadrant sequences built from it.

>>> from cnnlstm_edu.data import load_mnist, quadrant_sequences
>>> images, labels = load_mnist("test")            # (N, 28, 28) uint8, (N,) int64
>>> quadrant_sequences(images[:8]).shape           # (B, T, C, H, W)
torch.Size([8, 4, 1, 14, 14])
"""

from .mnist import load_mnist
from .quadrants import QUADRANT_ORDERS, quadrant_sequences, stacked_quadrant_sequences, tile_quadrants

__all__ = ["load_mnist", "quadrant_sequences", "QUADRANT_ORDERS", "stacked_quadrant_sequences", "tile_quadrants"]

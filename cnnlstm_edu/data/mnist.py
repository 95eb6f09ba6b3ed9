"""MNIST as tensors, from the copy bundled with this package (or from a torchvision root).

The package carries MNIST as ``cnnlstm_edu/data/mnist.npz`` (uint8, about 11 MB; where it comes
from and its licence are in ``data/README.md``), so every lesson runs in a classroom with no
network. :func:`load_mnist` reads it once per split and keeps it in memory. A user who already
has torchvision's copy can pass its root instead; the raw idx files are parsed here with numpy,
so nothing is ever downloaded.

MNIST is by Yann LeCun, Corinna Cortes and Christopher Burges, licensed CC BY-SA 3.0.
"""

from __future__ import annotations

import functools
import gzip
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch

__all__ = ["load_mnist", "SPLITS"]

SPLITS = ("train", "test")

# torchvision's file names under <root>/MNIST/raw/, per split: (images, labels).
_IDX_NAMES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def load_mnist(split: str = "train", root: str | os.PathLike | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(images, labels)``: uint8 ``(N, 28, 28)`` and int64 ``(N,)``, N = 60,000 or 10,000.

    ``split`` is ``"train"`` or ``"test"``. With ``root=None`` the bundled file is read; with
    ``root`` set, the raw idx files of a torchvision MNIST root are (``root/MNIST/raw/...``,
    plain or ``.gz``). The tensors are fresh copies: changing them changes nothing for the next
    caller.

    >>> images, labels = load_mnist("test")
    >>> images.shape, images.dtype                # (N, H, W)
    (torch.Size([10000, 28, 28]), torch.uint8)
    >>> labels.shape, labels.dtype                # (N,)
    (torch.Size([10000]), torch.int64)
    >>> labels[:10].tolist()
    [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    """
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"load_mnist: split must be one of {SPLITS}, got {split!r}")
    if root is None:
        images, labels = _bundled(split)
    else:
        images, labels = _from_torchvision_root(Path(root), split)
    # Copies, so that a caller writing into the result cannot corrupt the cached arrays.
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


@functools.lru_cache(maxsize=None)
def _bundled(split: str) -> tuple[np.ndarray, np.ndarray]:
    """The bundled arrays of one split, read once. Read-only: :func:`load_mnist` hands out copies."""
    # importlib.resources finds the file wherever the package is installed (a wheel, a zip, a
    # checkout). allow_pickle=False: the library itself never unpickles anything.
    with (resources.files(__package__) / "mnist.npz").open("rb") as f, np.load(f, allow_pickle=False) as npz:
        images = npz[f"{split}_images"]  # (N, 28, 28) uint8
        labels = npz[f"{split}_labels"]  # (N,)
    images.setflags(write=False)
    labels.setflags(write=False)
    return images, labels


def _from_torchvision_root(root: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Read one split from the raw idx files torchvision keeps under ``root/MNIST/raw``."""
    image_name, label_name = _IDX_NAMES[split]
    images = _read_idx(_find_raw(root, image_name))
    labels = _read_idx(_find_raw(root, label_name))
    if images.ndim != 3 or images.shape[1:] != (28, 28):
        raise ValueError(f"load_mnist: {image_name} holds images of shape {images.shape}, expected (N, 28, 28)")
    if labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(
            f"load_mnist: {label_name} holds labels of shape {labels.shape}, expected ({len(images)},) "
            f"to match {image_name}"
        )
    return images, labels


def _find_raw(root: Path, name: str) -> Path:
    """``root/MNIST/raw/name`` (or ``.gz``); ``root`` may also be the raw folder itself."""
    folders = [root / "MNIST" / "raw", root]
    candidates = [folder / (name + suffix) for folder in folders for suffix in ("", ".gz")]
    for path in candidates:
        if path.is_file():
            return path
    raise FileNotFoundError(
        f"load_mnist: no MNIST file {name!r} under root={str(root)!r}; looked for "
        + ", ".join(str(p) for p in candidates)
        + ". Pass the root you gave torchvision.datasets.MNIST (the folder that holds MNIST/raw), "
        "or leave root=None to use the copy bundled with this package."
    )


def _read_idx(path: Path) -> np.ndarray:
    """Parse an idx file (the format MNIST ships in) into a uint8 array.

    Layout: two zero bytes, a type code (0x08 = unsigned byte), the number of dimensions d,
    then d big-endian int32 sizes, then the data, row-major.
    """
    raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"load_mnist: {path} is not an idx file (its first bytes are {raw[:4]!r})")
    if raw[2] != 0x08:
        raise ValueError(f"load_mnist: {path} holds idx type code {raw[2]:#04x}, expected 0x08 (unsigned byte)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"load_mnist: {path} ends inside its header: the file is truncated or corrupt")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">i4", count=ndim, offset=4))
    if len(raw) - header != int(np.prod(dims)):
        raise ValueError(
            f"load_mnist: {path} declares shape {dims} ({int(np.prod(dims))} bytes of data) "
            f"but holds {len(raw) - header}: the file is truncated or corrupt"
        )
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)  # (N, 28, 28) or (N,)

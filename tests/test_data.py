"""Tests for cnnlstm_edu.data: the bundled MNIST file, load_mnist, and the quadrant sequences.

The quadrant tests prove identities: every order tiles back to the exact image, and every
step holds exactly the pixels of the quadrant it names.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import re
from importlib import resources

import numpy as np
import pytest
import torch

from cnnlstm_edu.data import (
    QUADRANT_ORDERS,
    load_mnist,
    quadrant_sequences,
    stacked_quadrant_sequences,
    tile_quadrants,
)
from cnnlstm_edu.shapes import ShapeError

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
# The arrays' digest recorded in cnnlstm_edu/data/README.md (scripts/build_mnist.py prints it).
CONTENT_SHA256 = "25b1a379d0a35342a5fb605ae7092594efeb1d484ce10bc5a55be448befd58ab"

# Where each quadrant lives in a 28x28 image: 1 top-left, 2 top-right, 3 bottom-left, 4 bottom-right.
TOP, BOTTOM, LEFT, RIGHT = slice(0, 14), slice(14, 28), slice(0, 14), slice(14, 28)
QUADRANT_SLICES = {"1": (TOP, LEFT), "2": (TOP, RIGHT), "3": (BOTTOM, LEFT), "4": (BOTTOM, RIGHT)}
ALL_ORDERS = ["".join(p) for p in itertools.permutations("1234")]  # all 24, the 4 named ones included


def re_shape(shape) -> str:
    """A regex matching the shape as error messages print it, e.g. ``(2, 28, 27)``."""
    return re.escape(str(tuple(shape)))


# ---------------------------------------------------------------------------- bundled MNIST


@pytest.mark.parametrize("split, n, counts", [("train", 60_000, TRAIN_COUNTS), ("test", 10_000, TEST_COUNTS)])
def test_bundled_mnist_shapes_dtypes_and_class_counts(split, n, counts):
    images, labels = load_mnist(split)
    assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
    assert labels.shape == (n,) and labels.dtype == torch.int64
    assert torch.bincount(labels, minlength=10).tolist() == counts
    assert images.min() == 0 and images.max() == 255


def test_bundled_file_is_the_recorded_one():
    # Same digest as content_sha256 in scripts/build_mnist.py: name, dtype, shape, bytes per array.
    h = hashlib.sha256()
    with (resources.files("cnnlstm_edu.data") / "mnist.npz").open("rb") as f, np.load(f, allow_pickle=False) as npz:
        assert sorted(npz.files) == ["test_images", "test_labels", "train_images", "train_labels"]
        for name in sorted(npz.files):
            a = np.ascontiguousarray(npz[name])
            h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
            h.update(a.tobytes())
    assert h.hexdigest() == CONTENT_SHA256


def test_load_mnist_is_standard_mnist_in_order():
    # The first labels of the official files, and the mean pixel behind the usual 0.1307 normalisation.
    train_images, train_labels = load_mnist("train")
    test_images, test_labels = load_mnist("test")
    assert train_labels[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert test_labels[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert train_images.double().mean().div(255).item() == pytest.approx(0.1307, abs=1e-4)


def test_load_mnist_hands_out_copies():
    images, labels = load_mnist("test")
    images.zero_()
    labels.fill_(-1)
    images, labels = load_mnist("test")
    assert images.max() == 255 and labels.min() == 0


@pytest.mark.parametrize("split", ["valid", "Train", "all", "", None, 0])
def test_load_mnist_bad_split(split):
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\), got " + repr(split)):
        load_mnist(split)


# ---------------------------------------------------------------------------- torchvision root


def _idx_bytes(array: np.ndarray) -> bytes:
    """Encode a uint8 array in the idx format: 0, 0, type 0x08, ndim, big-endian int32 sizes, data."""
    header = bytes([0, 0, 0x08, array.ndim]) + np.asarray(array.shape, dtype=">i4").tobytes()
    return header + np.ascontiguousarray(array, dtype=np.uint8).tobytes()


def _write_root(folder, split: str, images: np.ndarray, labels: np.ndarray, gz: bool) -> None:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        data = _idx_bytes(arr)
        if gz:
            (folder / (name + ".gz")).write_bytes(gzip.compress(data))
        else:
            (folder / name).write_bytes(data)


@pytest.mark.parametrize("gz", [False, True], ids=["plain", "gz"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_load_mnist_from_torchvision_root(tmp_path, split, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(3, 28, 28), dtype=np.uint8)
    labels = np.array([7, 0, 9], dtype=np.uint8)
    _write_root(tmp_path / "MNIST" / "raw", split, images, labels, gz)

    got_images, got_labels = load_mnist(split, root=tmp_path)
    assert got_images.dtype == torch.uint8 and got_labels.dtype == torch.int64
    assert torch.equal(got_images, torch.from_numpy(images))
    assert got_labels.tolist() == [7, 0, 9]
    # The raw folder itself works too, and a str root as well as a Path.
    assert torch.equal(load_mnist(split, root=str(tmp_path / "MNIST" / "raw"))[0], got_images)


def test_load_mnist_missing_root_raises(tmp_path):
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        load_mnist("test", root=tmp_path / "nowhere")
    # Images there but no labels: still a clear FileNotFoundError naming the missing file.
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    (raw / "t10k-images-idx3-ubyte").write_bytes(_idx_bytes(np.zeros((1, 28, 28), np.uint8)))
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_mnist("test", root=tmp_path)


def test_load_mnist_corrupt_idx_raises(tmp_path):
    raw = tmp_path / "MNIST" / "raw"
    _write_root(raw, "test", np.zeros((2, 28, 28), np.uint8), np.zeros(2, np.uint8), gz=False)
    path = raw / "t10k-images-idx3-ubyte"
    path.write_bytes(path.read_bytes()[:-5])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        load_mnist("test", root=tmp_path)
    path.write_bytes(b"PK\x03\x04 not an idx file")
    with pytest.raises(ValueError, match="not an idx file"):
        load_mnist("test", root=tmp_path)


# ---------------------------------------------------------------------------- quadrants


def test_quadrant_orders_are_the_seed_ones():
    assert QUADRANT_ORDERS == ("1234", "4321", "1324", "4231")


@pytest.fixture(scope="module")
def eight_digits(digits):
    """Eight real test digits, uint8 (8, 28, 28)."""
    return digits[0][:8]


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float32, torch.int64])
@pytest.mark.parametrize("order", ALL_ORDERS)
def test_quadrant_sequences_is_a_pure_rearrangement(order, dtype):
    x = torch.randint(0, 256, (5, 28, 28)).to(dtype)  # (N, H, W)
    seq = quadrant_sequences(x, order)
    assert seq.shape == (5, 4, 1, 14, 14) and seq.dtype == dtype
    for t, quadrant in enumerate(order):
        rows, cols = QUADRANT_SLICES[quadrant]
        assert torch.equal(seq[:, t, 0], x[:, rows, cols]), f"step {t} of {order} is not quadrant {quadrant}"
    assert torch.equal(tile_quadrants(seq, order), x)


@pytest.mark.parametrize("order", QUADRANT_ORDERS)
def test_real_digits_tile_back_exactly(eight_digits, order):
    assert torch.equal(tile_quadrants(quadrant_sequences(eight_digits, order), order), eight_digits)


def test_quadrant_sequences_default_order_and_default_tile():
    x = torch.arange(28 * 28).reshape(1, 28, 28)
    assert torch.equal(quadrant_sequences(x), quadrant_sequences(x, "1234"))
    assert torch.equal(tile_quadrants(quadrant_sequences(x)), x)
    # Reading the four quadrants in "1234" order is reading the image in 14x14 blocks, row by row.
    assert quadrant_sequences(x)[0, :, 0, 0, 0].tolist() == [0, 14, 14 * 28, 14 * 28 + 14]


def test_tiling_with_another_order_scrambles():
    x = torch.arange(28 * 28).reshape(1, 28, 28)
    assert not torch.equal(tile_quadrants(quadrant_sequences(x, "1234"), "4321"), x)


def test_quadrant_sequences_returns_new_memory(eight_digits):
    x = eight_digits.clone()
    seq = quadrant_sequences(x)
    seq.fill_(0)
    assert torch.equal(x, eight_digits)


def test_quadrant_sequences_accepts_numpy_and_a_channel_axis(eight_digits):
    expected = quadrant_sequences(eight_digits, "4231")
    from_numpy = quadrant_sequences(eight_digits.numpy(), "4231")
    assert isinstance(from_numpy, torch.Tensor) and torch.equal(from_numpy, expected)
    read_only = eight_digits.numpy().copy()
    read_only.setflags(write=False)
    assert torch.equal(quadrant_sequences(read_only, "4231"), expected)
    assert torch.equal(quadrant_sequences(eight_digits.unsqueeze(1), "4231"), expected)  # (N, 1, 28, 28)
    assert torch.equal(tile_quadrants(expected.numpy(), "4231"), eight_digits)


@pytest.mark.parametrize(
    "shape",
    [(28, 28), (784,), (2, 784), (2, 3, 28, 28), (1, 2, 1, 28, 28), (2, 28, 27), (2, 27, 28), (2, 56, 14), (2, 14, 14)],
)
def test_quadrant_sequences_bad_shape(shape):
    x = torch.zeros(shape, dtype=torch.uint8)
    for fn in (quadrant_sequences, stacked_quadrant_sequences):
        with pytest.raises(ShapeError, match=r"expected images \(N, 28, 28\).*got " + re_shape(shape)):
            fn(x)
    assert issubclass(ShapeError, ValueError)


def test_single_image_hint():
    with pytest.raises(ValueError, match=r"unsqueeze\(0\)"):
        quadrant_sequences(torch.zeros(28, 28))


@pytest.mark.parametrize("order", ["1233", "123", "abcd", 1234, "12345", "0123", "", None, ["1", "2", "3", "4"]])
def test_bad_order(order):
    x = torch.zeros(2, 28, 28)
    pattern = r"order must be a permutation of '1234'.*got " + re.escape(repr(order))
    with pytest.raises(ValueError, match=pattern):
        quadrant_sequences(x, order)
    with pytest.raises(ValueError, match=pattern):
        tile_quadrants(torch.zeros(2, 4, 1, 14, 14), order)


@pytest.mark.parametrize("shape", [(2, 28, 28), (2, 4, 14, 14), (2, 4, 1, 56, 14), (2, 3, 1, 14, 14), (4, 1, 14, 14)])
def test_tile_quadrants_bad_shape(shape):
    with pytest.raises(ShapeError, match=r"expected quadrant sequences \(N, 4, 1, 14, 14\), got " + re_shape(shape)):
        tile_quadrants(torch.zeros(shape))


def test_non_tensor_input_is_a_type_error():
    with pytest.raises(TypeError, match="list"):
        quadrant_sequences([[0] * 28] * 28)


# ---------------------------------------------------------------------------- stacked layout (seed 004)


@pytest.mark.parametrize("dtype", [torch.uint8, torch.float64])
def test_stacked_layout_holds_each_order_in_its_band(dtype):
    x = torch.randint(0, 256, (3, 28, 28)).to(dtype)
    stacked = stacked_quadrant_sequences(x)
    assert stacked.shape == (3, 4, 1, 56, 14) and stacked.dtype == dtype
    for t in range(4):
        for k, order in enumerate(QUADRANT_ORDERS):
            rows, cols = QUADRANT_SLICES[order[t]]
            band = stacked[:, t, 0, 14 * k : 14 * (k + 1), :]  # (N, 14, 14): order k at step t
            assert torch.equal(band, x[:, rows, cols]), f"step {t}, band {k} ({order}) is not quadrant {order[t]}"


def test_stacked_layout_bands_are_the_single_order_sequences(eight_digits):
    stacked = stacked_quadrant_sequences(eight_digits)
    bands = stacked.reshape(8, 4, 1, 4, 14, 14)  # (N, T, C, K, h, w): K = which order
    for k, order in enumerate(QUADRANT_ORDERS):
        assert torch.equal(bands[:, :, :, k], quadrant_sequences(eight_digits, order))
        assert torch.equal(tile_quadrants(bands[:, :, :, k], order), eight_digits)
    # Step 0 of the seed's layout, top to bottom: quadrants 1, 4, 1, 4.
    first = stacked[0, 0, 0]
    assert torch.equal(first[:14], eight_digits[0, :14, :14]) and torch.equal(first[14:28], eight_digits[0, 14:, 14:])


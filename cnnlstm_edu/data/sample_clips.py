"""Sample clips for a learner without videos: bundled MNIST digits in motion, written as real files.

:func:`write_sample_clips` writes one class folder per motion (a digit crossing the frame
left, right or down) as real H.264 .mp4 files (PyAV's own FFmpeg), animated .gif files and
folders of numbered .png frames: the layout
:func:`~cnnlstm_edu.data.video_folder` reads, the app's sample zip, the lesson's folder and the
tests' data. Nothing is downloaded; the same seed writes the same frames.

>>> import tempfile
>>> root = write_sample_clips(tempfile.mkdtemp(), per_class=2, formats=("gif",))
>>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*.gif"))[:3]
['down/down_000.gif', 'down/down_001.gif', 'left/left_000.gif']
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..checks import check_number
from .canvas import paint, pick_digits
from .tasks import _STEPS, DIRECTIONS

__all__ = ["FORMATS", "write_clip", "write_sample_clips", "write_sample_zip"]

FORMATS = ("mp4", "gif", "frames")


def write_clip(frames: torch.Tensor | np.ndarray, path: str | os.PathLike, fps: int = 8) -> Path:
    """Write uint8 frames ``(T, C, H, W)`` (C = 1 or 3) as a video (.mp4, .avi, .mkv, .mov, .webm),
    an animated .gif, or, for a path without a suffix, a folder of ``frame_000.png`` ...

    MP4 files are H.264 (libx264, near-lossless ``crf=12``, yuv420p), so H and W must be even.
    A GIF stores a run of identical frames once, with a longer duration (Pillow merges them).
    """
    frames = np.asarray(frames, dtype=np.uint8)
    if frames.ndim != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"write_clip: frames must be (T, C, H, W) with C = 1 or 3, got {frames.shape}")
    path = Path(path)
    images = frames.transpose(0, 2, 3, 1)                     # (T, H, W, C): the layout images use
    suffix = path.suffix.lower()
    if suffix == ".gif":
        _write_gif(images, path, fps)
    elif suffix:
        _write_video(images, path, fps)
    else:
        from PIL import Image

        path.mkdir(parents=True, exist_ok=True)
        for t, image in enumerate(images):
            Image.fromarray(image.squeeze(-1) if image.shape[-1] == 1 else image).save(path / f"frame_{t:03d}.png")
    return path


def _write_gif(images: np.ndarray, path: Path, fps: int) -> None:
    from PIL import Image

    pictures = [Image.fromarray(im.squeeze(-1) if im.shape[-1] == 1 else im) for im in images]
    # optimize=False and disposal=1: every frame stored whole, none merged with a neighbour
    pictures[0].save(path, save_all=True, append_images=pictures[1:], duration=1000 // fps, loop=0,
                     optimize=False, disposal=1)


def _write_video(images: np.ndarray, path: Path, fps: int) -> None:
    import av

    T, H, W, C = images.shape
    if H % 2 or W % 2:
        raise ValueError(f"write_clip: {path.suffix} video needs an even height and width "
                         f"(yuv420p), got {H}x{W}")
    codec = "libx264" if path.suffix.lower() in (".mp4", ".mkv", ".mov") else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = W, H, "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "12"}
        for image in images:
            rgb = np.repeat(image, 3, axis=-1) if C == 1 else image     # (H, W, 3)
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():                                   # flush the encoder
            container.mux(packet)


def write_sample_clips(root: str | os.PathLike, classes: tuple[str, ...] = ("left", "right", "down"),
                       per_class: int = 12, frames: int = 10, size: int = 32,
                       formats: tuple[str, ...] = FORMATS, min_frames: int | None = None,
                       seed: int = 0) -> Path:
    """Write ``per_class`` clips of a digit sliding each way of ``classes`` under ``root``.

    Clip k of a class is written in ``formats[k % len(formats)]``. With ``min_frames``, clip
    lengths are drawn from ``min_frames..frames`` (for the variable-length lesson); otherwise
    every clip has ``frames`` frames. Returns ``root`` as a Path.
    """
    owner = "write_sample_clips"
    check_number(per_class, "per_class", integer=True, low=1, high=1000, owner=owner)
    check_number(frames, "frames", integer=True, low=2, high=200, owner=owner)
    check_number(size, "size", integer=True, low=16, high=256, owner=owner)
    if size % 2:
        raise ValueError(f"{owner}: size must be even (H.264 video), got {size}")
    low = frames if min_frames is None else min_frames
    check_number(low, "min_frames", integer=True, low=2, high=frames, owner=owner)
    if isinstance(classes, str) or len(classes) < 2 or len(set(classes)) < len(classes) \
            or not set(classes) <= set(DIRECTIONS):
        raise ValueError(f"{owner}: classes must be 2 or more different names from {DIRECTIONS}, got {classes!r}")
    if isinstance(formats, str) or not formats or not set(formats) <= set(FORMATS):
        raise ValueError(f"{owner}: formats must be a tuple of {FORMATS}, got {formats!r}")
    root = Path(root)
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{owner}: {root} is not empty; give a new or empty folder")
    gen = torch.Generator().manual_seed(seed)
    digit, speed = size * 3 // 8, max(1, size // 16)
    for name in classes:
        stamps, _ = pick_digits(per_class, "train", digit, gen, owner)        # (N, S, S)
        path = _crossing(name, per_class, frames, size - digit, speed, gen)   # (N, T, 1, 2)
        clips = paint(stamps[:, None], path, size)                            # (N, T, 1, size, size)
        lengths = torch.randint(low, frames + 1, (per_class,), generator=gen)
        (root / name).mkdir(parents=True, exist_ok=True)
        for k in range(per_class):
            fmt = formats[k % len(formats)]
            target = root / name / (f"{name}_{k:03d}" + ("" if fmt == "frames" else f".{fmt}"))
            write_clip(clips[k, :int(lengths[k])], target)
    return root


def _crossing(name: str, count: int, frames: int, room: int, speed: int, gen: torch.Generator) -> torch.Tensor:
    """Top-left corners ``(N, T, 1, 2)`` of digits moving ``name``-wards, inside the frame.

    Unlike :func:`~cnnlstm_edu.data.tasks.direction`'s wrapping canvas, the digit crosses the
    frame as a filmed object would: a class of a few dozen clips is then enough to learn from.
    ``room`` is the last corner position that keeps the digit whole; each step is whole pixels.
    """
    step = _STEPS[DIRECTIONS.index(name)] * speed                     # (2,): (dy, dx) per frame
    travel = step.abs() * (frames - 1)                                # (2,): how far it goes
    if int(travel.max()) > room:
        raise ValueError(f"write_sample_clips: {frames} frames at {speed} pixels a frame leave the "
                         f"frame; use fewer frames or a larger size")
    # start anywhere that keeps the whole path inside: shift by the travel when moving up or left
    starts = (torch.rand(count, 2, generator=gen) * (room - travel + 1)).long()   # (N, 2)
    starts = starts + torch.where(step < 0, travel, 0)
    t = torch.arange(frames).view(1, frames, 1)                      # (1, T, 1)
    return (starts[:, None] + t * step).unsqueeze(2)                  # (N, T, 1, 2)


def write_sample_zip(path: str | os.PathLike, **options) -> Path:
    """The sample clips (:func:`write_sample_clips` with ``options``) in one .zip of class folders."""
    import tempfile

    from ..atomic import atomic_path

    path = Path(path)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_sample_clips(Path(tmp) / "clips", **options)
        with atomic_path(path) as out, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for file in sorted(root.rglob("*")):
                if file.is_file():
                    archive.write(file, file.relative_to(root).as_posix())
    return path

"""Reading one clip: a video file (PyAV), an animated GIF (Pillow) or a folder of frame images.

Every clip is read in two steps, so that a hostile file costs nothing before it is refused:

1. :func:`probe` reads only the header: frame size, colour mode, and the frame count where the
   container knows it. A frame larger than ``max_side`` is refused here, before any frame is decoded.
2. :func:`decode` decodes the frames, resizing and converting each one as it comes (so a long
   clip never holds its full-size frames in memory), then keeps ``frames`` of them by
   :func:`sample_indices`.

PyAV (FFmpeg's bindings, with FFmpeg inside its wheel) is imported inside the functions that
need it: importing this module stays light.

>>> sample_indices(10, 4, short="loop")     # uniform over the clip, first and last frame kept
[0, 3, 6, 9]
>>> sample_indices(3, 5, short="loop")      # shorter than T: play it again from the start
[0, 1, 2, 0, 1]
>>> sample_indices(3, 5, short="pad")       # or keep it once; the rest is padding (and a mask)
[0, 1, 2]
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["ClipError", "ClipInfo", "ClipRefused", "IMAGE_SUFFIXES", "VIDEO_SUFFIXES", "clip_kind", "decode",
           "probe", "sample_indices"]

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".webm", ".mkv", ".m4v")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
SHORT_RULES = ("loop", "pad")
# Pillow modes with one channel; every other mode (RGB, RGBA, P with a palette, CMYK...) is colour.
_GREY_MODES = {"1", "L", "LA", "I", "I;16", "F"}


class ClipError(ValueError):
    """A clip that can't be read (unreadable, truncated, empty): skipped with a warning by a folder."""


class ClipRefused(ValueError):
    """A clip that was read but can't be used as it is (too big, too long, too short): refused."""


@dataclass(frozen=True)
class ClipInfo:
    """What a clip's header says, before any frame is decoded."""

    path: Path
    kind: str             # "video", "gif" or "frames"
    width: int
    height: int
    channels: int         # 1 for a grey source, 3 for colour
    frames: int | None    # the count the container announces (None when it doesn't say)


def clip_kind(path: Path) -> str | None:
    """``"video"``, ``"gif"``, ``"frames"`` (a folder) or None for anything that is not a clip."""
    if path.is_dir():
        return "frames"
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return "video"
    if suffix == ".gif":
        return "gif"
    return None


def sample_indices(available: int, frames: int, short: str = "loop") -> list[int]:
    """Which of ``available`` frames to keep so a clip has ``frames`` of them.

    A longer clip is sampled uniformly, its first and last frame included. A shorter clip is
    either looped (``short="loop"``: it plays again from the start, every clip then has T real
    frames) or kept once (``short="pad"``: the caller pads it and records its length, for a
    mask or ``pack_padded_sequence``).
    """
    if available >= frames:
        return np.linspace(0, available - 1, frames).round().astype(int).tolist()
    if short == "loop":
        return [i % available for i in range(frames)]
    return list(range(available))


def _natural_key(path: Path) -> list:
    # frame_2.png before frame_10.png: compare the runs of digits as numbers.
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def frame_files(folder: Path) -> list[Path]:
    """The images of a frame folder in frame order; anything else in it is refused."""
    files = [p for p in folder.iterdir() if not p.name.startswith(".")]
    others = [p.name for p in files if p.suffix.lower() not in IMAGE_SUFFIXES]
    if others:
        raise ClipRefused(f"{folder} is a frame folder, but holds {others[:3]} which are not images "
                         f"({', '.join(IMAGE_SUFFIXES)}); move them out")
    return sorted(files, key=_natural_key)


def _check_side(path: Path, width: int, height: int, max_side: int) -> None:
    if width < 1 or height < 1:
        raise ClipError(f"{path}: its frames are {width}x{height} pixels")
    if max(width, height) > max_side:
        raise ClipRefused(f"{path}: its frames are {width}x{height} pixels, above the cap of "
                         f"{max_side} pixels a side; shrink the clip, or raise max_side")


def probe(path: Path, max_side: int, need_mode: bool = True) -> ClipInfo:
    """The header of one clip; :class:`ClipError` if it can't be read, ClipRefused above the cap.

    A GIF's colour mode is not in its header (each frame may bring its own palette): with
    ``need_mode`` its frames are looked at, after the size check; without, it is reported grey.
    """
    kind = clip_kind(path)
    try:
        if kind == "frames":
            files = frame_files(path)
            if not files:
                raise ClipError(f"{path}: the frame folder holds no images")
            info = _probe_image(files[0], kind)
            info = ClipInfo(path, kind, info.width, info.height, info.channels, len(files))
        elif kind == "gif":
            info = _probe_image(path, kind)
            _check_side(path, info.width, info.height, max_side)
            if need_mode:
                info = ClipInfo(path, kind, info.width, info.height, _gif_channels(path), info.frames)
        else:
            info = _probe_video(path)
    except (ClipError, ClipRefused):
        raise
    except Exception as e:  # noqa: BLE001  whatever a broken file makes FFmpeg or Pillow raise
        raise ClipError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    _check_side(path, info.width, info.height, max_side)
    return info


def _probe_image(path: Path, kind: str) -> ClipInfo:
    from PIL import Image

    if path.stat().st_size == 0:
        raise ClipError(f"{path}: the file is empty (0 bytes)")
    with Image.open(path) as image:               # reads the header only
        frames = getattr(image, "n_frames", 1) if kind == "gif" else 1
        channels = 1 if image.mode in _GREY_MODES else 3
        if image.mode == "P" and _palette_is_grey(image):
            channels = 1
        return ClipInfo(path, kind, image.width, image.height, channels, frames)


def _palette_is_grey(image) -> bool:
    # A palette whose entries all have R = G = B draws only greys.
    rgb = np.frombuffer(bytes(image.getpalette() or []), dtype=np.uint8).reshape(-1, 3)
    return bool((rgb[:, 0] == rgb[:, 1]).all() and (rgb[:, 1] == rgb[:, 2]).all())


def _gif_channels(path: Path) -> int:
    """1 if every frame of the GIF is grey (R = G = B everywhere), else 3."""
    from PIL import Image, ImageSequence

    with Image.open(path) as gif:
        for frame in ImageSequence.Iterator(gif):
            rgb = np.asarray(frame.convert("RGB"))                 # (H, W, 3)
            if (rgb[..., 0] != rgb[..., 1]).any() or (rgb[..., 1] != rgb[..., 2]).any():
                return 3
    return 1


def _probe_video(path: Path) -> ClipInfo:
    import av

    if path.stat().st_size == 0:
        raise ClipError(f"{path}: the file is empty (0 bytes)")
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ClipError(f"{path}: the file holds no video stream")
        stream = container.streams.video[0]
        ctx = stream.codec_context
        fmt = ctx.format.name if ctx.format is not None else ""
        channels = 1 if fmt.startswith("gray") else 3
        return ClipInfo(path, "video", ctx.width, ctx.height, channels, stream.frames or None)


def decode(info: ClipInfo, frames: int, size: tuple[int, int], channels: int, short: str,
           max_frames: int) -> np.ndarray:
    """``frames`` frames of the clip (fewer when ``short="pad"``), resized: uint8 ``(T', C, H, W)``."""
    try:
        if info.kind == "video":
            kept = _decode_video(info, size, channels, max_frames)
        else:
            kept = _decode_images(info, size, channels, max_frames)
    except (ClipError, ClipRefused):
        raise
    except Exception as e:  # noqa: BLE001  a truncated file fails mid-way with FFmpeg's or Pillow's error
        raise ClipError(f"{info.path}: unreadable after the header ({type(e).__name__}: {e})") from None
    if len(kept) < 2:
        raise ClipRefused(f"{info.path}: {len(kept)} frame(s); a clip needs at least 2 frames "
                         "(a single image is not a sequence)")
    picked = np.stack([kept[i] for i in sample_indices(len(kept), frames, short)])  # (T', H, W, C)
    return np.ascontiguousarray(picked.transpose(0, 3, 1, 2))                        # (T', C, H, W)


def _too_long(info: ClipInfo, max_frames: int) -> ClipRefused:
    return ClipRefused(f"{info.path}: more than {max_frames} frames; trim the clip, or raise max_frames")


def _decode_video(info: ClipInfo, size: tuple[int, int], channels: int, max_frames: int) -> list:
    import av

    H, W = size
    fmt = "gray" if channels == 1 else "rgb24"
    kept = []
    with av.open(str(info.path)) as container:
        stream = container.streams.video[0]
        for frame in container.decode(stream):
            if frame.width != info.width or frame.height != info.height:
                _check_side(info.path, frame.width, frame.height, max(info.width, info.height))
            if (frame.height, frame.width) == (H, W):
                small = frame.to_ndarray(format=fmt)
            else:   # swscale resizes and converts in one pass, straight to the size the model wants
                small = frame.reformat(width=W, height=H, format=fmt, interpolation="AREA").to_ndarray()
            kept.append(small.reshape(H, W, channels))
            if len(kept) > max_frames:
                raise _too_long(info, max_frames)
    return kept


def _decode_images(info: ClipInfo, size: tuple[int, int], channels: int, max_frames: int) -> list:
    from PIL import Image, ImageSequence

    H, W = size
    mode = "L" if channels == 1 else "RGB"

    def convert(image, name) -> np.ndarray:
        if image.size != (info.width, info.height):
            raise ClipRefused(f"{name}: a frame of {image.width}x{image.height} pixels in a clip whose "
                             f"first frame is {info.width}x{info.height}; all frames of a clip must "
                             "have one size")
        image = image.convert(mode)
        if image.size != (W, H):
            image = image.resize((W, H), Image.BILINEAR)
        return np.asarray(image, dtype=np.uint8).reshape(H, W, channels)

    if info.kind == "gif":
        if info.frames is not None and info.frames > max_frames:
            raise _too_long(info, max_frames)
        with Image.open(info.path) as gif:
            return [convert(frame, info.path) for frame in ImageSequence.Iterator(gif)]
    files = frame_files(info.path)
    if len(files) > max_frames:
        raise _too_long(info, max_frames)
    kept = []
    for file in files:
        if file.stat().st_size == 0:
            raise ClipError(f"{file}: the frame image is empty (0 bytes)")
        with Image.open(file) as image:
            kept.append(convert(image, file))
    return kept

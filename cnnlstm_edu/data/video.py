"""Your own clips: a folder with one sub-folder per class becomes ``(N, T, C, H, W)`` uint8 clips.

::

    root/
      wave/   a.mp4  b.gif  c/ (frame_000.png, frame_001.png, ...)
      clap/   ...

A clip is a video file (.mp4, .avi, .mov, .webm, .mkv, .m4v, read with PyAV), an animated .gif,
or a folder of numbered frame images. ``frames`` (T) frames are sampled uniformly from each clip;
a clip shorter than T is looped (``short="loop"``) or kept once and padded with black frames
(``short="pad"``; ``lengths`` then says how many frames are real, for a mask or
``pack_padded_sequence``). Frames are resized to ``size`` and converted to ``channels``.

Hostile folders are expected. Unreadable, truncated and empty clips are skipped with one
warning naming each (refused when nothing is left); files that are not clips, a class without
clips, a single class, clips under 2 frames, frames above ``max_side`` (checked from the header,
before decoding), and mixed sizes or colour modes with no ``size``/``channels`` to settle them
are refused, naming the file and the value. The decoded tensors are cached beside the data in
the hidden folder ``.cnnlstm_edu-cache/``, keyed on every file's name, size and modification
time and on the settings: a second call with the same folder and settings decodes nothing.

>>> import tempfile
>>> from cnnlstm_edu.data import write_sample_clips, video_folder
>>> root = write_sample_clips(tempfile.mkdtemp(), per_class=4, formats=("gif", "frames"))
>>> data = video_folder(root, frames=6, size=(24, 24), channels=1, progress=False)
>>> data.clips.shape, data.clips.dtype           # (N, T, C, H, W)
(torch.Size([12, 6, 1, 24, 24]), torch.uint8)
>>> data.classes, data.labels.tolist()[:5]
(['down', 'left', 'right'], [0, 0, 0, 0, 1])
>>> train, test = data.split(test_fraction=0.25)  # deterministic, stratified by class
>>> len(train), len(test)
(9, 3)
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..checks import check_number
from .clips import SHORT_RULES, ClipError, ClipInfo, clip_kind, decode, probe
from .video_cache import load_cached, save_cached

__all__ = ["VideoClips", "load_clip", "video_folder"]

CACHE_DIR = ".cnnlstm_edu-cache"


@dataclass
class VideoClips:
    """What :func:`video_folder` returns. Unpacks as ``clips, labels, classes = data``."""

    clips: torch.Tensor        # uint8 (N, T, C, H, W)
    labels: torch.Tensor       # int64 (N,): index into classes
    classes: list[str]         # class names, sorted: the sub-folder names
    lengths: torch.Tensor      # int64 (N,): real frames per clip (T unless short="pad" and shorter)
    files: list[str]           # each clip's path relative to the root, "class/name"
    settings: dict             # frames, size, channels, short: the preprocessing, for a checkpoint
    skipped: list[str] = field(default_factory=list)   # clips skipped as unreadable, with the reason

    def __iter__(self):
        return iter((self.clips, self.labels, self.classes))

    def __len__(self) -> int:
        return len(self.clips)

    def subset(self, index: torch.Tensor | list[int]) -> VideoClips:
        """The clips at ``index``, with everything that belongs to them."""
        index = torch.as_tensor(index, dtype=torch.long)
        return VideoClips(self.clips[index], self.labels[index], list(self.classes), self.lengths[index],
                          [self.files[i] for i in index.tolist()], dict(self.settings), list(self.skipped))

    def split(self, test_fraction: float = 0.25, seed: int = 0) -> tuple[VideoClips, VideoClips]:
        """``(train, test)``: in each class, ``test_fraction`` of its clips (at least one) held out.

        Which clips go to test depends only on their file names and ``seed`` (a hash), not on
        the order they were read in or on the other files: adding clips to a class never moves
        an old clip from train to test.
        """
        check_number(test_fraction, "test_fraction", low=0, high=1, low_open=True, owner="split")
        test = []
        for label, name in enumerate(self.classes):
            members = [i for i in range(len(self)) if int(self.labels[i]) == label]
            if len(members) < 2:
                raise ValueError(f"split: class {name!r} has {len(members)} clip, so it can't give "
                                 "both a training and a test clip; add clips to it")
            members.sort(key=lambda i: hashlib.sha256(f"{seed}:{self.files[i]}".encode()).hexdigest())
            count = min(len(members) - 1, max(1, round(test_fraction * len(members))))
            test += members[:count]
        train = sorted(set(range(len(self))) - set(test))
        return self.subset(train), self.subset(sorted(test))


def _check_settings(frames, size, channels, short, max_side) -> tuple[int, tuple | None, int | None]:
    owner = "video_folder"
    check_number(frames, "frames", integer=True, low=2, high=10_000, owner=owner)
    check_number(max_side, "max_side", integer=True, low=1, owner=owner)
    if size is not None:
        if isinstance(size, int) and not isinstance(size, bool):
            size = (size, size)
        if not isinstance(size, (tuple, list)) or len(size) != 2:
            raise ValueError(f"{owner}: size must be (H, W) or one int, got {size!r}")
        for side in size:
            check_number(side, "size", integer=True, low=1, high=max_side, owner=owner)
        size = (int(size[0]), int(size[1]))
    if channels not in (None, 1, 3):
        raise ValueError(f"{owner}: channels must be 1 (grey), 3 (colour) or None (as the clips are), "
                         f"got {channels!r}")
    if short not in SHORT_RULES:
        raise ValueError(f"{owner}: short must be one of {SHORT_RULES}, got {short!r}")
    return int(frames), size, channels


def _scan(root: Path, max_clips: int) -> tuple[list[str], list[tuple[Path, int]]]:
    """Class names and ``(clip path, label)`` pairs; refuses what is not a clip."""
    if not root.is_dir():
        raise FileNotFoundError(f"video_folder: {root} is not a folder; give a folder with one "
                                "sub-folder of clips per class")
    # hidden entries (the cache, .DS_Store) and macOS's zip debris are not classes
    visible = sorted(p for p in root.iterdir() if not p.name.startswith(".") and p.name != "__MACOSX")
    loose = [p.name for p in visible if not p.is_dir()]
    if loose:
        warnings.warn(f"video_folder: ignoring {len(loose)} file(s) directly in {root} ({loose[:3]}); "
                      "clips belong in a sub-folder named after their class", stacklevel=3)
    classes = [p.name for p in visible if p.is_dir()]
    if len(classes) < 2:
        raise ValueError(f"video_folder: {root} has {len(classes)} class folder(s) {classes}; a "
                         "classifier needs at least 2, one sub-folder of clips per class")
    items = []
    for label, name in enumerate(classes):
        entries = sorted(p for p in (root / name).iterdir() if not p.name.startswith("."))
        if not entries:
            raise ValueError(f"video_folder: the class folder {root / name} holds no clips")
        for path in entries:
            if clip_kind(path) is None:
                raise ValueError(f"video_folder: {path} is not a clip (suffix {path.suffix or 'none'!r}); "
                                 "a clip is a video file (.mp4, .avi, .mov, .webm, .mkv), an animated "
                                 ".gif, or a folder of frame images. Move it out of the class folder")
            items.append((path, label))
    if len(items) > max_clips:
        raise ValueError(f"video_folder: {root} holds {len(items)} clips, above max_clips={max_clips}; "
                         "use fewer clips, or raise max_clips")
    return classes, items


def _fingerprint(root: Path, items: list[tuple[Path, int]], settings: dict) -> str:
    """A key that changes when any clip's file (or frame image) changes, or the settings do."""
    h = hashlib.sha256(json.dumps(settings, sort_keys=True).encode())
    for path, label in items:
        files = sorted(path.iterdir()) if path.is_dir() else [path]
        for f in files:
            st = f.stat()
            h.update(f"{f.relative_to(root)}\0{st.st_size}\0{st.st_mtime_ns}\0{label}\n".encode())
    return h.hexdigest()[:32]


def _settle(infos: list[ClipInfo], size, channels) -> tuple[tuple[int, int], int]:
    """The size and channels all clips get: the given ones, or the clips' own when they agree."""
    if size is None:
        sizes = {(i.height, i.width) for i in infos}
        if len(sizes) > 1:
            a, b = infos[0], next(i for i in infos if (i.height, i.width) != (infos[0].height, infos[0].width))
            raise ValueError(f"video_folder: clips have different frame sizes ({a.path} is "
                             f"{a.width}x{a.height}, {b.path} is {b.width}x{b.height}); pass "
                             f"size=(H, W), e.g. size=(64, 64), to resize them all")
        size = sizes.pop()
    if channels is None:
        modes = {i.channels for i in infos}
        if len(modes) > 1:
            grey = next(i for i in infos if i.channels == 1)
            colour = next(i for i in infos if i.channels == 3)
            raise ValueError(f"video_folder: clips mix grey and colour ({grey.path} is grey, "
                             f"{colour.path} is colour); pass channels=1 to make all grey, or "
                             "channels=3 for colour")
        channels = modes.pop()
    return size, channels


def _skip(skipped: list[str], error: ClipError) -> None:
    skipped.append(str(error))
    warnings.warn(f"video_folder: skipping {error}", stacklevel=4)


def video_folder(root: str | os.PathLike, frames: int = 8, size: int | tuple[int, int] | None = None,
                 channels: int | None = None, short: str = "loop", *, cache: bool = True,
                 progress: bool = True, max_clips: int = 5000, max_side: int = 4096,
                 max_frames: int = 20_000, max_bytes: int = 2 << 30,
                 max_seconds: float | None = None) -> VideoClips:
    """Read every clip under ``root`` (one sub-folder per class) as uint8 ``(N, T, C, H, W)``.

    - ``frames``: T, sampled uniformly from each clip (first and last frame included).
    - ``size``: ``(H, W)`` (or one int) to resize every frame to; None keeps the clips' own
      size, which must then be the same for all.
    - ``channels``: 1 (grey) or 3 (colour); None keeps the clips' own mode, the same for all.
    - ``short``: a clip shorter than T is looped (``"loop"``) or padded with black frames
      after its end (``"pad"``; ``lengths`` holds its real length).
    - ``cache``: keep the decoded tensors in ``root/.cnnlstm_edu-cache/`` and reuse them while
      the files and settings are unchanged (a folder that can't be written is read uncached,
      with a warning).
    - Caps, checked before the work they guard: ``max_clips`` clips, frames of at most
      ``max_side`` pixels a side (read from each header), ``max_frames`` decoded frames per
      clip, and ``max_bytes`` for the returned tensor.
    - ``max_seconds``: refuse the folder once decoding has taken this long (checked before each
      clip; a server's bound on one request, since a few kilobytes of video can hold long clips).
    """
    frames, size, channels = _check_settings(frames, size, channels, short, max_side)
    for value, name in ((max_clips, "max_clips"), (max_frames, "max_frames"), (max_bytes, "max_bytes")):
        check_number(value, name, integer=True, low=1, owner="video_folder")
    if max_seconds is not None:
        check_number(max_seconds, "max_seconds", low=0, low_open=True, owner="video_folder")
    root = Path(root)
    classes, items = _scan(root, max_clips)
    settings = {"frames": frames, "size": list(size) if size else None, "channels": channels, "short": short}
    # The caps are in the key too: they decide which clips are refused, so a read under a smaller
    # cap must not be answered from a cache filled under a larger one.
    caps = {"max_side": max_side, "max_frames": max_frames}
    key = _fingerprint(root, items, {**settings, **caps, "format": 1}) if cache else None
    if key is not None and (hit := load_cached(root / CACHE_DIR, key)) is not None:
        if hit.clips.numel() > max_bytes:
            raise ValueError(f"video_folder: the cached clips of {root} take {hit.clips.numel() / 2**20:.0f} MiB, "
                             f"above max_bytes={max_bytes / 2**20:.0f} MiB; pass a smaller size or fewer frames, "
                             "or raise max_bytes")
        for reason in hit.skipped:
            warnings.warn(f"video_folder: skipping {reason}", stacklevel=2)
        return hit

    skipped: list[str] = []
    infos = []
    for path, label in items:
        try:
            infos.append((probe(path, max_side, need_mode=channels is None), label))
        except ClipError as e:
            _skip(skipped, e)
    _refuse_empty(root, classes, [label for _, label in infos], skipped)
    size, channels = _settle([info for info, _ in infos], size, channels)
    need = len(infos) * frames * channels * size[0] * size[1]
    if need > max_bytes:
        raise ValueError(f"video_folder: {len(infos)} clips of {frames} frames of {channels}x{size[0]}x"
                         f"{size[1]} need {need / 2**20:.0f} MiB, above max_bytes={max_bytes / 2**20:.0f} "
                         "MiB; pass a smaller size or fewer frames, or raise max_bytes")
    data = _decode_all(root, classes, infos, frames, size, channels, short, max_frames, skipped, progress,
                       max_seconds)
    data.settings = {**settings, "size": list(size), "channels": channels}
    if key is not None:
        save_cached(root / CACHE_DIR, key, data)
    return data


def load_clip(path: str | os.PathLike, frames: int = 8, size: int | tuple[int, int] | None = None,
              channels: int | None = None, short: str = "loop", *, max_side: int = 4096,
              max_frames: int = 20_000) -> tuple[torch.Tensor, int]:
    """One clip (video file, .gif or frame folder) as uint8 ``(T, C, H, W)`` and its real length.

    The same reading as :func:`video_folder`, for ``predict`` and the app's single upload: pass
    the ``settings`` a folder was read with (``load_clip(path, **data.settings)``) to prepare a
    new clip exactly as the training clips were. An unreadable file is a ``ClipError`` (a
    ``ValueError``) naming it.
    """
    frames, size, channels = _check_settings(frames, size, channels, short, max_side)
    check_number(max_frames, "max_frames", integer=True, low=1, owner="load_clip")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"load_clip: no clip at {path}")
    if clip_kind(path) is None:
        raise ValueError(f"load_clip: {path} is not a clip (suffix {path.suffix or 'none'!r}); give a video "
                         "file (.mp4, .avi, .mov, .webm, .mkv), an animated .gif or a folder of frames")
    info = probe(path, max_side, need_mode=channels is None)
    size = size or (info.height, info.width)
    channels = channels or info.channels
    kept = decode(info, frames, size, channels, short, max_frames)        # (T', C, H, W)
    clip = torch.zeros(frames, channels, *size, dtype=torch.uint8)         # (T, C, H, W): black padding
    clip[:len(kept)] = torch.from_numpy(kept)
    return clip, len(kept)


def _refuse_empty(root: Path, classes: list[str], labels: list[int], skipped: list[str]) -> None:
    if not labels:
        raise ValueError(f"video_folder: no readable clip is left in {root} ({len(skipped)} skipped: "
                         f"{skipped[:3]})")
    empty = [classes[k] for k in range(len(classes)) if k not in set(labels)]
    if empty:
        raise ValueError(f"video_folder: no readable clip is left in class folder(s) {empty} of {root}; "
                         "each class needs clips")


def _decode_all(root, classes, infos, frames, size, channels, short, max_frames, skipped,
                progress, max_seconds=None) -> VideoClips:
    from tqdm.auto import tqdm

    start = time.monotonic()
    N = len(infos)
    # numpy, not torch, while decoding: a torch op between two decodes wakes torch's worker
    # threads, whose busy-waiting then takes the cores from FFmpeg (measured: 5x slower on 2 cores)
    clips = np.zeros((N, frames, channels, *size), dtype=np.uint8)       # (N, T, C, H, W): black padding
    labels, lengths, files, keep = [], [], [], []
    for n, (info, label) in enumerate(tqdm(infos, desc="decoding clips", unit="clip", disable=not progress)):
        if max_seconds is not None and time.monotonic() - start > max_seconds:
            raise ValueError(f"video_folder: decoding {root} took more than max_seconds={max_seconds:g} s "
                             f"({n} of {N} clips decoded); use fewer or shorter clips, or raise max_seconds")
        try:
            kept = decode(info, frames, size, channels, short, max_frames)   # (T', C, H, W)
        except ClipError as e:
            _skip(skipped, e)
            continue
        clips[n, :len(kept)] = kept
        keep.append(n)
        labels.append(label)
        lengths.append(len(kept))
        files.append(info.path.relative_to(root).as_posix())
    _refuse_empty(root, classes, labels, skipped)
    clips = clips[keep] if len(keep) < N else clips
    return VideoClips(torch.from_numpy(clips), torch.tensor(labels, dtype=torch.long), list(classes),
                      torch.tensor(lengths, dtype=torch.long), files, {}, skipped)

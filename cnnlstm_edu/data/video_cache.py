"""The cache of decoded clips that :func:`~cnnlstm_edu.data.video_folder` keeps beside the data.

Decoding is the slow part of reading a folder of videos; the tensors it yields are small. So
they are saved in ``root/.cnnlstm_edu-cache/<key>.safetensors`` (a hidden folder: it is never
taken for a class), where the key hashes every clip file's name, size and modification time and
the settings. Any change to a file or a setting gives a new key, hence a fresh decode. Files are
written whole or not at all (:mod:`cnnlstm_edu.atomic`), read without unpickling (safetensors),
and only the newest few are kept.

A folder that can't be written (a read-only share, a CD) is read without a cache, with a
warning saying so; a damaged cache file is ignored with a warning and decoded again.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch

from ..atomic import atomic_path

__all__ = ["load_cached", "save_cached", "KEEP"]

KEEP = 8            # cache files kept per folder: one per recent choice of settings


def _file(folder: Path, key: str) -> Path:
    return folder / f"{key}.safetensors"


def load_cached(folder: Path, key: str):
    """The cached :class:`VideoClips` for ``key``, or None (absent, or damaged: with a warning)."""
    from safetensors import safe_open

    from .video import VideoClips

    path = _file(folder, key)
    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["clips"])
            tensors = {name: f.get_tensor(name) for name in ("clips", "labels", "lengths")}
        data = VideoClips(tensors["clips"], tensors["labels"], list(meta["classes"]), tensors["lengths"],
                          list(meta["files"]), dict(meta["settings"]), list(meta["skipped"]))
        if not (len(data.clips) == len(data.labels) == len(data.lengths) == len(data.files)) \
                or data.clips.dtype != torch.uint8 or data.clips.dim() != 5:
            raise ValueError("its tensors do not agree")
    except Exception as e:  # noqa: BLE001  a damaged cache is never fatal: decode again
        warnings.warn(f"video_folder: ignoring the damaged cache file {path} ({e}); decoding again",
                      stacklevel=3)
        return None
    path.touch()                      # newest use first, for the pruning below
    return data


def save_cached(folder: Path, key: str, data) -> bool:
    """Save ``data`` under ``key``; False (with a warning) when ``folder`` can't be written."""
    from safetensors.torch import save_file

    meta = {"classes": data.classes, "files": data.files, "settings": data.settings, "skipped": data.skipped}
    try:
        folder.mkdir(exist_ok=True)
        with atomic_path(_file(folder, key)) as tmp:
            save_file({"clips": data.clips.contiguous(), "labels": data.labels, "lengths": data.lengths},
                      tmp, metadata={"clips": json.dumps(meta)})
        _prune(folder)
    except OSError as e:
        warnings.warn(f"video_folder: cannot write the cache in {folder} ({e.strerror or e}); the clips "
                      "were read but will be decoded again next time. Pass cache=False to silence "
                      "this, or copy the folder somewhere writable", stacklevel=3)
        return False
    return True


def _prune(folder: Path) -> None:
    files = sorted(folder.glob("*.safetensors"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in files[KEEP:]:
        old.unlink(missing_ok=True)

"""A learner's uploaded clips on the server: unpacked per session, decoded when asked, bounded overall.

The "Your clips" tab takes a .zip of class folders from any browser on the network, so nothing in
it is trusted. :meth:`ClipStore.unpack` extracts it with
:func:`~cnnlstm_edu.data.archive.extract_zip` (zip-slip, symlinks and zip bombs refused, all or
nothing) into a folder of its own, one per session (:class:`ClipUpload`), named like the
sessions' checkpoint folders so that the server removes it when it stops and the next server
removes it if this one was killed. A session holds one upload: a new one replaces it, and
closing the tab removes it.

:meth:`ClipUpload.prepare` reads the clips with :func:`~cnnlstm_edu.data.video_folder` in the
tab's format (frames, size, grey or colour), with every cap of :class:`~.clip_settings.ClipCaps`,
and keeps the tensors for the next run with the same format. All uploads together hold at most
``disk_bytes`` on disk and ``memory_bytes`` of decoded clips: past that, the least recently used
idle upload is dropped (its decoded clips first, which are read again when needed; its folder
if the disk is full, and its tab is told), never one that is being read or trained on.

>>> import tempfile
>>> from pathlib import Path
>>> from cnnlstm_edu.data import write_sample_zip
>>> from .clip_settings import ClipFormat
>>> archive = write_sample_zip(Path(tempfile.mkdtemp()) / "clips.zip", per_class=4, formats=("gif",))
>>> store = ClipStore()
>>> upload = store.unpack(archive)
>>> upload.classes, upload.count
(['down', 'left', 'right'], 12)
>>> prepared = upload.prepare(ClipFormat(frames=6, size=24))
>>> tuple(prepared.data.train_x.shape), tuple(prepared.data.test_x.shape)     # (N, T, C, H, W)
((9, 6, 1, 24, 24), (3, 6, 1, 24, 24))
>>> upload.remove("done"); upload.folder.exists(), store.disk_held()
(False, 0)
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .clip_settings import CLIP_CAPS, ClipCaps, ClipFormat
from .session import _PREFIX, checkpoint_root
from .training import TaskData

__all__ = ["ClipStore", "ClipUpload", "ClipsRefused", "PreparedClips", "SAMPLE", "folder_bytes", "sample_zip"]

# The sample zip: three classes of a digit crossing the frame, 20 H.264 clips each (about 80 kB).
SAMPLE = {"classes": ("left", "right", "down"), "per_class": 20, "frames": 10, "size": 32, "formats": ("mp4",)}


class ClipsRefused(ValueError):
    """An upload or a reading the tab refuses; the message is meant for the page."""


def folder_bytes(folder: Path) -> int:
    """The bytes of the files under ``folder`` (links are not followed; extract_zip writes none)."""
    return sum(f.lstat().st_size for f in Path(folder).rglob("*") if f.is_file() and not f.is_symlink())


def _public(text: str, root: Path) -> str:
    """A message about the folder, with the server's temp path replaced by what the learner sent."""
    return str(text).replace(f"{root}/", "").replace(str(root), "your zip")


@dataclass
class PreparedClips:
    """The clips read in one format, split for training, as the Train machinery takes them."""

    format: ClipFormat
    data: TaskData                   # train/test tensors (N, T, C, H, W) uint8 and labels
    classes: list[str]
    train_counts: list[int]          # clips per class in training
    test_counts: list[int]           # and held out
    skipped: list[str] = field(default_factory=list)   # unreadable clips, with the reason

    @property
    def nbytes(self) -> int:
        """What these clips hold in memory: the uint8 tensors and the float copy training makes."""
        return 5 * (self.data.train_x.nbytes + self.data.test_x.nbytes)


class ClipUpload:
    """One session's unpacked zip: its folder, and its clips decoded in the last format asked for."""

    def __init__(self, store: ClipStore, folder: Path, name: str, in_use: Callable[[], bool] = lambda: False) -> None:
        self.store, self.folder, self.name = store, folder, name
        self.root: Path | None = None          # the class folders (inside folder)
        self.classes: list[str] = []
        self.count = 0                         # clip entries in the class folders
        self.disk = 0                          # bytes on disk (reserved at the cap while unpacking)
        self.prepared: PreparedClips | None = None
        self.gone = ""                         # why it was removed, once it is
        self.last_used = time.monotonic()
        self.in_use = in_use                   # True while its session trains
        self.finalizer = None                  # removes it if its session is collected unannounced
        self._reading = threading.Lock()       # one reading at a time
        self._state = threading.Lock()         # guards gone, prepared and the folder's removal

    @property
    def busy(self) -> bool:
        return self._reading.locked() or self.in_use()

    def prepare(self, fmt: ClipFormat) -> PreparedClips:
        """The clips read as ``fmt`` (decoded once per format), split into training and held-out clips.
        Refuses (:class:`ClipsRefused`) what can't be read, naming it, and a second reading at once."""
        from ..data import video_folder

        if not self._reading.acquire(blocking=False):
            raise ClipsRefused("this tab is already reading its clips; wait for it to finish.")
        try:
            self._check_present()
            self.last_used = time.monotonic()
            if self.prepared is not None and self.prepared.format == fmt:
                return self.prepared
            self.drop_decoded()
            caps = self.store.caps
            try:
                clips = video_folder(self.root, **fmt.read_options(), cache=False, progress=False,
                                     max_clips=caps.clips, max_side=caps.side, max_frames=caps.clip_frames,
                                     max_bytes=caps.decoded_bytes, max_seconds=caps.decode_seconds)
                train, test = clips.split(test_fraction=0.25, seed=0)
            except (ValueError, OSError) as e:
                raise ClipsRefused(f"Your clips can't be used as they are: {_public(e, self.root)}") from None
            K = len(clips.classes)
            prepared = PreparedClips(
                fmt, TaskData(train.clips, train.labels, test.clips, test.labels, None, None, "clips"),
                list(clips.classes), train.labels.bincount(minlength=K).tolist(),
                test.labels.bincount(minlength=K).tolist(), [_public(s, self.root) for s in clips.skipped])
            self.store.hold_memory(self, prepared.nbytes)
            with self._state:
                self.prepared = prepared
            return prepared
        finally:
            with self._state:                  # a removal asked for while reading happens now
                self._reading.release()
                if self.gone:
                    self._delete()

    def _check_present(self) -> None:
        if self.gone:
            raise ClipsRefused(f"Your clips were removed ({self.gone}): upload them again, or use the sample.")

    def drop_decoded(self) -> None:
        """Let the decoded clips go (they are read again from the folder when needed)."""
        with self._state:
            self.prepared = None
        self.store.hold_memory(self, 0)

    def remove(self, reason: str) -> None:
        """Remove the folder and forget the clips (now, or when a reading in progress ends)."""
        with self._state:
            self.gone = self.gone or reason
            if not self._reading.locked():
                self._delete()

    def _delete(self) -> None:                 # with self._state held
        self.prepared = None
        shutil.rmtree(self.folder, ignore_errors=True)
        self.store.forget(self)


class ClipStore:
    """Every session's uploads, within ``caps.disk_bytes`` on disk and ``caps.memory_bytes`` decoded."""

    def __init__(self, caps: ClipCaps = CLIP_CAPS, root: Path | None = None) -> None:
        self.caps, self.root = caps, root
        self._lock = threading.Lock()
        self._disk: dict[ClipUpload, int] = {}
        self._memory: dict[ClipUpload, int] = {}

    def disk_held(self) -> int:
        with self._lock:
            return sum(self._disk.values())

    def memory_held(self) -> int:
        with self._lock:
            return sum(self._memory.values())

    def uploads(self) -> list[ClipUpload]:
        with self._lock:
            return list(self._disk)

    def _idle(self, table: dict, asking: ClipUpload) -> list[ClipUpload]:
        return sorted((u for u in table if u is not asking and not u.busy), key=lambda u: u.last_used)

    def _reserve(self, table: dict, upload: ClipUpload, size: int, cap: int, evict) -> bool:
        """Hold ``size`` bytes for ``upload`` in ``table``, evicting idle uploads as needed."""
        while True:
            with self._lock:
                others = sum(n for u, n in table.items() if u is not upload)
                if others + size <= cap:
                    table[upload] = size
                    return True
                idle = self._idle(table, upload)
            if not idle:
                return False
            evict(idle[0])

    def hold_memory(self, upload: ClipUpload, size: int) -> None:
        """Count ``size`` decoded bytes for ``upload``; refuse when the others can't make room."""
        if size == 0:
            with self._lock:
                self._memory.pop(upload, None)
            return
        if not self._reserve(self._memory, upload, size, self.caps.memory_bytes, lambda u: u.drop_decoded()):
            raise ClipsRefused(f"the server holds its most decoded clips for now ({self.caps.memory_bytes >> 20} MB "
                               "across all tabs, each in use); try again in a few minutes, or with fewer, "
                               "smaller or shorter clips.")

    def forget(self, upload: ClipUpload) -> None:
        with self._lock:
            self._disk.pop(upload, None)
            self._memory.pop(upload, None)

    def unpack(self, archive: str | os.PathLike, in_use: Callable[[], bool] = lambda: False) -> ClipUpload:
        """Extract ``archive`` into a new folder of its own, within the caps; returns the upload.
        A refused zip (:class:`ClipsRefused`) leaves nothing on disk."""
        from ..data.archive import ArchiveRefused, extract_zip

        caps, archive = self.caps, Path(archive)
        name = archive.name[:80]
        if not archive.is_file():
            raise ClipsRefused("Upload a .zip file of class folders (one sub-folder of clips per class).")
        if archive.suffix.lower() != ".zip":
            raise ClipsRefused(f"The upload must be a .zip of class folders; got a {archive.suffix or 'file'} "
                               f"({name}).")
        folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-clips-", dir=self.root or checkpoint_root()))
        upload = ClipUpload(self, folder, name, in_use)
        # The cap is held while the zip inflates (two unpacking at once can't both pass it);
        # then what it really takes.
        if not self._reserve(self._disk, upload, caps.total_bytes, caps.disk_bytes, lambda u: u.remove(
                "the server's disk for uploaded clips was full and they were the least recently used")):
            upload.remove("refused")
            raise ClipsRefused(f"The server holds its most uploaded clips for now ({caps.disk_bytes >> 20} MB across "
                               "all tabs, each in use); try again in a few minutes.")
        try:
            root = extract_zip(archive, folder / "zip", max_archive_bytes=caps.zip_bytes, max_entries=caps.entries,
                               max_member_bytes=caps.member_bytes, max_total_bytes=caps.total_bytes)
            upload.root = root
            upload.classes, upload.count = self._check_classes(root)
        except (ArchiveRefused, ClipsRefused) as e:
            upload.remove("refused")
            message = _public(e, folder / "zip").replace(str(archive.parent) + "/", "")
            raise ClipsRefused(message if isinstance(e, ClipsRefused) else f"The zip was refused: {message}") from None
        except BaseException:
            upload.remove("failed")
            raise
        with self._lock:
            if upload in self._disk:
                upload.disk = self._disk[upload] = folder_bytes(folder)
        return upload

    def _check_classes(self, root: Path) -> tuple[list[str], int]:
        """The class folders' names and the number of entries in them, within the caps (the clips
        themselves are checked when they are read)."""
        caps = self.caps
        classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
                         and p.name != "__MACOSX")
        if len(classes) < 2:
            named = f" {classes!r}" if classes else ""
            raise ClipsRefused(f"Your zip holds {len(classes)} class folder(s){named}; "
                               "a classifier needs at least 2: one sub-folder of clips per class.")
        if len(classes) > caps.classes:
            raise ClipsRefused(f"Your zip holds {len(classes)} class folders; the app takes at most {caps.classes}.")
        for name in classes:
            if len(name) > caps.name_chars or not re.fullmatch(r"[^\x00-\x1f\x7f]+", name):
                raise ClipsRefused(f"The class folder name {name[:caps.name_chars]!r}... is not a short, printable "
                                   f"name (at most {caps.name_chars} characters); rename it.")
        count = sum(1 for name in classes for p in (root / name).iterdir() if not p.name.startswith("."))
        empty = [name for name in classes if not any(not p.name.startswith(".") for p in (root / name).iterdir())]
        if empty:
            raise ClipsRefused(f"The class folder(s) {empty} hold no clips; each class needs clips.")
        if count > caps.clips:
            raise ClipsRefused(f"Your zip holds {count} clips; the app takes at most {caps.clips}.")
        return classes, count


_sample_lock = threading.Lock()
_sample: dict[str, Path] = {}


def sample_zip() -> Path:
    """The sample zip (:data:`SAMPLE`: digits crossing the frame, as .mp4 files), made once per server
    process in its own temp folder (removed with the sessions' folders)."""
    from ..data import write_sample_zip

    with _sample_lock:
        path = _sample.get("path")
        if path is None or not path.is_file():
            folder = Path(tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-sample-", dir=checkpoint_root()))
            _sample["path"] = path = write_sample_zip(folder / "sample_clips.zip", **SAMPLE)
        return path

"""Writing a file so that it is either whole or absent, and leaving nothing else behind.

A checkpoint is written to a temporary file beside its target and renamed over it at the end
(``os.replace`` is atomic on one file system), so a crash or a full disk mid-write leaves the
old file or none, never a truncated one under the real name. What can still go wrong is the
temporary file itself:

- ``SIGTERM`` (``kill``, a stopped container) ends Python without running ``finally`` blocks;
  :func:`atomic_path` turns it into an exception for the length of the write, removes the
  temporary file, then lets the signal do what it would have done;
- ``SIGKILL`` (or a power cut) can't be caught at all; every temporary file is named
  ``.cnnlstm_edu-tmp-<pid>@<host>-...``, so the next write into that folder can tell the
  debris of a dead process from a write in progress, and removes it.

>>> import pathlib, tempfile
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> with atomic_path(folder / "notes.txt") as tmp:
...     _ = pathlib.Path(tmp).write_text("whole or absent")
>>> [p.name for p in folder.iterdir()]
['notes.txt']
"""

from __future__ import annotations

import os
import re
import signal
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["TEMP_PREFIX", "atomic_path", "check_writable", "remove_stale_temps"]

TEMP_PREFIX = ".cnnlstm_edu-tmp-"
# Another machine's process can't be looked up from here (a shared folder); its temporary
# files are removed only once they are clearly abandoned.
_FOREIGN_AGE = 24 * 3600


def _owner() -> str:
    """``<pid>@<host>``, with the host reduced to characters that can't be mistaken for separators."""
    return f"{os.getpid()}@{re.sub(r'[^A-Za-z0-9.]', '_', socket.gethostname())}"


def _temp_file(folder: Path, suffix: str) -> str:
    fd, name = tempfile.mkstemp(prefix=f"{TEMP_PREFIX}{_owner()}-", suffix=suffix, dir=folder)
    os.close(fd)
    return name


def check_writable(path: str | os.PathLike) -> Path:
    """``path`` as a ``Path`` if a file can be written there, else an error saying why.

    Meant to run *before* the work whose result will be saved: an empty name, a folder, a folder
    that does not exist or one that can't be written in would otherwise fail only at the end.
    The folder is tried for real, by creating and removing an empty file in it.

    >>> check_writable("")
    Traceback (most recent call last):
    ValueError: the path is empty; give a file name such as model.safetensors
    >>> check_writable("/proc/x")
    Traceback (most recent call last):
    PermissionError: cannot write in the folder /proc: No such file or directory
    """
    if not str(path):
        raise ValueError("the path is empty; give a file name such as model.safetensors")
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name in it, such as "
                                f"{path / 'model.safetensors'}")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"the folder {path.parent} does not exist; create it first")
    try:
        probe = _temp_file(path.parent, ".probe")
    except OSError as e:
        raise PermissionError(f"cannot write in the folder {path.parent}: {e.strerror}") from None
    os.remove(probe)
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)                  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:              # someone else's process: alive
        return True
    return True


def remove_stale_temps(folder: str | os.PathLike) -> list[Path]:
    """Remove the temporary files that dead processes left in ``folder``; returns what it removed.

    A file is stale when the process named in it is gone (same machine) or, for another
    machine's file, when it is a day old. Writes in progress, this process's included, are kept.
    """
    removed, here = [], _owner().partition("@")[2]
    for path in Path(folder).glob(f"{TEMP_PREFIX}*"):
        pid, _, host = path.name[len(TEMP_PREFIX):].partition("-")[0].partition("@")
        if not pid.isdigit():
            continue
        try:
            if host == here:
                stale = int(pid) != os.getpid() and not _alive(int(pid))
            else:
                stale = time.time() - path.stat().st_mtime > _FOREIGN_AGE
            if stale:
                path.unlink()
                removed.append(path)
        except OSError:                  # gone meanwhile, or not ours to remove: leave it
            continue
    return removed


class _Terminated(BaseException):
    """SIGTERM arrived during a write (a BaseException, like KeyboardInterrupt: not an error to catch)."""


@contextmanager
def _sigterm_raises() -> Iterator[list]:
    """Within the block, SIGTERM raises :class:`_Terminated` so ``finally`` blocks run; after
    it, the signal is delivered again to the handler there was before. Only the main thread can
    set handlers; elsewhere the block runs as is (and the next write cleans up)."""
    previous = signal.getsignal(signal.SIGTERM)
    if threading.current_thread() is not threading.main_thread() or previous in (signal.SIG_IGN, None):
        yield
        return

    def handler(signum, frame):
        raise _Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    except _Terminated:
        signal.signal(signal.SIGTERM, previous)
        signal.raise_signal(signal.SIGTERM)        # the default action ends the process here
        raise InterruptedError("the write was interrupted by SIGTERM; nothing was written") from None
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yield a temporary file name beside ``path``; when the block ends, rename it to ``path``.

    If the block raises, or SIGTERM or Ctrl-C arrives, the temporary file is removed and
    ``path`` is left as it was. Stale temporary files of killed writes into the same folder
    are removed first.
    """
    path = Path(path)
    remove_stale_temps(path.parent)
    with _sigterm_raises():
        tmp = _temp_file(path.parent, ".tmp")
        try:
            yield tmp
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

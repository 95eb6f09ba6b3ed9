"""Unpacking a learner's .zip of class folders without trusting a byte of it.

A zip sent to the app comes from any browser on the network, so :func:`extract_zip` assumes
the worst of it:

- **zip-slip**: an entry named ``../../home/x``, ``/etc/x`` or ``C:\\x`` would be written
  outside the folder; such names are refused, and so are symlinks (a link to ``/`` followed
  by an entry "inside" it escapes just as well) and device or pipe entries;
- **zip bomb**: a few kilobytes that inflate to gigabytes. The declared sizes are checked
  first, but a header can lie, so the bytes actually written are counted as they stream and
  the extraction stops the moment a cap is passed;
- **too many entries** (each one a file and an inode), names nested absurdly deep, the same
  name twice (the second would overwrite the first), encrypted and corrupt archives.

Either the whole archive is extracted or nothing is: on any refusal the destination folder,
which :func:`extract_zip` creates itself, is removed again. The error is an
:class:`ArchiveRefused` (a ``ValueError``) naming the entry and the rule. The folders macOS
adds to a zip (``__MACOSX/``, ``._name``, ``.DS_Store``) are skipped quietly.

>>> import tempfile, zipfile, pathlib
>>> tmp = pathlib.Path(tempfile.mkdtemp())
>>> with zipfile.ZipFile(tmp / "clips.zip", "w") as z:
...     z.writestr("left/a.gif", b"GIF89a")
...     z.writestr("right/b.gif", b"GIF89a")
>>> root = extract_zip(tmp / "clips.zip", tmp / "out")
>>> sorted(p.relative_to(root).as_posix() for p in root.rglob("*"))
['left', 'left/a.gif', 'right', 'right/b.gif']
>>> with zipfile.ZipFile(tmp / "slip.zip", "w") as z:
...     z.writestr("../evil.sh", b"echo gotcha")
>>> extract_zip(tmp / "slip.zip", tmp / "out2")
Traceback (most recent call last):
cnnlstm_edu.data.archive.ArchiveRefused: slip.zip: entry '../evil.sh' points outside the folder ('..'); refused, nothing was extracted.
"""

from __future__ import annotations

import os
import shutil
import stat
import zipfile
from pathlib import Path, PurePosixPath

from ..checks import check_number

__all__ = ["ArchiveRefused", "MAX_ARCHIVE_BYTES", "MAX_DEPTH", "MAX_ENTRIES", "MAX_MEMBER_BYTES",
           "MAX_TOTAL_BYTES", "extract_zip"]

MAX_ARCHIVE_BYTES = 100 * 2**20   # the .zip itself
MAX_ENTRIES = 2000                # files and folders in it
MAX_MEMBER_BYTES = 50 * 2**20     # one clip, inflated
MAX_TOTAL_BYTES = 200 * 2**20     # everything, inflated
MAX_DEPTH = 6                     # root/wrapper/class/clip-folder/frame.png is 4 deep

_CHUNK = 2**20                    # stream one MiB at a time: memory stays flat whatever the sizes
_JUNK = ("__MACOSX",)             # what macOS' "Compress" adds beside the real files


class ArchiveRefused(ValueError):
    """A zip that :func:`extract_zip` will not unpack; the message names the entry and the rule."""


def _refuse(archive: Path, why: str) -> ArchiveRefused:
    return ArchiveRefused(f"{archive.name}: {why}; refused, nothing was extracted.")


def _is_junk(parts: tuple[str, ...]) -> bool:
    return parts[0] in _JUNK or parts[-1] == ".DS_Store" or parts[-1].startswith("._")


def _safe_parts(info: zipfile.ZipInfo, archive: Path, max_depth: int) -> tuple[str, ...]:
    """The entry's path as folder names that stay inside the destination, or a refusal."""
    name = info.filename
    where = f"entry {name!r}"
    if "\x00" in name:
        raise _refuse(archive, f"{where} has a NUL character in its name")
    if "\\" in name:
        # a legal character on Linux but a separator on Windows: '..\\..\\x' is a slip there
        raise _refuse(archive, f"{where} uses '\\' in its name (a Windows path separator)")
    if name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise _refuse(archive, f"{where} is an absolute path")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if ".." in parts:
        raise _refuse(archive, f"{where} points outside the folder ('..')")
    if not parts:
        raise _refuse(archive, f"{where} has no name")
    if len(parts) > max_depth:
        raise _refuse(archive, f"{where} is nested {len(parts)} folders deep, more than {max_depth}")
    mode = info.external_attr >> 16                 # Unix mode bits, when a Unix tool made the zip
    if stat.S_ISLNK(mode):
        raise _refuse(archive, f"{where} is a symbolic link")
    if stat.S_IFMT(mode) not in (0, stat.S_IFREG, stat.S_IFDIR):   # 0: permissions only, a plain file
        raise _refuse(archive, f"{where} is a device, pipe or socket, not a file")
    if info.flag_bits & 0x1:
        raise _refuse(archive, f"{where} is encrypted")
    return parts


def _plan(entries: list[zipfile.ZipInfo], archive: Path, max_entries: int, max_member_bytes: int,
          max_total_bytes: int, max_depth: int) -> list[tuple[zipfile.ZipInfo, tuple[str, ...]]]:
    """Every entry checked by name and declared size before one byte is written."""
    if len(entries) > max_entries:
        raise _refuse(archive, f"it has {len(entries)} entries, more than {max_entries}")
    plan, seen, declared = [], set(), 0
    for info in entries:
        parts = _safe_parts(info, archive, max_depth)
        if _is_junk(parts):
            continue
        key = "/".join(parts).casefold()           # 'A.gif' and 'a.gif' collide on macOS and Windows
        if key in seen:
            raise _refuse(archive, f"entry {info.filename!r} appears twice")
        seen.add(key)
        if info.file_size > max_member_bytes:
            raise _refuse(archive, f"entry {info.filename!r} inflates to {info.file_size:,} bytes, "
                                   f"more than {max_member_bytes:,}")
        declared += info.file_size
        if declared > max_total_bytes:
            raise _refuse(archive, f"it inflates to more than {max_total_bytes:,} bytes")
        plan.append((info, parts))
    if not plan:
        raise _refuse(archive, "it holds no files")
    return plan


def _copy(source, target: Path, info: zipfile.ZipInfo, archive: Path, left: int, max_member_bytes: int) -> int:
    """Stream one entry to ``target``, counting real bytes: a header that lies is caught here."""
    written = 0
    with open(target, "xb") as out:                 # 'x': never write through anything already there
        while chunk := source.read(_CHUNK):
            written += len(chunk)
            if written > max_member_bytes:
                raise _refuse(archive, f"entry {info.filename!r} inflates past {max_member_bytes:,} bytes "
                                       f"(its header said {info.file_size:,})")
            if written > left:
                raise _refuse(archive, "it inflates past the cap on the total size")
            out.write(chunk)
    return written


def _root(dest: Path) -> Path:
    """The folder that holds the class folders: ``dest``, or the one folder a zip wrapped them in."""
    children = list(dest.iterdir())
    if len(children) == 1 and children[0].is_dir() and any(p.is_dir() for p in children[0].iterdir()):
        return children[0]
    return dest


def extract_zip(archive: str | os.PathLike, dest: str | os.PathLike, *,
                max_archive_bytes: int = MAX_ARCHIVE_BYTES, max_entries: int = MAX_ENTRIES,
                max_member_bytes: int = MAX_MEMBER_BYTES, max_total_bytes: int = MAX_TOTAL_BYTES,
                max_depth: int = MAX_DEPTH) -> Path:
    """Unpack ``archive`` into the new folder ``dest``, all or nothing; return the class folders' root.

    ``dest`` must not exist yet (or be an empty folder): a refusal removes it, so it must hold
    nothing of anyone else's. The root returned is ``dest``, or the single folder the zip
    wrapped its class folders in (``clips/left/...`` -> ``dest/clips``).
    """
    for name, value in (("max_archive_bytes", max_archive_bytes), ("max_entries", max_entries),
                        ("max_member_bytes", max_member_bytes), ("max_total_bytes", max_total_bytes),
                        ("max_depth", max_depth)):
        check_number(value, name, integer=True, low=1, owner="extract_zip")
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveRefused(f"extract_zip: {str(archive)!r} is not a file.")
    size = archive.stat().st_size
    if size > max_archive_bytes:
        raise _refuse(archive, f"the archive is {size:,} bytes, more than {max_archive_bytes:,}")
    if not zipfile.is_zipfile(archive):
        raise _refuse(archive, "it is not a .zip archive")
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise ArchiveRefused(f"extract_zip: the destination {str(dest)!r} must be a new or empty folder.")
    try:
        with zipfile.ZipFile(archive) as z:
            plan = _plan(z.infolist(), archive, max_entries, max_member_bytes, max_total_bytes, max_depth)
            dest.mkdir(parents=True, exist_ok=True)
            left = max_total_bytes
            for info, parts in plan:
                target = dest.joinpath(*parts)
                if info.is_dir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with z.open(info) as source:
                    left -= _copy(source, target, info, archive, left, max_member_bytes)
    except ArchiveRefused:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, EOFError, OSError, RuntimeError) as error:
        # a bad CRC (a header that lied about the size), an unknown compression method, a file
        # where a folder should be: each is a broken or hostile archive, not a bug of ours
        shutil.rmtree(dest, ignore_errors=True)
        raise _refuse(archive, f"it could not be read ({type(error).__name__}: {error})") from error
    return _root(dest)

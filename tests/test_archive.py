"""extract_zip: the sample zip unpacks whole and reads as a clip folder; every hostile zip is
refused by name, before or while writing, and leaves nothing behind, inside or outside."""

from __future__ import annotations

import stat
import struct
import zipfile
from pathlib import Path

import pytest

from cnnlstm_edu.data import video_folder, write_sample_zip
from cnnlstm_edu.data.archive import ArchiveRefused, extract_zip


def make_zip(path: Path, entries: dict[str, bytes], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return path


def files_under(folder: Path) -> list[str]:
    return sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*"))


@pytest.fixture
def box(tmp_path):
    """A sandbox: the archive and its destination live in box/inner, so an escape lands in box."""
    inner = tmp_path / "inner"
    inner.mkdir()
    return tmp_path


def test_the_sample_zip_unpacks_into_a_folder_video_folder_reads(tmp_path):
    archive = write_sample_zip(tmp_path / "sample.zip", per_class=3, formats=("mp4", "gif"))
    root = extract_zip(archive, tmp_path / "out")
    data = video_folder(root, frames=6, size=24, channels=1, progress=False)
    assert data.classes == ["down", "left", "right"]
    assert data.clips.shape == (9, 6, 1, 24, 24)        # per_class counts clips of every format
    assert sorted(data.files) == sorted(n for n in zipfile.ZipFile(archive).namelist() if not n.endswith("/"))


def test_a_single_wrapping_folder_is_stepped_into_and_mac_debris_is_skipped(tmp_path):
    archive = make_zip(tmp_path / "w.zip", {"clips/left/a.gif": b"1", "clips/right/b.gif": b"2",
                                            "__MACOSX/clips/._a.gif": b"x", "clips/.DS_Store": b"x",
                                            "clips/left/._a.gif": b"x"})
    root = extract_zip(archive, tmp_path / "out")
    assert root == tmp_path / "out" / "clips"
    assert files_under(tmp_path / "out") == ["clips", "clips/left", "clips/left/a.gif",
                                             "clips/right", "clips/right/b.gif"]
    assert (root / "left" / "a.gif").read_bytes() == b"1"


@pytest.mark.parametrize("name, rule", [
    ("../evil.txt", r"points outside the folder"),
    ("left/../../evil.txt", r"points outside the folder"),
    ("/tmp/evil.txt", r"absolute path"),
    ("C:/evil.txt", r"absolute path"),
    ("..\\evil.txt", r"Windows path separator"),
    ("a/b/c/d/e/f/g.gif", r"nested 7 folders deep"),
])
def test_zip_slip_names_are_refused_and_nothing_is_written_anywhere(box, name, rule):
    inner = box / "inner"
    archive = make_zip(inner / "slip.zip", {"left/ok.gif": b"fine", name: b"payload"})
    before = files_under(box)
    with pytest.raises(ArchiveRefused, match=rule):
        extract_zip(archive, inner / "out")
    assert files_under(box) == before                 # no 'out', no 'evil.txt' in box or inner
    assert not Path("/tmp/evil.txt").exists() or Path("/tmp/evil.txt").read_bytes() != b"payload"


def test_a_symlink_entry_is_refused(tmp_path):
    link = zipfile.ZipInfo("left/link")
    link.external_attr = (stat.S_IFLNK | 0o777) << 16      # how Info-ZIP stores a symbolic link
    with zipfile.ZipFile(tmp_path / "link.zip", "w") as z:
        z.writestr("left/a.gif", b"1")
        z.writestr(link, "/etc")
        z.writestr("left/link/passwd", b"overwritten?")   # would land in /etc through the link
    with pytest.raises(ArchiveRefused, match=r"'left/link' is a symbolic link"):
        extract_zip(tmp_path / "link.zip", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_zip_bomb_is_refused_by_its_declared_size(tmp_path):
    archive = make_zip(tmp_path / "bomb.zip", {"left/a.gif": b"\0" * (8 * 2**20)})
    assert archive.stat().st_size < 64 * 2**10          # 8 MiB of zeros squeeze to a few KiB
    with pytest.raises(ArchiveRefused, match=r"'left/a.gif' inflates to 8,388,608 bytes, more than 1,048,576"):
        extract_zip(archive, tmp_path / "out", max_member_bytes=2**20)
    many = make_zip(tmp_path / "many.zip", {f"c{i % 2}/{i}.gif": b"\0" * 2**19 for i in range(6)})
    with pytest.raises(ArchiveRefused, match=r"inflates to more than 2,097,152 bytes"):
        extract_zip(many, tmp_path / "out", max_total_bytes=2 * 2**20)
    assert not (tmp_path / "out").exists()


def test_a_bomb_whose_header_lies_about_its_size_is_caught_while_streaming(tmp_path):
    real = b"\0" * (4 * 2**20)
    archive = make_zip(tmp_path / "liar.zip", {"left/a.gif": real, "right/b.gif": b"2"})
    data = bytearray(archive.read_bytes())
    # Rewrite the uncompressed size in both headers to 100 bytes: the declared-size check passes,
    # so only counting what really comes out can stop it.
    for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = data.find(signature)
        data[at + offset:at + offset + 4] = struct.pack("<I", 100)
    archive.write_bytes(bytes(data))
    assert zipfile.ZipFile(archive).getinfo("left/a.gif").file_size == 100
    with pytest.raises(ArchiveRefused, match=r"could not be read|inflates past"):
        extract_zip(archive, tmp_path / "out", max_member_bytes=2**20)
    assert not (tmp_path / "out").exists()


def test_too_many_entries_is_refused_before_anything_is_written(tmp_path):
    archive = make_zip(tmp_path / "many.zip", {f"c{i % 2}/{i}.gif": b"x" for i in range(30)})
    with pytest.raises(ArchiveRefused, match=r"it has 30 entries, more than 20"):
        extract_zip(archive, tmp_path / "out", max_entries=20)
    assert not (tmp_path / "out").exists()


def test_an_archive_over_its_own_size_cap_is_refused(tmp_path):
    archive = make_zip(tmp_path / "big.zip", {"a/x.bin": bytes(range(256)) * 64}, zipfile.ZIP_STORED)
    with pytest.raises(ArchiveRefused, match=r"the archive is 16,\d{3} bytes, more than 1,000"):
        extract_zip(archive, tmp_path / "out", max_archive_bytes=1000)


def test_duplicate_names_and_encrypted_entries_are_refused(tmp_path):
    with pytest.warns(UserWarning, match="Duplicate name"):
        make_zip(tmp_path / "dup.zip", {"left/a.gif": b"1"})
        with zipfile.ZipFile(tmp_path / "dup.zip", "a") as z:
            z.writestr("left/a.gif", b"2")
    with pytest.raises(ArchiveRefused, match=r"'left/a.gif' appears twice"):
        extract_zip(tmp_path / "dup.zip", tmp_path / "out")
    data = bytearray(make_zip(tmp_path / "enc.zip", {"left/a.gif": b"1"}).read_bytes())
    for signature, offset in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):   # set bit 0: 'encrypted'
        at = data.find(signature) + offset
        data[at] |= 0x1
    (tmp_path / "enc.zip").write_bytes(bytes(data))
    with pytest.raises(ArchiveRefused, match=r"is encrypted"):
        extract_zip(tmp_path / "enc.zip", tmp_path / "out")


def test_not_a_zip_missing_file_busy_destination_and_bad_caps_are_named(tmp_path):
    (tmp_path / "clip.mp4").write_bytes(b"not a zip at all")
    with pytest.raises(ArchiveRefused, match=r"clip.mp4: it is not a .zip archive"):
        extract_zip(tmp_path / "clip.mp4", tmp_path / "out")
    with pytest.raises(ArchiveRefused, match=r"is not a file"):
        extract_zip(tmp_path / "absent.zip", tmp_path / "out")
    archive = make_zip(tmp_path / "ok.zip", {"left/a.gif": b"1"})
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "mine.txt").write_text("keep me")
    with pytest.raises(ArchiveRefused, match=r"must be a new or empty folder"):
        extract_zip(archive, tmp_path / "busy")
    assert (tmp_path / "busy" / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match=r"extract_zip: max_entries must be a positive int, got 0"):
        extract_zip(archive, tmp_path / "out", max_entries=0)
    empty = make_zip(tmp_path / "empty.zip", {"__MACOSX/._x": b"x"})
    with pytest.raises(ArchiveRefused, match=r"it holds no files"):
        extract_zip(empty, tmp_path / "out")


def test_a_file_where_a_folder_must_go_is_refused_and_cleaned_up(tmp_path):
    archive = make_zip(tmp_path / "clash.zip", {"left": b"a file", "left/a.gif": b"1"})
    with pytest.raises(ArchiveRefused, match=r"could not be read"):
        extract_zip(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()

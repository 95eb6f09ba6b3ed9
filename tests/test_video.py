"""video_folder: real clips written here (.mp4 through PyAV's FFmpeg, .gif, frame folders),
read back; every kind of hostile folder refused or skipped with a message naming the file."""

import os
import shutil
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlstm_edu.data import VideoClips, load_clip, video_folder, write_clip, write_sample_clips
from cnnlstm_edu.data.clips import ClipError
from cnnlstm_edu.data import video as video_module
from cnnlstm_edu.data.clips import sample_indices

SETTINGS = dict(frames=6, size=(32, 32), channels=1, progress=False)


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    """3 classes x 6 clips (2 .mp4, 2 .gif, 2 frame folders), 8 frames of 32x32."""
    return write_sample_clips(tmp_path_factory.mktemp("sample") / "clips", per_class=6, frames=8, seed=1)


@pytest.fixture
def folder(sample, tmp_path):
    """A private copy of the sample, free to damage."""
    return shutil.copytree(sample, tmp_path / "clips")


def read(root, **kw):
    return video_folder(root, **{**SETTINGS, "cache": False, **kw})


def test_reads_every_format_as_uint8_clips_with_labels_and_classes(sample):
    data = read(sample)
    assert isinstance(data, VideoClips)
    assert data.clips.shape == (18, 6, 1, 32, 32) and data.clips.dtype == torch.uint8
    assert data.classes == ["down", "left", "right"]
    assert data.labels.tolist() == [0] * 6 + [1] * 6 + [2] * 6
    assert {f.rsplit(".", 1)[-1] if "." in f else "frames" for f in data.files} == {"mp4", "gif", "frames"}
    assert data.lengths.tolist() == [6] * 18
    assert data.settings == {"frames": 6, "size": [32, 32], "channels": 1, "short": "loop"}
    clips, labels, classes = data                         # unpacks as the triple
    assert clips is data.clips and classes == data.classes


def test_mp4_gif_and_frame_folder_of_one_clip_decode_to_the_same_frames(tmp_path):
    frames = write_sample_clips(tmp_path / "s", per_class=1, frames=6, formats=("frames",))
    source = read(frames).clips[0]                        # lossless PNG: the frames themselves
    clip = torch.stack([torch.from_numpy(np.array(Image.open(p)))
                        for p in sorted((frames / "down" / "down_000").iterdir())])[:, None]
    (tmp_path / "v" / "a").mkdir(parents=True)
    (tmp_path / "v" / "b").mkdir()
    write_clip(clip, tmp_path / "v" / "a" / "x.mp4")
    write_clip(clip, tmp_path / "v" / "a" / "x.gif")
    write_clip(clip, tmp_path / "v" / "b" / "x")
    data = read(tmp_path / "v")
    assert data.files == ["a/x.gif", "a/x.mp4", "b/x"]
    assert torch.equal(data.clips[0], source) and torch.equal(data.clips[2], source)   # gif, png: exact
    error = (data.clips[1].float() - source.float()).abs().mean()                      # H.264: lossy
    assert error < 3, f"mp4 frames differ from the source by {error:.1f} grey levels on average"


def test_hidden_entries_and_macos_zip_debris_are_not_classes(folder):
    (folder / "__MACOSX" / "left").mkdir(parents=True)
    (folder / "__MACOSX" / "left" / "._left_000.gif").write_bytes(b"\0resource fork")
    (folder / ".DS_Store").write_bytes(b"\0")
    assert read(folder).classes == ["down", "left", "right"]


def test_uniform_sampling_and_the_two_rules_for_short_clips(sample):
    assert sample_indices(8, 6) == [0, 1, 3, 4, 6, 7]
    looped = read(sample, frames=12, short="loop")
    assert torch.equal(looped.clips[:, 8:], looped.clips[:, :4])        # 8 frames, then again from 0
    padded = read(sample, frames=12, short="pad")
    assert padded.lengths.tolist() == [8] * 18
    assert torch.equal(padded.clips[:, :8], looped.clips[:, :8])
    assert padded.clips[:, 8:].eq(0).all()                              # black padding after the end


def test_variable_lengths_are_recorded_when_padding(tmp_path):
    root = write_sample_clips(tmp_path / "v", per_class=6, frames=10, min_frames=4, formats=("gif",))
    data = read(root, frames=10, short="pad")
    assert data.lengths.min() >= 4 and data.lengths.max() <= 10 and len(set(data.lengths.tolist())) > 1
    for clip, n in zip(data.clips, data.lengths):
        assert clip[n:].eq(0).all() and clip[n - 1].gt(0).any()


def test_frames_of_a_folder_are_read_in_numeric_order(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name / "clip").mkdir(parents=True)
        for t in (1, 2, 10):                            # "frame_10" sorts before "frame_2" as text
            img = np.full((8, 8), 20 * t, dtype=np.uint8)
            Image.fromarray(img).save(tmp_path / name / "clip" / f"frame_{t}.png")
    data = read(tmp_path, frames=3, size=None)
    assert data.clips[0, :, 0, 0, 0].tolist() == [20, 40, 200]


def test_split_is_deterministic_stratified_and_stable_when_clips_are_added(folder):
    data = read(folder)
    train, test = data.split(test_fraction=0.25, seed=3)
    assert sorted(train.files + test.files) == sorted(data.files) and not set(train.files) & set(test.files)
    assert torch.bincount(test.labels).tolist() == [2, 2, 2]            # round(0.25 * 6) per class
    again = data.split(test_fraction=0.25, seed=3)[1]
    assert again.files == test.files and torch.equal(again.clips, test.clips)
    write_clip(data.clips[0], folder / "down" / "zz_new.gif")
    grown_test = read(folder).split(test_fraction=0.25, seed=3)[1]
    for f in train.files:                                              # nothing moved train -> test
        assert f not in grown_test.files
    with pytest.raises(ValueError, match="test_fraction"):
        data.split(test_fraction=1.5)


def test_the_cache_skips_decoding_until_a_file_or_a_setting_changes(folder, monkeypatch):
    first = video_folder(folder, **SETTINGS)
    assert len(list((folder / ".cnnlstm_edu-cache").glob("*.safetensors"))) == 1

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded although the cache holds these clips")

    monkeypatch.setattr(video_module, "decode", no_decoding)
    second = video_folder(folder, **SETTINGS)
    assert torch.equal(first.clips, second.clips) and first.files == second.files
    assert second.classes == first.classes and torch.equal(first.lengths, second.lengths)
    with pytest.raises(AssertionError, match="decoded although"):
        video_folder(folder, **{**SETTINGS, "frames": 5})             # another setting: decode
    clip = folder / "left" / "left_001.gif"
    clip.write_bytes(clip.read_bytes())                                # same bytes, new mtime
    os.utime(clip, ns=(1, 1))
    with pytest.raises(AssertionError, match="decoded although"):
        video_folder(folder, **SETTINGS)


def test_a_damaged_or_unwritable_cache_warns_and_still_reads(folder):
    video_folder(folder, **SETTINGS)
    (cached,) = (folder / ".cnnlstm_edu-cache").glob("*.safetensors")
    cached.write_bytes(b"not a safetensors file")
    with pytest.warns(UserWarning, match="damaged cache"):
        data = video_folder(folder, **SETTINGS)
    assert len(data) == 18
    shutil.rmtree(folder / ".cnnlstm_edu-cache")
    (folder / ".cnnlstm_edu-cache").write_text("a file where the cache folder would go")
    with pytest.warns(UserWarning, match="cannot write the cache"):
        data = video_folder(folder, **SETTINGS)
    assert len(data) == 18


@pytest.mark.parametrize("damage", ["empty", "truncated", "not_a_video"])
def test_unreadable_clips_are_skipped_with_a_warning_naming_each(folder, damage):
    victim = folder / "right" / "right_000.mp4"
    if damage == "empty":
        victim.write_bytes(b"")
    elif damage == "truncated":
        victim.write_bytes(victim.read_bytes()[:300])
    else:
        victim.write_text("this is a shopping list, not a video")
    with pytest.warns(UserWarning, match="right_000.mp4") as record:
        data = read(folder)
    assert len(data) == 17 and "right/right_000.mp4" not in data.files
    assert len(data.skipped) == 1 and "right_000.mp4" in data.skipped[0]
    assert sum("right_000.mp4" in str(w.message) for w in record) == 1


def test_a_class_whose_clips_are_all_unreadable_or_a_folder_with_none_is_refused(folder):
    for clip in (folder / "right").iterdir():
        if clip.is_file():
            clip.write_bytes(b"")
        else:
            for png in clip.iterdir():
                png.write_bytes(b"")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=r"no readable clip is left in class folder\(s\) \['right'\]"):
            read(folder)
        for name in ("down", "left"):
            shutil.rmtree(folder / name)
            (folder / name).mkdir()
            write_clip(torch.zeros(3, 1, 32, 32, dtype=torch.uint8), folder / name / "x.mp4")
            (folder / name / "x.mp4").write_bytes(b"")
        with pytest.raises(ValueError, match="no readable clip is left in"):
            read(folder)


@pytest.mark.parametrize("case, pattern", [
    ("stray_file", r"notes\.txt is not a clip \(suffix '\.txt'\)"),
    ("empty_class", r"class folder .*right holds no clips"),
    ("single_class", r"has 1 class folder\(s\) \['down'\]; a classifier needs at least 2"),
    ("one_frame", r"left_001\.gif: 1 frame\(s\); a clip needs at least 2"),
    ("not_a_folder", r"is not a folder"),
    ("too_many", r"holds 18 clips, above max_clips=10"),
    ("too_big", r"need 1 MiB, above max_bytes=0 MiB"),
])
def test_bad_folders_are_refused_with_a_message_naming_the_file_or_value(folder, case, pattern):
    kw = {}
    if case == "stray_file":
        (folder / "left" / "notes.txt").write_text("hello")
    elif case == "empty_class":
        shutil.rmtree(folder / "right")
        (folder / "right").mkdir()
    elif case == "single_class":
        shutil.rmtree(folder / "left")
        shutil.rmtree(folder / "right")
    elif case == "one_frame":
        (folder / "left" / "left_001.gif").unlink()
        write_clip(torch.zeros(1, 1, 32, 32, dtype=torch.uint8), folder / "left" / "left_001.gif")
    elif case == "not_a_folder":
        folder = folder / "down" / "down_000.mp4"
    elif case == "too_many":
        kw = {"max_clips": 10}
    else:
        kw = {"max_bytes": 1000, "frames": 60}
    with pytest.raises((ValueError, FileNotFoundError), match=pattern):
        read(folder, **kw)


def test_a_smaller_cap_is_not_answered_from_a_cache_filled_under_a_larger_one(folder):
    video_folder(folder, **{**SETTINGS, "size": None})                 # fills the cache, max_side 4096
    with pytest.raises(ValueError, match=r"its frames are 32x32 pixels, above the cap of 16"):
        video_folder(folder, **{**SETTINGS, "size": None, "max_side": 16})
    with pytest.raises(ValueError, match=r"cached clips of .* above max_bytes"):
        video_folder(folder, **{**SETTINGS, "size": None, "max_bytes": 1000})


def test_huge_frames_are_refused_from_the_header_before_any_decoding(folder, monkeypatch):
    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded a clip whose frames are above the cap")

    monkeypatch.setattr(video_module, "decode", no_decoding)
    with pytest.raises(ValueError, match=r"down_000\.mp4: its frames are 32x32 pixels, above the cap of 16"):
        read(folder, size=None, max_side=16)


def test_mixed_sizes_and_colour_modes_are_refused_with_what_to_pass(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ramp = torch.arange(3, dtype=torch.uint8).view(3, 1, 1, 1) * 60       # 3 different frames
    write_clip(ramp.expand(3, 1, 32, 32), tmp_path / "a" / "small.gif")
    write_clip(ramp.expand(3, 1, 48, 40), tmp_path / "b" / "big.gif")
    with pytest.raises(ValueError, match=r"small\.gif is 32x32, .*big\.gif is 40x48\); pass size=\(H, W\)"):
        read(tmp_path, size=None)
    assert read(tmp_path, size=(16, 24)).clips.shape == (2, 6, 1, 16, 24)
    red = torch.cat([ramp, ramp * 0, ramp * 0], dim=1).expand(3, 3, 32, 32)   # (T, RGB, H, W)
    write_clip(red, tmp_path / "b" / "colour.gif")
    with pytest.raises(ValueError, match=r"mix grey and colour .*pass channels=1"):
        read(tmp_path, channels=None)
    data = read(tmp_path, channels=3)
    assert data.clips.shape[2] == 3


@pytest.mark.parametrize("kw, pattern", [
    ({"frames": 1}, "frames"), ({"size": (0, 8)}, "size"), ({"size": (8, 8, 8)}, "size"),
    ({"channels": 2}, "channels must be 1"), ({"short": "wrap"}, "short must be one of"),
    ({"max_side": 0}, "max_side"),
])
def test_bad_settings_are_refused_before_any_file_is_read(kw, pattern, tmp_path):
    with pytest.raises(ValueError, match=pattern):
        video_folder(tmp_path / "does-not-matter", **kw)


def test_load_clip_prepares_one_clip_exactly_as_the_folder_did(sample, tmp_path):
    data = read(sample)
    for i in (0, 1, 2):                                           # an .mp4, a .gif, a frame folder
        clip, length = load_clip(sample / data.files[i], **data.settings)
        assert torch.equal(clip, data.clips[i]) and length == 6
    short, length = load_clip(sample / data.files[1], frames=12, size=32, channels=1, short="pad")
    assert length == 8 and short[8:].eq(0).all()
    (tmp_path / "bad.mp4").write_bytes(b"garbage")
    with pytest.raises(ClipError, match="bad.mp4: unreadable"):
        load_clip(tmp_path / "bad.mp4")
    with pytest.raises(ValueError, match=r"notes.txt is not a clip"):
        (tmp_path / "notes.txt").write_text("x")
        load_clip(tmp_path / "notes.txt")
    with pytest.raises(FileNotFoundError, match="no clip at"):
        load_clip(tmp_path / "missing.gif")

"""The "Your clips" tab (issue 16, section 5): its functions called directly, and its routes called
through a served app by a client that is not the page.

The sample zip goes in, a model trains for a second or two, one clip is classified frame by
frame. Then the hostile uploads: zip-slip by '..' and by an absolute path, a symlink entry, a zip
bomb, too many entries, a file that is not a zip, an empty class and a single class; each refused
with a message naming its rule, nothing written outside the store's folder, nothing left in it.
The caps on disk, memory and decoding time across sessions are checked on small caps.
"""

from __future__ import annotations

import stat
import zipfile
from pathlib import Path

import pytest
import torch

from cnnlstm_edu import load_checkpoint
from cnnlstm_edu.checkpoint import read_clip_info
from cnnlstm_edu.app.clip_settings import ClipCaps, ClipFormat, ClipSettings
from cnnlstm_edu.app.clip_store import ClipsRefused, ClipStore, sample_zip
from cnnlstm_edu.app.clips_tab import ClipsServer, classify_clip, train_clips, upload_clips, use_sample
from cnnlstm_edu.app.session import Session, SessionRegistry

FORMAT = (6, 24, "grey")                     # frames, frame size, colour: small, quick


def button_file(button) -> Path:
    """The file a ``gr.DownloadButton`` offers (gradio keeps its value as a file entry)."""
    value = button.value
    return Path(value["path"] if isinstance(value, dict) else value)


def files_under(folder: Path) -> set[str]:
    return {p.relative_to(folder).as_posix() for p in folder.rglob("*")}


@pytest.fixture
def server(tmp_path):
    return ClipsServer(SessionRegistry(), ClipStore(root=_store_root(tmp_path)))


def _store_root(tmp_path: Path) -> Path:
    root = tmp_path / "store"
    root.mkdir(exist_ok=True)
    return root


@pytest.fixture(scope="module")
def one_clip(tmp_path_factory) -> Path:
    """One .mp4 of the sample zip, as a learner would upload it alone."""
    folder = tmp_path_factory.mktemp("one")
    with zipfile.ZipFile(sample_zip()) as z:
        name = next(n for n in z.namelist() if n.startswith("left/") and n.endswith(".mp4"))
        z.extract(name, folder)
    return folder / name


def test_the_sample_zip_is_made_once_small_and_of_real_mp4_files():
    first, second = sample_zip(), sample_zip()
    assert first == second and first.stat().st_size < 400_000
    with zipfile.ZipFile(first) as z:
        names = z.namelist()
        assert {n.split("/")[0] for n in names} == {"left", "right", "down"}
        assert all(n.endswith(".mp4") for n in names) and len(names) == 60
        assert z.read(names[0])[4:8] == b"ftyp"             # an MP4 container, not a renamed gif


def test_sample_trains_live_then_classifies_one_clip_frame_by_frame(server, one_clip, tmp_path):
    session, summary, download = use_sample(server, None, *FORMAT)
    assert "3 classes" in summary and "**left** (15 + 5)" in summary and "6 frames of 24x24" in summary
    assert button_file(download).name == "sample_clips.zip"
    updates = list(train_clips(server, session, *FORMAT, "trained from scratch", 1.5))
    names = ["state", "status", "loss", "accuracy", "activations", "hidden_img", "beliefs", "final",
             "confusion", "mistakes", "download"]
    first, last = dict(zip(names, updates[0])), dict(zip(names, updates[-1]))
    assert first["status"].startswith("Starting: CNN-LSTM (trained from scratch) on your clips")
    assert last["status"].startswith("Done") and "classifying one clip below" in last["status"]
    assert last["activations"].ndim == 3 and last["activations"].shape[2] == 3     # the per-frame mosaic
    assert "frame 6" in last["beliefs"] and "frame 7" not in last["beliefs"] and "true answer" in last["beliefs"]
    assert "after frame" in last["final"] and "on 15 test clips" in last["final"]
    # The checkpoint keeps the class names and how to read a new clip.
    model, info = load_checkpoint(button_file(last["download"]))
    assert info["classes"] == ["down", "left", "right"] and info["task"] == "clips"
    assert read_clip_info(info, "app.safetensors", 3) == (
        ["down", "left", "right"], {"frames": 6, "size": [24, 24], "channels": 1, "short": "loop"})

    message, frames, beliefs, activations = classify_clip(session, str(one_clip))
    assert message.startswith("After all 6 frames it says") and "This tab's model" in message
    assert frames.shape == (72, 6 * 72 + 5 * 6) and activations.ndim == 3
    assert beliefs.count("<tr>") == 7                            # a header and one row per frame
    # The same clip fed whole gives the beliefs streamed one frame at a time (the tab's lesson).
    from cnnlstm_edu.data import load_clip
    from cnnlstm_edu.pixels import to_float
    clip, _ = load_clip(one_clip, frames=6, size=24, channels=1)
    whole = session.model.eval()(to_float(clip)[None], all_steps=True).softmax(-1)[0]       # (T, 3)
    from cnnlstm_edu.app.tryit import stream_beliefs
    torch.testing.assert_close(stream_beliefs(session.model, clip), whole, atol=1e-5, rtol=1e-4)
    # The downloaded model, read back by the CLI's predict, says the same after every frame.
    from cnnlstm_edu.cli.predict import predict_clips
    (cli,) = predict_clips(model, *read_clip_info(info, "app.safetensors", 3), [str(one_clip)])
    torch.testing.assert_close(torch.tensor(cli.probs), whole.detach(), atol=1e-4, rtol=1e-3)

    folder = session.clips.folder
    assert folder.is_dir() and server.store.disk_held() > 0 and server.store.memory_held() > 0
    session.close()                                              # the tab went away: its clips too
    assert not folder.exists() and server.store.disk_held() == 0 and server.store.memory_held() == 0


def _zip(path: Path, entries: list[tuple], compression=zipfile.ZIP_DEFLATED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data, *mode in entries:
            if mode:
                info = zipfile.ZipInfo(name)
                info.external_attr = mode[0] << 16
                z.writestr(info, data)
            else:
                z.writestr(name, data)
    return path


def _gif() -> bytes:
    import io

    from PIL import Image
    out = io.BytesIO()
    frames = [Image.new("L", (16, 16), c) for c in (0, 128, 255)]
    frames[0].save(out, format="GIF", save_all=True, append_images=frames[1:])
    return out.getvalue()


HOSTILE = {       # entries (made when a test runs: the bomb holds 80 MB before it is zipped), and the rule
    "zip-slip '..'": (lambda: [("left/a.gif", _gif()), ("right/b.gif", _gif()), ("../../evil.txt", b"gotcha")],
                      "points outside the folder"),
    "absolute path": (lambda: [("left/a.gif", _gif()), ("/tmp/evil.txt", b"gotcha")], "absolute path"),
    "symlink": (lambda: [("left/a.gif", _gif()), ("right/link", "/etc/passwd", stat.S_IFLNK | 0o777)],
                "symbolic link"),
    "zip bomb": (lambda: [("left/a.gif", _gif()), ("right/bomb.mp4", bytes(80 * 2**20))], "inflates"),
    "too many entries": (lambda: [(f"left/{i}.gif", b"x") for i in range(1001)], "entries, more than 1000"),
    "empty class": (lambda: [("left/a.gif", _gif()), ("right/", b"")], "hold no clips"),
    "single class": (lambda: [("left/a.gif", _gif()), ("left/b.gif", _gif())], "1 class folder(s) ['left']"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_zips_are_refused_with_their_rule_and_nothing_is_written(server, tmp_path, case):
    entries, says = HOSTILE[case]
    archive = _zip(tmp_path / "clips.zip", entries())
    before = files_under(tmp_path)
    session, summary = upload_clips(server, None, str(archive), *FORMAT)
    assert summary.startswith("**Cannot do that:**") and says in summary, summary
    assert str(tmp_path) not in summary                           # no server path in the message
    assert files_under(tmp_path) == before                        # nothing outside, nothing left inside
    assert session.clips is None and server.store.disk_held() == 0
    assert not Path("/tmp/evil.txt").exists()


def test_a_file_that_is_not_a_zip_is_refused(server, tmp_path):
    fake = tmp_path / "clips.zip"
    fake.write_bytes(b"not a zip at all\n" * 100)
    _, summary = upload_clips(server, None, str(fake), *FORMAT)
    assert "not a .zip archive" in summary
    text = tmp_path / "clips.txt"
    text.write_text("hello")
    _, summary = upload_clips(server, None, str(text), *FORMAT)
    assert "must be a .zip" in summary and server.store.disk_held() == 0
    _, summary = upload_clips(server, None, None, *FORMAT)
    assert "choose a .zip" in summary


def test_a_new_upload_replaces_the_old_one_and_its_folder(server):
    session, _ = upload_clips(server, None, str(sample_zip()), *FORMAT)
    old = session.clips.folder
    session, summary = upload_clips(server, session, str(sample_zip()), *FORMAT)
    assert not old.exists() and session.clips.folder.exists() and "3 classes" in summary
    assert len(server.store.uploads()) == 1
    session.close()
    assert server.store.uploads() == []


@pytest.mark.parametrize("fields, says", [
    ((1, 24, "grey", "trained from scratch", 5), "frames must be a whole number from 2 to 32, got 1."),
    ((8, 200, "grey", "trained from scratch", 5), "frame size must be a whole number from 8 to 64, got 200."),
    ((8, 24, "purple", "trained from scratch", 5), "colour must be one of grey, colour"),
    ((8, 24, "grey", "imagenet", 5), "frame encoder must be one of"),
    ((8, 24, "grey", "trained from scratch", 0), "time budget (seconds) must be a finite number above 0"),
    ((8, 24, "grey", "trained from scratch", 1e9), "above 0 and at most 300, got 1000000000.0."),
])
def test_bad_settings_are_named_before_any_work(server, fields, says):
    (out,) = list(train_clips(server, None, *fields))
    assert says in out[1], out[1]


def test_training_or_classifying_without_clips_says_what_to_do(server, one_clip, tmp_path):
    (out,) = list(train_clips(server, None, *FORMAT, "trained from scratch", 2))
    assert "there are no clips in this tab" in out[1]
    message, *_ = classify_clip(Session("s"), str(one_clip))
    assert "no model trained on clips" in message


def test_a_single_clip_that_is_not_a_clip_or_too_big_is_refused(server, tmp_path):
    session, _ = upload_clips(server, None, str(sample_zip()), *FORMAT)
    list(train_clips(server, session, *FORMAT, "MNIST-pretrained (frozen)", 0.5))
    assert session.model is not None and session.settings.model_config()["trainable"] is False
    notes = tmp_path / "notes.txt"
    notes.write_text("not a clip")
    message, frames, *_ = classify_clip(session, str(notes))
    assert "this clip can't be read" in message and "not a clip" in message and frames is None
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00" * 5000)
    message, *_ = classify_clip(session, str(broken))
    assert "this clip can't be read" in message and str(tmp_path) not in message
    session.close()


def test_colour_clips_train_and_show_in_colour(server, one_clip):
    session, summary = upload_clips(server, None, str(sample_zip()), 4, 16, "colour")
    assert "4 frames of 16x16, colour" in summary
    *_, last = train_clips(server, session, 4, 16, "colour", "MNIST-pretrained (fine-tuned)", 0.5)
    assert last[1].startswith("Done") and session.model.config.in_channels == 3
    assert session.settings.model_config()["encoder"] == "mnist" and last[4].shape[2] == 3
    message, frames, beliefs, activations = classify_clip(session, str(one_clip))
    assert "4 frames of 16x16, colour" in message and frames.shape == (80, 4 * 80 + 3 * 6, 3)   # RGB strip
    session.close()


def _upload(store: ClipStore, session: Session | None = None):
    upload = store.unpack(sample_zip(), in_use=(lambda: session.running) if session else (lambda: False))
    return upload


def test_the_disk_cap_evicts_the_least_recently_used_idle_upload_or_refuses(tmp_path):
    caps = ClipCaps(total_bytes=2**20, disk_bytes=2**20 + 10_000)       # room for one upload at a time
    store = ClipStore(caps, root=_store_root(tmp_path))
    first = _upload(store)
    second = _upload(store)                                             # first is idle: evicted
    assert "least recently used" in first.gone and not first.folder.exists()
    with pytest.raises(ClipsRefused, match="removed"):
        first.prepare(ClipFormat(*FORMAT))
    busy = Session("busy")
    with busy:                                                          # its session trains: kept
        second.in_use = lambda: busy.running
        with pytest.raises(ClipsRefused, match="holds its most uploaded clips"):
            _upload(store)
    assert second.folder.exists() and store.disk_held() == second.disk <= caps.disk_bytes


def test_the_memory_cap_drops_idle_decoded_clips_first(tmp_path):
    store = ClipStore(ClipCaps(memory_bytes=1_500_000), root=_store_root(tmp_path))
    a, b = _upload(store), _upload(store)
    a.prepare(ClipFormat(*FORMAT))                                      # 60 clips x 6 x 24 x 24 x 5 bytes: 1.04 MB
    assert a.prepared is not None
    b.prepare(ClipFormat(*FORMAT))
    assert a.prepared is None and b.prepared is not None               # a's tensors went, its folder stays
    assert a.folder.exists() and store.memory_held() <= 1_500_000
    assert a.prepare(ClipFormat(*FORMAT)).data.train_x.shape == (45, 6, 1, 24, 24)   # read again


def test_decoding_is_bounded_in_time_and_size(tmp_path):
    store = ClipStore(ClipCaps(decode_seconds=1e-6), root=_store_root(tmp_path))
    with pytest.raises(ClipsRefused, match="max_seconds"):
        _upload(store).prepare(ClipFormat(*FORMAT))
    store = ClipStore(ClipCaps(decoded_bytes=10_000), root=_store_root(tmp_path))
    with pytest.raises(ClipsRefused, match="max_bytes") as caught:
        _upload(store).prepare(ClipFormat(*FORMAT))
    assert str(tmp_path) not in str(caught.value)


def test_settings_for_the_model():
    settings = ClipSettings(ClipFormat(8, 32, "colour"), encoder="MNIST-pretrained (fine-tuned)")
    settings = settings.for_classes(["a", "b", "c"], 30, 9)
    assert settings.model_config() == {"in_channels": 3, "frame_size": 32, "num_classes": 3,
                                       "encoder": "mnist", "trainable": True}
    assert settings.app_task.num_classes == 3 and settings.app_task.noun == "clips"


# --- through a served app, as any client on the network could call it ---------------------------


@pytest.fixture(scope="module")
def client():
    from gradio_client import Client

    from cnnlstm_edu.app import build_demo, launch
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo = launch(build_demo(device="cpu"), port=port, prevent_thread_lock=True, quiet=True)
    try:
        yield Client(demo.local_url, verbose=False, download_files=False), demo
    finally:
        demo.close()


def test_routes_refuse_a_zip_slip_and_a_bomb_and_name_bad_fields(client, tmp_path):
    from gradio_client import handle_file
    from gradio_client.exceptions import AppError

    api, demo = client
    for case in ("zip-slip '..'", "zip bomb"):
        archive = _zip(tmp_path / f"{len(case)}.zip", HOSTILE[case][0]())
        summary = api.predict(handle_file(str(archive)), *FORMAT, api_name="/clips_upload")
        assert "Cannot do that" in summary and HOSTILE[case][1] in summary, summary
    assert demo.clip_store.disk_held() == 0
    with pytest.raises(AppError) as caught:
        api.predict(handle_file(str(sample_zip())), "abc", 24, "grey", api_name="/clips_upload")
    assert "frames must be a whole number, got 'abc'" in str(caught.value)
    with pytest.raises(AppError) as caught:
        api.predict(*FORMAT[:2], "purple", "trained from scratch", 2, api_name="/clips_train")
    assert "colour must be one of grey, colour; got 'purple'" in str(caught.value)
    status = api.predict(*FORMAT, "trained from scratch", 2, api_name="/clips_train")[0]
    assert "there are no clips in this tab" in status

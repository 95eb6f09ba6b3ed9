"""Checkpoints round-trip exactly and never unpickle."""

import json
import pickle
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import save_file

from cnnlstm_edu import load_checkpoint, save_checkpoint
from cnnlstm_edu.checkpoint import FORMAT, CheckpointError, tensor_digest
from cnnlstm_edu.models import CNNLSTM, build_model


def test_roundtrip_is_exact(tmp_path):
    model = CNNLSTM(channels=(4, 8), hidden_size=16, num_layers=2).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", order="4321")
    again, info = load_checkpoint(path)
    assert again.config == model.config and info == {"order": "4321"}
    x = torch.randn(2, 4, 1, 14, 14)
    assert torch.equal(again.eval()(x), model(x))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


@pytest.mark.parametrize("name", ["evil.safetensors", "model.pt", "weights"])
@pytest.mark.parametrize("write", [
    *[lambda p, k=k: p.write_bytes(pickle.dumps(Boom(), protocol=k)) for k in range(pickle.HIGHEST_PROTOCOL + 1)],
    lambda p: torch.save({"x": Boom()}, p),
])
def test_pickles_are_refused_and_never_run(tmp_path, monkeypatch, write, name):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / name
    write(path)
    with pickle_forbidden(monkeypatch), pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_the_pickle_payload_is_live(tmp_path, monkeypatch):
    # So the test above means something: unpickling this file for real does create the marker.
    monkeypatch.chdir(tmp_path)
    pickle.loads(pickle.dumps(Boom()))
    assert (tmp_path / "PWNED").exists()


def pickle_forbidden(monkeypatch):
    """Within the block, any unpickling (pickle, torch.load) fails the test."""
    def forbidden(*args, **kwargs):
        raise AssertionError("load_checkpoint unpickled something")

    patch = monkeypatch.context()
    m = patch.__enter__()
    for module, name in [(pickle, "loads"), (pickle, "load"), (pickle, "Unpickler"), (torch, "load")]:
        m.setattr(module, name, forbidden)

    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, *exc):
            patch.__exit__(*exc)
            return False

    return Guard()


@pytest.mark.parametrize("name, config", [
    ("cnn_lstm", {"channels": (4, 8), "hidden_size": 16, "num_layers": 2, "td_mode": "loop"}),
    ("cnn_convlstm", {"channels": (4,), "hidden_channels": 6, "kernel_size": 3}),
    ("next_frame", {}),
    ("whole_image", {"channels": (4, 8), "order": "4231"}),
    ("frame_average", {"frame_size": 24, "channels": (4,), "num_classes": 8}),
    ("last_frame", {"frame_size": 28, "num_classes": 10, "dropout": 0.1}),
    ("conv3d", {"frame_size": 24, "channels": (4, 8), "num_classes": 8}),
    ("tracker", {"channels": (4, 8, 8), "hidden_size": 16, "num_layers": 2}),
])
def test_every_model_roundtrips_exactly_without_unpickling(tmp_path, monkeypatch, name, config):
    torch.manual_seed(0)
    model = build_model(name, **config).eval()
    path = save_checkpoint(model, tmp_path / f"{name}.safetensors", order="1324")
    with pickle_forbidden(monkeypatch):
        again, info = load_checkpoint(path)
    assert type(again) is type(model) and again.config == model.config and info == {"order": "1324"}
    assert list(tmp_path.iterdir()) == [path]                  # no temporary file left behind
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k
    header = json.loads(__import__("safetensors").safe_open(str(path), "pt").metadata()["cnnlstm_edu"])
    assert header["model"] == name and header["version"] and header["format"] == FORMAT


def test_truncated_and_foreign_files(tmp_path):
    good = save_checkpoint(CNNLSTM(channels=(4, 8), hidden_size=8), tmp_path / "m.safetensors")
    data = good.read_bytes()
    for keep in (0, 5, 9, 200, len(data) // 2, len(data) - 1):    # in the header, then in the weights
        cut = tmp_path / f"cut{keep}.safetensors"
        cut.write_bytes(data[:keep])
        with pytest.raises(CheckpointError, match="truncated|not a readable|not a safetensors"):
            load_checkpoint(cut)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(text)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not one written by"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")


def tampered(tmp_path, header=None, tensors=None, raw_meta=None):
    """A safetensors file with our metadata key, but a config or weights other than save_checkpoint's.

    Its digest matches its tensors, so what is refused is the config or the weights themselves."""
    model = CNNLSTM(channels=(4, 8), hidden_size=8)
    tensors = tensors if tensors is not None else {k: v.contiguous() for k, v in model.state_dict().items()}
    base = {"format": FORMAT, "model": "cnn_lstm", "config": {"channels": [4, 8], "hidden_size": 8},
            "version": "0.1.0", "info": {}, "sha256": tensor_digest(tensors)}
    meta = raw_meta if raw_meta is not None else json.dumps({**base, **(header or {})})
    path = tmp_path / "tampered.safetensors"
    save_file(tensors, str(path), metadata={"cnnlstm_edu": meta})
    return path


@pytest.mark.parametrize("change, match", [
    ({"model": "os.system"}, "expected one of"),
    ({"config": "rm -rf"}, "expected one of"),
    ({"config": {"hidden_size": 8, "__class__": 1}}, "does not build"),
    ({"config": {"hidden_size": "eight"}}, "does not build"),
    ({"config": {"hidden_size": 10**5, "channels": [4, 8]}}, "do not fit"),   # 160 GB of weights: never allocated
    ({"config": {"hidden_size": 10**9, "channels": [4, 8]}}, "does not build"),
    ({"format": "cnnlstm_edu.checkpoint/9"}, "format"),
])
def test_tampered_configs_are_refused(tmp_path, change, match):
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(tampered(tmp_path, header=change))


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path):
    state = {k: v.contiguous() for k, v in CNNLSTM(channels=(4, 8), hidden_size=8).state_dict().items()}
    renamed = {("evil." + k if k.startswith("lstm") else k): v for k, v in state.items()}
    with pytest.raises(CheckpointError, match="missing .*unexpected"):
        load_checkpoint(tampered(tmp_path, tensors=renamed))
    reshaped = {**state, "classifier.bias": torch.zeros(11)}
    with pytest.raises(CheckpointError, match=r"wrong shape: classifier.bias \(11,\) \(the model has \(10,\)\)"):
        load_checkpoint(tampered(tmp_path, tensors=reshaped))
    with pytest.raises(CheckpointError, match="not one written by"):
        load_checkpoint(tampered(tmp_path, raw_meta="{not json"))


def test_save_refuses_what_it_cannot_write(tmp_path):
    model = CNNLSTM(channels=(4,), hidden_size=4)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        save_checkpoint(model, tmp_path / "no" / "such" / "m.safetensors")
    with pytest.raises(TypeError, match="JSON"):
        save_checkpoint(model, tmp_path / "m.safetensors", when=object())
    with pytest.raises(ValueError, match="not a registered model"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "m.safetensors")
    assert list(tmp_path.iterdir()) == []                       # nothing half-written


# --- interrupted saves (issue 13, item 11) ----------------------------------------------------

def _save_and_die(folder, signal_name):
    """Run save_checkpoint in a child process that receives ``signal_name`` right after the weights
    reach the temporary file (before the rename). Returns the child's exit status."""
    script = f"""
import os, signal, time
import safetensors.torch
from cnnlstm_edu import save_checkpoint
from cnnlstm_edu.models import CNNLSTM
write = safetensors.torch.save_file
def write_then_die(*args, **kwargs):
    write(*args, **kwargs)
    os.kill(os.getpid(), signal.{signal_name})
    time.sleep(30)                      # the signal lands here, mid-save
safetensors.torch.save_file = write_then_die
save_checkpoint(CNNLSTM(channels=(4, 8), hidden_size=8), {str(folder / "m.safetensors")!r})
"""
    return subprocess.run([sys.executable, "-c", script], timeout=120, capture_output=True, text=True)


def test_sigterm_during_a_save_leaves_no_temporary_file(tmp_path):
    proc = _save_and_die(tmp_path, "SIGTERM")
    assert proc.returncode == -signal.SIGTERM, proc.stderr      # still ends as SIGTERM asked
    assert list(tmp_path.iterdir()) == []                       # no debris, no half-saved model


def test_the_next_save_removes_the_debris_of_a_killed_save(tmp_path):
    proc = _save_and_die(tmp_path, "SIGKILL")                   # no handler can run: debris stays
    assert proc.returncode == -signal.SIGKILL
    debris = list(tmp_path.iterdir())
    assert len(debris) == 1 and debris[0].stat().st_size > 0
    other = tmp_path / ".someone-else.tmp"                      # not ours: left alone
    other.write_text("x")
    path = save_checkpoint(CNNLSTM(channels=(4, 8), hidden_size=8), tmp_path / "n.safetensors")
    assert sorted(tmp_path.iterdir()) == sorted([other, path])


# --- crafted and altered files (issue 13, items 12-14) -----------------------------------------

@pytest.mark.parametrize("config, match", [
    ({"channels": [4, 8], "hidden_size": 8, "num_layers": 10**5}, "num_layers=100000.*1 layer"),
    ({"channels": [4, 8], "hidden_size": 8, "num_layers": 2}, "num_layers=2.*1 layer"),
    ({"channels": [4] * 10**5, "hidden_size": 8}, "channels"),
])
def test_a_config_asking_for_more_than_the_file_holds_is_refused_fast(tmp_path, config, match):
    # Item 12: num_layers=10**5 took more than 280 s to refuse; the tensors fix the layer count.
    path = tampered(tmp_path, header={"config": config})
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match):
        load_checkpoint(path)
    assert time.perf_counter() - start < 5


@pytest.mark.parametrize("meta", [
    "[1, 2]", '"text"', "null", "3",
    {"model": ["cnn_lstm"]}, {"model": {"a": 1}}, {"model": None},
    {"config": [1, 2]}, {"config": None}, {"config": {"channels": {"a": 1}, "hidden_size": 8}},
    {"config": {"channels": [4, 8], "hidden_size": [8]}}, {"config": {"channels": [[4], 8]}},
    {"info": [1, 2]}, {"info": "order"}, {"info": None},
    {"format": ["cnnlstm_edu.checkpoint/2"]}, {"format": None}, {"version": [1]},
    {"sha256": 5}, {"sha256": None},
])
def test_malformed_metadata_is_a_checkpoint_error(tmp_path, meta):
    # Item 13: '"model": [...]' raised TypeError: unhashable type; '"info": [1, 2]' loaded as a list.
    if isinstance(meta, dict):
        with pytest.raises(CheckpointError):
            load_checkpoint(tampered(tmp_path, header=meta))
    else:
        with pytest.raises(CheckpointError, match="not one written by"):
            load_checkpoint(tampered(tmp_path, raw_meta=meta))


def test_one_flipped_weight_byte_is_refused(tmp_path):
    # Item 14: the README says altered files are refused, but a flipped byte loaded silently.
    path = save_checkpoint(CNNLSTM(channels=(4, 8), hidden_size=8), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01                                   # the last bytes are weights, not the header
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="digest.*altered"):
        load_checkpoint(path)


def test_a_checkpoint_without_a_digest_is_refused(tmp_path):
    model = CNNLSTM(channels=(4, 8), hidden_size=8)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match="no digest"):
        load_checkpoint(tampered(tmp_path, raw_meta=json.dumps({
            "format": "cnnlstm_edu.checkpoint/1", "model": "cnn_lstm",
            "config": {"channels": [4, 8], "hidden_size": 8}, "version": "0.1.0", "info": {}})))
    with pytest.raises(CheckpointError, match="digest"):
        load_checkpoint(tampered(tmp_path, header={"sha256": "0" * 64}, tensors=tensors))


def test_the_digest_covers_names_dtypes_shapes_and_bytes():
    a = {"w": torch.zeros(2, 3), "b": torch.ones(3)}
    assert tensor_digest(a) == tensor_digest(dict(reversed(list(a.items()))))   # order-free
    for changed in ({**a, "extra": torch.zeros(1)},
                    {"w": torch.zeros(3, 2), "b": torch.ones(3)},
                    {"w": torch.zeros(2, 3, dtype=torch.float64), "b": torch.ones(3)},
                    {"w": torch.zeros(2, 3), "b": torch.tensor([1.0, 1.0, 1.0 + 2**-20])},
                    {"v": torch.zeros(2, 3), "b": torch.ones(3)}):
        assert tensor_digest(changed) != tensor_digest(a)


def test_a_header_length_starting_with_0x80_is_not_taken_for_a_pickle(tmp_path):
    # A 2176-byte (0x880) header makes the file's first byte 0x80, a pickle's mark: the app's own
    # checkpoints were refused as pickles once the digest made their headers that long.
    model, path = CNNLSTM(hidden_size=8), tmp_path / "m.safetensors"
    for pad in range(256):
        save_checkpoint(model, path, note="x" * pad)
        if path.read_bytes()[0] == 0x80:
            break
    assert path.read_bytes()[0] == 0x80
    loaded, info = load_checkpoint(path)
    assert info["note"] == "x" * pad
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


def test_a_model_without_layers_to_count_is_bounded_by_its_config_fields(tmp_path):
    # frame_average has no recurrent layers: its file holds no weight_ih_l{k}, and its config
    # no num_layers. One that claims some is refused before anything is built.
    model = build_model("frame_average", channels=(4,), num_classes=8)
    tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
    base = {"format": FORMAT, "model": "frame_average", "version": "0.1.0", "info": {},
            "sha256": tensor_digest(tensors)}
    for config, match in [({"channels": [4], "num_classes": 8, "num_layers": 10**5}, "does not build"),
                          ({"channels": [4] * 50, "num_classes": 8}, "more than")]:
        path = tmp_path / "fa.safetensors"
        save_file(tensors, str(path), metadata={"cnnlstm_edu": json.dumps({**base, "config": config})})
        with pytest.raises(CheckpointError, match=match):
            load_checkpoint(path)

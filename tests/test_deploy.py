"""The ONNX step, streamed over whole test clips, equals Stateful and the full-sequence model (issue 18).

Each exportable model is exported once (tiny configs: an export traces the step with
``torch.export``, seconds each), its weights and BatchNorm statistics drawn at random so that
a wrong state or a skipped layer shows. Then, at batch 1 and 7, for the result of every frame
and for the final state, to 1e-4:

- onnxruntime, frame by frame, the state fed back by :class:`OnnxStreamer`;
- PyTorch streaming: ``Stateful`` (through ``FrameStreamer`` for the classifiers, around
  ``NextFrame.step`` for the forecaster; the tracker's ``rollout`` carries its state step by step);
- PyTorch on the whole clip in one call.
"""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest
import torch
from torch import nn

from cnnlstm_edu import Stateful, save_checkpoint
from cnnlstm_edu.cli import main
from cnnlstm_edu.data import DIRECTIONS, direction, quadrant_sequences, track
from cnnlstm_edu.data.moving_mnist import moving_mnist
from cnnlstm_edu.deploy import OnnxStreamer, check_streamable, export_onnx, read_metadata
from cnnlstm_edu.models import build_model, model_config
from cnnlstm_edu.models.streaming import FrameStreamer
from cnnlstm_edu.pixels import to_float

TOL = 1e-4
TINY = {
    "cnn_lstm": dict(channels=(4, 8), hidden_size=8, num_layers=2),
    "cnn_convlstm": dict(frame_size=24, channels=(4,), hidden_channels=4, num_classes=8),
    "next_frame": dict(channels=(4, 8), hidden_channels=4, num_motions=2, motion_size=5),
    "tracker": dict(channels=(4, 4, 4), hidden_size=8),
}


def _randomize(model: nn.Module, seed: int) -> nn.Module:
    """Random weights and BatchNorm statistics: every layer moves the numbers, none is an identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn(p.shape, generator=g) * (0.05 if name.startswith("head") else 0.3))
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=g) * 0.2)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return model.eval()


def _close(a, b, what: str) -> None:
    a, b = torch.as_tensor(np.asarray(a)), torch.as_tensor(np.asarray(b))
    assert a.shape == b.shape, f"{what}: shapes {tuple(a.shape)} and {tuple(b.shape)}"
    diff = (a - b).abs().max().item()
    assert diff <= TOL, f"{what}: largest difference {diff:.2e} > {TOL}"


@pytest.fixture(scope="module")
def exported(tmp_path_factory, digits):
    """name -> (model, onnx path, clips (7, T, C, H, W) float, boxes or None); cnn_lstm through the CLI."""
    folder = tmp_path_factory.mktemp("onnx")
    images, _ = digits
    clips = {
        "cnn_lstm": (to_float(quadrant_sequences(images[:7], order="4321")), None),
        "cnn_convlstm": (to_float(direction(7, split="test")[0]), None),
        "next_frame": (to_float(moving_mnist(7, seq_len=8, split="test")), None),
    }
    frames, boxes = track(7, split="test", seq_len=8)
    clips["tracker"] = (to_float(frames), boxes)
    out = {}
    for seed, (name, config) in enumerate(TINY.items()):
        model = _randomize(build_model(name, **config), seed)
        path = folder / f"{name}.onnx"
        if name == "cnn_lstm":          # as a user does it: a checkpoint, the CLI, --check
            ckpt = save_checkpoint(model, folder / "cnn_lstm.safetensors", order="4321")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                code = main(["export", str(ckpt), "--onnx", str(path), "--check", "--clips", "16"])
            out["cli"] = (code, printed.getvalue())
        else:
            export_onnx(model, path, info={"task": "direction"} if name == "cnn_convlstm" else None)
        out[name] = (model, path, *clips[name])
    return out


@pytest.mark.parametrize("batch", [1, 7])
@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm"])
def test_classifier_onnx_step_equals_stateful_and_whole_clip(exported, name, batch):
    model, path, clips, _ = exported[name]
    clips = clips[:batch]                                           # (B, T, C, H, W)
    onnx, torch_stream = OnnxStreamer(path), FrameStreamer(model)   # FrameStreamer: Stateful inside
    onnx.reset()
    streamed, stateful = [], []
    for t in range(clips.shape[1]):
        streamed.append(onnx(clips[:, t].numpy()))                 # numpy in, numpy out
        stateful.append(torch_stream(clips[:, t]))
    rnn = model.lstm if name == "cnn_lstm" else model.convlstm
    with torch.no_grad():
        whole = model(clips, all_steps=True)                        # (B, T, classes)
        _, (h, c) = rnn(model.encoder(clips))                       # the state after the whole clip
    assert whole.std() > 0.05                                       # the logits say something
    _close(np.stack(streamed, 1), torch.stack(stateful, 1), "onnx vs Stateful logits")
    _close(np.stack(streamed, 1), whole, "onnx vs whole-clip logits")
    for key, torch_state, whole_state in (("h", torch_stream.rnn.state[0], h), ("c", torch_stream.rnn.state[1], c)):
        _close(onnx.state[key], torch_state, f"onnx vs Stateful {key}")
        _close(onnx.state[key], whole_state, f"onnx vs whole-clip {key}")


class _NextFrameSteps(nn.Module):
    """``NextFrame.step(x, state) -> (next frames, state)``: the contract Stateful wraps."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x, state=None):
        return self.model.step(x, state)


@pytest.mark.parametrize("batch", [1, 7])
def test_next_frame_onnx_step_equals_stateful_and_whole_clip(exported, batch):
    model, path, clips, _ = exported["next_frame"]
    clips = clips[:batch]                                           # (B, T, 1, 32, 32)
    onnx, torch_stream = OnnxStreamer(path), Stateful(_NextFrameSteps(model))
    onnx.reset()
    streamed, stateful = [], []
    with torch.no_grad():
        for t in range(clips.shape[1]):
            streamed.append(onnx(clips[:, t]))                      # torch in, torch out
            stateful.append(torch_stream(clips[:, t:t + 1])[:, 0])
        whole, ((h, c), last) = model.step(clips)                   # (B, T, C, H, W): all steps at once
    assert isinstance(streamed[0], torch.Tensor)
    _close(torch.stack(streamed, 1), torch.stack(stateful, 1), "onnx vs Stateful forecasts")
    _close(torch.stack(streamed, 1), whole, "onnx vs whole-clip forecasts")
    (sh, sc), slast = torch_stream.state
    for key, torch_state, whole_state in (("h", sh, h), ("c", sc, c), ("prev_frame", slast[:, 0], last[:, 0])):
        _close(onnx.state[key], torch_state, f"onnx vs Stateful {key}")
        _close(onnx.state[key], whole_state, f"onnx vs whole-clip {key}")


@pytest.mark.parametrize("batch", [1, 7])
def test_tracker_onnx_step_equals_rollout_and_whole_clip(exported, batch):
    model, path, clips, boxes = exported["tracker"]
    clips, boxes = clips[:batch], boxes[:batch]                     # (B, T, 1, 64, 64), (B, T, 4)
    B, T = clips.shape[:2]
    # Teacher forcing, the true previous box fed at each step, through the raw session.
    session = OnnxStreamer(path).session
    state = {"h": np.zeros((1, B, 8), np.float32), "c": np.zeros((1, B, 8), np.float32),
             "prev_frame": clips[:, 0].numpy(), "prev_box": boxes[:, 0].numpy()}
    streamed = []
    for t in range(1, T):
        box, h, c, prev_frame, _ = session.run(None, {"frame": clips[:, t].numpy(), **state})
        streamed.append(box)
        state = {"h": h, "c": c, "prev_frame": prev_frame, "prev_box": boxes[:, t].numpy()}
    with torch.no_grad():
        stepwise = model.rollout(clips, boxes, sampling_p=0.0)      # one step per call, state carried
        whole, (wh, wc) = model.steps(clips[:, :-1], clips[:, 1:], boxes[:, :-1])   # one call
        free = model.track(clips, boxes[:, 0])                      # its own boxes fed back
    assert (whole - boxes[:, :-1]).abs().max() > 0.1                # the boxes move
    _close(np.stack(streamed, 1), stepwise, "onnx vs stepwise boxes")
    _close(np.stack(streamed, 1), whole, "onnx vs whole-clip boxes")
    _close(state["h"], wh, "onnx vs whole-clip h")
    _close(state["c"], wc, "onnx vs whole-clip c")
    # Free-running, as deployed: OnnxStreamer feeds each box back; frame 0's is the given one.
    _close(OnnxStreamer(path).stream(clips, box=boxes[:, 0]), free, "OnnxStreamer vs Tracker.track")


def test_the_cli_exports_a_checkpoint_and_checks_it(exported):
    code, printed = exported["cli"]
    assert code == 0, printed
    assert "inputs frame, h, c; outputs logits, h_next, c_next" in printed
    assert "16 test clips of 4 frames" in printed and "within 0.0001" in printed


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm", "tracker"])
def test_the_file_says_how_to_use_it(exported, name):
    import onnxruntime as ort

    model, path = exported[name][:2]
    meta = read_metadata(path)
    name_, config = model_config(model)
    assert (meta["model"], meta["config"]) == (name_, json.loads(json.dumps(config)))   # tuples as lists
    assert meta["preprocessing"]["frame"] == [1, model.config.frame_size, model.config.frame_size]
    assert meta["preprocessing"]["dtype"] == "float32"
    if name == "cnn_lstm":
        assert meta["class_names"] == [str(d) for d in range(10)]
        assert meta["info"]["order"] == "4321"                      # the checkpoint's facts, kept
        assert meta["state"][0] == {"name": "h", "axes": ["num_layers", "B", "hidden"],
                                    "shape": [2, 0, 8], "init": "zeros"}
    elif name == "cnn_convlstm":
        assert meta["class_names"] == list(DIRECTIONS)             # from info={"task": "direction"}
        assert meta["state"][1] == {"name": "c", "axes": ["num_layers", "B", "F", "H'", "W'"],
                                    "shape": [1, 0, 4, 12, 12], "init": "zeros"}
    else:
        assert [s["name"] for s in meta["state"]] == ["h", "c", "prev_frame", "prev_box"]
        assert meta["class_names"] == []
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs, outputs = session.get_inputs(), session.get_outputs()
    assert [i.name for i in inputs] == meta["inputs"] and [o.name for o in outputs] == meta["outputs"]
    for spec, i, o in zip(meta["state"], inputs[1:], outputs[1:]):   # state in, same state out
        axis = spec["axes"].index("B")
        assert isinstance(i.shape[axis], str) and i.shape == o.shape  # B is a named, dynamic axis
        assert [n for k, n in enumerate(i.shape) if k != axis] == [n for k, n in enumerate(spec["shape"]) if k != axis]
    assert isinstance(inputs[0].shape[0], str)


@pytest.mark.parametrize("name", ["whole_image", "frame_average", "last_frame", "conv3d"])
def test_models_that_cannot_stream_are_refused_with_the_reason(tmp_path, name):
    with pytest.raises(ValueError, match=f"{name} cannot be exported as a one-step graph: it"):
        export_onnx(build_model(name), tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


def test_a_bidirectional_lstm_is_refused():
    model = build_model("cnn_lstm", hidden_size=8)
    model.lstm = nn.LSTM(288, 8, batch_first=True, bidirectional=True)
    with pytest.raises(ValueError, match="its lstm is bidirectional.*frames a stream has not received"):
        check_streamable(model)


def test_a_checkpoint_that_fails_verification_is_refused(tmp_path, capsys):
    path = save_checkpoint(build_model("cnn_lstm", hidden_size=8, channels=(4,)), tmp_path / "m.safetensors")
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01                                                # one bit of the last weight
    path.write_bytes(bytes(data))
    assert main(["export", str(path), "--onnx", str(tmp_path / "m.onnx")]) == 2
    assert "do not match the digest" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


def test_wrong_class_names_are_refused_before_the_export(tmp_path):
    with pytest.raises(ValueError, match="3 class names for a model of 10 classes"):
        export_onnx(build_model("cnn_lstm", hidden_size=8), tmp_path / "m.onnx", class_names=["a", "b", "c"])


def test_a_file_without_the_metadata_is_refused(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="x.onnx is not an ONNX file"):
        OnnxStreamer(tmp_path / "x.onnx")


def test_onnx_streamer_names_the_wrong_axis_and_dtype(exported):
    path = exported["cnn_convlstm"][1]                              # frames (B, 1, 24, 24)
    streamer = OnnxStreamer(path)
    streamer.reset()
    with pytest.raises(ValueError, match=r"axis 1 \(C\) is 3, not 1"):
        streamer(np.zeros((2, 3, 24, 24), np.float32))
    with pytest.raises(ValueError, match=r"axis 3 \(W\) is 14, not 24"):
        streamer(np.zeros((2, 1, 24, 14), np.float32))
    with pytest.raises(ValueError, match="one frame per call"):
        streamer(np.zeros((2, 6, 1, 24, 24), np.float32))
    with pytest.raises(TypeError, match="uint8.*divide uint8 pixels by 255"):
        streamer(np.zeros((2, 1, 24, 24), np.uint8))
    with pytest.raises(TypeError, match="float64.*astype"):
        streamer(np.zeros((2, 1, 24, 24)))
    streamer(np.zeros((2, 1, 24, 24), np.float32))                  # a state for 2 videos
    with pytest.raises(ValueError, match=r"batch of 3 \(axis 0, B\), the stored state is for 2.*reset\(\)"):
        streamer(np.zeros((3, 1, 24, 24), np.float32))


def test_the_tracker_streamer_needs_the_first_box(exported):
    streamer = OnnxStreamer(exported["tracker"][1])
    with pytest.raises(ValueError, match=r"reset\(box=...\) needs the box"):
        streamer.reset()
    with pytest.raises(ValueError, match=r"box must be \(B, 4\)"):
        streamer.reset(box=np.zeros((2, 3), np.float32))


@pytest.mark.parametrize("name", ["next_frame", "tracker"])
def test_check_streams_the_task_clips_of_every_model(exported, name):
    """What export --check runs, for the models the CLI test above does not export."""
    from cnnlstm_edu.deploy.check import largest_difference, test_clips

    model, path = exported[name][:2]
    clips, box = test_clips(model, num_clips=3)
    assert clips.shape[:2] == ((3, 11) if name == "tracker" else (3, 10)) and clips.dtype == torch.float32
    assert (box is None) == (name == "next_frame")
    assert largest_difference(model, path, clips, box) <= TOL


def _docs_program() -> str:
    """The onnxruntime + numpy program of docs/deploy.md, as a reader would copy it."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text()
    blocks = [b.split("```", 1)[0] for b in text.split("```python\n")[1:]]
    (program,) = [b for b in blocks if "import onnxruntime" in b]
    return program


def test_the_docs_program_classifies_a_clip_with_onnxruntime_and_numpy_only(exported, tmp_path,
                                                                             monkeypatch, capsys, digits):
    model, path = exported["cnn_lstm"][:2]
    program = _docs_program()
    assert "torch" not in program and "cnnlstm_edu" not in program and len(program.splitlines()) <= 25
    clip = quadrant_sequences(digits[0][3:4], order="4321")[0]       # uint8 (T, C, H, W), one digit
    np.save(tmp_path / "clip.npy", clip.numpy())
    (tmp_path / "model.onnx").write_bytes(path.read_bytes())
    monkeypatch.chdir(tmp_path)
    exec(compile(program, "docs/deploy.md", "exec"), {"__name__": "__main__"})
    with torch.no_grad():
        expected = model(to_float(clip)[None], all_steps=True)[0].argmax(-1)   # (T,): after each frame
    assert capsys.readouterr().out.strip() == str([str(int(k)) for k in expected])

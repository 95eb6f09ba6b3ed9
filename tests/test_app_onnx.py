"""The app's "Export ONNX" (issue 18, section 4): the tab's trained model as a one-step ONNX graph,
offered for download beside its checkpoint, made on request under the tab's run lock."""

from pathlib import Path

import pytest
import torch

from cnnlstm_edu.app import train_tab
from cnnlstm_edu.app.session import Session
from cnnlstm_edu.app.training import TrainSettings, task_data, train_updates
from cnnlstm_edu.app.tryit import stream_beliefs
from cnnlstm_edu.data import DIRECTIONS

QUICK = dict(final_test=200, device="cpu")


def _run(session: Session) -> None:
    settings = TrainSettings(task="direction", epochs=0.01, seconds=None, batch_size=32, hidden=16, **QUICK)
    list(train_updates(session, settings))


@pytest.fixture(scope="module")
def exported():
    session = Session("onnx-tab")
    _run(session)
    note, button = train_tab.export_onnx(session)
    yield session, note, button
    session.close()


def test_the_onnx_file_runs_in_onnxruntime_and_names_its_model(exported):
    import onnxruntime as ort

    from cnnlstm_edu.deploy import OnnxStreamer, read_metadata

    session, note, button = exported
    path = Path(button.value["path"])                                    # what the page offers
    assert button.interactive and path.suffix == ".onnx" and path.name in button.label
    assert "ONNX file ready" in note
    own = Path(session.onnx)                                             # the session's own file
    assert own.parent == Path(session.checkpoint).parent and own.stem == Path(session.checkpoint).stem
    meta = read_metadata(own)
    assert meta["model"] == "cnn_lstm" and meta["config"]["hidden_size"] == 16
    assert meta["class_names"] == list(DIRECTIONS) and meta["info"]["task"] == "direction"
    runtime = ort.InferenceSession(str(own), providers=["CPUExecutionProvider"])
    assert [i.name for i in runtime.get_inputs()] == ["frame", "h", "c"]
    clip = task_data("direction").test_x[:1]                             # (1, 6, 1, 24, 24) uint8
    streamer = OnnxStreamer(own)
    streamer.reset()
    frames = clip.float() / 255
    onnx_beliefs = torch.cat([torch.as_tensor(streamer(frames[:, t])).softmax(-1) for t in range(6)])  # (6, 8)
    torch.testing.assert_close(onnx_beliefs, stream_beliefs(session.model, clip[0]), atol=1e-4, rtol=1e-4)


def test_a_second_press_offers_the_same_file_and_a_new_run_withdraws_it(exported):
    session, _, button = exported
    own = session.onnx
    note, again = train_tab.export_onnx(session)
    assert session.onnx == own and Path(again.value["path"]).name == Path(own).name
    with session:                                                        # the tab is training
        note, button = train_tab.export_onnx(session)
    assert "this tab is training" in note
    assert "Download ONNX" in train_tab.onnx_cleared()[1].label          # Train pressed: nothing offered
    _run(session)                                                        # a new model: the old file goes
    assert session.onnx is None and not Path(own).exists()


def test_no_model_no_export():
    for session in (None, Session()):
        note, button = train_tab.export_onnx(session)
        assert "train one first" in note and not button.interactive

"""The app's task selector (issue 15): quadrants or direction, checked like every other setting;
the direction clips made once per process; the per-frame views and Try it on direction clips."""

import gradio as gr
import pytest
import torch

from cnnlstm_edu import load_checkpoint
from cnnlstm_edu.analysis import probe
from cnnlstm_edu.app import train_tab, training, try_tab, tryit
from cnnlstm_edu.app.fields import ChoiceField
from cnnlstm_edu.app.session import Session, SessionRegistry
from cnnlstm_edu.app.settings import APP_TASKS, TASK_CHOICES, TrainSettings
from cnnlstm_edu.app.train_tab import TrainOutputs
from cnnlstm_edu.app.training import task_data, train_updates
from cnnlstm_edu.app.tryit import stream_beliefs
from cnnlstm_edu.data import DIRECTIONS
from cnnlstm_edu.data.tasks import opposite, slide
from cnnlstm_edu.models import build_model

QUICK = dict(final_test=200, device="cpu")
SESSIONS = SessionRegistry()
FORM = ("CNN-LSTM", "1234", 32, 4e-3, 32, "epochs", 0.02)      # 7 steps of 32 clips


def train(*args, **kwargs):
    """The Train button's function, as build_demo wires it."""
    return train_tab.train(SESSIONS, *args, **kwargs)


def _last(outputs) -> dict:
    return dict(zip(TrainOutputs.names(), outputs[-1]))


# --- the setting --------------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["spirals", None, 3, ["direction"], "Direction"])
def test_a_bad_task_names_the_field_and_what_it_takes(value):
    with pytest.raises(ValueError, match=r"Task must be one of quadrants, direction, got "):
        TrainSettings(task=value)


@pytest.mark.parametrize("settings, message", [
    (dict(task="direction", order="4321"), "Quadrant order applies to the quadrants task only"),
    (dict(task="direction", batch_size=512), "Batch size must be a whole number from 1 to 256"),
    (dict(task="direction", probe_index=2000), "Probe digit must be a whole number from 0 to 1999"),
    (dict(task="direction", epochs=50, seconds=None, batch_size=16), r"31,250 steps; .* batch size 32"),
])
def test_direction_settings_are_bounded_for_its_clips(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**settings)


def test_direction_builds_models_for_its_frames_and_classes():
    s = TrainSettings.from_form("CNN-ConvLSTM", "1234", 16, 4e-3, 32, "epochs", 1, "direction")
    assert (s.task, s.steps()) == ("direction", 313)                     # 10,000 clips at 32
    assert s.model_config() == {"frame_size": 24, "num_classes": 8, "hidden_channels": 16}
    model = build_model(s.model, **s.model_config())
    assert model(torch.rand(2, 6, 1, 24, 24)).shape == (2, 8)
    assert TrainSettings().model_config() == {} and TrainSettings().task == TASK_CHOICES[0] == "quadrants"
    assert "task direction" in s.describe()


def test_the_train_button_refuses_a_bad_task_before_any_work(monkeypatch):
    made = []
    monkeypatch.setattr(training, "task_data", lambda *a: made.append(a))
    for task, says in (("spirals", "Task must be one of quadrants, direction"),
                       ("direction", "Quadrant order applies to the quadrants task only")):
        form = list(FORM)
        form[1] = "4321"
        outputs = list(train(None, *form, task))
        assert len(outputs) == 1 and "Cannot do that" in outputs[0][1] and says in outputs[0][1]
    assert made == []                                                    # no data made, no model built


def test_a_choice_field_names_itself_and_its_choices():
    field = ChoiceField(["quadrants", "direction"], value="quadrants", label="task")
    assert field.preprocess("direction") == "direction"
    for bad in ("spirals", ["direction"], 1):
        with pytest.raises(gr.Error, match=r"task must be one of quadrants, direction; got "):
            field.preprocess(bad)


def test_choosing_a_task_sets_the_form():
    order, batch, activations, beliefs, mistakes, try_task = train_tab.task_changed("direction")
    assert order.visible is False and order.value == "1234" and batch == 32 and try_task == "direction"
    assert "test clip" in activations and "from frame 2 on" in beliefs and "clips" in mistakes.label
    order, batch, *_ = train_tab.task_changed("quadrants")
    assert order.visible is True and batch == 128
    order, sketch_btn, index, *_ = try_tab.try_task_changed("direction")
    assert order.visible is False and sketch_btn.interactive is False and "0-1999" in index.label


# --- the data: once per process ----------------------------------------------------------------------


def test_direction_clips_are_made_once_and_shared(monkeypatch):
    import cnnlstm_edu.cli.tasks as tasks

    calls = []
    real = tasks.load_task
    monkeypatch.setattr(tasks, "load_task", lambda *a, **k: calls.append(a) or real(*a, **k))
    monkeypatch.setattr(training, "_data", {})
    data = task_data("direction")
    assert task_data("direction") is data and task_data("direction", "4321") is data and len(calls) == 1
    assert data.train_x.shape == (10_000, 6, 1, 24, 24) and data.train_x.dtype == torch.uint8
    assert data.train_x.nbytes == 34_560_000 and data.test_x.shape == (2_000, 6, 1, 24, 24)
    assert data.order is None and data.test_images is None
    cpu = torch.device("cpu")
    assert data.train_for(cpu) is data.train_for(cpu)                    # one float copy, shared
    for name in ("a", "b"):                                              # two tabs train: no new data
        list(train_updates(Session(name), TrainSettings(task="direction", epochs=0.007, seconds=None, **QUICK)))
    assert len(calls) == 1


# --- a direction run and its views ----------------------------------------------------------------


@pytest.fixture(scope="module")
def direction_run():
    session = SESSIONS.attach(None, "direction-tab")
    outputs = list(train(session, *FORM, "direction", options=QUICK))
    return session, outputs


def test_a_direction_run_shows_six_frames_and_eight_directions(direction_run):
    session, outputs = direction_run
    first, end = dict(zip(TrainOutputs.names(), outputs[0])), _last(outputs)
    assert "Starting" in first["status"] and "task direction" in first["status"]
    assert isinstance(first["try_order"], type(gr.skip()))               # Try it's quadrant order untouched
    assert "Done" in end["status"] and "test clips" in end["status"]
    assert end["activations"].shape == (6 * 48 + 5 * 4, 900, 3)          # a row per frame, 48-px cells
    assert end["hidden_img"].shape[0] == 6 * 24                           # a row per frame
    beliefs = end["beliefs"]
    assert beliefs.count("<tr>") == 7 and "frame 6" in beliefs and "frame 7" not in beliefs
    assert all(f'title="{name}"' in beliefs for name in DIRECTIONS) and "\u2196" in beliefs
    assert f"true answer: <b>{DIRECTIONS[int(task_data('direction').test_y[0])]}</b>" in beliefs
    assert "| after frame | 1 | 2 | 3 | 4 | 5 | 6 |" in end["final"] and "chance is 12.5%" in end["final"]
    assert [tick.get_text() for tick in end["confusion"].axes[0].get_xticklabels()] == list(APP_TASKS["direction"].short)
    assert end["confusion"].axes[0].get_title().endswith("on 200 clips")
    image, caption = end["mistakes"][0]
    assert image.shape == (96, 96) and caption.split(" -> ")[0] in DIRECTIONS   # a clip's trail, by name
    result = session.result
    assert result.confusion.shape == (8, 8) and len(result.step_accuracy) == 6
    assert result.step_accuracy[-1] == pytest.approx(result.test_acc)


def test_a_direction_model_downloads_with_its_task(direction_run):
    session, outputs = direction_run
    path = _last(outputs)["download"].value["path"]
    model, info = load_checkpoint(path)
    assert "-direction-acc" in path and info["task"] == "direction" and info["classes"] == list(DIRECTIONS)
    assert "order" not in info
    assert model(torch.rand(1, 6, 1, 24, 24)).shape == (1, 8)


def test_the_belief_after_frame_one_cannot_know_the_direction(direction_run):
    """Two clips that start alike and go opposite ways: the belief after frame 1 is one and the
    same (the model has seen one identical frame), the beliefs after frame 2 are not. So the
    view can show the answer only from the second frame on."""
    session, _ = direction_run
    stamp = torch.zeros(12, 12, dtype=torch.uint8)
    stamp[2:10, 5:7] = 255                                                # a "1"
    ways = DIRECTIONS[1], DIRECTIONS[opposite(1)]
    clips = [slide(stamp, (6, 6), way, seq_len=6, size=24) for way in ways]   # each (6, 1, 24, 24)
    assert torch.equal(clips[0][0], clips[1][0]) and not torch.equal(clips[0][1], clips[1][1])
    a, b = (probe(session.model, clip).probs for clip in clips)          # (6, 8) each
    torch.testing.assert_close(a[0], b[0])
    assert not torch.allclose(a[1], b[1])
    html = train_tab.beliefs_html(a, None, 1, DIRECTIONS, APP_TASKS["direction"].short)
    assert "frame 1" in html and "true answer: <b>up-right</b>" in html


# --- Try it on direction clips --------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm"])
def test_a_clip_streamed_frame_by_frame_equals_the_batched_model(name):
    torch.manual_seed(0)
    model = build_model(name, **TrainSettings(task="direction").model_config()).eval()
    clip = task_data("direction").test_x[:1]                             # (1, 6, 1, 24, 24) uint8
    streamed = stream_beliefs(model, clip[0])                            # one frame per call
    with torch.no_grad():
        batched = model(clip.float() / 255, all_steps=True).softmax(-1)[0]
    torch.testing.assert_close(streamed, batched, atol=1e-5, rtol=1e-4)


def test_try_it_plays_a_test_clip_frame_by_frame(direction_run):
    session, _ = direction_run
    data = task_data("direction")
    message, seen, frames, beliefs = try_tab.try_test_digit(session, 5, "1234", "direction")
    truth = DIRECTIONS[int(data.test_y[5])]
    assert "After all 6 frames it says" in message and f"the clip moves **" in message and truth in message
    assert "After frame 1 alone" in message and "This tab's model" in message
    assert seen.shape == (168, 168) and frames.shape == (72, 6 * 72 + 5 * 6)    # six frames, fed in order
    assert beliefs.count("<tr>") == 7 and f"true answer: <b>{truth}</b>" in beliefs
    message, *images = try_tab.try_test_digit(session, 2000, "1234", "direction")
    assert "Cannot do that" in message and "test clip number must be a whole number from 0 to 1999" in message
    message, *images = try_tab.try_sketch(session, None, "1234", "direction")
    assert "plays test clips" in message and images[0] is None
    message, *images = try_tab.try_test_digit(session, 0, "1234", "spirals")
    assert "task must be one of quadrants, direction" in message and images[0] is None
    index, message, *_ = try_tab.try_random_digit(session, "1234", "direction")
    assert 0 <= index < 2000 and "After all 6 frames" in message


def test_try_it_on_the_other_task_gets_a_stand_in(monkeypatch, direction_run):
    session, _ = direction_run
    monkeypatch.setattr(tryit, "DEFAULT_MODEL_SECONDS", 0.2)
    monkeypatch.setattr(tryit, "_default_models", {})
    message, *_ = try_tab.try_test_digit(session, 0, "1234", "quadrants")   # a direction model: no digits
    assert "trained on direction, not quadrants" in message and "stand-in" in message
    message, *_ = try_tab.try_test_digit(Session(), 0, "1234", "direction")
    assert "stand-in CNN-LSTM, trained for 0.5 s on direction clips" in message
    assert sorted(key[0] for key in tryit._default_models) == ["direction", "quadrants"]

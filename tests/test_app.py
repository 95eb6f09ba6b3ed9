"""The app: its functions called directly, then the launched app through gradio_client.

Training runs here are 1-3 s long and score the end on a slice of the test set, so the whole
file stays within a minute or so on a 2-core CPU.
"""

import os
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pytest
import torch

from cnnlstm_edu import load_checkpoint
from cnnlstm_edu.app import build_demo, launch, server, shapes_tab, train_tab, try_tab
from cnnlstm_edu.app.demo import close_session
from cnnlstm_edu.app.shape_lab import MISTAKES, break_it, check_dims, shape_report
from cnnlstm_edu.app.session import Session, SessionRegistry
from cnnlstm_edu.app.train_tab import TrainOutputs
from cnnlstm_edu.app.training import TrainSettings, quadrant_data, train_updates
from cnnlstm_edu.app.tryit import frames_strip, sketch_to_mnist, stream_beliefs
from cnnlstm_edu.app.views import beliefs_html, curve_frame
from cnnlstm_edu.data import QUADRANT_ORDERS, load_mnist, quadrant_sequences
from cnnlstm_edu.models import build_model

QUICK = dict(final_test=500, device="cpu")
SESSIONS = SessionRegistry()                # the registry a page would get from build_demo


def train(*args, **kwargs):
    """The Train button's function, as build_demo wires it."""
    return train_tab.train(SESSIONS, *args, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def data():
    return quadrant_data("1234")            # loaded once: the timings below measure training, not I/O


# --- settings -----------------------------------------------------------------------------------


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 0, "Batch size must be a whole number from 1 to 1024, got 0"),
    ("batch_size", -5, "Batch size must be a whole number from 1"),
    ("batch_size", 12.5, "Batch size must be a whole number"),
    ("batch_size", None, "Batch size must be a whole number from 1 to 1024, got None"),
    ("batch_size", "64", "Batch size must be a whole number from 1 to 1024, got '64'"),
    ("hidden", 0, "Hidden size must be a whole number from 1"),
    ("lr", 0, "Learning rate must be a finite number above 0"),
    ("lr", -1e-3, "Learning rate must be a finite number above 0"),
    ("lr", [1e-3], "Learning rate must be a finite number above 0"),
    ("seconds", 0, "Time budget"),
    ("seconds", -3, "Time budget"),
    ("order", "1123", "Quadrant order must be one of"),
    ("model", "transformer", "Unknown model"),
    ("probe_index", 10000, "Probe digit"),
])
def test_bad_settings_say_which_field_and_why(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(**{field: value})


def test_a_run_is_bounded_by_its_steps_whatever_the_epochs():
    """Issue 13 item 5: 50 epochs at batch size 1 (3 million steps) is refused, with the reason."""
    with pytest.raises(ValueError, match=r"3,000,000 steps; a run here takes at most 20,000 steps"):
        TrainSettings(epochs=50, seconds=None, batch_size=1)
    with pytest.raises(ValueError, match="fewer epochs or a bigger batch"):
        TrainSettings.from_form("CNN-LSTM", "1234", 128, 4e-3, 1, "epochs", 50)
    assert TrainSettings(epochs=40, seconds=None, batch_size=128).steps() == 18750      # allowed
    outputs = list(train(None, "CNN-LSTM", "1234", 128, 4e-3, 1, "epochs", 50))
    assert len(outputs) == 1 and "at most 20,000 steps" in outputs[0][1]


def test_an_epoch_budget_is_also_cut_at_the_hour(monkeypatch):
    from cnnlstm_edu.app import settings, training

    seen = {}
    real_fit = training.fit

    def fit(*args, **kwargs):
        seen.update(kwargs)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(training, "fit", fit)
    list(train_updates(Session(), TrainSettings(epochs=0.005, seconds=None, **QUICK)))
    assert seen["epochs"] == 0.005 and seen["time_budget"] == settings.MAX_SECONDS == 3600


def test_settings_from_the_form():
    s = TrainSettings.from_form("CNN-ConvLSTM", "4321", 16.0, 0.01, 64.0, "epochs", 0.5)
    assert (s.model, s.order, s.hidden, s.batch_size, s.epochs, s.seconds) == ("cnn_convlstm", "4321", 16, 64, 0.5, None)
    assert s.model_config() == {"hidden_channels": 16}
    with pytest.raises(ValueError, match="Choose a model"):
        TrainSettings.from_form("LSTM", "1234", 128, 0.01, 64, "seconds", 5)


# --- a training run, called directly --------------------------------------------------------------


def test_short_run_streams_updates_and_keeps_a_trained_model():
    session = Session()
    t0 = time.perf_counter()
    # By epochs, not seconds: the same 24 steps on a fast or a busy machine.
    updates = list(train_updates(session, TrainSettings(epochs=0.05, seconds=None, **QUICK), min_interval=0.25))
    kinds = [u.kind for u in updates]
    assert kinds[0] == "start" and kinds[-1] == "end" and set(kinds[1:-1]) == {"progress"}
    assert len(updates) >= 3
    # At most ~4 updates a second (min_interval 0.25 s), however fast the steps are.
    assert len(updates) <= (time.perf_counter() - t0) / 0.25 + 3
    first = updates[0]
    assert first.probe is not None and first.history == []      # images before the first step
    progress = [u for u in updates if u.kind == "progress"]
    assert any(h["series"] == "train" for h in progress[0].history)
    assert any(h["series"] == "test" for u in progress for h in u.history)
    end = updates[-1]
    r = end.result
    assert 0.25 < r.test_acc <= 1 and r.test_size == 500 and not r.stopped      # chance is 0.1
    assert r.confusion.sum() == 500 and r.confusion.trace() == round(r.test_acc * 500)
    assert len(r.wrong_labels) == len(r.wrong_preds) == len(r.wrong_images) > 0
    assert all(y != p for y, p in zip(r.wrong_labels, r.wrong_preds))
    assert session.model is not None and session.result is r and not session.running
    assert end.probe.probs.shape == (4, 10) and end.probe_label == 7       # test digit #0 is a 7
    assert "test accuracy" in end.status


def test_convlstm_run_by_epochs():
    session = Session()
    settings = TrainSettings(model="cnn_convlstm", hidden=8, epochs=0.01, seconds=None, **QUICK)
    updates = list(train_updates(session, settings))
    end = updates[-1]
    assert end.kind == "end" and end.result.steps == 5                  # ceil(600 / 128) steps
    assert end.probe.hidden.shape == (4, 8 * 3 * 3)                      # the ConvLSTM's map, flattened
    assert session.model.convlstm.hidden_channels == 8
    assert "epoch" in updates[1].status and "of 0.01" in updates[1].status


def test_model_choice_sets_its_default_hidden_size():
    assert train_tab.model_changed("CNN-LSTM") == 128 and train_tab.model_changed("CNN-ConvLSTM") == 32
    assert train_tab.budget_changed("epochs") == 1 and train_tab.budget_changed("seconds") == 15


def test_stop_ends_training_early_and_keeps_the_model():
    session = Session()
    updates = train_updates(session, TrainSettings(seconds=60, **QUICK))
    for u in updates:
        if u.kind == "progress":
            break
    session.stop.set()
    rest = list(updates)
    end = rest[-1]
    assert end.kind == "end" and end.result.stopped
    # Far from the 60 s budget. (No wall-clock bound on the end itself: it also scores 500 test
    # digits, which takes seconds on a loaded machine.)
    assert end.event.seconds < 30
    assert session.model is not None and not session.running
    assert "Stopped" in end.status


def test_one_run_at_a_time_per_session():
    session = Session()
    first = train_updates(session, TrainSettings(seconds=30, **QUICK))
    next(first)                                                          # running now
    with pytest.raises(RuntimeError, match="already training"):
        next(train_updates(session, TrainSettings(seconds=1, **QUICK)))
    session.stop.set()
    list(first)
    assert not session.running


def test_closing_a_session_stops_its_run_and_frees_the_model():
    registry = SessionRegistry()
    session = registry.attach(None, "tab-1")
    assert registry.attach(None, "tab-1") is session                   # same tab, same session
    updates = train_updates(session, TrainSettings(seconds=60, **QUICK))
    next(updates)
    assert session.model is not None
    assert registry.close("tab-1") and registry.get("tab-1") is None
    assert session.model is None and session.stop.is_set()
    assert list(updates) == []                                           # the run ends, silently
    assert not registry.close("tab-1")


def _last(outputs) -> dict:
    return dict(zip(TrainOutputs.names(), outputs[-1]))


TINY = ("CNN-LSTM", "1234", 16, 4e-3, 128, "epochs", 0.005)           # 300 digits: 3 steps


def test_download_model_is_the_sessions_model_and_goes_with_the_tab():
    session = Session()
    end = _last(list(train(session, *TINY, options=QUICK)))
    button = end["download"]
    path = Path(button.value["path"])
    assert button.interactive and path.suffix == ".safetensors"
    assert path.name.startswith("cnn_lstm-h16-order1234-acc") and path.name in button.label
    model, info = load_checkpoint(path)
    assert info["order"] == "1234" and info["test_acc"] == session.result.test_acc
    for (k, a), (_, b) in zip(session.model.state_dict().items(), model.state_dict().items()):
        assert torch.equal(a.cpu(), b), k
    own = Path(session.checkpoint)                                       # gradio serves a copy of it
    assert own.name == path.name and own.exists()
    session.close()
    assert not own.exists() and session.checkpoint is None               # it went with the tab


def _failing_fit(monkeypatch, error: BaseException, after: int = 1):
    """Make the next runs raise ``error`` after ``after`` events of fit()."""
    from cnnlstm_edu.app import training

    real_fit = training.fit

    def fit(*args, **kwargs):
        for i, event in enumerate(real_fit(*args, **kwargs)):
            if i == after:
                raise error
            yield event

    monkeypatch.setattr(training, "fit", fit)


@pytest.mark.parametrize("error, says", [
    (RuntimeError("boom in step 2"), "Training failed:** RuntimeError: boom in step 2"),
    (torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"), "Out of memory"),
])
def test_an_exception_mid_run_is_a_message_in_that_tab(monkeypatch, error, says):
    _failing_fit(monkeypatch, error)
    session = Session()
    outputs = list(train(session, *TINY[:-2], "seconds", 30, options=QUICK))
    end = _last(outputs)
    assert says in end["status"] and "Traceback" not in end["status"]
    assert len(outputs) >= 2 and "Starting" in _last(outputs[:1])["status"]   # it had begun
    assert session.model is None and not session.running and "failed" in session.freed
    assert not end["download"].interactive
    monkeypatch.undo()
    assert "Done" in _last(list(train(session, *TINY, options=QUICK)))["status"]   # and it can train again


def test_stop_cancels_a_run_still_waiting_in_the_queue():
    session = Session()
    assert train_tab.stop(session) == "Nothing is training in this tab."
    ticket = train_tab.press(session)                                    # Train pressed; not started yet
    assert "Cancelled" in train_tab.stop(session)
    outputs = list(train(session, *TINY, options=QUICK, ticket=ticket))  # its turn comes
    assert len(outputs) == 1 and "Stopped before it started" in _last(outputs)["status"]
    assert session.model is None
    ticket = train_tab.press(session)                                    # the next press trains
    assert "Done" in _last(list(train(session, *TINY, options=QUICK, ticket=ticket)))["status"]
    assert train_tab.stop(session) == "Nothing is training in this tab."  # and a late Stop cancels nothing
    ticket = train_tab.press(session)
    assert "Done" in _last(list(train(session, *TINY, options=QUICK, ticket=ticket)))["status"]


def test_a_press_whose_run_never_came_cannot_cancel_a_later_press():
    """Issue 13 item 4: a press the queue never ran (dropped, or refused as a second run) must
    not make a later Stop cancel the next press."""
    session = Session()
    lost = train_tab.press(session)                                      # its run never arrives
    assert "Cancelled" in train_tab.stop(session)                         # Stop cancels that one...
    ticket = train_tab.press(session)                                    # ...not the press after it
    assert "Done" in _last(list(train(session, *TINY, options=QUICK, ticket=ticket)))["status"]
    assert lost < ticket


def test_a_second_run_of_one_tab_is_refused_as_its_own_and_leaves_the_first_alone():
    """Issue 13 item 7: two Train requests at once from one session."""
    session = Session()
    first = train(session, *TINY[:-2], "seconds", 30, options=QUICK)
    assert "Starting" in _last([next(first)])["status"]                  # the first run holds the tab
    model = session.model
    second = list(train(session, *TINY, options=QUICK))
    status = _last(second)["status"]
    assert len(second) == 1 and "already training" in status and "dropped" not in status
    assert not isinstance(_last(second)["download"], gr.DownloadButton)   # the first run's, untouched
    assert session.model is model and session.running and session.freed == ""
    session.stop.set()
    end = _last(list(first))
    assert "Stopped" in end["status"] and end["download"].interactive    # the first run saved its model
    assert Path(session.checkpoint).exists()


def test_only_max_models_stay_in_memory_least_recently_used_idle_freed_first(monkeypatch):
    from cnnlstm_edu.app import tryit
    monkeypatch.setattr(tryit, "DEFAULT_MODEL_SECONDS", 0.5)            # the stand-in a freed tab gets
    monkeypatch.setattr(SESSIONS, "max_models", 2)
    tabs = [SESSIONS.attach(None, f"lru-{i}") for i in range(3)]
    try:
        for tab in tabs:
            list(train(tab, *TINY, options=QUICK, request=SimpleNamespace(session_hash=tab.id)))
        assert [t.model is not None for t in tabs] == [False, True, True]
        assert "least recently used" in tabs[0].freed
        message, *_ = try_tab.try_test_digit(tabs[0], 0, "1234")
        assert "was freed" in message and "train again" in message
        try_tab.try_test_digit(tabs[1], 0, "1234")                           # tab 1 used: tab 2 is now the oldest
        list(train(tabs[0], *TINY, options=QUICK, request=SimpleNamespace(session_hash=tabs[0].id)))
        assert [t.model is not None for t in tabs] == [True, True, False]
    finally:
        for tab in tabs:
            SESSIONS.close(tab.id)


def test_bad_server_flags_are_one_line(capsys):
    assert server.main(["--max-runs", "0"]) == 2
    assert "max_runs must be a positive int, got 0" in capsys.readouterr().err


def test_limits_are_checked_at_build_time():
    with pytest.raises(ValueError, match="max_models=1 must be at least max_runs=2"):
        build_demo(max_runs=2, max_models=1)
    with pytest.raises(ValueError, match="max_queue"):
        build_demo(max_queue=0)


@pytest.mark.parametrize("field, value, message", [
    ("batch_size", 4096, "Batch size must be a whole number from 1 to 1024"),
    ("hidden", 256, "Hidden size must be a whole number from 1 to 128"),               # for the ConvLSTM
])
def test_per_run_memory_limits(field, value, message):
    with pytest.raises(ValueError, match=message):
        TrainSettings(model="cnn_convlstm", **{field: value})


def test_train_handler_reports_bad_input_in_the_page():
    outputs = list(train(None, "CNN-LSTM", "1234", 128, 4e-3, 0, "seconds", 5))
    assert len(outputs) == 1
    status = outputs[0][1]
    assert "Cannot do that" in status and "Batch size" in status and "Traceback" not in status


# --- Try it ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_session():
    session = Session()
    list(train_updates(session, TrainSettings(epochs=0.03, seconds=None, **QUICK)))
    return session


@pytest.mark.parametrize("name", ["cnn_lstm", "cnn_convlstm"])
def test_streamed_beliefs_equal_the_batched_model(name):
    torch.manual_seed(0)
    model = build_model(name).eval()
    images, _ = load_mnist("test")
    for order in QUADRANT_ORDERS:
        seq = quadrant_sequences(images[:1], order)                      # (1, T, C, H, W) uint8
        streamed = stream_beliefs(model, seq[0])                        # one frame per call
        with torch.no_grad():
            batched = model(seq.float() / 255, all_steps=True).softmax(-1)[0]
        torch.testing.assert_close(streamed, batched, atol=1e-5, rtol=1e-4)


def _canvas(digit: np.ndarray, scale: int = 10) -> np.ndarray:
    """An MNIST digit drawn as the sketchpad hands it over: black ink on a transparent canvas."""
    big = np.kron(digit, np.ones((scale, scale), dtype=np.uint8))       # (280, 280)
    canvas = np.zeros(big.shape + (4,), dtype=np.uint8)
    canvas[..., 3] = big                                                 # ink as opacity, RGB black
    return canvas


def test_sketch_preprocessing_reproduces_mnist_digits():
    images, _ = load_mnist("test")
    for digit in images[:20].numpy():
        back = sketch_to_mnist({"composite": _canvas(digit)})
        a, b = back.astype(float).ravel(), digit.astype(float).ravel()
        assert np.corrcoef(a, b)[0, 1] > 0.8                             # same digit, same place
        ys, xs = np.nonzero(back > 25)
        assert max(np.ptp(ys), np.ptp(xs)) <= 20                             # MNIST's 20x20 box


def test_sketch_on_white_canvas_and_offset_strokes():
    canvas = np.full((300, 200, 3), 255, dtype=np.uint8)                 # opaque white, RGB
    canvas[20:120, 10:30] = 0                                            # a small "1" in a corner
    digit = sketch_to_mnist(canvas)
    ys, xs = np.nonzero(digit > 100)
    assert abs(ys.mean() - 14) < 1.5 and abs(xs.mean() - 14) < 1.5      # moved to the centre
    assert np.ptp(ys) >= 18                                                # scaled up to ~20 px


@pytest.mark.parametrize("sketch", [None, {"composite": None}, np.zeros((280, 280, 4), np.uint8),
                                    np.full((280, 280, 3), 255, np.uint8)])
def test_empty_sketch_is_a_clear_message(sketch):
    with pytest.raises(ValueError, match="canvas is empty"):
        sketch_to_mnist(sketch)
    message, *images = try_tab.try_sketch(None, sketch, "1234")
    assert "canvas is empty" in message and images[0] is None


def test_try_it_uses_the_sessions_model(trained_session):
    images, labels = load_mnist("test")
    message, seen, frames, beliefs = try_tab.try_sketch(trained_session, {"composite": _canvas(images[3].numpy())}, "1234")
    assert "This tab's model" in message and seen.shape == (168, 168) and frames.shape == (84, 354)
    assert beliefs.count("<tr>") == 5
    message, *_ = try_tab.try_test_digit(trained_session, 1, "4321")
    assert "expect it to be confused" in message                         # trained on 1234
    message, *_ = try_tab.try_test_digit(trained_session, 10000, "1234")
    assert "Cannot do that" in message and "0 to 9999" in message


def test_try_it_without_a_model_trains_a_stand_in_once(monkeypatch):
    from cnnlstm_edu.app import tryit
    monkeypatch.setattr(tryit, "DEFAULT_MODEL_SECONDS", 0.5)
    monkeypatch.setattr(tryit, "_default_models", {})
    message, *_ = try_tab.try_test_digit(Session(), 0, "1234")
    assert "stand-in" in message
    assert len(tryit._default_models) == 1
    try_tab.try_test_digit(None, 5, "1234")
    assert len(tryit._default_models) == 1                               # reused, not retrained


def test_frames_strip_is_in_feeding_order():
    seq = torch.zeros(4, 1, 14, 14, dtype=torch.uint8)
    seq[2] = 255                                                         # the third frame is white
    strip = frames_strip(seq, cell=14, gap=2)
    assert strip.shape == (14, 4 * 14 + 3 * 2)
    assert strip[:, 32:46].min() == 255 and strip[:, :14].max() == 0


def test_views():
    assert "No beliefs yet" in beliefs_html(None)
    history = [{"epoch": 0.1, "series": "train", "loss": 1.0, "accuracy": 0.5},
               {"epoch": 0.2, "series": "test", "loss": float("nan"), "accuracy": 0.6}]
    assert curve_frame(history, "loss")["series"].tolist() == ["train"]  # no NaN points
    assert curve_frame(history, "accuracy")["series"].tolist() == ["train", "test"]


# --- Shapes ----------------------------------------------------------------------------------------


def test_shape_report_and_failures():
    report = shape_report("cnn_convlstm", 3, 5, 2, 16, 16)
    assert report.error is None and report.trace["convlstm"].format_outputs()[0].startswith("(B=3, T=5")
    broken = shape_report("cnn_lstm", 2, 4, 1, 14, 10)                  # not square: W != H
    assert broken.error and "W" in broken.advice and broken.trace is not None


@pytest.mark.parametrize("dims", [(0, 4, 1, 14, 14), (2, -1, 1, 14, 14), (2, 4, 1, 14, None),
                                  (2, 4, 1.5, 14, 14), (64, 64, 8, 256, 256)])
def test_bad_dims_are_a_message(dims):
    with pytest.raises(ValueError):
        check_dims(*dims)
    message, table, figure = shapes_tab.trace("CNN-LSTM", *dims)
    assert "Cannot do that" in message and table == "" and figure is None


def test_frames_too_small_for_the_cnn_are_a_message():
    message, table, figure = shapes_tab.trace("CNN-LSTM", 2, 4, 1, 3, 3)
    assert "Cannot do that" in message and "at least 4 pixels" in message


@pytest.mark.parametrize("key", list(MISTAKES))
@pytest.mark.parametrize("model", ["cnn_lstm", "cnn_convlstm"])
def test_every_mistake_breaks_and_is_diagnosed(key, model):
    run = break_it(key, model, 2, 4, 1, 14, 14)
    assert run.error.startswith(("RuntimeError", "ValueError", "ShapeError"))
    assert "does not recognise" not in run.advice and "Fix" in run.advice or "expected" in run.advice


def test_trace_handler_gives_table_and_figure():
    message, table, figure = shapes_tab.trace("CNN-LSTM", 2, 4, 1, 14, 14)
    assert "<table" in table and "lstm" in table and figure is not None


# --- the launched app, through gradio_client ----------------------------------------------------


@pytest.fixture(scope="module")
def served(free_port):
    demo = launch(build_demo(device="cpu", final_test=500), port=free_port(), prevent_thread_lock=True,
                  quiet=True)
    try:
        yield demo
    finally:
        demo.close()


def _client(demo):
    from gradio_client import Client

    return Client(demo.local_url, verbose=False)


def test_app_binds_loopback_without_a_share_link(served):
    assert served.local_url.startswith("http://127.0.0.1:")
    assert served.share_url is None
    assert served.analytics_enabled is False


def test_train_endpoint_streams(served):
    client = _client(served)
    job = client.submit("CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 2, api_name="/train")
    outputs = list(job)
    assert len(outputs) >= 3
    status, loss, accuracy, activations, hidden, beliefs, final, confusion, mistakes, order, download = outputs[-1]
    assert "test accuracy" in status and "Test accuracy" in final
    download = download["value"] if isinstance(download, dict) else download   # a button update
    model, info = load_checkpoint(download)                                # the "download model" file
    assert download.endswith(".safetensors") and "cnn_lstm" in download and info["order"] == "1234"
    assert model.lstm.hidden_size == 128
    assert accuracy["columns"] == ["epoch", "accuracy", "series"] and len(accuracy["data"]) >= 2
    assert {row[2] for row in accuracy["data"]} == {"train", "test"}
    assert activations.endswith(".png") and hidden.endswith(".png")      # images, downloaded
    assert "<table" in beliefs and confusion is not None and len(mistakes) > 0
    assert any(out[3] for out in outputs[:2])                              # activations from the start


def test_bad_input_through_the_api_is_a_message(served):
    client = _client(served)
    outputs = client.predict("CNN-LSTM", "1234", 128, 4e-3, -1, "seconds", 2, api_name="/train")
    assert "Batch size" in outputs[0] and "Traceback" not in outputs[0]


def test_stop_through_the_api(served):
    client = _client(served)
    job = client.submit("CNN-LSTM", "1234", 128, 4e-3, 128, "seconds", 60, api_name="/train")
    while not job.outputs():
        time.sleep(0.05)
    assert "Stopping" in client.predict(api_name="/stop")                  # same client, same session
    job.result(timeout=120)
    assert "Stopped" in job.outputs()[-1][0]
    result = served.sessions.get(client.session_hash).result
    assert result.stopped and result.train_seconds < 60                  # well before its 60 s budget


def test_two_sessions_train_at_once_without_seeing_each_other(served):
    a, b = _client(served), _client(served)
    spans = {}

    def run(client, name, order, hidden):
        t0 = time.perf_counter()
        job = client.submit("CNN-LSTM", order, hidden, 4e-3, 64, "seconds", 2.5, api_name="/train")
        job.result(timeout=120)
        spans[name] = (t0, job.outputs(), time.perf_counter())

    threads = [threading.Thread(target=run, args=(a, "a", "1234", 32)),
               threading.Thread(target=run, args=(b, "b", "4321", 48))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    (a0, out_a, a1), (b0, out_b, b1) = spans["a"], spans["b"]
    assert max(a0, b0) < min(a1, b1)                                       # they overlapped
    # Each saw only its own run: the first update sets the Try-it order to the run's order.
    assert out_a[0][-2] == "1234" and out_b[0][-2] == "4321"
    assert all("Done" in out[-1][0] for out in (out_a, out_b))
    sessions = {served.sessions.get(c.session_hash) for c in (a, b)}
    assert len(sessions) == 2 and None not in sessions
    hidden = sorted(s.model.lstm.hidden_size for s in sessions)
    assert hidden == [32, 48]
    # Both trained in parallel, not one after the other: each took about its budget, not twice.
    assert min(a1, b1) - max(a0, b0) > 1.0


def test_try_and_shape_endpoints(served, monkeypatch):
    from cnnlstm_edu.app import tryit
    monkeypatch.setattr(tryit, "DEFAULT_MODEL_SECONDS", 0.5)          # this client has no model of its own
    client = _client(served)
    message, *_ = client.predict(7, "1234", api_name="/try_digit")
    assert "true digit is **9**" in message
    message, table, _ = client.predict("CNN-LSTM", 2, 4, 1, 14, 14, api_name="/trace")
    assert "<table" in table
    code, diagnosis = client.predict("CNN-LSTM", 2, 4, 1, 14, 14, api_name="/break_reshape_forgets_time")
    assert "view" in code and "time axis" in diagnosis


def test_unload_frees_the_tabs_model():
    session = SESSIONS.attach(None, "closing-tab")
    session.model = torch.nn.Linear(2, 2)
    close_session(SESSIONS, SimpleNamespace(session_hash="closing-tab"))
    assert session.model is None and SESSIONS.get("closing-tab") is None


def test_checkpoints_of_a_server_that_was_killed_are_removed_at_start(tmp_path):
    """Issue 13 item 8, at start: a folder whose process is gone is removed; a live one's is kept."""
    import subprocess
    import sys
    from cnnlstm_edu.app.session import remove_stale_checkpoints

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True).stdout.strip()
    stale = tmp_path / f"cnnlstm-edu-ckpt-{dead}-abc"
    (stale / "x.safetensors").parent.mkdir()
    (stale / "x.safetensors").write_bytes(b"0" * 100)
    live = tmp_path / f"cnnlstm-edu-ckpt-{os.getppid()}-def"
    live.mkdir()
    assert remove_stale_checkpoints(tmp_path) == [stale]
    assert not stale.exists() and live.exists()


def test_checkpoints_of_tabs_that_never_closed_are_removed_when_the_server_exits(free_port, tmp_path):
    """Issue 13 item 8, at exit: a served app whose tab trained and never closed; the process exits."""
    import subprocess
    import sys

    code = ("from cnnlstm_edu.models import build_model\n"
            "from cnnlstm_edu.app import build_demo, launch\n"
            "from cnnlstm_edu.app.training import TrainSettings\n"
            f"demo = launch(build_demo(device='cpu'), port={free_port()}, prevent_thread_lock=True, quiet=True)\n"
            "tab = demo.sessions.attach(None, 'never-closed')\n"
            "tab.model, tab.settings = build_model('cnn_lstm', hidden_size=8), TrainSettings(hidden=8)\n"
            "print(tab.save())\n")
    env = dict(os.environ, TMPDIR=str(tmp_path), GRADIO_TEMP_DIR=str(tmp_path / "gradio"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    saved = Path(out.stdout.strip().splitlines()[-1])
    assert saved.name.endswith(".safetensors") and saved.parent.parent == tmp_path
    assert not saved.parent.exists()                                     # removed when the server exited


def test_importing_launches_nothing():
    # A fresh interpreter: importing the app and building the page opens no port, starts no thread.
    import subprocess
    import sys

    code = ("import threading\n"
            "before = threading.active_count()\n"
            "import cnnlstm_edu.app as a\n"
            "demo = a.build_demo()\n"
            "assert not demo.is_running and demo.local_url is None\n"
            "print(before, threading.active_count())\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-2000:]
    before, after = map(int, out.stdout.split())
    assert after == before


def test_app_py_serves_on_the_port_it_is_given(free_port):
    import subprocess
    import sys
    import urllib.request
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    port = free_port()
    proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=root,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.perf_counter() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as r:
                    assert r.status == 200
                    break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()[-2000:]
                assert time.perf_counter() < deadline, "app.py did not serve within 120 s"
                time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_app_speed_benchmark_runs_quick():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(root / "benchmarks" / "app_speed.py"), "--quick"],
                          capture_output=True, text=True, timeout=600, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "time to first curve point" in proc.stdout and "samples/s" in proc.stdout


@pytest.mark.parametrize("name", ["tracker", "whole_image", "frame_average"])
def test_registry_models_the_app_does_not_serve_are_refused_by_name(name):
    # The registry grew (issue 15); the app's settings and Shapes tab take only its own models,
    # with a message naming them instead of a KeyError or a TypeError from deep inside.
    from cnnlstm_edu.app.settings import TrainSettings
    from cnnlstm_edu.app.shape_lab import shape_report

    with pytest.raises(ValueError, match="cnn_lstm"):
        TrainSettings(model=name, hidden=8)
    with pytest.raises(ValueError, match="cnn_lstm"):
        shape_report(name, 2, 4, 1, 14, 14)

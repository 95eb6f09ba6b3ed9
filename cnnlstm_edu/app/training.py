"""The Train tab without the web page: one learner's session, and a training run as a stream of updates.

:func:`train_updates` wraps :func:`~cnnlstm_edu.train.fit`. ``fit`` computes nothing between its
events; *this* loop does, while ``fit`` is paused at a ``yield``: it runs a fixed probe example
(a digit's quadrants, or a direction clip) through the model (:func:`~cnnlstm_edu.analysis.probe`),
now and then scores a slice of the test set, and hands the page a :class:`TrainUpdate`. How often is set by what it costs: a refresh
that took ``c`` seconds waits ``c * (1 - share) / share`` before the next, so the extra work
stays near ``share`` of the wall time whatever the machine, and never more often than every
``min_interval`` seconds. Two a second look live, and leave the CPU to training: on a 2-core
machine the browser drawing the page shares the cores with the model, and 4 updates a second
cost about a tenth of the training speed there (benchmarks/app_speed.md).

Every browser tab gets its own :class:`Session` (kept in a ``gr.State``): its own model, its own
stop switch, its own curves. Nothing here imports gradio, so a test or a notebook can drive a
run directly:

>>> session = Session()
>>> settings = TrainSettings(seconds=0.5, final_test=200)
>>> updates = list(train_updates(session, settings))
>>> updates[0].kind, updates[-1].kind
('start', 'end')
>>> 0 <= updates[-1].result.test_acc <= 1 and session.model is not None
True
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field

import torch

from ..data import load_mnist, quadrant_sequences
from ..models import build_model
from ..pixels import to_float
from ..train import Event, device_name, evaluate, fit, predict, resolve_device
from ..analysis import Probe, accuracy_per_step, confusion_matrix, probe
from .session import Session, SessionBusy, release_memory
from .settings import APP_TASKS, HIDDEN_FIELD, MODEL_CHOICES, PROBE_INDEX, TrainSettings

__all__ = ["HIDDEN_FIELD", "MODEL_CHOICES", "PROBE_INDEX", "QuadrantData", "RunResult", "Session", "SessionBusy",
           "TaskData", "TrainSettings", "TrainUpdate", "device_label", "predict", "quadrant_data",
           "release_memory", "task_data", "train_updates", "warm_up"]


# --- data, made once per process -----------------------------------------------------------------


@dataclass
class TaskData:
    """A task's examples, shared read-only by every session. Quadrants: MNIST's 60,000 + 10,000
    digits as (N, 4, 1, 14, 14) in ``order``; direction: 10,000 + 2,000 clips (N, 6, 1, 24, 24)
    made as ``train --task direction`` makes them (35 MB of uint8 for training)."""

    train_x: torch.Tensor          # (N, T, 1, H, W) uint8
    train_y: torch.Tensor          # (N,)
    test_x: torch.Tensor           # (N_test, T, 1, H, W) uint8
    test_y: torch.Tensor           # (N_test,)
    test_images: torch.Tensor | None  # quadrants: (10000, 28, 28) uint8, the whole digits; else None
    order: str | None              # the quadrant order; None for direction
    task: str = "quadrants"
    _train_float: torch.Tensor | None = None

    def shown(self, index) -> torch.Tensor:
        """What the page shows of test example(s) ``index``: the whole digit (28, 28), or the clip
        (T, 1, H, W) itself."""
        return self.test_images[index] if self.test_images is not None else self.test_x[index]

    def train_for(self, device: torch.device) -> torch.Tensor:
        """The training sequences as ``fit`` will use them on ``device``. On a CPU: float32 in
        [0, 1], converted once and shared (``fit`` would otherwise convert them all at every
        click: 188 MB of quadrants, 138 MB of clips). On a GPU: uint8, a quarter of the bytes to
        copy; ``fit`` converts there."""
        if device.type != "cpu":
            return self.train_x
        with _data_lock:
            if self._train_float is None:
                self._train_float = to_float(self.train_x)          # (60000, 4, 1, 14, 14) float32
            return self._train_float


QuadrantData = TaskData            # its name before the app had a second task


_data_lock = threading.Lock()
_data: dict[tuple[str, str | None], TaskData] = {}


def quadrant_data(order: str = "1234") -> TaskData:
    """MNIST as quadrant sequences in ``order``, built once per order and shared by every session
    (read-only: ``fit`` copies what it trains on to the device as float)."""
    return task_data("quadrants", order)


def task_data(task: str = "quadrants", order: str = "1234") -> TaskData:
    """``task``'s data, made once per process (and per quadrant order) and shared by every session,
    read-only. ``order`` is ignored off the quadrants."""
    from ..cli.tasks import load_task

    key = (task, order if task == "quadrants" else None)
    with _data_lock:
        if key not in _data:
            if task == "quadrants":
                train_images, train_y = load_mnist("train")
                test_images, test_y = load_mnist("test")
                _data[key] = TaskData(quadrant_sequences(train_images, order), train_y,
                                      quadrant_sequences(test_images, order), test_y, test_images, order)
            else:
                (train_x, train_y), (test_x, test_y), _ = load_task(task)    # fixed seeds: same clips as the CLI
                _data[key] = TaskData(train_x, train_y, test_x, test_y, None, None, task)
        return _data[key]


# --- a run, streamed ----------------------------------------------------------------------------


@dataclass
class RunResult:
    test_acc: float
    test_size: int
    confusion: torch.Tensor           # (K, K): rows true class, columns predicted
    wrong_images: torch.Tensor        # (n, 28, 28) uint8 digits, or (n, T, 1, H, W) clips: a few mistakes
    wrong_labels: list[int]
    wrong_preds: list[int]
    steps: int
    epochs: float
    train_seconds: float              # time in training steps
    wall_seconds: float               # from the start of the run to the end of training
    samples_per_second: float         # training samples / wall time (overheads included)
    stopped: bool
    step_accuracy: list[float] = field(default_factory=list)  # test accuracy after 1, 2, ..., T frames


@dataclass
class TrainUpdate:
    kind: str                         # "start", "progress" or "end"
    status: str                       # one line for the page
    device: str
    history: list[dict]               # every curve point so far (a copy)
    probe: Probe | None               # the probe digit as the model sees it now
    probe_label: int
    order: str | None                 # the quadrant order; None off the quadrants
    event: Event | None = None        # the fit() event behind this update
    result: RunResult | None = None   # at the end
    timings: dict = field(default_factory=dict)
    task: str = "quadrants"


def _status(settings: TrainSettings, event: Event, history: list[dict]) -> str:
    budget = (f"{event.seconds:.1f} of {settings.seconds:g} s" if settings.seconds is not None
              else f"{event.seconds:.1f} s")
    epochs = f"epoch {event.epoch:.2f}" + (f" of {settings.epochs:g}" if settings.epochs is not None else "")
    parts = [f"Training on {event.device}: {epochs}, step {event.step}, {budget}"]
    train = [h for h in history if h["series"] == "train"]
    test = [h for h in history if h["series"] == "test"]
    if train:
        parts.append(f"train accuracy {train[-1]['accuracy']:.1%}")
    if test:
        parts.append(f"test accuracy {test[-1]['accuracy']:.1%} ({test[-1]['n']} {settings.app_task.noun})")
    return "; ".join(parts)


class _Pacer:
    """When the next refresh and the next test-slice score are due, from what each one cost: a
    refresh that took ``c`` seconds waits ``c * (1 - share) / share`` (at least ``min_interval``)."""

    def __init__(self, min_interval: float, share: float, test_share: float, test_every: float) -> None:
        self.min_interval, self.share, self.test_share, self.test_every = min_interval, share, test_share, test_every
        self.next_refresh = self.next_test = 0.0
        self.timings = {"refreshes": 0, "refresh_seconds": 0.0, "tests": 0, "test_seconds": 0.0}

    def refresh_due(self, event: Event) -> bool:
        return event.kind == "start" or (event.kind == "step" and time.perf_counter() >= self.next_refresh)

    def test_due(self, event: Event) -> bool:
        return event.kind == "step" and time.perf_counter() >= self.next_test

    def tested(self, cost: float) -> None:
        self.timings["tests"] += 1
        self.timings["test_seconds"] += cost
        self.next_test = time.perf_counter() + max(self.test_every, cost * (1 - self.test_share) / self.test_share)

    def refreshed(self, cost: float, first: bool) -> None:
        self.timings["refreshes"] += 1
        self.timings["refresh_seconds"] += cost
        # The first curve point goes out as soon as it exists.
        self.next_refresh = 0.0 if first else time.perf_counter() + max(self.min_interval,
                                                                        cost * (1 - self.share) / self.share)


def _start(session: Session, settings: TrainSettings, data: TaskData | None = None):
    """A fresh model for ``session`` (the previous one and its file let go) and its data: ``data``
    when given (a learner's clips), else the task's own."""
    session.stop.clear()
    data = data if data is not None else task_data(settings.task, settings.order)
    torch.manual_seed(settings.seed)
    model = build_model(settings.model, **settings.model_config())
    session.free()
    session.model, session.settings, session.history, session.result = model, settings, [], None
    return model, data


def _final(model, data: QuadrantData, settings: TrainSettings, last: Event, history: list[dict],
           wall: float, stopped: bool, misclassified: int) -> RunResult:
    """The end of a run: the model scored on the test set, once (after every frame: the last
    frame's answer is the model's), and a few of its mistakes."""
    n = len(data.test_y) if settings.final_test is None else min(settings.final_test, len(data.test_y))
    every = predict(model, data.test_x[:n], logits=True, all_steps=True)  # (n, T, classes)
    logits = every[:, -1]                                               # (n, classes): the answer
    labels = data.test_y[:n]
    preds = logits.argmax(-1)                                           # (n,)
    correct = preds == labels
    test_acc = correct.float().mean().item()
    test_loss = torch.nn.functional.cross_entropy(logits, labels).item()
    wrong = (~correct).nonzero().flatten()[:misclassified]
    history.append({"epoch": last.epoch, "series": "test", "loss": test_loss, "accuracy": test_acc,
                    "n": n, "step": last.step})
    return RunResult(
        test_acc=test_acc, test_size=n,
        confusion=confusion_matrix(labels, preds, num_classes=settings.app_task.num_classes),
        wrong_images=data.shown(wrong), wrong_labels=labels[wrong].tolist(),
        wrong_preds=preds[wrong].tolist(), steps=last.step, epochs=last.epoch,
        train_seconds=last.seconds, wall_seconds=wall,
        samples_per_second=last.step * settings.batch_size / max(wall, 1e-9), stopped=stopped,
        step_accuracy=accuracy_per_step(every.argmax(-1), labels).tolist())


def _end_status(result: RunResult, last: Event, noun: str = "digits", kept_for: str = "the Try-it tab") -> str:
    how = "Stopped" if result.stopped else "Done"
    return (f"{how}: test accuracy **{result.test_acc:.2%}** on {result.test_size:,} test {noun} after "
            f"{last.seconds:.1f} s of training ({last.epoch:.2f} epochs, {last.step} steps, "
            f"{result.samples_per_second:,.0f} samples/s) on {last.device}. "
            f"The model is kept for {kept_for}.")


def train_updates(session: Session, settings: TrainSettings, *, data: TaskData | None = None,
                  min_interval: float = 0.5, share: float = 0.04, test_share: float = 0.03,
                  test_every: float = 1.0, test_subset: int = 500, misclassified: int = 12) -> Iterator[TrainUpdate]:
    """Train a fresh model for ``session`` and yield what the page shows, as it happens.

    The first update comes before the first step (device, the untrained model's view of the
    probe digit), then one every ``min_interval`` seconds or more (see the module docstring),
    then a final one with the test accuracy, a confusion matrix and some misclassified digits.
    ``session.stop.set()`` ends training after the current step; the model trained so far stays
    in ``session.model``. The run holds the session (``with session``): a second run raises
    :class:`SessionBusy` before touching anything. A run that raises frees its own model.
    ``data``: train on these examples (a learner's clips, :mod:`.clip_store`) instead of the
    task's own; ``settings`` then describe them (:class:`~.clip_settings.ClipSettings`).
    """
    with session:
        try:
            yield from _run(session, settings, _Pacer(min_interval, share, test_share, test_every),
                            test_subset, misclassified, data)
        except Exception:
            session.free("its last run failed")   # a half-trained model is no use; memory is wanted
            raise
        finally:
            if session.closed:                    # the tab went away mid-run: nothing to keep
                session.free("the tab was closed")
                release_memory()


def _run(session: Session, settings: TrainSettings, pacer: _Pacer, test_subset: int,
         misclassified: int, data: TaskData | None = None) -> Iterator[TrainUpdate]:
    t_click = time.perf_counter()
    model, data = _start(session, settings, data)
    device = resolve_device(settings.device)
    history = session.history
    probe_x, probe_y = data.test_x[settings.probe_index], int(data.test_y[settings.probe_index])  # (T, 1, H, W)
    # A fixed slice of the test set for the live test curve; the full set at the end.
    sub_x, sub_y = data.test_x[-test_subset:], data.test_y[-test_subset:]
    # log_every=5: the first curve point comes after 5 steps, and the curves get more points.
    # time_budget always: an epoch budget is also cut at the hour (settings.MAX_SECONDS).
    events = fit(model, (data.train_for(device), data.train_y), None, epochs=settings.epochs,
                 time_budget=settings.time_budget(), batch_size=settings.batch_size, lr=settings.lr,
                 device=device, seed=settings.seed, stop=session.stop, log_every=5, eval_every_epoch=False)
    last = None
    with closing(events):
        for event in events:
            if session.closed:                   # the tab went away: drop everything
                return
            last = event
            if event.kind == "step":
                history.append({"epoch": event.epoch, "series": "train", "loss": event.loss,
                                "accuracy": event.accuracy, "n": event.batch_size, "step": event.step})
            if not pacer.refresh_due(event):
                continue
            if pacer.test_due(event):
                t0 = time.perf_counter()
                loss, acc = evaluate(model, sub_x, sub_y)
                history.append({"epoch": event.epoch, "series": "test", "loss": loss,
                                "accuracy": acc, "n": len(sub_y), "step": event.step})
                pacer.tested(time.perf_counter() - t0)
            t0 = time.perf_counter()
            kind = "start" if event.kind == "start" else "progress"
            status = (f"Starting: {settings.describe()} on {event.device}" if kind == "start"
                      else _status(settings, event, history))
            if kind == "progress" and "first_point_seconds" not in pacer.timings:
                pacer.timings["first_point_seconds"] = time.perf_counter() - t_click
            yield TrainUpdate(kind, status, event.device, list(history), probe(model, probe_x), probe_y,
                              data.order, event=event, timings=dict(pacer.timings), task=settings.task)
            # What this refresh cost, the consumer's share (drawing, sending) included.
            pacer.refreshed(time.perf_counter() - t0, first=kind == "start")
    pacer.timings["training_ended_at"] = time.perf_counter()      # for measuring how fast Stop acts
    if session.closed or last is None:
        return
    wall = time.perf_counter() - t_click
    stopped = bool(last.extra.get("stopped")) if last.extra else session.stop.is_set()
    result = session.result = _final(model, data, settings, last, history, wall, stopped, misclassified)
    pacer.timings["wall_seconds"] = wall
    ending = _end_status(result, last, settings.app_task.noun, settings.app_task.kept_for)
    yield TrainUpdate("end", ending, last.device, list(history),
                      probe(model, probe_x), probe_y, data.order, event=last, result=result,
                      timings=dict(pacer.timings), task=settings.task)


def warm_up(order: str = "1234", device: str = "auto", tasks: tuple[str, ...] = tuple(APP_TASKS)) -> None:
    """What a first click on Train would otherwise wait for: each task's data made (MNIST cut into
    quadrants, the direction clips) and one training step, so that torch has set up its kernels.
    ``app.py`` runs it in the background while the server starts."""
    d = resolve_device(device)
    for task in tasks:
        settings = TrainSettings(task=task, order=order if task == "quadrants" else "1234")
        data = task_data(task, settings.order)
        model = build_model("cnn_lstm", **settings.model_config())
        n = 2 * settings.app_task.batch_size                              # two steps
        # The quadrants' float copy now (most runs are theirs); direction's on its first run, so a
        # server whose tabs never pick it holds 35 MB of clips for it, not 170.
        x = data.train_for(d) if task == "quadrants" else data.train_x
        for _ in fit(model, (x[:n], data.train_y[:n]), None, epochs=1,
                     batch_size=settings.app_task.batch_size, device=d):
            pass
        # And one pass of each kind a run makes: oneDNN prepares its kernels per shape, the first
        # time it meets one (a second or more on a small CPU).
        evaluate(model, data.test_x[-500:], data.test_y[-500:])
        probe(model, data.test_x[0])


def device_label(device: str = "auto") -> str:
    """What the page says about where training runs: the GPU's name, or the CPU and its threads."""
    d = resolve_device(device)
    if d.type == "cuda":
        return device_name(d)
    return f"cpu ({torch.get_num_threads()} threads)"

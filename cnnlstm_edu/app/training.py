"""The Train tab without the web page: one learner's session, and a training run as a stream of updates.

:func:`train_updates` wraps :func:`~cnnlstm_edu.train.fit`. ``fit`` computes nothing between its
events; *this* loop does, while ``fit`` is paused at a ``yield``: it runs a fixed probe digit
through the model (:func:`~cnnlstm_edu.viz.probe`), now and then scores a slice of the test
set, and hands the page a :class:`TrainUpdate`. How often is set by what it costs: a refresh
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

import copy
import ctypes
import gc
import math
import shutil
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field

import torch
from torch import nn

from ..checkpoint import save_checkpoint
from ..data import QUADRANT_ORDERS, load_mnist, quadrant_sequences
from ..models import MODELS, build_model
from ..train import Event, device_name, evaluate, fit, predict, resolve_device, to_float
from ..viz import Probe, confusion_matrix, probe

__all__ = ["MODEL_CHOICES", "QuadrantData", "RunResult", "Session", "SessionRegistry", "SESSIONS",
           "TrainSettings", "TrainUpdate", "device_label", "predict", "quadrant_data", "release_memory",
           "train_updates", "warm_up"]

# What the page shows -> the registry name build_model() takes.
MODEL_CHOICES = {"CNN-LSTM": "cnn_lstm", "CNN-ConvLSTM": "cnn_convlstm"}
# The config field that "hidden size" sets, and its default, per model.
HIDDEN_FIELD = {"cnn_lstm": ("hidden_size", 128), "cnn_convlstm": ("hidden_channels", 32)}
# Per-run limits: one tab must not take the memory of a shared server. Measured peaks of one
# training step on a CPU (RSS): CNN-LSTM hidden 1024 at batch 1024, +0.7 GB; CNN-ConvLSTM
# hidden 128 at batch 1024, +0.6 GB; at batch 4096 each needed about 2 GB.
MAX_HIDDEN = {"cnn_lstm": 1024, "cnn_convlstm": 128}
MAX_BATCH = 1024
MAX_SECONDS = 3600
MAX_EPOCHS = 50
PROBE_INDEX = 0            # the test digit whose frames the Train tab shows (a 7)


# --- settings -----------------------------------------------------------------------------------


def _whole(value, name: str, low: int, high: int) -> int:
    """A whole number in [low, high] from a form field (which may hand over 128.0 or None)."""
    if value is None or isinstance(value, bool) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{name} is missing: enter a whole number from {low} to {high}.")
    if float(value) != int(float(value)):
        raise ValueError(f"{name} must be a whole number, got {value}.")
    value = int(float(value))
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, got {value}.")
    return value


def _positive(value, name: str, high: float) -> float:
    if value is None or isinstance(value, bool) or not math.isfinite(float(value)):
        raise ValueError(f"{name} is missing: enter a number above 0.")
    value = float(value)
    if not 0 < value <= high:
        raise ValueError(f"{name} must be above 0 and at most {high:g}, got {value:g}.")
    return value


@dataclass
class TrainSettings:
    """Everything the Train tab asks for, checked: a bad value raises ``ValueError`` with a
    message meant for the page."""

    model: str = "cnn_lstm"        # registry name: "cnn_lstm" or "cnn_convlstm"
    order: str = "1234"            # quadrant order, one of QUADRANT_ORDERS
    hidden: int | None = None      # LSTM hidden units (ConvLSTM: hidden channels); None: the default
    lr: float = 4e-3               # peak learning rate of the one-cycle schedule
    batch_size: int = 128
    seconds: float | None = 15.0   # time budget (training time, evaluation excluded)
    epochs: float | None = None    # or a number of passes over the 60,000 digits
    device: str = "auto"           # "auto": CUDA when there is a GPU
    probe_index: int = PROBE_INDEX  # the test digit shown frame by frame
    final_test: int | None = None  # score the end of a run on this many test digits (None: all 10,000)
    seed: int = 0

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"Unknown model {self.model!r}: choose one of {sorted(MODELS)}.")
        if self.order not in QUADRANT_ORDERS:
            raise ValueError(f"Quadrant order must be one of {', '.join(QUADRANT_ORDERS)}, got {self.order!r}.")
        if self.hidden is not None:
            self.hidden = _whole(self.hidden, "Hidden size", 1, MAX_HIDDEN[self.model])
        self.lr = _positive(self.lr, "Learning rate", 1.0)
        self.batch_size = _whole(self.batch_size, "Batch size", 1, MAX_BATCH)
        if self.seconds is None and self.epochs is None:
            raise ValueError("Give a time budget in seconds or a number of epochs.")
        if self.seconds is not None:
            self.seconds = _positive(self.seconds, "Time budget (seconds)", MAX_SECONDS)
        if self.epochs is not None:
            self.epochs = _positive(self.epochs, "Epochs", MAX_EPOCHS)
        self.probe_index = _whole(self.probe_index, "Probe digit", 0, 9999)

    @classmethod
    def from_form(cls, model_label: str, order: str, hidden, lr, batch_size, budget_kind: str,
                  budget, **kwargs) -> TrainSettings:
        """Build from the Train tab's fields: labels as shown, numbers as gradio hands them over."""
        if model_label not in MODEL_CHOICES:
            raise ValueError(f"Choose a model: {', '.join(MODEL_CHOICES)}.")
        by_epochs = str(budget_kind).lower().startswith("epoch")
        return cls(model=MODEL_CHOICES[model_label], order=order, hidden=hidden, lr=lr,
                   batch_size=batch_size, seconds=None if by_epochs else budget,
                   epochs=budget if by_epochs else None, **kwargs)

    def model_config(self) -> dict:
        if self.hidden is None:
            return {}
        return {HIDDEN_FIELD[self.model][0]: self.hidden}

    def describe(self) -> str:
        budget = f"{self.seconds:g} s" if self.seconds is not None else f"{self.epochs:g} epochs"
        label = {v: k for k, v in MODEL_CHOICES.items()}[self.model]
        return f"{label}, order {self.order}, batch {self.batch_size}, lr {self.lr:g}, {budget}"


# --- data, loaded once per process ----------------------------------------------------------------


@dataclass
class QuadrantData:
    train_x: torch.Tensor          # (60000, 4, 1, 14, 14) uint8, quadrants in `order`
    train_y: torch.Tensor          # (60000,)
    test_x: torch.Tensor           # (10000, 4, 1, 14, 14) uint8
    test_y: torch.Tensor           # (10000,)
    test_images: torch.Tensor      # (10000, 28, 28) uint8: the whole digits, for display
    order: str
    _train_float: torch.Tensor | None = None

    def train_for(self, device: torch.device) -> torch.Tensor:
        """The training sequences as ``fit`` will use them on ``device``. On a CPU: float32 in
        [0, 1], converted once and shared (``fit`` would otherwise convert all 188 MB at every
        click). On a GPU: uint8, a quarter of the bytes to copy; ``fit`` converts there."""
        if device.type != "cpu":
            return self.train_x
        with _data_lock:
            if self._train_float is None:
                self._train_float = to_float(self.train_x)          # (60000, 4, 1, 14, 14) float32
            return self._train_float


_data_lock = threading.Lock()
_data: dict[str, QuadrantData] = {}


def quadrant_data(order: str = "1234") -> QuadrantData:
    """MNIST as quadrant sequences in ``order``, built once per order and shared by every session
    (read-only: ``fit`` copies what it trains on to the device as float)."""
    with _data_lock:
        if order not in _data:
            train_images, train_y = load_mnist("train")
            test_images, test_y = load_mnist("test")
            _data[order] = QuadrantData(quadrant_sequences(train_images, order), train_y,
                                        quadrant_sequences(test_images, order), test_y, test_images, order)
        return _data[order]


# --- sessions -----------------------------------------------------------------------------------


class Session:
    """One browser tab's model and run. Lives in a ``gr.State``; :meth:`close` frees it."""

    def __init__(self, session_id: str = "") -> None:
        self.id = session_id
        self.stop = threading.Event()      # set by the Stop button; fit() checks it every step
        self._run_lock = threading.Lock()  # one run at a time per session
        self.model: nn.Module | None = None
        self.settings: TrainSettings | None = None
        self.history: list[dict] = []      # curve points: epoch, series ("train"/"test"), loss, accuracy
        self.result: RunResult | None = None
        self.closed = False
        self.freed = ""                    # why the model was let go, if it was (said in Try it)
        self.last_used = time.monotonic()  # the registry frees the least recently used idle models
        # Runs waiting in the queue: clicks counts Train presses, started counts runs begun; Stop
        # pressed while clicks > started cancels the waiting ones (runs up to ticket cancel_before).
        self.clicks = self.started = self.cancel_before = 0
        self._tickets = threading.Lock()
        self._checkpoint_dir: str | None = None
        self.checkpoint: str | None = None  # the file the "download model" button offers, if any

    @property
    def running(self) -> bool:
        return self._run_lock.locked()

    def model_for_inference(self) -> tuple[nn.Module | None, TrainSettings | None]:
        """The session's model for the Try-it tab. While a run goes on, a copy: switching the live
        model to eval mode from another thread would change the training step under it."""
        self.last_used = time.monotonic()
        model = self.model
        if model is not None and self.running:
            model = copy.deepcopy(model)
        return model, self.settings

    def clicked(self) -> None:
        """Train was pressed: one more run is waiting in the queue."""
        with self._tickets:
            self.clicks += 1

    def start_ticket(self) -> bool:
        """A run is leaving the queue: False if Stop cancelled it while it waited."""
        with self._tickets:
            self.started += 1
            return self.started > self.cancel_before

    def cancel_waiting(self) -> bool:
        """Stop pressed with nothing running: cancel the runs waiting in the queue, if any."""
        with self._tickets:
            if self.clicks <= self.started:
                return False
            self.cancel_before = self.clicks
            return True

    def free(self, reason: str = "") -> None:
        """Let the model (and the run's curves and results) go; keep the session."""
        self.model, self.history, self.result = None, [], None
        self.freed = reason
        self._remove_checkpoint()

    def close(self) -> None:
        """The tab is gone: stop its run and let its model go."""
        self.closed = True
        self.stop.set()
        self.free("the tab was closed")

    def save(self) -> str:
        """Write the model to a fresh checkpoint file named after it; returns its path.

        One file per session at a time (the previous one is deleted), in a folder of its own
        that :meth:`close` removes: the server's disk stays bounded like its memory.
        """
        model, settings, result = self.model, self.settings, self.result
        if model is None or settings is None:
            raise ValueError("There is no model in this tab to save: train one first.")
        self._remove_checkpoint()
        self._checkpoint_dir = tempfile.mkdtemp(prefix="cnnlstm-edu-")
        acc = f"-acc{result.test_acc * 100:.1f}" if result is not None else ""
        hidden = settings.hidden or HIDDEN_FIELD[settings.model][1]
        name = f"{settings.model}-h{hidden}-order{settings.order}{acc}.safetensors"
        info = {"order": settings.order, "settings": settings.describe()}
        if result is not None:
            info.update(test_acc=result.test_acc, test_size=result.test_size, steps=result.steps)
        self.checkpoint = str(save_checkpoint(model, f"{self._checkpoint_dir}/{name}", **info))
        return self.checkpoint

    def _remove_checkpoint(self) -> None:
        folder, self._checkpoint_dir, self.checkpoint = self._checkpoint_dir, None, None
        if folder:
            shutil.rmtree(folder, ignore_errors=True)

    def __repr__(self) -> str:
        return f"Session({self.id!r}, model={'yes' if self.model is not None else 'none'}, running={self.running})"


class SessionRegistry:
    """Sessions by gradio session hash, so a tab's *unload* event can find its session and free it.

    Weak references: the ``gr.State`` owns the session; when gradio drops the state, the entry goes.
    ``max_models`` bounds the models kept in memory at once: :meth:`make_room` frees the least
    recently used *idle* ones (never a running one) before a new run starts.
    """

    def __init__(self, max_models: int = 32) -> None:
        self._sessions: weakref.WeakValueDictionary[str, Session] = weakref.WeakValueDictionary()
        self._lock = threading.Lock()
        self.max_models = max_models

    def make_room(self, session: Session) -> list[Session]:
        """Before ``session`` trains: free idle models until it fits under ``max_models``."""
        with self._lock:
            session.last_used = time.monotonic()
            others = [s for s in self._sessions.values() if s is not session and s.model is not None]
            idle = sorted((s for s in others if not s.running), key=lambda s: s.last_used)
            freed = idle[:max(0, len(others) + 1 - self.max_models)]
        for s in freed:
            s.free(f"the server keeps {self.max_models} models at once and this tab's was the "
                   "least recently used")
        return freed

    def models(self) -> int:
        """How many sessions hold a model now."""
        return sum(s.model is not None for s in list(self._sessions.values()))

    def attach(self, session: Session | None, session_id: str) -> Session:
        """The session of ``session_id``: ``session`` itself when given, else a new one; registered."""
        with self._lock:
            if session is None:
                session = self._sessions.get(session_id) or Session(session_id)
            session.id = session.id or session_id
            self._sessions[session_id] = session
            return session

    def close(self, session_id: str) -> bool:
        with self._lock:
            session = self._sessions.pop(session_id, None)
        if session is None:
            return False
        session.close()
        return True

    def get(self, session_id: str) -> Session | None:
        return self._sessions.get(session_id)

    def __len__(self) -> int:
        return len(self._sessions)


SESSIONS = SessionRegistry()


def release_memory() -> None:
    """Hand the memory of freed models back to the system, after a tab closes.

    Dropping a model frees its tensors inside the process, but glibc keeps freed blocks in
    per-thread arenas (every run trains in its own server thread), so the server's resident size
    would stay at its peak. ``malloc_trim`` returns what it can (measured: about 140 of the
    500 MB that 6 finished runs had added); it is glibc's, so elsewhere this only collects.
    """
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


# --- a run, streamed ----------------------------------------------------------------------------


@dataclass
class RunResult:
    test_acc: float
    test_size: int
    confusion: torch.Tensor           # (10, 10): rows true class, columns predicted
    wrong_images: torch.Tensor        # (n, 28, 28) uint8: a few misclassified digits
    wrong_labels: list[int]
    wrong_preds: list[int]
    steps: int
    epochs: float
    train_seconds: float              # time in training steps
    wall_seconds: float               # from the start of the run to the end of training
    samples_per_second: float         # training samples / wall time (overheads included)
    stopped: bool


@dataclass
class TrainUpdate:
    kind: str                         # "start", "progress" or "end"
    status: str                       # one line for the page
    device: str
    history: list[dict]               # every curve point so far (a copy)
    probe: Probe | None               # the probe digit as the model sees it now
    probe_label: int
    order: str
    event: Event | None = None        # the fit() event behind this update
    result: RunResult | None = None   # at the end
    timings: dict = field(default_factory=dict)


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
        parts.append(f"test accuracy {test[-1]['accuracy']:.1%} ({test[-1]['n']} digits)")
    return "; ".join(parts)


def train_updates(session: Session, settings: TrainSettings, *, min_interval: float = 0.5,
                  share: float = 0.04, test_share: float = 0.03, test_every: float = 1.0,
                  test_subset: int = 500, misclassified: int = 12) -> Iterator[TrainUpdate]:
    """Train a fresh model for ``session`` and yield what the page shows, as it happens.

    The first update comes before the first step (device, the untrained model's view of the
    probe digit), then one every ``min_interval`` seconds or more (see the module docstring),
    then a final one with the test accuracy, a confusion matrix and some misclassified digits.
    ``session.stop.set()`` ends training after the current step; the model trained so far stays
    in ``session.model``. The run's overheads are measured in ``update.timings``.
    """
    if not session._run_lock.acquire(blocking=False):
        raise RuntimeError("This session is already training: press Stop first, or wait for it to end.")
    events = None
    try:
        t_click = time.perf_counter()
        session.stop.clear()
        data = quadrant_data(settings.order)
        device = resolve_device(settings.device)
        torch.manual_seed(settings.seed)
        model = build_model(settings.model, **settings.model_config())
        session.free()                                             # the previous run's model and file
        session.model, session.settings, session.history, session.result = model, settings, [], None
        history = session.history
        probe_x = data.test_x[settings.probe_index]               # (T, 1, 14, 14)
        probe_y = int(data.test_y[settings.probe_index])
        # A fixed slice of the test set for the live test curve; the full set at the end.
        sub_x, sub_y = data.test_x[-test_subset:], data.test_y[-test_subset:]

        # log_every=5: the first curve point comes after 5 steps, and the curves get more points.
        events = fit(model, (data.train_for(device), data.train_y), None, epochs=settings.epochs,
                     time_budget=settings.seconds, batch_size=settings.batch_size, lr=settings.lr,
                     device=device, seed=settings.seed, stop=session.stop, log_every=5,
                     eval_every_epoch=False)
        timings = {"refreshes": 0, "refresh_seconds": 0.0, "tests": 0, "test_seconds": 0.0}
        next_refresh = next_test = 0.0
        first_point = None
        last = None
        for event in events:
            if session.closed:                   # the tab went away: drop everything
                return
            last = event
            if event.kind == "step":
                history.append({"epoch": event.epoch, "series": "train", "loss": event.loss,
                                "accuracy": event.accuracy, "n": event.batch_size, "step": event.step})
            now = time.perf_counter()
            if event.kind == "start" or (event.kind == "step" and now >= next_refresh):
                if event.kind == "step" and now >= next_test:
                    t0 = time.perf_counter()
                    loss, acc = evaluate(model, sub_x, sub_y)
                    history.append({"epoch": event.epoch, "series": "test", "loss": loss,
                                    "accuracy": acc, "n": len(sub_y), "step": event.step})
                    cost = time.perf_counter() - t0
                    timings["tests"] += 1
                    timings["test_seconds"] += cost
                    next_test = time.perf_counter() + max(test_every, cost * (1 - test_share) / test_share)
                t0 = time.perf_counter()
                p = probe(model, probe_x)
                kind = "start" if event.kind == "start" else "progress"
                status = (f"Starting: {settings.describe()} on {event.device}" if kind == "start"
                          else _status(settings, event, history))
                if kind == "progress" and first_point is None:
                    first_point = time.perf_counter() - t_click
                    timings["first_point_seconds"] = first_point
                yield TrainUpdate(kind, status, event.device, list(history), p, probe_y, settings.order,
                                  event=event, timings=dict(timings))
                # What this refresh cost, the consumer's share (drawing, sending) included.
                cost = time.perf_counter() - t0
                timings["refreshes"] += 1
                timings["refresh_seconds"] += cost
                next_refresh = time.perf_counter() + max(min_interval, cost * (1 - share) / share)
                if kind == "start":
                    next_refresh = 0.0           # the first curve point goes out as soon as it exists
        timings["training_ended_at"] = time.perf_counter()      # for measuring how fast Stop acts
        if session.closed or last is None:
            return
        wall = time.perf_counter() - t_click
        stopped = bool(last.extra.get("stopped")) if last.extra else session.stop.is_set()

        # The end: score the model on the test set, once, and keep a few of its mistakes.
        n = len(data.test_y) if settings.final_test is None else min(settings.final_test, len(data.test_y))
        logits = predict(model, data.test_x[:n], logits=True)               # (n, classes)
        labels = data.test_y[:n]
        preds = logits.argmax(-1)
        correct = preds == labels
        test_acc = correct.float().mean().item()
        test_loss = torch.nn.functional.cross_entropy(logits, labels).item()
        wrong = (~correct).nonzero().flatten()[:misclassified]
        history.append({"epoch": last.epoch, "series": "test", "loss": test_loss, "accuracy": test_acc,
                        "n": n, "step": last.step})
        result = RunResult(
            test_acc=test_acc, test_size=n, confusion=confusion_matrix(labels, preds),
            wrong_images=data.test_images[wrong], wrong_labels=labels[wrong].tolist(),
            wrong_preds=preds[wrong].tolist(), steps=last.step, epochs=last.epoch,
            train_seconds=last.seconds, wall_seconds=wall,
            samples_per_second=last.step * settings.batch_size / max(wall, 1e-9), stopped=stopped)
        session.result = result
        how = "Stopped" if stopped else "Done"
        status = (f"{how}: test accuracy **{test_acc:.2%}** on {n:,} test digits after "
                  f"{last.seconds:.1f} s of training ({last.epoch:.2f} epochs, {last.step} steps, "
                  f"{result.samples_per_second:,.0f} samples/s) on {last.device}. "
                  "The model is kept for the Try-it tab.")
        timings["wall_seconds"] = wall
        yield TrainUpdate("end", status, last.device, list(history), probe(model, probe_x), probe_y,
                          settings.order, event=last, result=result, timings=dict(timings))
    finally:
        if events is not None:
            events.close()
        session._run_lock.release()
        if session.closed:                       # the tab went away mid-run: nothing to keep
            session.free("the tab was closed")
            model = None                         # this frame's reference too
            release_memory()


def warm_up(order: str = "1234", device: str = "auto") -> None:
    """What a first click on Train would otherwise wait for: MNIST loaded and cut into quadrants,
    and one training step, so that torch has set up its kernels. ``app.py`` runs it in the
    background while the server starts."""
    data = quadrant_data(order)
    d = resolve_device(device)
    model = build_model("cnn_lstm")
    for _ in fit(model, (data.train_for(d)[:256], data.train_y[:256]), None, epochs=1, batch_size=128,
                 device=d):
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

"""What the Train tab asks for, checked: :class:`TrainSettings` and the per-run limits.

Two tasks train here (:data:`APP_TASKS`): ``quadrants``, an MNIST digit read as its four 14x14
quadrants, and ``direction``, a digit sliding one of 8 ways on a 24x24 canvas that wraps
around, where no single frame tells the answer (:func:`cnnlstm_edu.data.direction`). The
models are built for the task's frames and classes, as ``train --task`` builds them.

One tab must not take a shared server's memory or its time: the batch and hidden sizes are
capped, and so is a run, whatever its budget: at most ``MAX_SECONDS`` of training and at most
``MAX_STEPS`` steps (an epoch budget is checked by the steps it would take).

>>> TrainSettings(epochs=1, seconds=None).steps()
469
>>> TrainSettings(epochs=50, seconds=None, batch_size=1)
Traceback (most recent call last):
    ...
ValueError: 50 epochs at batch size 1 is 3,000,000 steps; a run here takes at most 20,000 steps (about 43 epochs at batch size 128): fewer epochs or a bigger batch.
>>> TrainSettings(task="direction").model_config()
{'frame_size': 24, 'num_classes': 8}
>>> TrainSettings(task="direction", order="4321")
Traceback (most recent call last):
    ...
ValueError: Quadrant order applies to the quadrants task only: direction clips are not cut into quadrants. Leave it at 1234, got '4321'.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_number
from ..cli.tasks import TASKS
from ..data import DIRECTIONS, QUADRANT_ORDERS

__all__ = ["APP_TASKS", "AppTask", "HIDDEN_FIELD", "MAX_BATCH", "MAX_EPOCHS", "MAX_HIDDEN", "MAX_SECONDS",
           "MAX_STEPS", "MODEL_CHOICES", "PROBE_INDEX", "TASK_CHOICES", "TRAIN_SIZE", "TrainSettings"]

# What the page shows -> the registry name build_model() takes.
MODEL_CHOICES = {"CNN-LSTM": "cnn_lstm", "CNN-ConvLSTM": "cnn_convlstm"}
# The config field that "hidden size" sets, and its default, per model.
HIDDEN_FIELD = {"cnn_lstm": ("hidden_size", 128), "cnn_convlstm": ("hidden_channels", 32)}
# Per-run limits. Measured peaks of one training step on a CPU (RSS): CNN-LSTM hidden 1024 at
# batch 1024, +0.7 GB; CNN-ConvLSTM hidden 128 at batch 1024, +0.6 GB; at batch 4096 about 2 GB.
MAX_HIDDEN = {"cnn_lstm": 1024, "cnn_convlstm": 128}
MAX_BATCH = 1024           # on quadrants; a task's own cap is AppTask.max_batch
MAX_SECONDS = 3600         # of training, whatever the budget asked for (an epoch budget too)
MAX_EPOCHS = 50
# Steps of one run. A step costs at least a few milliseconds whatever its batch (measured on
# the 2-core CPU: ~5 ms at batch 1), so 20,000 steps stay within about the hour.
MAX_STEPS = 20_000
TRAIN_SIZE = 60_000        # MNIST's training digits: an epoch
PROBE_INDEX = 0            # the test example whose frames the Train tab shows (digit: a 7; clip: down-left)


@dataclass(frozen=True)
class AppTask:
    """What the app needs to know of a task beyond ``cli.tasks.TASKS`` (frame size, classes)."""

    name: str
    train_size: int                # training examples: an epoch
    test_size: int                 # test examples
    max_batch: int                 # the batch cap: a bigger or longer frame costs more memory
    batch_size: int                # the batch the Train tab suggests (the CLI's default)
    noun: str                      # what one example is called on the page
    classes: tuple[str, ...] | None = None   # class names (None: the class number is the name)
    short: tuple[str, ...] | None = None     # a column header per class, for the belief table
    kept_for: str = "the Try-it tab"          # where the page says a trained model can be tried

    @property
    def frame_size(self) -> int:
        return TASKS[self.name].frame_size

    @property
    def num_classes(self) -> int:
        """The task's classes; a learner's clips (not a task of the CLI's table) count their names."""
        return TASKS[self.name].num_classes if self.name in TASKS else len(self.classes or ())

    def class_name(self, k: int) -> str:
        return self.classes[k] if self.classes else str(k)


# Measured peaks of one training step (RSS, 1 CPU thread): on direction clips (6 frames of
# 24x24) a sample costs 2.3x (CNN-LSTM) to 5.4x (CNN-ConvLSTM) what a quadrant sequence costs;
# CNN-ConvLSTM hidden 128 at batch 256 took +0.6 GB, as at batch 1024 on quadrants. Hence 256.
APP_TASKS = {task.name: task for task in (
    AppTask("quadrants", TRAIN_SIZE, 10_000, MAX_BATCH, 128, "digits"),
    AppTask("direction", 10_000, 2_000, 256, 32, "clips", classes=DIRECTIONS,
            short=("\u2192", "\u2197", "\u2191", "\u2196", "\u2190", "\u2199", "\u2193", "\u2198")),
)}
TASK_CHOICES = tuple(APP_TASKS)            # what the task selector offers; the first is the default


@dataclass
class TrainSettings:
    """Everything the Train tab asks for, checked: a bad value raises ``ValueError`` with a
    message meant for the page."""

    model: str = "cnn_lstm"        # registry name: "cnn_lstm" or "cnn_convlstm"
    order: str = "1234"            # quadrant order, one of QUADRANT_ORDERS (quadrants only)
    hidden: int | None = None      # LSTM hidden units (ConvLSTM: hidden channels); None: the default
    lr: float = 4e-3               # peak learning rate of the one-cycle schedule
    batch_size: int = 128
    seconds: float | None = 15.0   # time budget (training time, evaluation excluded)
    epochs: float | None = None    # or a number of passes over the 60,000 digits
    device: str = "auto"           # "auto": CUDA when there is a GPU
    probe_index: int = PROBE_INDEX  # the test digit shown frame by frame
    final_test: int | None = None  # score the end of a run on this many test examples (None: all)
    seed: int = 0
    task: str = "quadrants"        # one of TASK_CHOICES: what the model learns to answer

    def __post_init__(self) -> None:
        if self.model not in MODEL_CHOICES.values():   # the registry has more: not all train here
            raise ValueError(f"Unknown model {self.model!r}: the app trains {sorted(MODEL_CHOICES.values())}.")
        if not isinstance(self.task, str) or self.task not in APP_TASKS:
            raise ValueError(f"Task must be one of {', '.join(TASK_CHOICES)}, got {self.task!r}.")
        if self.order not in QUADRANT_ORDERS:
            raise ValueError(f"Quadrant order must be one of {', '.join(QUADRANT_ORDERS)}, got {self.order!r}.")
        if self.task != "quadrants" and self.order != QUADRANT_ORDERS[0]:
            raise ValueError(f"Quadrant order applies to the quadrants task only: {self.task} clips are not "
                             f"cut into quadrants. Leave it at {QUADRANT_ORDERS[0]}, got {self.order!r}.")
        task = APP_TASKS[self.task]
        whole = dict(integer=True, whole_floats=True)
        if self.hidden is not None:
            self.hidden = check_number(self.hidden, "Hidden size", low=1, high=MAX_HIDDEN[self.model], **whole)
        self.lr = check_number(self.lr, "Learning rate", low=0, high=1.0, low_open=True)
        self.batch_size = check_number(self.batch_size, "Batch size", low=1, high=task.max_batch, **whole)
        if self.seconds is None and self.epochs is None:
            raise ValueError("Give a time budget in seconds or a number of epochs.")
        if self.seconds is not None:
            self.seconds = check_number(self.seconds, "Time budget (seconds)", low=0, high=MAX_SECONDS,
                                        low_open=True)
        if self.epochs is not None:
            self.epochs = check_number(self.epochs, "Epochs", low=0, high=MAX_EPOCHS, low_open=True)
            if self.steps() > MAX_STEPS:
                fits = MAX_STEPS * task.batch_size / task.train_size
                raise ValueError(f"{self.epochs:g} epochs at batch size {self.batch_size} is {self.steps():,} "
                                 f"steps; a run here takes at most {MAX_STEPS:,} steps (about {fits:.0f} "
                                 f"epochs at batch size {task.batch_size}): fewer epochs or a bigger batch.")
        self.probe_index = check_number(self.probe_index, "Probe digit", low=0, high=task.test_size - 1, **whole)

    def steps(self) -> int | None:
        """The steps an epoch budget takes (None for a time budget)."""
        if self.epochs is None:
            return None
        return math.ceil(self.epochs * APP_TASKS[self.task].train_size / self.batch_size)

    def time_budget(self) -> float:
        """The seconds of training this run may take: its own budget, or the cap."""
        return self.seconds if self.seconds is not None else MAX_SECONDS

    @classmethod
    def from_form(cls, model_label: str, order: str, hidden, lr, batch_size, budget_kind: str,
                  budget, task: str = "quadrants", **kwargs) -> TrainSettings:
        """Build from the Train tab's fields: labels as shown, numbers as gradio hands them over."""
        if not isinstance(model_label, str) or model_label not in MODEL_CHOICES:
            raise ValueError(f"Choose a model: {', '.join(MODEL_CHOICES)}.")
        by_epochs = str(budget_kind).lower().startswith("epoch")
        return cls(model=MODEL_CHOICES[model_label], order=order, hidden=hidden, lr=lr,
                   batch_size=batch_size, seconds=None if by_epochs else budget,
                   epochs=budget if by_epochs else None, task=task, **kwargs)

    @property
    def app_task(self) -> AppTask:
        return APP_TASKS[self.task]

    def model_config(self) -> dict:
        """What ``build_model`` needs beyond its defaults: the hidden size asked for, and the
        task's frame size and classes (the defaults are the quadrants')."""
        config = {}
        if self.task != "quadrants":
            config.update(frame_size=self.app_task.frame_size, num_classes=self.app_task.num_classes)
        if self.hidden is not None:
            config[HIDDEN_FIELD[self.model][0]] = self.hidden
        return config

    def describe(self) -> str:
        budget = f"{self.seconds:g} s" if self.seconds is not None else f"{self.epochs:g} epochs"
        label = {v: k for k, v in MODEL_CHOICES.items()}[self.model]
        what = f"order {self.order}" if self.task == "quadrants" else f"task {self.task}"
        return f"{label}, {what}, batch {self.batch_size}, lr {self.lr:g}, {budget}"

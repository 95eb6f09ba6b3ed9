"""What the Train tab asks for, checked: :class:`TrainSettings` and the per-run limits.

One tab must not take a shared server's memory or its time: the batch and hidden sizes are
capped, and so is a run, whatever its budget: at most ``MAX_SECONDS`` of training and at most
``MAX_STEPS`` steps (an epoch budget is checked by the steps it would take).

>>> TrainSettings(epochs=1, seconds=None).steps()
469
>>> TrainSettings(epochs=50, seconds=None, batch_size=1)
Traceback (most recent call last):
    ...
ValueError: 50 epochs at batch size 1 is 3,000,000 steps; a run here takes at most 20,000 steps (about 43 epochs at batch size 128): fewer epochs or a bigger batch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..checks import check_number
from ..data import QUADRANT_ORDERS

__all__ = ["HIDDEN_FIELD", "MAX_BATCH", "MAX_EPOCHS", "MAX_HIDDEN", "MAX_SECONDS", "MAX_STEPS",
           "MODEL_CHOICES", "PROBE_INDEX", "TRAIN_SIZE", "TrainSettings"]

# What the page shows -> the registry name build_model() takes.
MODEL_CHOICES = {"CNN-LSTM": "cnn_lstm", "CNN-ConvLSTM": "cnn_convlstm"}
# The config field that "hidden size" sets, and its default, per model.
HIDDEN_FIELD = {"cnn_lstm": ("hidden_size", 128), "cnn_convlstm": ("hidden_channels", 32)}
# Per-run limits. Measured peaks of one training step on a CPU (RSS): CNN-LSTM hidden 1024 at
# batch 1024, +0.7 GB; CNN-ConvLSTM hidden 128 at batch 1024, +0.6 GB; at batch 4096 about 2 GB.
MAX_HIDDEN = {"cnn_lstm": 1024, "cnn_convlstm": 128}
MAX_BATCH = 1024
MAX_SECONDS = 3600         # of training, whatever the budget asked for (an epoch budget too)
MAX_EPOCHS = 50
# Steps of one run. A step costs at least a few milliseconds whatever its batch (measured on
# the 2-core CPU: ~5 ms at batch 1), so 20,000 steps stay within about the hour.
MAX_STEPS = 20_000
TRAIN_SIZE = 60_000        # MNIST's training digits: an epoch
PROBE_INDEX = 0            # the test digit whose frames the Train tab shows (a 7)


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
        if self.model not in MODEL_CHOICES.values():   # the registry has more: not all train here
            raise ValueError(f"Unknown model {self.model!r}: the app trains {sorted(MODEL_CHOICES.values())}.")
        if self.order not in QUADRANT_ORDERS:
            raise ValueError(f"Quadrant order must be one of {', '.join(QUADRANT_ORDERS)}, got {self.order!r}.")
        whole = dict(integer=True, whole_floats=True)
        if self.hidden is not None:
            self.hidden = check_number(self.hidden, "Hidden size", low=1, high=MAX_HIDDEN[self.model], **whole)
        self.lr = check_number(self.lr, "Learning rate", low=0, high=1.0, low_open=True)
        self.batch_size = check_number(self.batch_size, "Batch size", low=1, high=MAX_BATCH, **whole)
        if self.seconds is None and self.epochs is None:
            raise ValueError("Give a time budget in seconds or a number of epochs.")
        if self.seconds is not None:
            self.seconds = check_number(self.seconds, "Time budget (seconds)", low=0, high=MAX_SECONDS,
                                        low_open=True)
        if self.epochs is not None:
            self.epochs = check_number(self.epochs, "Epochs", low=0, high=MAX_EPOCHS, low_open=True)
            if self.steps() > MAX_STEPS:
                fits = MAX_STEPS * 128 / TRAIN_SIZE
                raise ValueError(f"{self.epochs:g} epochs at batch size {self.batch_size} is {self.steps():,} "
                                 f"steps; a run here takes at most {MAX_STEPS:,} steps (about {fits:.0f} "
                                 "epochs at batch size 128): fewer epochs or a bigger batch.")
        self.probe_index = check_number(self.probe_index, "Probe digit", low=0, high=9999, **whole)

    def steps(self) -> int | None:
        """The steps an epoch budget takes (None for a time budget)."""
        if self.epochs is None:
            return None
        return math.ceil(self.epochs * TRAIN_SIZE / self.batch_size)

    def time_budget(self) -> float:
        """The seconds of training this run may take: its own budget, or the cap."""
        return self.seconds if self.seconds is not None else MAX_SECONDS

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

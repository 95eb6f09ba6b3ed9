"""``TrainConfig``: every option of a training run in one dataclass that checks itself.

Like nanoGPT's ``GPTConfig``, one field per option with a comment; unlike it, a bad value is
refused when the config is made (``__post_init__``), with a message naming the option, so a run
never starts on nonsense. What can only be checked against the data and the task (a curriculum
shorter than the sequences, sampling for a model that feeds nothing back) is checked by
:meth:`TrainConfig.check_for` once ``fit`` has both.

>>> TrainConfig(epochs=2).batch_size
128
>>> TrainConfig(epochs=float("nan"))
Traceback (most recent call last):
ValueError: fit: epochs must be a finite number above 0, got nan.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..checks import check_number
from .devices import resolve_device

__all__ = ["Curriculum", "TrainConfig"]


@dataclass
class Curriculum:
    """Re3's unroll curriculum (Gordon et al. 2018; seed 003, point 3).

    Training starts on the first ``start_unroll`` steps of each sequence, with a batch
    ``T / start_unroll`` times larger than ``fit``'s ``batch_size`` (as many frames per step).
    Every ``check_every`` steps the loss on a held-out slice of the training data
    (``val_size`` sequences) is measured; after ``patience`` checks without a relative
    improvement of ``min_delta``, the loss has plateaued: the unroll doubles (up to T) and the
    batch halves (down to ``batch_size``). With scheduled sampling, each increase also raises
    the chance of feeding the model's own output by ``sampling_step`` (Re3 uses 0.25).
    """

    start_unroll: int = 1
    patience: int = 2
    min_delta: float = 0.01
    check_every: int = 50
    val_size: int = 1000
    sampling_step: float = 0.25

    def check(self, steps: int) -> None:
        """Refuse values that can't work on sequences of ``steps`` frames."""
        if isinstance(self.start_unroll, bool) or not isinstance(self.start_unroll, int) \
                or not 1 <= self.start_unroll < steps:
            raise ValueError(
                f"curriculum.start_unroll must be at least 1 and shorter than the sequences "
                f"(T={steps}), got {self.start_unroll}: a curriculum starts short "
                "and grows to the full length."
            )
        for name in ("patience", "check_every", "val_size"):
            check_number(getattr(self, name), name, integer=True, low=1, owner="curriculum")
        for name in ("min_delta", "sampling_step"):
            check_number(getattr(self, name), name, low=0, owner="curriculum")


@dataclass
class TrainConfig:
    """The options of :func:`~cnnlstm_edu.train.fit`; checked when made."""

    epochs: float | None = None          # passes over the training set (may be fractional) ...
    time_budget: float | None = None     # ... or seconds of training; with both, whichever ends first
    batch_size: int = 128                # sequences per step (the curriculum starts with more)
    lr: float = 4e-3                     # peak learning rate of the one-cycle schedule
    weight_decay: float = 0.0            # on everything but the recurrent layers' weights
    recurrent_weight_decay: float = 0.0  # on the recurrent layers' weights only (seed 003)
    clip_grad: float | None = None       # the largest global gradient norm a step may use
    optimizer: str = "adamw"             # "adamw", or "sgd" (momentum 0.9) to see explosions plainly
    warmup: float = 0.2                  # fraction of training spent warming the rate up
    curriculum: Curriculum | None = None  # Re3's unroll curriculum, or all steps from the start
    sampling: str | None = None          # next-frame models: "teacher_forcing" or "scheduled"
    sampling_max: float = 0.5            # the chance scheduled sampling rises to
    device: str | torch.device = "auto"  # "auto" (CUDA if present), "cpu", "cuda", "cuda:1", ...
    seed: int = 0                        # weights' init is the caller's; this seeds shuffling and sampling
    log_every: int = 10                  # a "step" event every this many steps
    eval_every_epoch: bool = True        # an "eval" event (test metrics) after every epoch
    ddp: bool = False                    # one rank of a process group (torchrun): DDP, a shard per rank
    sync_batchnorm: bool = False         # with ddp: BatchNorm uses the global batch's statistics

    def __post_init__(self) -> None:
        number = lambda name, **kw: check_number(getattr(self, name), name, owner="fit", **kw)  # noqa: E731
        if self.epochs is None and self.time_budget is None:
            raise ValueError("fit needs epochs=, time_budget= (seconds), or both")
        for name in ("epochs", "time_budget"):
            if getattr(self, name) is not None:
                number(name, low=0, low_open=True)
        number("batch_size", integer=True, low=1)
        number("lr", low=0, low_open=True)
        number("weight_decay", low=0)
        number("recurrent_weight_decay", low=0)
        if self.clip_grad is not None:
            number("clip_grad", low=0, low_open=True)
        if number("warmup", low=0, high=1) == 1:
            raise ValueError("fit: warmup is the fraction of training spent warming up and must be "
                             "below 1, got 1")
        check_number(self.sampling_max, "sampling_max, a probability,", low=0, high=1, owner="fit")
        number("seed", integer=True)
        number("log_every", integer=True, low=1)
        if self.optimizer not in ("adamw", "sgd"):
            raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {self.optimizer!r}")
        if self.sampling not in (None, "teacher_forcing", "scheduled"):
            raise ValueError(f"sampling must be None, 'teacher_forcing' or 'scheduled', got {self.sampling!r}")
        if self.curriculum is not None and not isinstance(self.curriculum, Curriculum):
            raise TypeError(f"curriculum must be a Curriculum(...) or None, got {type(self.curriculum).__name__}")
        for name in ("eval_every_epoch", "ddp", "sync_batchnorm"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be True or False, got {getattr(self, name)!r}")
        if self.sync_batchnorm and not self.ddp:
            raise ValueError("sync_batchnorm=True shares BatchNorm's batch statistics between the ranks of "
                             "a data-parallel run; without ddp=True there is one process, whose BatchNorm "
                             "already sees the whole batch. Set ddp=True, or leave sync_batchnorm off.")
        resolve_device(self.device)                  # a bad name fails now, not after data loading

    def check_for(self, objective, steps: int) -> None:
        """What depends on the task and the data: sampling needs a model that feeds its output
        back; a curriculum needs sequences longer than its first unroll."""
        if self.sampling is not None and not objective.feeds_back_output:
            raise ValueError(
                f"sampling={self.sampling!r} needs a model that feeds its own previous output back in as "
                f"its next input (next-frame prediction); a {objective.name} model outputs one label "
                "per sequence, so there is nothing to feed back. Leave sampling=None."
            )
        if self.curriculum is not None:
            self.curriculum.check(steps)

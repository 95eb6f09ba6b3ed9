"""The events ``fit`` yields: one small record per thing that happened in training."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

__all__ = ["Event"]


@dataclass
class Event:
    """One thing that happened in training.

    ``kind`` is "start", "step" (every ``log_every`` steps), "eval" (test metrics after an
    epoch), "curriculum" (the unroll just doubled) or "end" (final test metrics).

    >>> Event("step", step=10, epoch=0.5, seconds=1.2, device="cpu", loss=0.3).to_dict()["loss"]
    0.3
    """

    kind: str
    step: int                        # optimizer steps taken so far
    epoch: float                     # passes over the training set so far (fractional)
    seconds: float                   # training time so far, evaluation excluded
    device: str                      # e.g. "cpu" or "cuda (NVIDIA H100 80GB HBM3)"
    lr: float = math.nan             # learning rate of the last step
    loss: float = math.nan           # mean training loss since the previous step event
    accuracy: float = math.nan       # mean training accuracy since the previous step event
    grad_norm: float = math.nan      # global gradient norm of the last step, before clipping
    grad_norm_max: float = math.nan  # the largest of those since the previous step event
    test_loss: float = math.nan      # on the held-out set ("eval" and "end" events)
    test_acc: float = math.nan
    batch_size: int = 0
    unroll: int | None = None        # time steps per training sequence (None: all of them)
    sampling_p: float = 0.0          # chance of feeding the model's own output (scheduled sampling)
    total_steps: int | None = None   # known when training by epochs with a fixed batch size
    extra: dict = field(default_factory=dict)  # objective metrics ("test"), parameter groups, ...

    def to_dict(self) -> dict:
        """The fields that have a value (NaN ones left out), as plain Python."""
        return {k: v for k, v in asdict(self).items() if not (isinstance(v, float) and math.isnan(v))}

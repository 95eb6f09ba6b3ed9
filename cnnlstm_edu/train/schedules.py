"""What changes as training goes on: the learning rate, the unroll, the sampling probability.

Each is a small object that owns its state, so the loop only asks "what now?":

- :class:`OneCycle`: Smith's one-cycle learning rate (2018) over the fraction of training done;
- :class:`Progress`: that fraction, by the clock when there is a time budget, else by samples;
- :class:`UnrollSchedule`: Re3's curriculum (the unroll and batch size, and its plateau test)
  and the scheduled-sampling probability that rises with it or with progress.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .config import Curriculum

__all__ = ["OneCycle", "Progress", "UnrollSchedule"]


@dataclass(frozen=True)
class OneCycle:
    """Linear warm-up from ``lr/25`` to ``lr`` over the first ``warmup`` of training, then a cosine
    down to ``lr/1000``: a high rate while the loss falls fast, almost none at the end.

    >>> cycle = OneCycle(lr=1.0, warmup=0.2)
    >>> round(cycle(0.0), 3), cycle(0.2), round(cycle(1.0), 3)
    (0.04, 1.0, 0.001)
    """

    lr: float
    warmup: float = 0.2

    def __call__(self, p: float) -> float:
        p = min(max(p, 0.0), 1.0)
        if p < self.warmup:
            return self.lr * (0.04 + 0.96 * p / self.warmup)
        q = (p - self.warmup) / (1 - self.warmup)
        return self.lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * q)))


@dataclass(frozen=True)
class Progress:
    """Fraction of training done, 0..1: by the clock when there is a budget, else by samples.

    With a time budget the cycle is laid over the *time* available, so the rate reaches its
    floor exactly when time runs out, whatever the machine's speed.

    >>> Progress(total_samples=1000, time_budget=None)(samples=250, seconds=9.0)
    0.25
    """

    total_samples: float | None
    time_budget: float | None

    def __call__(self, samples: int, seconds: float) -> float:
        by_samples = samples / self.total_samples if self.total_samples else 0.0
        return max(seconds / self.time_budget, by_samples) if self.time_budget is not None else by_samples


class UnrollSchedule:
    """The curriculum's state: the unroll and batch size now, and the plateau test's memory.

    Without a curriculum the unroll is ``None`` (all steps) and the batch never changes.

    >>> schedule = UnrollSchedule(Curriculum(start_unroll=1, patience=1), batch_size=16, steps=4, n=1000)
    >>> schedule.unroll, schedule.batch_size
    (1, 64)
    >>> schedule.plateaued(0.9), schedule.plateaued(0.95)    # the second check does not improve
    (False, True)
    >>> schedule.unroll, schedule.batch_size
    (2, 32)
    """

    def __init__(self, curriculum: Curriculum | None, batch_size: int, steps: int, n: int) -> None:
        self.curriculum, self.steps, self.min_batch = curriculum, steps, batch_size
        self.unroll = curriculum.start_unroll if curriculum else None
        # As many frames per step as the full-length batch: T / unroll times the sequences.
        self.batch_size = min(batch_size * steps // self.unroll, n) if curriculum else batch_size
        self.increases, self.best, self.checks_since_best = 0, math.inf, 0

    def check_due(self, step: int) -> bool:
        """A plateau test is due after this step (and the unroll can still grow)."""
        c = self.curriculum
        return c is not None and step % c.check_every == 0 and self.unroll < self.steps

    def plateaued(self, val_loss: float) -> bool:
        """Record a held-out loss; on a plateau double the unroll, halve the batch, return True."""
        c = self.curriculum
        if val_loss < self.best * (1 - c.min_delta):
            self.best, self.checks_since_best = val_loss, 0
        else:
            self.checks_since_best += 1
        if self.checks_since_best < c.patience:
            return False
        self.unroll, self.batch_size = min(2 * self.unroll, self.steps), max(self.batch_size // 2, self.min_batch)
        self.increases, self.best, self.checks_since_best = self.increases + 1, math.inf, 0
        return True

    def sampling_p(self, sampling: str | None, sampling_max: float, p: float) -> float:
        """The chance of feeding the model's own output: a step up per unroll increase with a
        curriculum (Re3), else a linear ramp over training (Bengio et al. 2015)."""
        if sampling != "scheduled":
            return 0.0
        if self.curriculum is not None:
            return min(sampling_max, self.curriculum.sampling_step * self.increases)
        return sampling_max * min(p, 1.0)

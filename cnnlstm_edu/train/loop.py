"""``fit``: the training loop, as a generator of :class:`~cnnlstm_edu.train.Event` s.

The loop itself is :func:`fit`; what one step does, and the bookkeeping between events, is
:class:`_Run`. Because ``fit`` *yields*, the caller decides when to stop: close the generator,
or pass ``stop=`` (a ``threading.Event`` or any callable returning True), and ``fit`` ends
after the current step with the model as trained so far.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack

import torch
from torch import nn

from ..pixels import to_float
from .config import TrainConfig
from . import distributed
from .devices import autocast, device_name, place_model
from .events import Event
from .objectives import Classification, check_pair
from .optim import make_optimizer, parameter_groups
from .parallel import data_parallel
from .schedules import OneCycle, Progress, UnrollSchedule
from .sync_batchnorm import synced_batchnorm

__all__ = ["fit"]


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


class _Run:
    """One training run's state: data on the device, optimizer, schedules, counters, running sums."""

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, config: TrainConfig,
                 objective, cleanup: ExitStack) -> None:
        self.model, self.config, self.objective = model, config, objective
        ranks = distributed.current_ranks() if config.ddp else distributed.Ranks()
        self.device = distributed.rank_device(config.device, ranks.local_rank)
        self.device_name = device_name(self.device)
        if config.batch_size < ranks.world_size:
            raise ValueError(f"fit: batch_size={config.batch_size} is the global batch, shared by "
                             f"{ranks.world_size} ranks: it must be at least {ranks.world_size}")
        # Each rank its own dropout masks, as each sample of one batch gets its own. Shuffling
        # (below) uses the same seed on every rank: they must agree on what the global batch is.
        torch.manual_seed(config.seed + ranks.rank)
        self.shuffle = torch.Generator(device="cpu").manual_seed(config.seed)
        self.coins = torch.Generator(device="cpu").manual_seed(config.seed + 1)   # scheduled-sampling draws
        # The whole data set on the device, once: a batch is then a single index operation.
        self.x, self.y = to_float(x.to(self.device)), (y.to(self.device) if y is not None else None)
        self.x_val = self.y_val = None
        if config.curriculum is not None:
            # The plateau test needs data the model does not train on: the last val_size sequences.
            k = min(config.curriculum.val_size, len(self.x) // 5)
            self.x, self.x_val = self.x[:-k], self.x[-k:]
            if self.y is not None:
                self.y, self.y_val = self.y[:-k], self.y[-k:]
        place_model(model, self.device)                      # 4-D conv weights channels-last
        if self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True
        if config.sync_batchnorm:
            cleanup.enter_context(synced_batchnorm(model, self.device))
        # A curriculum's first unroll may leave recurrent weights unused (a one-step ConvLSTM from
        # a zero state never reads weight_hh): DDP must then look for them after every forward.
        self.parallel = data_parallel(model, objective, self.device, config.ddp,
                                      find_unused_parameters=config.curriculum is not None)
        cleanup.callback(self.parallel.close)
        self.groups = parameter_groups(model, config.weight_decay, config.recurrent_weight_decay)
        self.opt = make_optimizer(self.groups, config.optimizer, config.lr, self.device)
        self.params = [p for g in self.groups for p in g["params"]]
        self.n, steps = len(self.x), self.x.shape[1] if self.x.dim() > 1 else 1
        total_samples = config.epochs * self.n if config.epochs is not None else None
        self.cycle, self.progress = OneCycle(config.lr, config.warmup), Progress(total_samples, config.time_budget)
        self.unrolls = UnrollSchedule(config.curriculum, config.batch_size, steps, self.n)
        self.total_steps = math.ceil(total_samples / config.batch_size) \
            if total_samples and not config.curriculum else None
        self.total_samples = total_samples
        self.step, self.seconds, self.samples, self.epoch = 0, 0.0, 0, 0.0
        self.lr, self.sampling_p = self.cycle(0), self.unrolls.sampling_p(config.sampling, config.sampling_max, 0)
        self.sums = torch.zeros(3, device=self.device)      # loss * b, correct, samples: over the ranks
        self.norm_max = torch.zeros((), device=self.device)  # the largest grad norm (the same on every rank)

    def event(self, kind: str, **fields) -> Event:
        return Event(kind, self.step, self.epoch, self.seconds, self.device_name, lr=self.lr,
                     batch_size=self.unrolls.batch_size, unroll=self.unrolls.unroll,
                     sampling_p=self.sampling_p, total_steps=self.total_steps, **fields)

    def start_event(self) -> Event:
        return self.event("start", extra={
            "objective": self.objective.name, "optimizer": self.config.optimizer, "param_groups": [
                {"name": g["name"], "weight_decay": g["weight_decay"], "parameters": g["names"]}
                for g in self.groups],
            "world_size": self.parallel.ranks.world_size, "sync_batchnorm": self.config.sync_batchnorm})

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def train_step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step on the sequences ``idx`` (this rank's shard of them, under DDP);
        returns the gradient norm before clipping."""
        local, weight = self.parallel.shard(idx)
        xb = self.x[local]                                   # (b, T, C, H, W), b = this rank's share
        yb = self.y[local] if self.y is not None else None
        p = self.progress(self.samples, self.seconds)
        self.lr = self.cycle(p)
        self.sampling_p = self.unrolls.sampling_p(self.config.sampling, self.config.sampling_max, p)
        for group in self.opt.param_groups:
            group["lr"] = self.lr
        with autocast(self.device):
            loss, correct = self.parallel.loss(xb, yb, unroll=self.unrolls.unroll,
                                               sampling_p=self.sampling_p, generator=self.coins)
        self.opt.zero_grad(set_to_none=True)
        # weight is 1 alone; under DDP it makes the average over ranks the whole batch's gradient.
        self.parallel.backward(loss * weight if weight != 1.0 else loss)
        # clip_grad_norm_ returns the norm *before* clipping; with no limit it only measures.
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.clip_grad or math.inf)
        self.opt.step()
        self.step += 1
        self.samples += len(idx)                             # the global batch: every rank counts it
        b = len(local) if weight else 0                      # a weight-0 stand-in sample counts nothing
        self.sums[0] += loss.detach() * b
        self.sums[1] += correct if b else 0
        self.sums[2] += b
        self.norm_max = torch.maximum(self.norm_max, norm.detach())
        return norm

    def finished(self) -> bool:
        c = self.config
        return (self.total_samples is not None and self.samples >= self.total_samples) or \
               (c.time_budget is not None and self.seconds >= c.time_budget)

    def step_event(self, norm: torch.Tensor) -> Event:
        """The mean loss (and accuracy) since the previous step event, over all ranks; the sums
        start again."""
        loss, correct, seen = self.parallel.reduce(self.sums).tolist()
        counts = getattr(self.objective, "counts_correct", False)
        event = self.event("step", loss=loss / seen, accuracy=correct / seen if counts else math.nan,
                           grad_norm=norm.item(), grad_norm_max=self.norm_max.item())
        self.sums.zero_()
        self.norm_max.zero_()
        return event

    def curriculum_check(self) -> Event | None:
        """The plateau test; a "curriculum" event when the unroll just grew. Under DDP every rank
        takes rank 0's number, so all of them grow the unroll at the same step."""
        self.parallel.sync_buffers()
        val = self.parallel.from_rank_zero(self.objective.validation_loss(
            self.model, self.x_val, self.y_val, self.device, unroll=self.unrolls.unroll))
        if not self.unrolls.plateaued(val):
            return None
        p = self.progress(self.samples, self.seconds)
        self.sampling_p = self.unrolls.sampling_p(self.config.sampling, self.config.sampling_max, p)
        return self.event("curriculum", extra={"val_loss": val})

    def test_event(self, kind: str, test, **extra) -> Event:
        # Every rank measures the same model on the whole test set: the same numbers everywhere,
        # and no averaging of metrics that are not means (the tracker's best baseline, a ratio).
        self.parallel.sync_buffers()
        metrics = self.objective.evaluate(self.model, *test, self.device) if test is not None else {}
        return self.event(kind, test_loss=metrics.get("test_loss", math.nan),
                          test_acc=metrics.get("test_acc", math.nan), extra={**extra, "test": metrics})


def _config(config: TrainConfig | None, options: dict) -> TrainConfig:
    if config is not None and options:
        raise TypeError(f"fit: give config= or keyword options, not both (got config and {sorted(options)})")
    return config if config is not None else TrainConfig(**options)


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor | None],
        test: tuple[torch.Tensor, torch.Tensor | None] | None = None, *, config: TrainConfig | None = None,
        objective=None, stop: threading.Event | Callable[[], bool] | None = None, **options) -> Iterator[Event]:
    """Train ``model`` on ``train = (x, y)``; yield :class:`Event` s.

    The options are :class:`TrainConfig`'s fields, as keywords (``epochs=2, lr=4e-3``) or as
    ``config=TrainConfig(...)``. Give ``epochs`` (may be fractional), ``time_budget`` in
    seconds, or both (whichever ends first; the learning-rate cycle follows the time budget
    when one is given). ``x`` may be uint8 (scaled to [0, 1] here) or float; ``y`` may be
    ``None`` for objectives that need no labels. The model is moved to the device and trained
    in place; the last event has kind "end" and the final test metrics.

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> x, y = torch.rand(64, 4, 1, 14, 14), torch.randint(0, 10, (64,))
    >>> events = list(fit(CNNLSTM(), (x, y), (x, y), epochs=1, batch_size=32, device="cpu"))
    >>> [e.kind for e in events]
    ['start', 'step', 'end']
    >>> events[-1].step, events[-1].epoch
    (2, 1.0)
    """
    config, objective = _config(config, options), objective or Classification()
    check = getattr(objective, "check_data", None)
    check_data = check if check is not None else (lambda data, what, model: check_pair(data, what))
    x, y = check_data(train, "train", model)
    if test is not None:
        check_data(test, "test", model)
    config.check_for(objective, steps=x.shape[1] if x.dim() > 1 else 1)
    with ExitStack() as cleanup:     # SyncBatchNorm swapped back and DDP's hooks removed, whatever happens
        run = _Run(model, x, y, config, objective, cleanup)
        yield run.start_event()
        yield from _epochs(run, test, stop)


def _epochs(run: _Run, test, stop) -> Iterator[Event]:
    """The loop itself: epochs of shuffled batches, a step event every ``log_every`` steps."""
    config, alone = run.config, run.parallel.ranks.world_size == 1
    run.model.train()
    done, stopped, epoch = False, False, 0
    while not done:
        # The same seed on every rank, hence the same order: they agree on each global batch.
        order = torch.randperm(run.n, generator=run.shuffle).to(run.device)
        pos = 0
        while pos < run.n and not done:
            if alone and _stop_requested(stop):              # asked while we were yielding
                done = True                                  # (ranks stop together, below)
                break
            t0 = time.perf_counter()
            idx = order[pos:pos + run.unrolls.batch_size]
            pos += len(idx)
            norm = run.train_step(idx)
            # A GPU runs behind the Python that queues its work. Waiting for it after every step
            # would leave it idle while the next step is prepared, so the clock waits only every
            # log_every steps and at the end: right at every event, at most that far behind between.
            report = run.step % config.log_every == 0
            if report:
                run.sync()
            run.seconds += time.perf_counter() - t0
            run.epoch = epoch + pos / run.n
            run.seconds, stopped = run.parallel.agree(run.seconds, _stop_requested(stop))
            done = run.finished() or stopped
            if done and not report:
                t1 = time.perf_counter()
                run.sync()
                run.seconds += time.perf_counter() - t1
            if report or done:
                yield run.step_event(norm)
            if not done and run.unrolls.check_due(run.step) and (event := run.curriculum_check()):
                yield event
        epoch += 1
        if test is not None and config.eval_every_epoch and not done:
            yield run.test_event("eval", test)
    yield run.test_event("end", test, stopped=_stop_requested(stop) if alone else stopped)

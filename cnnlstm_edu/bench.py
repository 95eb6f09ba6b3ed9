"""Fold versus loop, timed: when does folding time into the batch pay?

Seed 000 found ``tf.map_fn`` over the frames of a lip-reading batch slow and folding time into
the batch (one ``reshape`` to ``[B*T, ...]``) fast. That is true on a GPU, where one large
kernel launch beats T small ones. On a CPU it depends: a conv over a large batch is already
enough work to keep every core busy, so the loop loses little, and its smaller activations
fit the caches better; for small batches the loop's per-call overhead dominates and fold wins.
:func:`fold_vs_loop` measures both over a grid of batch sizes and sequence lengths so the
crossover can be seen on the machine at hand, not asserted.

The same numbers come from lesson 02, ``python -m cnnlstm_edu bench``, and
``benchmarks/fold_vs_loop.py`` (which writes the committed tables).

>>> rows = fold_vs_loop(batch_sizes=[2], steps=[3], frame_size=8, channels=(4,), min_time=0.01)
>>> sorted(rows[0])
['backward', 'batch', 'device', 'fold_ms', 'frames', 'loop_ms', 'loop_over_fold', 'steps']
>>> rows[0]["frames"]                          # B*T frames go through the CNN either way
6
"""

from __future__ import annotations

import logging
import statistics
import warnings
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager

import torch
from torch import nn

from .layers.time_distributed import TimeDistributed
from .models.encoders import FrameCNN

__all__ = ["fold_vs_loop", "format_table", "time_ms", "time_once_ms"]


@contextmanager
def _quiet(logger_name: str):
    """Silence one logger (and warnings) for the ``with`` block, then put its level back."""
    logger = logging.getLogger(logger_name)
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _benchmark_utils():
    """``torch.utils.benchmark``, imported on first use. Its import looks for a CUDA toolkit and,
    on a machine with a CUDA_HOME but no GPU, logs a warning that says nothing about timing."""
    with _quiet("torch.utils.cpp_extension"):
        import torch.utils.benchmark as benchmark
        from torch.utils.benchmark.utils.timer import timer
    return benchmark.Timer, timer


def time_ms(fn: Callable[[], object], min_time: float = 0.2, min_runs: int = 5) -> float:
    """Median milliseconds per call of ``fn``, measured by ``torch.utils.benchmark.Timer``.

    Two warm-up calls first (the allocator, cuDNN's choice of algorithm) and one timed call;
    then the Timer's ``blocked_autorange`` runs blocks of calls, the block size chosen so that
    the clock's own cost is negligible, for at least ``min_time`` seconds and, as far as the
    first call tells, ``min_runs`` blocks. A GPU runs asynchronously: the Timer synchronises the
    accelerator before each reading of the clock.

    >>> time_ms(lambda: sum(range(1000)), min_time=0.01) > 0
    True
    """
    Timer, _ = _benchmark_utils()
    timer = Timer(stmt="fn()", globals={"fn": fn})
    first = timer.timeit(1).median                    # two warm-up calls, then one timed
    measurement = timer.blocked_autorange(min_run_time=max(min_time, 1.1 * min_runs * first))
    times = list(measurement.times)                   # seconds per call, one per block
    while len(times) < min_runs:                      # the calls got slower than the first
        times += timer.timeit(measurement.number_per_run).times
    return statistics.median(times) * 1e3


def time_once_ms(fn: Callable[[], object]) -> float:
    """Milliseconds of one call of ``fn``, between two synchronisations of the accelerator
    (``torch.utils.benchmark``'s clock). For benchmarks that interleave their contenders call by
    call and take the median themselves.

    >>> time_once_ms(lambda: sum(range(1000))) > 0
    True
    """
    _, clock = _benchmark_utils()
    start = clock()
    fn()
    return (clock() - start) * 1e3


def fold_vs_loop(batch_sizes: Iterable[int] = (1, 8, 64, 256), steps: Iterable[int] = (4, 16),
                 frame_size: int = 28, in_channels: int = 1, channels: Sequence[int] = (16, 32),
                 device: str | torch.device = "cpu", backward: bool = False,
                 min_time: float = 0.2) -> list[dict]:
    """Time ``TimeDistributed(FrameCNN)`` in fold and in loop mode for every (batch, steps).

    The CNN is the course's frame encoder (conv -> pool -> BatchNorm -> ReLU blocks) on
    ``frame_size`` square frames, in eval mode so both modes compute exactly the same thing
    (in training mode BatchNorm's batch statistics would differ: B*T frames against B). With
    ``backward=True`` each call is forward + backward of the sum of the output, as in training.

    Returns one dict per pair: ``batch``, ``steps``, ``frames`` (B*T), ``fold_ms`` and
    ``loop_ms`` (median per call), ``loop_over_fold`` (above 1: fold is faster), ``device``
    and ``backward``.
    """
    device = torch.device(device)
    cnn = FrameCNN(in_channels, channels, frame_size).to(device).eval()
    fold, loop = TimeDistributed(cnn, mode="fold"), TimeDistributed(cnn, mode="loop")
    rows = []
    for T in steps:
        for B in batch_sizes:
            x = torch.rand(B, T, in_channels, frame_size, frame_size, device=device,
                           requires_grad=backward)       # (B, T, C, H, W)

            def run(module: nn.Module):
                if backward:
                    return lambda: module(x).sum().backward()
                return lambda: module(x)

            with torch.set_grad_enabled(backward):
                fold_ms = time_ms(run(fold), min_time)
                loop_ms = time_ms(run(loop), min_time)
            rows.append({"batch": B, "steps": T, "frames": B * T, "fold_ms": fold_ms,
                         "loop_ms": loop_ms, "loop_over_fold": loop_ms / fold_ms,
                         "device": str(device), "backward": backward})
    return rows


def format_table(rows: Sequence[dict]) -> str:
    """A markdown table of :func:`fold_vs_loop` rows.

    >>> print(format_table([{"batch": 8, "steps": 4, "frames": 32, "fold_ms": 1.0,
    ...                      "loop_ms": 2.5, "loop_over_fold": 2.5}]))
    | B | T | frames B*T | fold ms | loop ms | loop / fold | faster |
    |---:|---:|---:|---:|---:|---:|:---|
    | 8 | 4 | 32 | 1.00 | 2.50 | 2.50 | fold |
    """
    lines = ["| B | T | frames B*T | fold ms | loop ms | loop / fold | faster |",
             "|---:|---:|---:|---:|---:|---:|:---|"]
    for r in rows:
        faster = "fold" if r["loop_over_fold"] > 1 else "loop"
        lines.append(f"| {r['batch']} | {r['steps']} | {r['frames']} | {r['fold_ms']:.2f} | "
                     f"{r['loop_ms']:.2f} | {r['loop_over_fold']:.2f} | {faster} |")
    return "\n".join(lines)

"""Data parallelism on one machine without leaving Python: N ranks spawned from this process.

A real run starts with ``torchrun``. A lesson or a test wants to *see* N ranks from its own
Python: :func:`launch_local` spawns them (fresh interpreters: the "spawn" start method, safe with
threads and CUDA), gives each a gloo process group on the loopback address 127.0.0.1, runs a
function of this package on every rank, and brings back each rank's result, or an error that
names the rank that failed and how. :func:`fit_in_processes` trains that way;
:func:`rank_gradients` shows what DDP averages.

Spawning costs a fresh interpreter per rank (importing torch: seconds), so this is for
showing and testing, not for speed.
"""

from __future__ import annotations

import copy
import pickle
import queue as queues
import socket
import time
import traceback
from contextlib import nullcontext

import torch
from torch.nn import functional as F

from ..checks import check_number
from . import distributed
from .distributed import DEFAULT_TIMEOUT, DistributedError, Ranks, process_group

__all__ = ["fit_in_processes", "free_port", "launch_local", "rank_gradients"]


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now, for the ranks to meet on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank_main(rank: int, world_size: int, port: int, timeout: float, threads: int | None,
               job: bytes, results) -> None:
    """What each spawned process runs: join the group, run the job, send back its result."""
    try:
        if threads:
            torch.set_num_threads(threads)
        fn, args = pickle.loads(job)
        ranks = Ranks(rank, world_size, rank, timeout)
        with process_group("cpu", timeout, ranks=ranks, init_method=f"tcp://127.0.0.1:{port}"):
            result = fn(*args)
        results.put((rank, "ok", pickle.dumps(result)))
    except BaseException as e:          # noqa: BLE001 - any failure is reported to the parent
        # A lost peer is one clear sentence; anything else needs its traceback's last frames.
        said = f"{type(e).__name__}: {e}" if isinstance(e, DistributedError) else traceback.format_exc(limit=-3)
        results.put((rank, "error", said))
        raise SystemExit(1) from None


def launch_local(fn, world_size: int, *args, timeout: float = DEFAULT_TIMEOUT, port: int | None = None,
                 threads: int | None = 1, deadline: float | None = None) -> list:
    """Run ``fn(*args)`` on ``world_size`` spawned ranks (gloo, CPU); return their results by rank.

    ``fn`` must be importable (a function of a module, not of a notebook cell); ``args`` are
    pickled, so each rank gets its own copy. ``timeout`` bounds each wait of a rank for the others
    (a rank that dies is noticed at once; one that hangs, after ``timeout`` seconds);
    ``deadline`` bounds the whole run. ``threads`` is each rank's torch threads (1: N ranks on
    N cores). If any rank fails, :class:`DistributedError` says, rank by rank, what happened.
    """
    check_number(world_size, "world_size", integer=True, low=1, owner="launch_local")
    check_number(timeout, "timeout", low=0, low_open=True, owner="launch_local")
    if deadline is not None:
        check_number(deadline, "deadline", low=0, low_open=True, owner="launch_local")
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    results, job, port = ctx.Queue(), pickle.dumps((fn, args)), port or free_port()
    procs = [ctx.Process(target=_rank_main, args=(rank, world_size, port, timeout, threads, job, results),
                         daemon=True, name=f"rank{rank}") for rank in range(world_size)]
    for p in procs:
        p.start()
    outcome, end = {}, None if deadline is None else time.monotonic() + deadline
    try:
        while len(outcome) < world_size:
            try:
                rank, status, payload = results.get(timeout=0.2)
                outcome[rank] = (status, payload)
                continue
            except queues.Empty:
                pass
            silent = [r for r, p in enumerate(procs) if r not in outcome and not p.is_alive()]
            if silent:
                _drain(results, outcome)          # its last words may still be in the pipe
                for r in silent:
                    outcome.setdefault(r, ("error", f"died with exit code {procs[r].exitcode} and no message"))
            if end is not None and time.monotonic() > end:
                for r in range(world_size):
                    outcome.setdefault(r, ("error", f"still running after the deadline of {deadline:g} s: stopped"))
    finally:
        for p in procs:
            p.join(timeout=5)
            if p.is_alive():
                p.terminate()
                p.join()
    failed = {r: text for r, (status, text) in sorted(outcome.items()) if status != "ok"}
    if failed:
        lines = "\n".join(f"  rank {r}: {text.strip()}" for r, text in failed.items())
        raise DistributedError(f"{len(failed)} of {world_size} ranks failed:\n{lines}")
    return [pickle.loads(outcome[r][1]) for r in range(world_size)]


def _drain(results, outcome: dict) -> None:
    while True:
        try:
            rank, status, payload = results.get(timeout=0.5)
        except queues.Empty:
            return
        outcome[rank] = (status, payload)


def _fit_rank(model, train, test, options: dict) -> dict:
    from .loop import fit

    events = [event.to_dict() for event in fit(model, train, test, ddp=True, **options)]
    return {"state": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}, "events": events}


def fit_in_processes(world_size: int, model, train, test=None, *, timeout: float = 120.0,
                     threads: int | None = 1, port: int | None = None, **options) -> list[dict]:
    """``fit(model, train, test, ddp=True, **options)`` on ``world_size`` spawned ranks.

    Returns one dict per rank: ``"state"`` (its final ``state_dict``) and ``"events"`` (its
    events as dicts). ``model`` itself is not trained: each rank trains its own copy.
    """
    return launch_local(_fit_rank, world_size, model, train, test, options, timeout=timeout,
                        threads=threads, port=port)


def _gradients(model, x, y, local, weight, sync_batchnorm: bool) -> tuple[dict, dict]:
    """This rank's own gradient (under ``no_sync``) and DDP's average, by parameter name."""
    from torch.nn.parallel import DistributedDataParallel

    from .sync_batchnorm import synced_batchnorm

    model = copy.deepcopy(model).train()
    with synced_batchnorm(model, torch.device("cpu")) if sync_batchnorm else nullcontext():
        ddp = DistributedDataParallel(model)
        with ddp.no_sync():               # no all-reduce: the gradient of this rank's shard alone
            (F.cross_entropy(ddp(x[local]), y[local]) * weight).backward()
        own = {name: p.grad.clone() for name, p in model.named_parameters()}
        model.zero_grad()
        (F.cross_entropy(ddp(x[local]), y[local]) * weight).backward()   # all-reduced: DDP's average
        return own, {name: p.grad.clone() for name, p in model.named_parameters()}


def _gradients_on_rank(model, x, y) -> dict:
    ranks = distributed.current_ranks()
    local, weight = distributed.shard(torch.arange(len(x)), ranks.rank, ranks.world_size)
    own, averaged = _gradients(model, x, y, local, weight, sync_batchnorm=False)
    _, synced = _gradients(model, x, y, local, weight, sync_batchnorm=True)
    return {"rank": ranks.rank, "samples": local.tolist(), "own": own, "averaged": averaged,
            "averaged_sync_batchnorm": synced}


def rank_gradients(model, x: torch.Tensor, y: torch.Tensor, world_size: int = 2, *,
                   timeout: float = 120.0) -> list[dict]:
    """What DDP averages: each rank's gradient on its shard of ``(x, y)``, and the average.

    Spawns ``world_size`` ranks. Each returns ``"samples"`` (its shard's indices), ``"own"``
    (the gradient of its shard's loss, computed under ``no_sync``: not shared), ``"averaged"``
    (after DDP's all-reduce: the same on every rank) and ``"averaged_sync_batchnorm"`` (the same
    with SyncBatchNorm), each by parameter name. The average equals the gradient of the whole
    batch in one process: exactly for a model without BatchNorm, and with SyncBatchNorm;
    approximately with plain BatchNorm, which normalises each shard by its own statistics.
    """
    return launch_local(_gradients_on_rank, world_size, model, x, y, timeout=timeout)

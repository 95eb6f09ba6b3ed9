"""The process group of a data-parallel run: joining it, sharding a batch, agreeing, failing clearly.

``torchrun --nproc_per_node=N`` starts N copies of one program and tells each, through the
environment variables ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``, who it is and where to meet the others. :func:`process_group` joins that group
(gloo on CPUs, NCCL on GPUs) with a timeout, and leaves it at the end. Importing this module
joins nothing: only a call does.

The pieces ``fit`` needs once it runs as one rank of N:

- :func:`shard`: this rank's share of a global batch (what ``DistributedSampler`` does per epoch,
  done here per batch, because the whole data set already sits on the device);
- :func:`agree`: every rank takes the largest value of a few numbers (the training clock, a stop
  request), so that all of them stop at the same step and see the same learning rate;
- :func:`collective_errors`: a collective that fails because another rank died or hangs becomes a
  :class:`DistributedError` that says so, instead of a bare backend error or a wait forever;
- :func:`rank_zero_first`: rank 0 runs a block first (decoding videos into a cache), the others
  run it after (reading the cache).

>>> shard(torch.arange(10), rank=1, world_size=2)
(tensor([5, 6, 7, 8, 9]), 1.0)
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.distributed as dist

from ..checks import check_number
from .devices import resolve_device

__all__ = ["DEFAULT_TIMEOUT", "DistributedError", "Ranks", "agree", "broadcast_buffers", "collective_errors",
           "current_ranks", "from_rank_zero", "process_group", "rank_zero_first", "shard", "torchrun_ranks"]

DEFAULT_TIMEOUT = 1800.0   # seconds a rank waits for the others in one collective (torch's own default)

_TORCHRUN = ("RANK", "WORLD_SIZE", "LOCAL_RANK")


class DistributedError(RuntimeError):
    """A data-parallel run can't go on: a rank died, stopped answering, or the group can't form."""


@dataclass(frozen=True)
class Ranks:
    """Who this process is in the group: ``rank`` of ``world_size``, ``local_rank`` on its machine."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    timeout: float | None = None      # seconds a collective waits for the others, where known

    @property
    def main(self) -> bool:
        """Rank 0: the one that prints, writes the JSON and saves."""
        return self.rank == 0


def torchrun_ranks(environ=None) -> Ranks | None:
    """The ranks torchrun announced in the environment, or None when it did not start us.

    >>> torchrun_ranks({"RANK": "1", "WORLD_SIZE": "2", "LOCAL_RANK": "1"})
    Ranks(rank=1, world_size=2, local_rank=1, timeout=None)
    >>> torchrun_ranks({}) is None
    True
    """
    environ = os.environ if environ is None else environ
    if not any(name in environ for name in _TORCHRUN):
        return None
    missing = [name for name in _TORCHRUN if name not in environ]
    if missing:
        raise DistributedError(f"torchrun's environment is incomplete: {', '.join(missing)} not set "
                               f"(have {', '.join(n for n in _TORCHRUN if n in environ)}). Start the "
                               "program with torchrun, which sets all of them.")
    rank, world, local = (int(environ[name]) for name in _TORCHRUN)
    if not 0 <= rank < world:
        raise DistributedError(f"RANK={rank} is not in 0..WORLD_SIZE-1 = 0..{world - 1}")
    return Ranks(rank, world, local)


def current_ranks() -> Ranks:
    """This process's place in the group it joined; ``Ranks()`` (rank 0 of 1) when it joined none."""
    if not (dist.is_available() and dist.is_initialized()):
        return Ranks()
    return Ranks(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))


def rank_device(device: str | torch.device, local_rank: int) -> torch.device:
    """Each rank on its own GPU: ``"auto"`` or ``"cuda"`` becomes ``cuda:LOCAL_RANK``.

    >>> rank_device("cpu", 1)
    device(type='cpu')
    """
    device = resolve_device(device)
    if device.type == "cuda" and device.index is None:
        return torch.device("cuda", local_rank)
    return device


@contextmanager
def process_group(device: str | torch.device = "auto", timeout: float = DEFAULT_TIMEOUT, *,
                  ranks: Ranks | None = None, init_method: str = "env://") -> Iterator[Ranks]:
    """Join the group (gloo on a CPU, NCCL on GPUs) for the block; leave it at the end.

    ``ranks`` defaults to what torchrun set (:func:`torchrun_ranks`); ``init_method`` to the
    ``MASTER_ADDR:MASTER_PORT`` torchrun set too (``"tcp://127.0.0.1:PORT"`` names one directly).
    ``timeout`` bounds every wait for the other ranks: joining, and each collective after.
    """
    check_number(timeout, "timeout", low=0, low_open=True, owner="process_group")
    if not dist.is_available():
        raise DistributedError("this torch build has no torch.distributed: data parallelism needs it")
    if dist.is_initialized():
        raise DistributedError("a process group is already set up in this process: one run, one group")
    ranks = ranks or torchrun_ranks()
    if ranks is None:
        raise DistributedError("no process group to join: start the program with torchrun, e.g. "
                               "torchrun --standalone --nproc_per_node=2 -m cnnlstm_edu train --ddp ...")
    device = rank_device(device, ranks.local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)            # NCCL talks to the GPU that is current
    with collective_errors(ranks, "joining the process group"):
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=init_method,
                                rank=ranks.rank, world_size=ranks.world_size,
                                timeout=datetime.timedelta(seconds=timeout))
    try:
        yield Ranks(ranks.rank, ranks.world_size, ranks.local_rank, float(timeout))
    finally:
        dist.destroy_process_group()


@contextmanager
def collective_errors(ranks: Ranks, doing: str) -> Iterator[None]:
    """Turn the backend's error when the other ranks vanish into one that says what happened.

    gloo reports a dead peer at once ("Connection closed by peer"); a peer that hangs is reported
    after the timeout. Either way this rank can't go on alone, and waiting would be forever.
    """
    try:
        yield
    except DistributedError:
        raise
    except RuntimeError as e:     # gloo, NCCL and the store all raise RuntimeError subclasses
        text = str(e)
        if not isinstance(e, getattr(dist, "DistError", ())) and not any(
                word in text.lower() for word in ("gloo", "nccl", "connection", "timed out", "timeout",
                                                  "socket", "store", "peer")):
            raise                 # the model's own error, not the group's
        first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
        raise DistributedError(
            f"rank {ranks.rank} of {ranks.world_size} lost the other ranks while {doing}: {first[:300]}. "
            f"Another rank most likely died (its own error is printed above) or did not answer within "
            f"the timeout{'' if ranks.timeout is None else f' of {ranks.timeout:g} s'}; this rank stops too, and nothing is saved.") from e


def shard(idx: torch.Tensor, rank: int, world_size: int) -> tuple[torch.Tensor, float]:
    """This rank's slice of the global batch ``idx``, and the weight of its loss.

    The slices are contiguous and differ in length by at most one. Each rank's loss is a mean
    over its own slice, and DDP *averages* the ranks' gradients; when the slices are unequal,
    that average would weigh the samples of the shorter slice more. Scaling each rank's loss by
    ``len(slice) * world_size / len(idx)`` makes the average exactly the gradient of the mean
    over the whole batch, as one process computes it. A rank left without a sample (a last batch
    smaller than the number of ranks) still takes part in the step, on one sample weighted 0.

    >>> shard(torch.arange(5), rank=0, world_size=2)
    (tensor([0, 1, 2]), 1.2)
    >>> shard(torch.arange(1), rank=1, world_size=2)
    (tensor([0]), 0.0)
    """
    part = idx.tensor_split(world_size)[rank]
    if len(part) == 0:
        return idx[:1], 0.0
    return part, len(part) * world_size / len(idx)


def agree(values: list[float], ranks: Ranks, device: torch.device, doing: str = "agreeing") -> list[float]:
    """The largest of each value over the ranks (one small all-reduce); as given on a lone process.

    ``fit`` agrees after every step on its clock (so the time budget, and the learning rate laid
    over it, are the same on every rank) and on whether anyone asked to stop.
    """
    if ranks.world_size == 1:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    with collective_errors(ranks, doing):
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t.tolist()


def reduce_sum(t: torch.Tensor, ranks: Ranks, doing: str = "adding up the metrics") -> torch.Tensor:
    """``t`` summed over the ranks, in place (running sums of loss, right answers, samples)."""
    if ranks.world_size > 1:
        with collective_errors(ranks, doing):
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def from_rank_zero(value: float, ranks: Ranks, device: torch.device, doing: str = "broadcasting") -> float:
    """Rank 0's ``value`` on every rank: one decision (the curriculum's plateau test) for all."""
    if ranks.world_size == 1:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    with collective_errors(ranks, doing):
        dist.broadcast(t, src=0)
    return t.item()


def broadcast_buffers(model: torch.nn.Module, ranks: Ranks) -> None:
    """Rank 0's buffers (BatchNorm's running statistics) on every rank.

    Without SyncBatchNorm each rank's running statistics follow its own shards, so before the
    model is measured, every rank takes rank 0's: all ranks then hold the same model.
    """
    if ranks.world_size == 1:
        return
    with collective_errors(ranks, "sharing the buffers"):
        for buffer in model.buffers():
            dist.broadcast(buffer.data, src=0)


@contextmanager
def rank_zero_first(ranks: Ranks | None = None) -> Iterator[None]:
    """Rank 0 runs the block, then the others do: the first fills a cache, the rest read it.

    Loading a folder of videos decodes every clip and keeps the result in a cache beside the data
    (``data.video_folder``). N ranks decoding at once would do the work N times and race to write
    the same file; with this, rank 0 decodes and writes, and the others find the cache done.
    On a lone process it simply runs the block.
    """
    ranks = ranks or current_ranks()
    if ranks.world_size > 1 and not ranks.main:
        with collective_errors(ranks, "waiting for rank 0 to load the data"):
            dist.barrier()
    yield
    # Not in a `finally`: if rank 0 fails, the others must not go on to load; they see it leave.
    if ranks.world_size > 1 and ranks.main:
        with collective_errors(ranks, "telling the other ranks the data is ready"):
            dist.barrier()

"""How ``fit`` runs one step alone, or as one rank of N under DistributedDataParallel.

Data parallelism in one paragraph: N processes (ranks) hold the same model. Each step, every rank
takes its shard of the same global batch, computes its loss and gradients, and DDP *averages*
the gradients over the ranks while the backward pass is still running (an all-reduce per bucket
of gradients). Every rank then holds the same averaged gradient, takes the same optimizer step,
and the models stay identical without ever being copied again. With the loss weights of
:func:`~cnnlstm_edu.train.distributed.shard`, that average is the gradient of the whole batch:
N ranks take exactly the steps one process takes, each doing 1/N of the work.

``fit`` asks a :class:`Solo` or a :class:`Replicas` for the step's loss and for the few things
ranks must agree on; on a lone process these are plain calls and cost nothing.
"""

from __future__ import annotations

import torch
from torch import nn

from . import distributed
from .distributed import Ranks

__all__ = ["Replicas", "Solo", "StepLoss", "data_parallel"]


class StepLoss(nn.Module):
    """The model and its objective's loss as one module, so that DDP sees the whole step.

    DDP must see every forward pass whose gradients it averages. An objective may call more
    than ``model(x)``: the tracker's scheduled sampling calls ``model.rollout``, next-frame
    models roll out step by step. Wrapping the objective's *loss* makes any objective run under
    DDP unchanged.
    """

    def __init__(self, model: nn.Module, objective) -> None:
        super().__init__()
        self.model, self.objective = model, objective

    def forward(self, x, y, unroll=None, sampling_p=0.0, generator=None):
        return self.objective.loss(self.model, x, y, unroll=unroll, sampling_p=sampling_p, generator=generator)


class Solo:
    """One process: the whole batch, the plain loss, nothing to agree on."""

    ranks = Ranks()

    def __init__(self, model: nn.Module, objective) -> None:
        self.step_loss = StepLoss(model, objective)

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        return idx, 1.0

    def loss(self, x, y, **kw):
        return self.step_loss(x, y, **kw)

    def backward(self, loss: torch.Tensor) -> None:
        loss.backward()

    def agree(self, seconds: float, stop: bool) -> tuple[float, bool]:
        return seconds, stop

    def reduce(self, sums: torch.Tensor) -> torch.Tensor:
        return sums

    def from_rank_zero(self, value: float) -> float:
        return value

    def sync_buffers(self) -> None:
        pass

    def close(self) -> None:
        pass


class Replicas(Solo):
    """One rank of N: its shard of each batch, DDP's averaged gradients, agreement with the others.

    ``find_unused_parameters`` is switched on under an unroll curriculum: a ConvLSTM or LSTM
    that reads one step from a zero state never uses its recurrent weights (``weight_hh_l0``),
    and DDP, which waits for every parameter's gradient before it finishes the all-reduce, would
    otherwise stop with "Expected to have finished reduction in the prior iteration".
    """

    def __init__(self, model: nn.Module, objective, device: torch.device, ranks: Ranks,
                 find_unused_parameters: bool) -> None:
        from torch.nn.parallel import DistributedDataParallel

        self.ranks, self.device, self.model = ranks, device, model
        self.step_loss = StepLoss(model, objective)
        with distributed.collective_errors(ranks, "copying rank 0's weights to every rank"):
            # DDP starts by broadcasting rank 0's parameters and buffers: every rank starts equal.
            self.ddp = DistributedDataParallel(
                self.step_loss, device_ids=[device.index] if device.type == "cuda" else None,
                find_unused_parameters=find_unused_parameters)

    def shard(self, idx: torch.Tensor) -> tuple[torch.Tensor, float]:
        return distributed.shard(idx, self.ranks.rank, self.ranks.world_size)

    def loss(self, x, y, **kw):
        with distributed.collective_errors(self.ranks, "sharing the buffers before the step"):
            return self.ddp(x, y, **kw)

    def backward(self, loss: torch.Tensor) -> None:
        with distributed.collective_errors(self.ranks, "averaging the gradients"):
            loss.backward()

    def agree(self, seconds: float, stop: bool) -> tuple[float, bool]:
        # The slowest rank's clock, so the time budget and the learning rate laid over it are the
        # same on every rank; and a stop asked on any rank stops them all at this step.
        seconds, stop = distributed.agree([seconds, float(stop)], self.ranks, self.device,
                                          "agreeing on the clock and on stopping")
        return seconds, bool(stop)

    def reduce(self, sums: torch.Tensor) -> torch.Tensor:
        return distributed.reduce_sum(sums, self.ranks)

    def from_rank_zero(self, value: float) -> float:
        return distributed.from_rank_zero(value, self.ranks, self.device, "sharing the plateau test")

    def sync_buffers(self) -> None:
        distributed.broadcast_buffers(self.model, self.ranks)

    def close(self) -> None:
        del self.ddp                 # removes DDP's gradient hooks from the model's parameters


def data_parallel(model: nn.Module, objective, device: torch.device, ddp: bool,
                  find_unused_parameters: bool) -> Solo:
    """A :class:`Replicas` when ``ddp`` (in a process group of any size), else a :class:`Solo`."""
    if not ddp:
        return Solo(model, objective)
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        raise ValueError("fit(ddp=True) runs as one rank of a process group, and this process has "
                         "joined none: start it with torchrun and wrap the run in "
                         "train.distributed.process_group(), or use train.local.fit_in_processes")
    return Replicas(model, objective, device, distributed.current_ranks(), find_unused_parameters)

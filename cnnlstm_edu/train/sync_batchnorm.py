"""SyncBatchNorm: BatchNorm whose batch statistics are those of the *global* batch, over all ranks.

In training, BatchNorm normalises each channel with the mean and variance of the batch it is
given. Under data parallelism each rank is given only its shard, so plain BatchNorm normalises
with the statistics of B/N samples, not B: the model computes something slightly different from
the one-process model (noisier statistics; with tiny shards, much noisier), and each rank's
running statistics drift apart. SyncBatchNorm adds up the per-channel sums over the ranks before
normalising, so every rank uses the statistics of the whole batch: the step is exactly the
one-process step, at the price of two small all-reduces per BatchNorm layer per forward pass.

``torch.nn.SyncBatchNorm`` does this on GPUs only. :class:`SyncBatchNorm` is the same arithmetic
in plain torch (any device, any backend, so gloo on CPUs too), written out to be read; on a
GPU :func:`synced_batchnorm` uses torch's own, which is fused and faster.

>>> bn = torch.nn.BatchNorm2d(3)
>>> x = torch.randn(4, 3, 5, 5)
>>> torch.allclose(SyncBatchNorm.like(bn)(x), bn(x), atol=1e-5)   # one process: plain BatchNorm
True
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.distributed as dist
from torch import nn
from torch.nn import functional as F

__all__ = ["SyncBatchNorm", "synced_batchnorm"]


class _AllReduceSum(torch.autograd.Function):
    """``y = sum over ranks of x``; the gradient of a sum reaches every term, so the backward
    pass sums the ranks' gradients the same way."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        y = x.clone()
        dist.all_reduce(y)
        return y

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        dist.all_reduce(grad)
        return grad


def _grouped() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


class SyncBatchNorm(nn.modules.batchnorm._BatchNorm):
    """BatchNorm over 2-D, 3-D or 4-D feature maps ``(N, C, ...)`` with global batch statistics.

    Shaped and named like ``nn.BatchNorm2d`` (``weight``, ``bias``, ``running_mean``, ...), so a
    checkpoint does not see the difference. In eval mode, or alone, it is plain BatchNorm.
    """

    @classmethod
    def like(cls, bn: nn.modules.batchnorm._BatchNorm) -> SyncBatchNorm:
        """A SyncBatchNorm sharing ``bn``'s parameters and buffers (the same tensors, not copies)."""
        return _sharing(cls, bn)

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"SyncBatchNorm: expected (N, C, ...) with C={self.num_features}, got {tuple(x.shape)}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self._check_input_dim(x)
        if not (self.training and _grouped()):
            return super().forward(x)
        C = x.shape[1]
        dims = [0, *range(2, x.dim())]                   # every axis but the channels
        shape = (1, C) + (1,) * (x.dim() - 2)            # (1, C, 1, ...): broadcasts over them
        xf = x.float()
        count = torch.tensor([x.numel() / C], device=x.device, dtype=xf.dtype)
        # Two passes, as one process would: the global mean first, then the squared deviations.
        first = _AllReduceSum.apply(torch.cat([xf.sum(dims), count]))          # (C + 1,)
        n = first[C]
        mean = first[:C] / n                                                    # (C,)
        var = _AllReduceSum.apply(((xf - mean.view(shape)) ** 2).sum(dims)) / n  # (C,), biased
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                m = self.momentum if self.momentum is not None else 1 / float(self.num_batches_tracked)
                self.running_mean.mul_(1 - m).add_(m * mean)
                self.running_var.mul_(1 - m).add_(m * var * n / (n - 1))       # unbiased, as BatchNorm keeps
        y = (xf - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)   # (N, C, ...)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(x.dtype)


def _sharing(cls, bn: nn.modules.batchnorm._BatchNorm) -> nn.Module:
    """A ``cls`` (a synchronised BatchNorm) holding ``bn``'s very tensors: what it learns, ``bn`` has."""
    sync = cls(bn.num_features, bn.eps, bn.momentum, bn.affine, bn.track_running_stats)
    sync.weight, sync.bias = bn.weight, bn.bias
    sync.running_mean, sync.running_var = bn.running_mean, bn.running_var
    sync.num_batches_tracked = bn.num_batches_tracked
    return sync.train(bn.training)


def _batchnorms(model: nn.Module) -> list[tuple[nn.Module, str, nn.Module]]:
    return [(parent, name, child) for parent in model.modules() for name, child in parent.named_children()
            if isinstance(child, nn.modules.batchnorm._BatchNorm)]


@contextmanager
def synced_batchnorm(model: nn.Module, device: torch.device) -> Iterator[int]:
    """Within the block, every BatchNorm of ``model`` is synchronised over the ranks; yields how many.

    The synchronised layers share the originals' weights and running statistics, so what they
    learn stays in ``model``; at the end the original layers are put back, and the model is
    the plain model it was (a checkpoint, ``predict`` and the app need nothing new).
    """
    swapped = _batchnorms(model)
    for parent, name, bn in swapped:
        setattr(parent, name, _sharing(nn.SyncBatchNorm if device.type == "cuda" else SyncBatchNorm, bn))
    try:
        yield len(swapped)
    finally:
        for parent, name, bn in swapped:
            bn.train(getattr(parent, name).training)
            setattr(parent, name, bn)

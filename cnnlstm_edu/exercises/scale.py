"""Lesson 10's exercises (data parallelism): ``shard_indices``, ``average_gradients`` and ``scaled_lr``.

``shard_indices`` is the split that :class:`torch.utils.data.DistributedSampler` makes (no
shuffle): checked against it on every rank, with data sets that do not divide evenly.
``average_gradients`` is what DDP's all-reduce computes, by hand, over shards of unequal size:
checked against the whole batch's gradient, computed by autograd on one tiny model. ``scaled_lr``
is the linear scaling rule (Goyal et al. 2017, "Accurate, Large Minibatch SGD") for a loop that
keeps the batch per rank fixed. None of them starts a process.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DistributedSampler

from .core import Exercise, Wrong, call, describe_value, generator, max_gap, seeded

__all__ = ["EXERCISES", "average_gradients", "scaled_lr", "shard_indices"]


def shard_indices(n: int, rank: int, world_size: int) -> list[int]:
    """The indices of a data set of ``n`` samples that rank ``rank`` of ``world_size`` reads, as DistributedSampler."""
    per_rank = math.ceil(n / world_size)                  # every rank gets as many: they step together
    padded = list(range(n)) * math.ceil(per_rank * world_size / n)    # enough copies to pad from the start
    return padded[:per_rank * world_size][rank::world_size]          # dealt round-robin: rank, rank + W, ...


def average_gradients(grads: list[dict[str, torch.Tensor]], counts: list[int]) -> dict[str, torch.Tensor]:
    """Each rank's gradient of its mean loss and its sample count -> the gradient of the whole batch's mean loss."""
    total = sum(counts)
    # A rank's mean loss is its summed loss / its count: weigh each gradient by its share of the batch.
    return {name: sum(g[name] * (n / total) for g, n in zip(grads, counts)) for name in grads[0]}


def scaled_lr(base_lr: float, base_batch: int, batch_per_rank: int, world_size: int) -> float:
    """The linear scaling rule: the learning rate for ``world_size`` ranks of ``batch_per_rank`` samples each."""
    global_batch = batch_per_rank * world_size            # one optimizer step averages over all of them
    return base_lr * global_batch / base_batch


# ---------------------------------------------------------------- shard_indices

_SHARD_CASES = ((10, 3), (8, 4), (5, 4), (3, 8))  # (n, world_size): uneven, even, short by 3, fewer samples than ranks


def _as_indices(value, case: str) -> list[int]:
    if isinstance(value, torch.Tensor) and value.dim() == 1 and not value.is_floating_point():
        return value.tolist()
    if isinstance(value, (list, tuple, range)) and all(isinstance(i, int) and not isinstance(i, bool) for i in value):
        return list(value)
    raise Wrong(f"On {case} shard_indices should return a list of ints (sample indices), but returned "
                f"{describe_value(value)}.")


def _check_shard(answer) -> str:
    for n, W in _SHARD_CASES:
        got = [_as_indices(call(answer, n, rank, W, case=f"n={n}, rank={rank}, world_size={W}"),
                           f"n={n}, rank={rank}, world_size={W}") for rank in range(W)]
        want = [list(DistributedSampler(range(n), num_replicas=W, rank=rank, shuffle=False)) for rank in range(W)]
        if got != want:
            raise Wrong(_shard_feedback(got, want, n, W))
    return ("Right: every rank reads ceil(n / W) samples, dealt round-robin, and the list is padded with the first "
            "indices so that it divides evenly. Equal lengths matter more than the few repeated samples: every "
            "rank must take the same number of steps, because each step's all-reduce waits for all of them.")


def _shard_feedback(got: list[list[int]], want: list[list[int]], n: int, W: int) -> str:
    case = f"n={n} samples over world_size={W} ranks"
    lengths = [len(g) for g in got]
    if len(set(lengths)) > 1:
        return (f"On {case} your ranks get {lengths} samples: unequal. They would take different numbers of steps, "
                "and at its last step the longer rank's all-reduce would wait for ranks that have already finished, "
                "for ever. DistributedSampler pads the list to a multiple of world_size by repeating its first "
                "indices, so every rank gets ceil(n / world_size).")
    if sum(lengths) < n:
        return (f"On {case} your ranks read {sum(lengths)} samples in all, so {n - sum(lengths)} of the {n} are "
                "never read (that is drop_last=True). By default DistributedSampler keeps them all and pads instead, "
                "repeating the first indices up to ceil(n / world_size) per rank.")
    if sorted(i for g in got for i in g) == sorted(i for g in want for i in g):
        return (f"On {case} rank 0 gets {got[0]}, DistributedSampler gives it {want[0]}: the same samples in all, "
                "dealt differently. It deals them round-robin, rank r taking r, r + W, r + 2W, ... of the padded list, "
                "not one contiguous block per rank.")
    r = next(k for k in range(W) if got[k] != want[k])
    return f"On {case} rank {r} should read {want[r]}, but yours reads {got[r]}."


# ---------------------------------------------------------------- average_gradients

def _rank_gradients(counts: tuple[int, ...], seed: int) -> tuple[list[dict], dict]:
    """Each shard's gradient of its mean loss on one tiny model, and the whole batch's gradient."""
    model = seeded(nn.Linear(3, 2), seed)
    x = torch.randn(sum(counts), 3, generator=generator(seed + 1))
    y = torch.randint(0, 2, (sum(counts),), generator=generator(seed + 2))

    def gradient(xs: torch.Tensor, ys: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.enable_grad():
            loss = F.cross_entropy(model(xs), ys)           # the mean over this shard
            return dict(zip(("weight", "bias"), torch.autograd.grad(loss, (model.weight, model.bias))))

    grads = [gradient(xs, ys) for xs, ys in zip(x.split(list(counts)), y.split(list(counts)))]
    return grads, gradient(x, y)


def _check_average(answer) -> str:
    for seed, counts in enumerate(((3, 1), (4, 2, 5), (2, 2))):
        grads, whole = _rank_gradients(counts, 900 + 10 * seed)
        case = f"{len(counts)} ranks with {', '.join(map(str, counts))} samples"
        got = call(answer, [dict(g) for g in grads], list(counts), case=case)
        if not isinstance(got, dict) or set(got) != set(whole):
            raise Wrong(f"On {case} average_gradients should return a dict with the same names as each rank's, "
                        f"{sorted(whole)}, but returned {describe_value(got)}.")
        if all(isinstance(got[k], torch.Tensor) and got[k].shape == whole[k].shape
               and max_gap(got[k], whole[k]) <= 1e-5 for k in whole):
            continue
        raise Wrong(_average_feedback(got, grads, list(counts), whole, case))
    return ("Right: weighted by each shard's share of the batch, the ranks' gradients average to the whole batch's "
            "gradient. DDP's all-reduce takes a plain mean, so with unequal shards each rank's loss must be "
            "weighted before backward: that is the loss weight cnnlstm_edu.train.distributed.shard returns.")


def _average_feedback(got: dict, grads: list[dict], counts: list[int], whole: dict, case: str) -> str:
    W, total = len(counts), sum(counts)
    slips = [
        (lambda k: sum(g[k] for g in grads) / W,
         "you took the plain mean over the ranks: right when the shards are equal, but here a sample of a small "
         "shard counts more than one of a large shard. Weigh rank r's gradient by counts[r] / sum(counts)"),
        (lambda k: sum(g[k] for g in grads),
         f"you summed the ranks' gradients: that is what an all-reduce with SUM leaves, {W} times too large with "
         f"{W} ranks of equal shards. Average instead, each rank weighted by its share of the batch"),
        (lambda k: sum(g[k] * n for g, n in zip(grads, counts)),
         "you weighted each gradient by its rank's count but did not divide by the batch size: that is the "
         "gradient of the summed loss. Divide by sum(counts)"),
        (lambda k: sum(g[k] * n for g, n in zip(grads, counts)) / W,
         "you weighted each gradient by its count, then divided by the number of ranks: divide by the number "
         "of samples, sum(counts)"),
    ]
    for value, why in slips:
        try:
            if all(max_gap(got[k], value(k)) <= 1e-5 for k in whole):
                return f"On {case}, {why}."
        except (RuntimeError, TypeError, AttributeError):  # a value of another shape or type: not this slip
            continue
    return f"On {case} your average is not the whole batch's gradient (compare the weight: {whole['weight'].tolist()})."


# ---------------------------------------------------------------- scaled_lr

def _check_lr(answer) -> str:
    for base_lr, base_batch, per_rank, W in ((0.1, 256, 64, 8), (3e-3, 32, 32, 2), (0.05, 128, 128, 1)):
        case = f"base_lr={base_lr}, base_batch={base_batch}, batch_per_rank={per_rank}, world_size={W}"
        got = call(answer, base_lr, base_batch, per_rank, W, case=case)
        if isinstance(got, bool) or not isinstance(got, (int, float)):
            raise Wrong(f"On {case} scaled_lr should return the learning rate, a float, but returned "
                        f"{describe_value(got)}" + (" (.item() gives it)." if isinstance(got, torch.Tensor) else "."))
        want = scaled_lr(base_lr, base_batch, per_rank, W)
        if math.isclose(got, want, rel_tol=1e-6):
            continue
        slips = [
            (base_lr * per_rank / base_batch,
             f"you scaled by the batch of one rank: each optimizer step averages the gradients of all {W} ranks, so "
             f"the batch it takes is batch_per_rank x world_size = {per_rank * W}"),
            (base_lr * base_batch / (per_rank * W),
             "your ratio is upside down: a larger batch gives a less noisy gradient and takes a larger step, "
             "lr x (new batch / old batch)"),
            (base_lr * math.sqrt(per_rank * W / base_batch),
             "that is the square-root rule, used with adaptive optimizers; this exercise asks for the linear rule "
             "that Goyal et al. found for SGD: lr x (new batch / old batch)"),
            (float(per_rank * W), "that is the effective batch size; return the learning rate for it"),
        ]
        for value, why in slips:
            if math.isclose(got, value, rel_tol=1e-6):
                raise Wrong(f"On {case} you gave {got:g}, not {want:g}: {why}.")
        raise Wrong(f"On {case} the linear scaling rule gives {want:g}; yours gives {got:g}.")
    return ("Right: with the batch per rank fixed, W ranks make the effective batch W times larger, and the linear "
            "rule makes the learning rate W times larger with it (Goyal et al. also warm it up over the first "
            "epochs). This course's fit(..., ddp=True) avoids the question: it shards one global batch, so the "
            "batch and the learning rate stay those of the one-process run.")


_SHARD_SKELETON = '''\
def shard_indices(n, rank, world_size):
    """The indices (a list of ints) of a data set of n samples that rank `rank` of `world_size` reads,
    as torch.utils.data.DistributedSampler(range(n), world_size, rank, shuffle=False) gives them:
    every rank the same number of samples, so that all ranks take the same number of steps."""
    ...  # your code here'''

_AVERAGE_SKELETON = '''\
def average_gradients(grads, counts):
    """grads[r] is rank r's gradients, a dict {name: tensor}, of the MEAN loss over its own shard;
    counts[r] is how many samples that shard had (the shards may differ in size).
    Return {name: tensor}: the gradient of the mean loss over the whole batch."""
    ...  # your code here'''

_LR_SKELETON = '''\
def scaled_lr(base_lr, base_batch, batch_per_rank, world_size):
    """A run tuned with learning rate base_lr at batch size base_batch moves to world_size ranks,
    each with batch_per_rank samples per step. Return the learning rate by the linear scaling rule."""
    ...  # your code here'''

EXERCISES = (
    Exercise(
        name="shard_indices", lesson=10,
        title="Split a data set over the ranks as DistributedSampler does: equal shares, padded, dealt round-robin.",
        skeleton=_SHARD_SKELETON,
        hint="Each rank gets ceil(n / world_size) samples. Repeat list(range(n)) until it is at least "
             "world_size times that long, cut it there, and take every world_size-th index starting at rank.",
        reference=shard_indices, grade=_check_shard),
    Exercise(
        name="average_gradients", lesson=10,
        title="Average the ranks' gradients by hand, as an all-reduce would, into the whole batch's gradient.",
        skeleton=_AVERAGE_SKELETON,
        hint="A shard's mean loss is its summed loss / its count. The whole batch's mean loss is the summed loss "
             "of all shards / sum(counts): weigh rank r's gradient by counts[r] / sum(counts).",
        reference=average_gradients, grade=_check_average),
    Exercise(
        name="scaled_lr", lesson=10,
        title="Scale the learning rate with the effective batch size (the linear scaling rule).",
        skeleton=_LR_SKELETON,
        hint="The effective batch is batch_per_rank x world_size; the linear rule multiplies base_lr by "
             "effective batch / base_batch.",
        reference=scaled_lr, grade=_check_lr),
)

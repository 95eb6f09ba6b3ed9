"""fit(): the training loop as a generator of events, with seed 003's training tricks as options.

The loop is written once and watched three ways: the CLI prints its events under a progress
bar, the notebooks plot them, the app streams them to the browser. Because ``fit`` *yields*,
the caller decides when to stop: close the generator, or pass ``stop=`` (a
``threading.Event`` or any callable returning True), and ``fit`` ends after the current step
with the model as trained so far.

What makes it fast on small data (pytorch/examples' MNIST loop, minus the DataLoader):

- the whole data set lives as tensors on the training device, so a batch is one index, no
  worker processes, no host-to-device copy per step;
- a one-cycle learning rate (Smith 2018: warm up, then anneal to ~0) with AdamW; with a
  ``time_budget`` the cycle is laid over the *time* available rather than a step count, so the
  rate reaches its floor exactly when time runs out, whatever the machine's speed;
- channels-last weights (the layout oneDNN and cuDNN convolutions prefer: 1.3x faster steps
  on a 2-core CPU for the quadrant CNN-LSTM), and bf16 autocast on CUDA; float32 on a CPU.

The tricks of seed 003, each an option a lesson can switch on and off:

- ``recurrent_weight_decay``: weight decay on the recurrent layers' weights only, never on
  their biases or on the CNN (a separate optimizer parameter group, chosen by module type and
  parameter name, and listed in the "start" event);
- ``clip_grad``: clip the global gradient norm; every step event reports the norm *before*
  clipping, so a plot shows the explosions being cut;
- ``curriculum``: Re3's unroll curriculum (:class:`Curriculum`): many short sequences first,
  then at each plateau of the validation loss twice the unroll and half the batch;
- ``sampling``: for models that feed their own output back in (next-frame prediction),
  ``"teacher_forcing"`` always feeds the truth; ``"scheduled"`` feeds the model's own previous
  output with a probability that rises during training (Bengio et al. 2015).

What is computed per batch (the loss) and on the test set (the metrics) comes from an
*objective*: :class:`Classification` by default, ``NextFrameObjective`` for next-frame models.

With ``epochs=`` (and no time budget) a CPU run is reproducible: same seed, same numbers.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from .layers import RECURRENT_TYPES
from .modes import eval_mode

__all__ = ["Event", "Curriculum", "Classification", "fit", "evaluate", "predict", "resolve_device",
           "device_name", "to_float", "parameter_groups"]


@dataclass
class Event:
    """One thing that happened in training.

    ``kind`` is "start", "step" (every ``log_every`` steps), "eval" (test metrics after an
    epoch), "curriculum" (the unroll just doubled) or "end" (final test metrics).
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
        return {k: v for k, v in asdict(self).items() if not (isinstance(v, float) and math.isnan(v))}


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


def parameter_groups(model: nn.Module, weight_decay: float = 0.0,
                     recurrent_weight_decay: float = 0.0) -> list[dict]:
    """Optimizer parameter groups: recurrent layers' weights apart from everything else.

    A parameter is a *recurrent weight* when it belongs directly to an LSTM/GRU/RNN/ConvLSTM
    module (or cell) and its name starts with ``weight``: ``weight_ih_l0``, ``weight_hh_l0``,
    peephole weights. Biases and the CNN's weights go to the other group.

    >>> from cnnlstm_edu.models import build_model
    >>> groups = parameter_groups(build_model("cnn_lstm"), recurrent_weight_decay=1e-3)
    >>> [(g["name"], g["weight_decay"], g["names"]) for g in groups][0]
    ('recurrent weights', 0.001, ['lstm.weight_ih_l0', 'lstm.weight_hh_l0'])
    """
    recurrent: dict[int, str] = {}
    for module_name, module in model.named_modules():
        if isinstance(module, RECURRENT_TYPES):
            for name, p in module.named_parameters(recurse=False):
                if name.startswith("weight"):
                    recurrent[id(p)] = f"{module_name}.{name}" if module_name else name
    rec, other = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (rec if id(p) in recurrent else other).append((name, p))
    groups = [
        {"name": "recurrent weights", "weight_decay": recurrent_weight_decay, "names": [n for n, _ in rec],
         "params": [p for _, p in rec]},
        {"name": "everything else", "weight_decay": weight_decay, "names": [n for n, _ in other],
         "params": [p for _, p in other]},
    ]
    return [g for g in groups if g["params"]]


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``"auto"`` means CUDA when there is a GPU, else the CPU.

    >>> resolve_device("cpu")
    device(type='cpu')
    """
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no GPU here; use 'cpu' or 'auto'")
    return device


def device_name(device: torch.device) -> str:
    """A name for people: ``"cpu"`` or ``"cuda (NVIDIA H100 80GB HBM3)"``."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def to_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 pixels 0..255 -> float32 in [0, 1]; float input is returned as float32.

    >>> to_float(torch.tensor([0, 255], dtype=torch.uint8))
    tensor([0., 1.])
    """
    if images.dtype == torch.uint8:
        return images.float().div_(255)
    return images.float()


def _autocast(device: torch.device):
    # bf16 autocast roughly doubles matmul/conv throughput on recent GPUs and needs no loss
    # scaling; on a CPU it is slower than float32 for models this small, so it stays off.
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 1000) -> tuple[float, float]:
    """Mean cross-entropy and accuracy of a classifier on ``(x, y)``, in eval mode, on the
    model's device (:func:`predict`'s logits); the model's train/eval mode is restored.

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> loss, acc = evaluate(CNNLSTM(), torch.rand(6, 4, 1, 14, 14), torch.randint(0, 10, (6,)))
    >>> 0.0 <= acc <= 1.0 and loss > 0
    True
    """
    logits = predict(model, x, batch_size, logits=True)          # (N, classes), on the CPU
    y = y.cpu()
    return F.cross_entropy(logits, y).item(), (logits.argmax(-1) == y).float().mean().item()


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int = 1000, all_steps: bool = False,
            logits: bool = False) -> torch.Tensor:
    """What a classifier says about every sequence of ``x`` ``(N, T, C, H, W)``, on the CPU.

    Predicted classes ``(N,)``; with ``all_steps=True`` the class after every step ``(N, T)``
    (the model must accept ``all_steps``, as ``CNNLSTM`` and ``CNNConvLSTM`` do); with
    ``logits=True`` float logits ``(N, classes)`` or ``(N, T, classes)`` instead of classes.
    Runs in eval mode on the model's device, in batches; the model's mode is restored.

    The accuracy after 1, 2, ..., T frames is then one line:

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> model = CNNLSTM()
    >>> x, y = torch.rand(6, 4, 1, 14, 14), torch.randint(0, 10, (6,))
    >>> predict(model, x).shape, predict(model, x, all_steps=True).shape   # (N,), (N, T)
    (torch.Size([6]), torch.Size([6, 4]))
    >>> (predict(model, x, all_steps=True) == y[:, None]).float().mean(0).shape   # (T,)
    torch.Size([4])
    """
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = []
    try:
        for i in range(0, len(x), batch_size):
            xb = to_float(x[i:i + batch_size].to(device, non_blocking=True))
            with _autocast(device):
                z = (model(xb, all_steps=True) if all_steps else model(xb)).float()  # (b, [T,] classes)
            out.append((z if logits else z.argmax(-1)).cpu())
    finally:
        model.train(was_training)
    return torch.cat(out)


class Classification:
    """Cross-entropy on the last step's logits; a sequence label per clip.

    With an unroll curriculum the model reads only the first ``unroll`` steps of each clip
    and must already name its label: for MNIST quadrants, the digit from its first quarters.
    """

    name = "classification"
    feeds_back_output = False        # scheduled sampling makes no sense for it

    def loss(self, model, x, y, *, unroll=None, sampling_p=0.0, generator=None):
        if unroll is not None:
            x = x[:, :unroll]                                   # (b, unroll, C, H, W)
        logits = model(x)                                       # (b, classes)
        loss = F.cross_entropy(logits.float(), y)
        return loss, (logits.detach().argmax(-1) == y).sum()

    def evaluate(self, model, x, y, device) -> dict:
        loss, acc = evaluate(model, x, y)
        return {"test_loss": loss, "test_acc": acc}

    def validation_loss(self, model, x, y, device, unroll=None) -> float:
        # Held out, so measured as deployed: no dropout noise, and BatchNorm's running
        # statistics don't learn from the slice the plateau test needs unseen.
        with eval_mode(model), torch.no_grad(), _autocast(device):
            logits = model(to_float(x[:, :unroll] if unroll else x).to(device))
            return F.cross_entropy(logits.float(), y.to(device)).item()


def _check_data(data, what: str, model: nn.Module, objective) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``data`` as ``(x, y)`` tensors of one non-zero length; class labels as int64 in range."""
    if not isinstance(data, (tuple, list)) or len(data) != 2:
        raise TypeError(f"{what}: expected a pair (x, y) of tensors, got {type(data).__name__}")
    x, y = data
    if not isinstance(x, torch.Tensor) or not (y is None or isinstance(y, torch.Tensor)):
        raise TypeError(f"{what}: expected (x, y) as torch tensors (y may be None for a next-frame "
                        f"model), got ({type(x).__name__}, {type(y).__name__})")
    if len(x) == 0 or y is not None and len(x) != len(y):
        raise ValueError(f"{what}: x and y must have the same, non-zero length; got {len(x)} "
                         f"and {None if y is None else len(y)}")
    if isinstance(objective, Classification):
        if y is None or y.dtype not in (torch.int64, torch.int32, torch.uint8) or y.dim() != 1:
            raise TypeError(f"{what}: a classifier needs class labels y of shape (N,) = ({len(x)},), as "
                            f"int64, got {None if y is None else (y.dtype, tuple(y.shape))}. "
                            "Labels from load_mnist are already int64; y.long() converts others.")
        classes = getattr(getattr(model, "config", None), "num_classes", None)
        low, high = int(y.min()), int(y.max())
        if low < 0 or classes is not None and high >= classes:
            raise ValueError(f"{what}: labels run from {low} to {high}, but the model has "
                             f"{classes} classes (0 to {classes - 1 if classes else '?'}). Build the "
                             "model with num_classes large enough, or relabel.")
        y = y.long()                      # cross_entropy wants int64; a no-op when it already is
    return x, y


def _stop_requested(stop) -> bool:
    if stop is None:
        return False
    if isinstance(stop, threading.Event):
        return stop.is_set()
    return bool(stop())


def _check_options(epochs, time_budget, batch_size, lr, warmup, clip_grad, sampling, sampling_max,
                   optimizer, curriculum, objective, steps_in_data):
    if epochs is None and time_budget is None:
        raise ValueError("fit needs epochs=, time_budget= (seconds), or both")
    if epochs is not None and epochs <= 0 or time_budget is not None and time_budget <= 0:
        raise ValueError(f"epochs and time_budget must be positive, got epochs={epochs}, "
                         f"time_budget={time_budget}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1 or lr <= 0 \
            or not 0 <= warmup < 1:
        raise ValueError(f"need batch_size >= 1, lr > 0 and 0 <= warmup < 1; got batch_size="
                         f"{batch_size}, lr={lr}, warmup={warmup}")
    if clip_grad is not None and not clip_grad > 0:
        raise ValueError(f"clip_grad is a maximum gradient norm and must be positive, got {clip_grad}")
    if optimizer not in ("adamw", "sgd"):
        raise ValueError(f"optimizer must be 'adamw' or 'sgd', got {optimizer!r}")
    if sampling not in (None, "teacher_forcing", "scheduled"):
        raise ValueError(f"sampling must be None, 'teacher_forcing' or 'scheduled', got {sampling!r}")
    if sampling is not None and not objective.feeds_back_output:
        raise ValueError(
            f"sampling={sampling!r} needs a model that feeds its own previous output back in as "
            f"its next input (next-frame prediction); a {objective.name} model outputs one label "
            "per sequence, so there is nothing to feed back. Leave sampling=None."
        )
    if not 0 <= sampling_max <= 1:
        raise ValueError(f"sampling_max is a probability, got {sampling_max}")
    if curriculum is not None:
        if not 1 <= curriculum.start_unroll < steps_in_data:
            raise ValueError(
                f"curriculum.start_unroll must be at least 1 and shorter than the sequences "
                f"(T={steps_in_data}), got {curriculum.start_unroll}: a curriculum starts short "
                "and grows to the full length."
            )
        if curriculum.patience < 1 or curriculum.check_every < 1 or curriculum.val_size < 1:
            raise ValueError(f"curriculum: patience, check_every and val_size must be >= 1, got {curriculum}")


def fit(model: nn.Module, train: tuple[torch.Tensor, torch.Tensor | None],
        test: tuple[torch.Tensor, torch.Tensor | None] | None = None, *,
        epochs: float | None = None, time_budget: float | None = None,
        batch_size: int = 128, lr: float = 4e-3, weight_decay: float = 0.0,
        recurrent_weight_decay: float = 0.0, clip_grad: float | None = None,
        optimizer: str = "adamw", warmup: float = 0.2, curriculum: Curriculum | None = None,
        sampling: str | None = None, sampling_max: float = 0.5, objective=None,
        device: str | torch.device = "auto", seed: int = 0, log_every: int = 10,
        eval_every_epoch: bool = True,
        stop: threading.Event | Callable[[], bool] | None = None) -> Iterator[Event]:
    """Train ``model`` on ``train = (x, y)``; yield :class:`Event` s.

    Give ``epochs`` (may be fractional), ``time_budget`` in seconds, or both (whichever ends
    first; the learning-rate cycle follows the time budget when one is given). ``x`` may be
    uint8 (scaled to [0, 1] here) or float; ``y`` may be ``None`` for objectives that need no
    labels. The model is moved to the device and trained in place; the last event has kind
    "end" and the final test metrics.

    >>> from cnnlstm_edu.models.cnn_lstm import CNNLSTM
    >>> x, y = torch.rand(64, 4, 1, 14, 14), torch.randint(0, 10, (64,))
    >>> events = list(fit(CNNLSTM(), (x, y), (x, y), epochs=1, batch_size=32, device="cpu"))
    >>> [e.kind for e in events]
    ['start', 'step', 'end']
    >>> events[-1].step, events[-1].epoch
    (2, 1.0)
    """
    objective = objective or Classification()
    x_train, y_train = _check_data(train, "train", model, objective)
    if test is not None:
        _check_data(test, "test", model, objective)
    T = x_train.shape[1] if x_train.dim() > 1 else 1
    _check_options(epochs, time_budget, batch_size, lr, warmup, clip_grad, sampling, sampling_max,
                   optimizer, curriculum, objective, T)

    device = resolve_device(device)
    name = device_name(device)
    torch.manual_seed(seed)
    shuffle = torch.Generator(device="cpu").manual_seed(seed)
    coins = torch.Generator(device="cpu").manual_seed(seed + 1)   # scheduled-sampling draws

    # The whole data set on the device, once: a batch is then a single index operation.
    x_train = to_float(x_train.to(device))
    y_train = y_train.to(device) if y_train is not None else None
    x_val = y_val = None
    if curriculum is not None:
        # The plateau test needs data the model does not train on: the last val_size sequences.
        k = min(curriculum.val_size, len(x_train) // 5)
        x_train, x_val = x_train[:-k], x_train[-k:]
        if y_train is not None:
            y_train, y_val = y_train[:-k], y_train[-k:]
    model.to(device, memory_format=torch.channels_last)  # reaches only the 4-D conv weights
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True

    groups = parameter_groups(model, weight_decay, recurrent_weight_decay)
    params = [{"params": g["params"], "weight_decay": g["weight_decay"]} for g in groups]
    if optimizer == "sgd":
        opt = torch.optim.SGD(params, lr=lr, momentum=0.9)
    else:
        opt = torch.optim.AdamW(params, lr=lr, **({"fused": True} if device.type == "cuda" else {}))
    all_params = [p for g in groups for p in g["params"]]

    n = len(x_train)
    total_samples = epochs * n if epochs is not None else None
    unroll = curriculum.start_unroll if curriculum else None
    cur_batch = min(batch_size * T // unroll, n) if curriculum else batch_size
    total_steps = math.ceil(total_samples / batch_size) if total_samples and not curriculum else None
    increases, best_val, checks_since_best = 0, math.inf, 0

    def progress(samples: int, seconds: float) -> float:
        """Fraction of training done, 0..1: by the clock when there is a budget, else by samples."""
        by_samples = samples / total_samples if total_samples else 0.0
        return max(seconds / time_budget, by_samples) if time_budget is not None else by_samples

    def lr_at(p: float) -> float:
        # One cycle: linear warm-up to lr, then cosine down to lr/1000.
        p = min(max(p, 0.0), 1.0)
        if p < warmup:
            return lr * (0.04 + 0.96 * p / warmup)
        q = (p - warmup) / (1 - warmup)
        return lr * (1e-3 + (1 - 1e-3) * 0.5 * (1 + math.cos(math.pi * q)))

    def sampling_p_at(p: float) -> float:
        if sampling != "scheduled":
            return 0.0
        if curriculum is not None:                          # Re3: a step up per unroll increase
            return min(sampling_max, curriculum.sampling_step * increases)
        return sampling_max * min(p, 1.0)                   # linear ramp over training

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    def event(kind, **kw):
        return Event(kind, step, epoch, seconds, name, lr=cur_lr, batch_size=cur_batch,
                     unroll=unroll, sampling_p=cur_p, total_steps=total_steps, **kw)

    step, seconds, samples, epoch = 0, 0.0, 0, 0.0
    cur_lr, cur_p = lr_at(0), sampling_p_at(0)
    yield event("start", extra={"objective": objective.name, "optimizer": optimizer, "param_groups": [
        {"name": g["name"], "weight_decay": g["weight_decay"], "parameters": g["names"]} for g in groups]})
    model.train()
    run_loss = torch.zeros((), device=device)
    run_correct = torch.zeros((), device=device)
    run_norm_max = torch.zeros((), device=device)
    run_seen, done, epoch_i = 0, False, 0
    while not done:
        order = torch.randperm(n, generator=shuffle).to(device)
        pos = 0
        while pos < n:
            if _stop_requested(stop):                        # asked while we were yielding
                done = True
                break
            t0 = time.perf_counter()
            idx = order[pos:pos + cur_batch]
            pos += len(idx)
            xb = x_train[idx]                                # (b, T, C, H, W)
            yb = y_train[idx] if y_train is not None else None
            p = progress(samples, seconds)
            cur_lr, cur_p = lr_at(p), sampling_p_at(p)
            for group in opt.param_groups:
                group["lr"] = cur_lr
            with _autocast(device):
                loss, correct = objective.loss(model, xb, yb, unroll=unroll, sampling_p=cur_p,
                                               generator=coins)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            # clip_grad_norm_ returns the norm *before* clipping; with no limit it only measures.
            norm = torch.nn.utils.clip_grad_norm_(all_params, clip_grad or math.inf)
            opt.step()
            step += 1
            samples += len(idx)
            run_loss += loss.detach() * len(idx)
            run_correct += correct
            run_norm_max = torch.maximum(run_norm_max, norm.detach())
            run_seen += len(idx)
            # A GPU runs behind the Python that queues its work. Waiting for it after every step
            # would leave it idle while the next step is prepared, so the clock waits only every
            # log_every steps and at the end: right at every event, at most that far behind between.
            if step % log_every == 0:
                sync()
            seconds += time.perf_counter() - t0
            epoch = epoch_i + pos / n
            done = (total_samples is not None and samples >= total_samples) or \
                   (time_budget is not None and seconds >= time_budget) or _stop_requested(stop)
            if done and step % log_every:
                t1 = time.perf_counter()
                sync()
                seconds += time.perf_counter() - t1
            if step % log_every == 0 or done:
                acc = run_correct.item() / run_seen if objective.name == "classification" else math.nan
                yield event("step", loss=run_loss.item() / run_seen, accuracy=acc,
                            grad_norm=norm.item(), grad_norm_max=run_norm_max.item())
                run_loss.zero_(), run_correct.zero_(), run_norm_max.zero_()
                run_seen = 0
            if curriculum is not None and not done and step % curriculum.check_every == 0 and unroll < T:
                val = objective.validation_loss(model, x_val, y_val, device, unroll=unroll)
                if val < best_val * (1 - curriculum.min_delta):
                    best_val, checks_since_best = val, 0
                else:
                    checks_since_best += 1
                if checks_since_best >= curriculum.patience:   # a plateau: longer and fewer
                    unroll, cur_batch = min(2 * unroll, T), max(cur_batch // 2, batch_size)
                    increases, best_val, checks_since_best = increases + 1, math.inf, 0
                    cur_p = sampling_p_at(progress(samples, seconds))
                    yield event("curriculum", extra={"val_loss": val})
            if done:
                break
        epoch_i += 1
        if test is not None and eval_every_epoch and not done:
            metrics = objective.evaluate(model, *test, device)
            yield event("eval", test_loss=metrics.get("test_loss", math.nan),
                        test_acc=metrics.get("test_acc", math.nan), extra={"test": metrics})

    metrics = objective.evaluate(model, *test, device) if test is not None else {}
    yield event("end", test_loss=metrics.get("test_loss", math.nan),
                test_acc=metrics.get("test_acc", math.nan),
                extra={"stopped": _stop_requested(stop), "test": metrics})

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
  on a 2-core CPU for the quadrant CNN-LSTM), given to the 4-D weights only
  (:func:`place_model`: 3-D convolutions keep theirs), and bf16 autocast on CUDA; float32 on a CPU.

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
*objective* (:class:`Objective`): :class:`Classification` by default, ``NextFrameObjective``
for next-frame models.

With ``epochs=`` (and no time budget) a CPU run is reproducible: same seed, same numbers.

The pieces, one file each: ``config`` (:class:`TrainConfig`, :class:`Curriculum`), ``events``
(:class:`Event`), ``objectives``, ``schedules`` (:class:`OneCycle`, the curriculum's state),
``optim`` (parameter groups), ``devices``, ``evaluation`` (:func:`evaluate`, :func:`predict`)
and ``loop`` (:func:`fit`).

More than one process (``docs/scale.md``): with ``ddp=True``, ``fit`` runs as one rank of a
process group that torchrun started, each rank on its shard of every global batch, DDP averaging
the gradients: ``distributed`` (joining the group, sharding, agreeing, failing clearly),
``parallel`` (one process or one rank of N), ``sync_batchnorm`` (BatchNorm over the global batch)
and ``local`` (ranks spawned from Python, for lessons and tests). Importing them joins nothing.
"""

from ..pixels import to_float
from .config import Curriculum, TrainConfig
from .devices import device_name, place_model, resolve_device
from .evaluation import evaluate, predict
from .events import Event
from .loop import fit
from .objectives import Classification, Objective, check_pair
from .optim import make_optimizer, parameter_groups
from .schedules import OneCycle, Progress, UnrollSchedule

__all__ = ["Classification", "Curriculum", "Event", "Objective", "OneCycle", "Progress", "TrainConfig",
           "UnrollSchedule", "check_pair", "device_name", "evaluate", "fit", "make_optimizer",
           "parameter_groups", "place_model", "predict", "resolve_device", "to_float"]

"""fit(): events, learning, stopping, reproducibility, bad options."""

import math
import threading

import pytest
import torch

from cnnlstm_edu.data import load_mnist, quadrant_sequences
from cnnlstm_edu.models import CNNLSTM
from cnnlstm_edu.train import evaluate, fit, resolve_device


@pytest.fixture(scope="module")
def small_mnist():
    images, labels = load_mnist("test")
    seqs = quadrant_sequences(images)
    return (seqs[:2000], labels[:2000]), (seqs[2000:3000], labels[2000:3000])


def tiny_model():
    torch.manual_seed(0)
    return CNNLSTM(channels=(8, 16), hidden_size=32)


def test_fit_learns_mnist_quadrants(small_mnist):
    train, test = small_mnist
    model = tiny_model()
    _, before = evaluate(model, *test)
    events = list(fit(model, train, test, epochs=2, batch_size=64, lr=5e-3, device="cpu"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "start" and kinds[-1] == "end" and "eval" in kinds
    end = events[-1]
    assert end.step == 2 * math.ceil(2000 / 64) and end.epoch == pytest.approx(2.0)
    assert before < 0.3 and end.test_acc > 0.6       # chance is 0.1; 64 steps get ~0.8
    steps = [e for e in events if e.kind == "step"]
    assert all(e.loss > 0 and 0 <= e.accuracy <= 1 and e.grad_norm > 0 for e in steps)
    assert steps[-1].loss < steps[0].loss
    # One-cycle: warm-up rises, then the rate anneals to almost nothing.
    lrs = [e.lr for e in steps]
    assert max(lrs) > lrs[0] and lrs[-1] < 0.01 * max(lrs)


def test_fit_is_reproducible_on_cpu(small_mnist):
    train, test = small_mnist
    runs = []
    for _ in range(2):
        model = tiny_model()
        events = list(fit(model, (train[0][:512], train[1][:512]), test, epochs=1, batch_size=64,
                          device="cpu", seed=3))
        runs.append(([e.loss for e in events if e.kind == "step"], events[-1].test_acc,
                     model.lstm.weight_hh_l0.detach().clone()))
    assert runs[0][0] == runs[1][0] and runs[0][1] == runs[1][1]
    assert torch.equal(runs[0][2], runs[1][2])


def _run(small_mnist, seed):
    """Every number a run reports (times aside), and its final weights."""
    train, test = small_mnist
    model = tiny_model()
    events = list(fit(model, (train[0][:384], train[1][:384]), (test[0][:300], test[1][:300]), epochs=1,
                      batch_size=64, device="cpu", seed=seed, log_every=1))
    numbers = [(e.kind, e.step, e.epoch, e.lr, e.loss, e.accuracy, e.grad_norm, e.test_loss, e.test_acc)
               for e in events]
    return numbers, [p.detach().clone() for p in model.parameters()]


def test_same_seed_same_metrics_and_another_seed_differs(small_mnist):
    # Same seed, same CPU: every event's loss, accuracy, gradient norm and test metric agree to
    # the last bit, and so do the weights. A different seed shuffles differently and differs.
    a, weights_a = _run(small_mnist, seed=7)
    b, weights_b = _run(small_mnist, seed=7)
    assert str(a) == str(b)                     # as text: NaN == NaN, and no tolerance
    assert all(torch.equal(x, y) for x, y in zip(weights_a, weights_b))
    c, weights_c = _run(small_mnist, seed=8)
    assert [row[4] for row in c if row[0] == "step"] != [row[4] for row in a if row[0] == "step"]
    assert not all(torch.equal(x, y) for x, y in zip(weights_a, weights_c))


def test_stop_event_ends_training_and_keeps_the_model(small_mnist):
    train, test = small_mnist
    stop = threading.Event()
    model = tiny_model()
    seen = []
    for event in fit(model, train, test, epochs=50, batch_size=32, device="cpu", log_every=1, stop=stop):
        seen.append(event)
        if event.kind == "step" and event.step == 5:
            stop.set()
    assert seen[-1].kind == "end" and seen[-1].step == 5 and seen[-1].extra["stopped"]
    assert not math.isnan(seen[-1].test_acc)


def test_stop_before_the_first_step(small_mnist):
    events = list(fit(tiny_model(), small_mnist[0], epochs=1, device="cpu", stop=lambda: True))
    assert [e.kind for e in events] == ["start", "end"] and events[-1].step == 0


def test_time_budget_stops_on_time(small_mnist):
    train, _ = small_mnist
    events = list(fit(tiny_model(), train, epochs=None, time_budget=0.5, batch_size=32, device="cpu"))
    end = events[-1]
    assert end.kind == "end" and 0.5 <= end.seconds < 5 and end.step > 0
    assert math.isnan(end.test_acc)                    # no test set given


def test_closing_the_generator_stops_training(small_mnist):
    train, _ = small_mnist
    gen = fit(tiny_model(), train, epochs=10, batch_size=32, device="cpu", log_every=1)
    for event in gen:
        if event.step >= 2:
            break
    gen.close()                                         # no exception, nothing left running


@pytest.mark.parametrize("kwargs,match", [
    ({}, "epochs=, time_budget="),
    ({"epochs": 0}, "epochs must be a finite number above 0"),
    ({"epochs": float("nan")}, "epochs must be a finite number above 0, got nan"),
    ({"time_budget": float("inf")}, "time_budget must be a finite number"),
    ({"epochs": 1, "warmup": 1}, "warmup"),
    ({"epochs": 1, "log_every": 0}, "log_every"),
    ({"epochs": 1, "batch_size": 0}, "batch_size"),
    ({"epochs": 1, "lr": -1}, "lr"),
])
def test_fit_rejects_bad_options(small_mnist, kwargs, match):
    with pytest.raises(ValueError, match=match):
        next(fit(tiny_model(), small_mnist[0], **kwargs))


@pytest.mark.parametrize("data, error, match", [
    ((torch.zeros(4, 4, 1, 14, 14), torch.zeros(4)), TypeError, r"class labels y of shape \(N,\) = \(4,\)"),
    ((torch.zeros(4, 4, 1, 14, 14), torch.full((4,), 10)), ValueError, "labels run from 10 to 10, but the model has 10"),
    ((torch.zeros(4, 4, 1, 14, 14), torch.full((4,), -1)), ValueError, "labels run from -1"),
    (([0.0], [1]), TypeError, r"\(x, y\) as torch tensors"),
    (torch.zeros(4, 4, 1, 14, 14), TypeError, "a pair"),
])
def test_fit_names_what_is_wrong_with_the_data(data, error, match):
    with pytest.raises(error, match=match):
        next(fit(tiny_model(), data, epochs=1, device="cpu"))


def test_fit_rejects_bad_device_and_batch():
    data = (torch.zeros(4, 4, 1, 14, 14), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="device must be"):
        next(fit(tiny_model(), data, epochs=1, device="tpu"))
    with pytest.raises(ValueError, match="batch_size"):
        next(fit(tiny_model(), data, epochs=1, batch_size=2.5, device="cpu"))


def test_fit_rejects_mismatched_data():
    with pytest.raises(ValueError, match="same, non-zero length"):
        next(fit(tiny_model(), (torch.zeros(4, 4, 1, 14, 14), torch.zeros(3, dtype=torch.long)), epochs=1))


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no GPU"):
            resolve_device("cuda")


def test_train_config_is_the_same_run_as_keywords(small_mnist):
    from cnnlstm_edu.train import TrainConfig

    data = (small_mnist[0][0][:256], small_mnist[0][1][:256])
    runs = []
    for how in ({"epochs": 1, "batch_size": 64, "device": "cpu"},
                {"config": TrainConfig(epochs=1, batch_size=64, device="cpu")}):
        events = list(fit(tiny_model(), data, **how))
        runs.append([(e.kind, e.step, e.loss, e.lr) for e in events])
    assert str(runs[0]) == str(runs[1])
    with pytest.raises(TypeError, match="not both"):
        next(fit(tiny_model(), data, config=TrainConfig(epochs=1), lr=0.1))
    with pytest.raises(TypeError, match="unexpected keyword"):
        next(fit(tiny_model(), data, epoch=1))


def test_every_objective_follows_the_protocol():
    from cnnlstm_edu.models import NextFrameObjective
    from cnnlstm_edu.models.tracker import TrackingObjective
    from cnnlstm_edu.train import Classification, Objective

    for objective in (Classification(), NextFrameObjective(), TrackingObjective()):
        assert isinstance(objective, Objective), type(objective).__name__
    assert not isinstance(torch.nn.MSELoss(), Objective)


class _Video3D(torch.nn.Module):
    """A 3-D conv (5-D weight) beside a 2-D one (4-D weight): channels-last fits only the second."""

    def __init__(self):
        super().__init__()
        self.conv3d = torch.nn.Conv3d(1, 4, kernel_size=3, padding=1)
        self.conv2d = torch.nn.Conv2d(4, 4, kernel_size=3, padding=1)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x):                                   # (B, T, C, H, W)
        B, T = x.shape[:2]
        maps = self.conv3d(x.transpose(1, 2)).mean(2)       # (B, 4, H, W): time averaged away
        return self.head(self.conv2d(maps).mean((2, 3)))    # (B, 3)


def test_fit_gives_channels_last_only_to_4d_weights_and_runs_a_conv3d_model():
    # fit asks for channels-last, which torch refuses on a 5-D weight ("required rank 4 tensor").
    torch.manual_seed(0)
    model = _Video3D()
    x, y = torch.rand(16, 4, 1, 8, 8), torch.randint(0, 3, (16,))
    events = list(fit(model, (x, y), (x, y), epochs=1, batch_size=8, device="cpu"))
    assert events[-1].kind == "end" and events[-1].step == 2
    assert model.conv2d.weight.is_contiguous(memory_format=torch.channels_last)
    assert model.conv3d.weight.is_contiguous()              # left in its own layout

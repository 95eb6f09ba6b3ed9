"""Data parallelism (issue 19): 2 ranks on CPU (gloo, loopback) take the steps one process takes.

The proofs need real processes, and each costs a fresh interpreter, so the 2-rank runs are few:
one launch trains three small models (no BatchNorm; SyncBatchNorm; a ConvLSTM under an unroll
curriculum, which leaves a parameter unused) and the tests compare them with one process; one
launch loses a rank on purpose; one runs the CLI under torchrun.
"""

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.distributed as dist
from torch import nn

from cnnlstm_edu.cli import main
from cnnlstm_edu.models import build_model
from cnnlstm_edu.train import Curriculum, TrainConfig, fit
from cnnlstm_edu.train.distributed import DistributedError, Ranks, process_group, shard
from cnnlstm_edu.train.local import fit_in_processes, launch_local
from cnnlstm_edu.train.sync_batchnorm import SyncBatchNorm, synced_batchnorm

OPTIONS = {"epochs": 1, "batch_size": 25, "lr": 1e-2, "device": "cpu", "log_every": 2}   # 100 clips: 4 steps


def _without_batchnorm(model: nn.Module) -> nn.Module:
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            if isinstance(child, nn.BatchNorm2d):
                setattr(parent, name, nn.Identity())
    return model


def _data(n=100, steps=4):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (n, steps, 1, 14, 14), generator=g, dtype=torch.uint8)   # (N, T, C, H, W)
    return x, torch.randint(0, 10, (n,), generator=g)


def _cases():
    """(name, model, fit options): the same model object is copied to every rank and to the one process."""
    torch.manual_seed(0)
    plain = _without_batchnorm(build_model("cnn_lstm", channels=(4, 8), hidden_size=16))
    bn = build_model("cnn_lstm", channels=(4, 8), hidden_size=16)
    convlstm = build_model("cnn_convlstm", channels=(4,), hidden_channels=4)
    # A plateau at the second check (it would need a 50 % better loss): the unroll grows at once.
    curriculum = Curriculum(start_unroll=1, check_every=1, patience=1, min_delta=0.5, val_size=20)
    return [("no_batchnorm", plain, {}), ("sync_batchnorm", bn, {"sync_batchnorm": True}),
            ("curriculum", convlstm, {"sync_batchnorm": True, "curriculum": curriculum, "epochs": 3})]


def _train_cases(data):
    """Run on every rank: each case trained with ddp=True; its final weights and events."""
    out = {}
    for name, model, options in _cases():
        events = list(fit(model, data, config=TrainConfig(ddp=True, **{**OPTIONS, **options})))
        out[name] = {"state": model.state_dict(), "events": [e.to_dict() for e in events]}
    return out


@pytest.fixture(scope="module")
def two_ranks(free_port):
    # The timeout bounds each wait for the other rank, joining included: on a loaded machine a
    # rank may take a minute to import torch. A rank that dies is noticed at once regardless.
    return launch_local(_train_cases, 2, _data(), timeout=300, port=free_port(), deadline=900)


@pytest.fixture(scope="module")
def one_process():
    out = {}
    for name, model, options in _cases():
        options = {k: v for k, v in options.items() if k != "sync_batchnorm"}
        events = list(fit(model, _data(), **{**OPTIONS, **options}))
        out[name] = {"state": model.state_dict(), "events": [e.to_dict() for e in events]}
    return out


@pytest.mark.parametrize("case", ["no_batchnorm", "sync_batchnorm", "curriculum"])
def test_two_ranks_take_the_steps_of_one_process(two_ranks, one_process, case):
    alone = one_process[case]["state"]
    for rank in two_ranks:
        for name, value in rank[case]["state"].items():
            torch.testing.assert_close(value, alone[name], rtol=1e-4, atol=1e-5, msg=f"{case}: {name}")
    # The metrics reported are those of the whole batch, reduced over the ranks.
    losses = [[e["loss"] for e in r[case]["events"] if e["kind"] == "step"] for r in (one_process, *two_ranks)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-4) and losses[1] == losses[2]


@pytest.mark.parametrize("case", ["no_batchnorm", "sync_batchnorm", "curriculum"])
def test_all_ranks_end_with_identical_weights(two_ranks, case):
    first, second = (rank[case]["state"] for rank in two_ranks)
    assert first.keys() == second.keys()
    assert all(torch.equal(first[k], second[k]) for k in first), case


def test_the_curriculum_grew_the_unroll_on_every_rank_at_the_same_step(two_ranks, one_process):
    grown = [[(e["step"], e["unroll"]) for e in r["curriculum"]["events"] if e["kind"] == "curriculum"]
             for r in (one_process, *two_ranks)]
    assert grown[1] and grown[1] == grown[2]


def _dies_at_step_3(data):
    rank, calls = dist.get_rank(), []

    def stop():            # fit asks after every step: rank 1 dies in its third
        calls.append(1)
        if rank == 1 and len(calls) == 3:
            os._exit(3)
        return False

    list(fit(build_model("cnn_lstm", channels=(4,), hidden_size=8), data, ddp=True, stop=stop, **OPTIONS))


def test_a_rank_that_dies_ends_the_run_with_a_clear_message(free_port):
    with pytest.raises(DistributedError) as error:
        launch_local(_dies_at_step_3, 2, _data(), timeout=300, port=free_port(), deadline=900)
    text = str(error.value)
    assert "rank 1: died with exit code 3" in text
    assert "rank 0: DistributedError: rank 0 of 2 lost the other ranks while" in text
    assert "Another rank most likely died" in text


def test_one_rank_in_a_group_of_one_trains_as_one_process(free_port):
    model = build_model("cnn_lstm", channels=(4,), hidden_size=8)
    alone = {k: v.clone() for k, v in model.state_dict().items()}
    with process_group("cpu", 30, ranks=Ranks(0, 1, 0), init_method=f"tcp://127.0.0.1:{free_port()}"):
        events = list(fit(model, _data(), ddp=True, **OPTIONS))
    assert not dist.is_initialized()
    reference = build_model("cnn_lstm", channels=(4,), hidden_size=8)
    reference.load_state_dict(alone)
    list(fit(reference, _data(), **OPTIONS))
    assert events[0].extra["world_size"] == 1
    assert all(torch.equal(v, reference.state_dict()[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("n", range(1, 9))
@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_shards_cover_the_batch_once_and_their_weights_make_the_mean(n, world_size):
    idx = torch.arange(n) * 10
    parts = [shard(idx, rank, world_size) for rank in range(world_size)]
    real = [part for part, weight in parts if weight]
    assert torch.equal(torch.cat(real), idx)
    # Each rank's loss is its shard's mean times its weight; DDP averages over the ranks:
    # sum(weight * shard mean) / world_size must be the mean over the whole batch.
    losses = idx.float() ** 2
    average = sum(w * losses[torch.isin(idx, part)].mean() for part, w in parts if w) / world_size
    assert average.item() == pytest.approx(losses.mean().item())


def test_sync_batchnorm_alone_is_batchnorm_and_goes_back_after_training():
    bn, x = nn.BatchNorm2d(3), torch.randn(6, 3, 5, 5, requires_grad=True)
    reference = nn.BatchNorm2d(3)
    a, b = SyncBatchNorm.like(bn)(x), reference(x)
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(bn.running_var, reference.running_var)   # the shared buffers learned
    model = nn.Sequential(nn.Conv2d(1, 3, 3), nn.BatchNorm2d(3))
    with synced_batchnorm(model, torch.device("cpu")) as swapped:
        assert swapped == 1 and isinstance(model[1], SyncBatchNorm)
    assert type(model[1]) is nn.BatchNorm2d


def test_fit_refuses_ddp_without_a_process_group_and_sync_batchnorm_alone():
    assert not dist.is_initialized()      # importing the package joined nothing
    with pytest.raises(ValueError, match="joined none: start it with torchrun"):
        list(fit(build_model("cnn_lstm", channels=(4,), hidden_size=8), _data(8), ddp=True, epochs=1, device="cpu"))
    with pytest.raises(ValueError, match="sync_batchnorm=True .* Set ddp=True"):
        TrainConfig(epochs=1, sync_batchnorm=True)
    with pytest.raises(TypeError, match="ddp must be True or False"):
        TrainConfig(epochs=1, ddp="yes")


@pytest.mark.parametrize("argv, env, message", [
    (["--ddp"], {}, "--ddp runs as one of several processes started by torchrun"),
    ([], {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0"}, "without --ddp each would train its own model"),
    (["--sync-bn"], {}, "--sync-bn shares BatchNorm's statistics"),
    (["--ddp"], {"RANK": "0"}, "torchrun's environment is incomplete: WORLD_SIZE, LOCAL_RANK not set"),
])
def test_cli_refuses_a_mix_of_torchrun_and_a_plain_run(argv, env, message, monkeypatch, capsys):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["train", "--epochs", "1", *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_under_torchrun_prints_one_json_line_and_rank_0_alone_saves(tmp_path, free_port):
    save = tmp_path / "m.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}",
           "-m", "cnnlstm_edu", "train", "--ddp", "--epochs", "0.02", "--json", "--save", str(save)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["batch_size"] == 128 and result["steps"] == 10
    assert 0.0 <= result["test_acc"] <= 1.0 and result["saved"] == str(save)
    assert proc.stderr.count("training cnn_lstm on cpu") == 1          # rank 0 alone prints
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]   # one file, written whole

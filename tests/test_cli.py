"""The command line, run as a user runs it."""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from cnnlstm_edu import load_checkpoint
from cnnlstm_edu.__main__ import build_parser, main


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "cnnlstm_edu", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_train_prints_one_json_object_last_and_saves(tmp_path):
    path = tmp_path / "model.safetensors"
    proc = run_cli("train", "--model", "cnn_lstm", "--device", "cpu", "--epochs", "0.02",
                   "--batch-size", "128", "--order", "4321", "--save", str(path), "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("test_acc", "train_seconds", "epochs", "device", "steps", "order"):
        assert key in result
    assert result["device"] == "cpu" and result["order"] == "4321" and result["steps"] == 10
    assert result["task"] == "quadrants" and result["chance"] == 0.1   # issue 15's two new keys
    assert 0.1 < result["test_acc"] <= 1.0             # 10 steps: well above chance already
    assert "test accuracy" in proc.stderr               # the human summary goes to stderr
    model, info = load_checkpoint(path)
    assert info["order"] == "4321" and info["test_acc"] == result["test_acc"]


@pytest.mark.parametrize("args,message", [
    (["train", "--order", "1233"], "permutation"),
    (["train", "--epochs", "-1"], "must be a finite number above 0"),
    (["train", "--model", "vgg"], "invalid choice"),
    (["train", "--save", "/no/such/folder/m.safetensors"], "does not exist"),
])
def test_bad_options_give_one_line_not_a_traceback(args, message):
    proc = run_cli(*args)
    assert proc.returncode == 2
    assert message in proc.stderr and "Traceback" not in proc.stderr


def test_parser_defaults():
    args = build_parser().parse_args(["train"])
    assert args.model == "cnn_lstm" and args.order == "1234" and args.device == "auto"



@pytest.mark.parametrize("flag", ["--time-budget", "--epochs", "--lr", "--clip-grad", "--weight-decay",
                                  "--lstm-weight-decay", "--dropout", "--sampling-max"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_non_finite_numbers_are_refused_in_one_line(flag, value, capsys):
    # Issue 13, item 9: NaN trained forever, inf raised an OverflowError or printed "Infinity".
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(["train", f"{flag}={value}"])   # "=": argparse reads "-inf" as a flag
    assert stopped.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and flag in error[0] and "finite number" in error[0] and value in error[0]


def test_a_nan_time_budget_stops_the_command_at_once():
    proc = run_cli("train", "--time-budget", "nan", timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--time-budget: value must be a finite number above 0, got nan" in proc.stderr


def _unwritable_folder(tmp_path):
    folder = tmp_path / "read-only"
    folder.mkdir()
    folder.chmod(0o500)
    if os.access(folder, os.W_OK):                     # root writes anywhere: use a read-only fs
        return "/sys/m.safetensors" if Path("/sys").is_dir() else None
    return str(folder / "m.safetensors")


@pytest.mark.parametrize("where, message", [
    (lambda tmp: "", "empty"),
    (lambda tmp: str(tmp), "is a folder"),
    (lambda tmp: "/proc/x", "cannot write"),
    (_unwritable_folder, "cannot write"),
])
def test_save_path_is_checked_before_training(tmp_path, monkeypatch, capsys, where, message):
    # Issue 13, item 10: these failed (or saved nothing) only after the whole training run.
    import cnnlstm_edu.cli.train as cli

    path = where(tmp_path)
    if path is None:
        pytest.skip("no unwritable folder on this machine")
    monkeypatch.setattr(cli, "load_data", lambda args: pytest.fail("training started"))
    assert main(["train", "--epochs", "0.01", "--save", path]) == 2
    err = capsys.readouterr().err
    assert re.search(message, err) and "--save" in err and len(err.strip().splitlines()) == 1, err
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith("read-only")) == []


def test_ctrl_c_stops_training_reports_and_saves(tmp_path):
    # Issue 13, item 11: Ctrl-C printed a traceback and lost the model.
    path = tmp_path / "model.safetensors"
    # The child starts with Ctrl-C's default action, as from a terminal: an ignored SIGINT is
    # inherited across exec, and the CLI rightly keeps a signal its parent chose to ignore.
    proc = subprocess.Popen([sys.executable, "-m", "cnnlstm_edu", "train", "--device", "cpu", "--epochs", "20",
                             "--batch-size", "32", "--save", str(path), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines, started = [], threading.Event()

    def read_stderr():
        for line in proc.stderr:
            lines.append(line)
            if line.startswith("training"):
                started.set()

    reader = threading.Thread(target=read_stderr, daemon=True)
    reader.start()
    try:
        started.wait(timeout=120)                      # data loaded, the first steps under way
        time.sleep(3)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
        out = proc.stdout.read()                       # a few lines: the pipe never filled
    finally:
        proc.kill()
    reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert "stopped" in err and "test accuracy" in err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["stopped"] is True and 0 < result["epochs"] < 20 and result["steps"] > 0
    assert 0 <= result["test_acc"] <= 1 and result["saved"] == str(path)
    model, info = load_checkpoint(path)
    assert info["test_acc"] == result["test_acc"]
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]


@pytest.mark.parametrize("model, row", [
    ("whole_image", r"model\s+WholeImage\s+\(B=2, T=4, C=1, H=14, W=14\)\s+\(2, 10\)"),
    ("tracker", r"model\s+Tracker\s+\[0\]\s+\(B=2, T=4, C=1, H=64, W=64\)\s+\(B=2, T=3, F=4\)"),
    ("conv3d", r"model\s+Conv3D\s+\(B=2, T=4, C=1, H=14, W=14\)\s+\(B=2, F=10\)"),
])
def test_trace_runs_every_kind_of_registered_model(model, row, capsys):
    assert main(["trace", "--model", model, "--depth", "1"]) == 0
    assert re.search(row, capsys.readouterr().out)


def test_trace_refusals_are_one_line(capsys):
    assert main(["trace", "--model", "whole_image", "--steps", "6"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: WholeImage input") and "quadrants only" in err and err.count("\n") == 1


# --- train --task (issue 15) ------------------------------------------------------------------

@pytest.mark.parametrize("task, model, extra, chance", [
    ("direction", "cnn_lstm", [], 1 / 8),
    ("first_digit", "conv3d", [], 1 / 10),
    ("track", "tracker", ["--scheduled-sampling", "--curriculum"], None),
])
def test_each_task_trains_from_the_cli_and_reports_its_keys(tmp_path, task, model, extra, chance):
    path = tmp_path / "m.safetensors"
    proc = run_cli("train", "--task", task, "--model", model, "--time-budget", "2", "--device", "cpu",
                   "--save", str(path), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["task"] == task and result["model"] == model and result["steps"] > 0
    assert "order" not in result                      # quadrants only
    again, info = load_checkpoint(path)
    assert type(again).__name__ == {"cnn_lstm": "CNNLSTM", "conv3d": "Conv3D", "tracker": "Tracker"}[model]
    assert info["task"] == task
    if chance is not None:
        assert result["chance"] == chance and 0 <= result["test_acc"] <= 1
        assert "test_iou" not in result and info["test_acc"] == result["test_acc"]
        assert "test accuracy" in proc.stderr
        return
    assert "chance" not in result and result["test_acc"] is None    # a box regressor has no accuracy
    assert result["sampling"] == "scheduled" and result["curriculum"] is not None
    assert 0 <= result["test_iou"] <= 1 and info["test_iou"] == result["test_iou"]
    assert list(result["iou_by_horizon"]) == ["5", "10", "20", "40"]     # test clips of 41 frames
    assert result["baseline_iou"] == max(result["static_iou"], result["velocity_iou"])
    assert "free-running test IoU" in proc.stderr


@pytest.mark.parametrize("args, message", [
    (["--model", "whole_image", "--task", "direction"], "whole_image needs --task quadrants"),
    (["--model", "whole_image", "--task", "track"], "whole_image needs --task quadrants"),
    (["--model", "tracker"], "tracker follows a box through a clip: it needs --task track, not --task quadrants"),
    (["--model", "tracker", "--task", "first_digit"], "it needs --task track, not --task first_digit"),
    (["--model", "cnn_lstm", "--task", "track"], "--model cnn_lstm gives one class per clip: use --model tracker"),
    (["--model", "frame_average", "--task", "track"], "--model frame_average gives one class"),
    (["--model", "next_frame", "--task", "direction"], "next_frame learns from its own data"),
    (["--model", "frame_average", "--task", "direction", "--hidden-size", "8"], "no recurrent layer"),
    (["--model", "cnn_lstm", "--task", "direction", "--scheduled-sampling"], "nothing to feed back"),
    (["--model", "cnn_lstm", "--task", "direction", "--order", "4321"], "--order 4321 reorders MNIST quadrants"),
])
def test_a_model_on_a_task_it_cannot_do_is_refused_up_front(args, message, monkeypatch, capsys):
    import cnnlstm_edu.cli.train as cli

    monkeypatch.setattr(cli, "load_data", lambda args: pytest.fail("data was made"))
    assert main(["train", *args, "--epochs", "1", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert message in err and err.startswith("error: ") and err.count("\n") == 1, err


def test_the_task_builds_the_model_for_its_clips():
    import cnnlstm_edu.cli.train as cli

    def model(*argv):
        return cli._build_model(build_parser().parse_args(["train", *argv]))

    assert (model("--task", "direction").config.frame_size, model("--task", "direction").config.num_classes) == (24, 8)
    assert model("--task", "first_digit", "--model", "last_frame").config.frame_size == 28
    assert model("--model", "cnn_convlstm").config.frame_size == 14          # quadrants, as before
    assert model("--task", "track", "--model", "tracker").config.frame_size == 64
    config = cli._train_config(build_parser().parse_args(["train", "--task", "track", "--model", "tracker",
                                                          "--curriculum"]))
    assert config.curriculum.start_unroll == 2 and config.time_budget == 300   # Re3's start; the issue's budget
    assert cli._train_config(build_parser().parse_args(["train", "--curriculum", "3"])).curriculum.start_unroll == 3
    assert cli._train_config(build_parser().parse_args(["train", "--task", "direction"])).batch_size == 32

"""The command line on a folder of real clips (issue 16): train --data, its JSON and checkpoint,
predict frame by frame, and every refusal before any work."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest
import torch

from cnnlstm_edu import load_checkpoint, save_checkpoint
from cnnlstm_edu.__main__ import main
from cnnlstm_edu.checkpoint import CheckpointError, clip_info, read_clip_info
from cnnlstm_edu.data import write_sample_clips
from cnnlstm_edu.models import build_model


def run_main(*argv):
    """``main(argv)`` in this process: (exit code, stdout, stderr); torch's thread count kept."""
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main([str(a) for a in argv])
    finally:
        torch.set_num_threads(threads)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """3 motion classes x 30 clips: 10 .mp4, 10 .gif and 10 frame folders each, 8 frames of 32x32."""
    return write_sample_clips(tmp_path_factory.mktemp("motion") / "clips", per_class=30, frames=8)


@pytest.fixture(scope="module")
def trained(folder, tmp_path_factory):
    """The issue's run: a CNN-LSTM trained from the CLI on the folder for at most 60 s on the CPU."""
    path = tmp_path_factory.mktemp("model") / "clips.safetensors"
    code, out, err = run_main("train", "--data", folder, "--model", "cnn_lstm", "--frames", 8, "--size", 32, 32,
                              "--channels", 1, "--epochs", 10, "--time-budget", 60, "--device", "cpu",
                              "--threads", 1, "--save", path, "--json")
    assert code == 0, err
    return json.loads(out.strip().splitlines()[-1]), path


def test_a_cnn_lstm_trained_from_the_cli_classifies_held_out_clips(trained):
    result, _ = trained
    assert result["test_acc"] >= 0.9, f"held-out accuracy {result['test_acc']:.3f}"
    assert result["train_seconds"] <= 60 + 5          # the budget, give or take the last step and test
    assert result["task"] == "clips" and result["classes"] == ["down", "left", "right"]
    assert (result["frames"], result["size"], result["channels"], result["short"]) == (8, [32, 32], 1, "loop")
    assert result["train_clips"] + result["test_clips"] == 90 and result["chance"] == pytest.approx(1 / 3)


def test_accuracy_per_class_adds_up_to_the_overall_accuracy(trained):
    result, _ = trained
    per_class = result["per_class"]
    assert list(per_class) == result["classes"]
    assert sum(c["clips"] for c in per_class.values()) == result["test_clips"]
    for c in per_class.values():
        assert c["accuracy"] == pytest.approx(c["correct"] / c["clips"])
    overall = sum(c["correct"] for c in per_class.values()) / result["test_clips"]
    assert overall == pytest.approx(result["test_acc"])


def test_the_checkpoint_keeps_the_classes_and_how_the_clips_were_read(trained):
    result, path = trained
    model, info = load_checkpoint(path)
    assert model.config.num_classes == 3 and model.config.frame_size == 32     # square: one number
    assert info["class_names"] == result["classes"]        # where export_onnx looks for output names
    classes, settings = read_clip_info(info, path, num_classes=3)
    assert classes == result["classes"] and info["test_acc"] == result["test_acc"]
    assert settings == {"frames": 8, "size": [32, 32], "channels": 1, "short": "loop"}
    assert info["clips"]["backbone"] == "scratch" and info["clips"]["freeze"] is False


def test_predict_prints_the_belief_after_each_frame_and_the_final_class(trained, folder):
    _, path = trained
    clips = [folder / "left" / "left_000.mp4", folder / "down" / "down_001.gif", folder / "right" / "right_002"]
    code, out, err = run_main("predict", path, *clips)
    assert code == 0, err
    tables = out.strip().split("\n\n")
    assert len(tables) == 3
    for table, clip in zip(tables, clips):
        head, columns, *rows = table.splitlines()
        assert head.startswith(f"{clip}: ") and columns.split() == ["after", "frame", "down", "left", "right"]
        assert [int(r.split()[0]) for r in rows] == list(range(1, 9))     # one row per frame
        for row in rows:
            assert sum(float(v.rstrip("%")) for v in row.split()[1:]) == pytest.approx(100, abs=0.5)


def test_predict_json_gives_the_right_class_for_most_clips_of_the_folder(trained, folder):
    _, path = trained
    clips = sorted(p for name in ("down", "left", "right") for p in (folder / name).iterdir())[::5]   # 18
    code, out, _ = run_main("predict", path, *clips, "--json")
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["classes"] == ["down", "left", "right"] and len(result["clips"]) == len(clips)
    right = [c["class"] == os.path.basename(os.path.dirname(c["clip"])) for c in result["clips"]]
    assert sum(right) >= 0.8 * len(clips), result["clips"]
    for c in result["clips"]:
        assert c["frames"] == 8 and len(c["beliefs"]) == 8 and c["probability"] == max(c["beliefs"][-1])


def test_an_unreadable_clip_is_named_and_the_others_still_print(trained, folder, tmp_path):
    _, path = trained
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("not a clip")
    good = folder / "left" / "left_002"                  # a folder of frames
    code, out, err = run_main("predict", path, tmp_path / "empty.mp4", good, tmp_path / "notes.txt",
                              tmp_path / "missing.gif")
    assert code == 1
    assert out.startswith(f"{good}: ") and out.count("after frame") == 1 + 1       # head + columns
    lines = err.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("error: ") for line in lines)
    for name, line in zip(("empty.mp4", "notes.txt", "missing.gif"), lines):
        assert name in line, line


def test_predict_refuses_a_checkpoint_without_clip_settings(tmp_path, folder):
    digits = save_checkpoint(build_model("cnn_lstm", hidden_size=8), tmp_path / "digits.safetensors", order="1234")
    code, out, err = run_main("predict", digits, folder / "left" / "left_000.mp4")
    assert code == 2 and out == ""
    assert "trained on the built-in MNIST data, not on a folder of clips" in err and err.count("\n") == 1
    code, _, err = run_main("predict", tmp_path / "nothing.safetensors", folder / "left" / "left_000.mp4")
    assert code == 2 and "no checkpoint at" in err


@pytest.mark.parametrize("clips, pattern", [
    ({"classes": ["a"], "settings": {"frames": 8, "size": None, "channels": 1, "short": "loop"}}, "not 2 names"),
    ({"classes": ["a", "b"], "settings": {"frames": 8}}, "are not the keys"),
    ({"classes": ["a", "b"], "settings": {"frames": "8", "size": None, "channels": 1, "short": "loop"}}, "not valid"),
    ({"classes": ["a", "b"], "settings": {"frames": 8, "size": 32, "channels": 1, "short": "loop"}}, "not valid"),
    ({"classes": ["a", "b"], "settings": {"frames": 8, "size": None, "channels": 2, "short": "loop"}}, "not valid"),
    ({"classes": ["a", "b"], "settings": {"frames": 8, "size": None, "channels": 1, "short": "x"}}, "not valid"),
])
def test_malformed_clip_settings_in_a_checkpoint_are_refused(clips, pattern):
    with pytest.raises(CheckpointError, match=pattern):
        read_clip_info({"clips": clips}, "m.safetensors", num_classes=2)
    good = clip_info(["a", "b"], {"frames": 8, "size": [4, 6], "channels": 3, "short": "pad"})
    assert read_clip_info({"clips": good}, "m.safetensors", num_classes=2)[1]["size"] == [4, 6]


@pytest.fixture(scope="module")
def short_clips(tmp_path_factory):
    """3 classes x 8 animated GIFs of 3 to 6 frames."""
    return write_sample_clips(tmp_path_factory.mktemp("short") / "clips", per_class=8, frames=6, min_frames=3,
                              formats=("gif",))


def test_padded_frozen_training_and_predict_show_each_clips_own_frames(short_clips, tmp_path):
    path = tmp_path / "pad.safetensors"
    code, out, err = run_main("train", "--data", short_clips, "--frames", 6, "--short", "pad", "--backbone", "mnist",
                              "--freeze", "--epochs", 2, "--device", "cpu", "--save", path, "--json")
    assert code == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert (result["short"], result["backbone"], result["freeze"]) == ("pad", "mnist", True)
    # frozen: only the LSTM and classifier trained, on features computed once and cached beside the data
    assert all(not name.startswith("encoder") for g in result["param_groups"] for name in g["parameters"])
    assert len(list((short_clips / ".cnnlstm_edu-cache").glob("features-*.safetensors"))) == 2
    _, info = load_checkpoint(path)
    assert info["clips"]["settings"]["short"] == "pad" and info["clips"]["freeze"] is True
    clips = sorted((short_clips / "left").glob("*.gif"))
    from PIL import Image

    lengths = [Image.open(c).n_frames for c in clips]
    assert len(set(lengths)) > 1
    code, out, _ = run_main("predict", path, *clips, "--json")
    assert code == 0
    assert [c["frames"] for c in json.loads(out)["clips"]] == lengths   # padding frames are not shown


def _fake_imagenet_weights(home, name):
    """What torchvision would have downloaded, put where it looks: here untrained weights."""
    import torchvision

    url = torchvision.models.get_model_weights(name).DEFAULT.url
    target = home / "hub" / "checkpoints" / os.path.basename(url)
    target.parent.mkdir(parents=True)
    weights = torchvision.models.get_model(name, weights=None).state_dict()
    torch.save(weights, target)
    return weights


def test_a_torchvision_backbone_trains_from_the_weights_in_torchs_cache(short_clips, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    common = ["train", "--data", short_clips, "--frames", 4, "--size", 32, "--channels", 3, "--backbone",
              "mobilenet_v3_small", "--freeze", "--epochs", 1, "--device", "cpu"]
    code, _, err = run_main(*common)
    assert code == 2 and "--backbone mobilenet_v3_small starts from ImageNet weights" in err
    assert "never downloads" in err and "mobilenet_v3_small-047dcff4.pth" in err
    weights = _fake_imagenet_weights(tmp_path / "torch", "mobilenet_v3_small")
    path = tmp_path / "tv.safetensors"
    code, out, err = run_main(*common, "--save", path, "--json")
    assert code == 0, err
    model, info = load_checkpoint(path)
    assert info["clips"]["backbone"] == "mobilenet_v3_small" and model.config.encoder == "mobilenet_v3_small"
    # frozen: the frame CNN is exactly the weights found in the cache
    features = model.encoder.module[0].features.state_dict()
    assert all(torch.equal(features[k], weights[f"features.{k}"]) for k in features)


@pytest.mark.parametrize("args, message", [
    (["--task", "direction"], "--data trains on your clips, whose classes are its sub-folders; --task direction"),
    (["--model", "tracker"], "--model tracker follows a box"),
    (["--model", "next_frame"], "--model next_frame forecasts frames"),
    (["--model", "whole_image"], "--model whole_image tiles four MNIST quadrants"),
    (["--order", "4321"], "--order 4321 reorders MNIST quadrants"),
    (["--curriculum"], "--curriculum cuts clips"),
    (["--freeze"], "--freeze keeps a pretrained frame CNN as it is, and --backbone scratch"),
    (["--model", "conv3d", "--backbone", "mnist"], "--backbone is an option of cnn_lstm's"),
    (["--model", "frame_average", "--short", "pad"], "--short pad is an option of cnn_lstm's"),
    (["--model", "conv3d", "--size", "32", "48"], "--model conv3d reads square frames only"),
    (["--size", "32", "32", "3"], "--size takes H W, or one number"),
    (["--size", "2"], "--size 2: FrameCNN"),
    (["--backbone", "resnet18"], "--backbone resnet18 reads colour (RGB) frames, as on ImageNet: add --channels 3"),
    (["--model", "frame_average", "--hidden-size", "8"], "--hidden-size: the frame_average model has no recurrent"),
])
def test_bad_combinations_with_data_are_refused_before_any_clip_is_read(args, message, folder, monkeypatch):
    import cnnlstm_edu.cli.train as cli

    monkeypatch.setattr(cli, "read_clips", lambda args: pytest.fail("the folder was read"))
    code, out, err = run_main("train", "--data", folder, *args, "--epochs", 1, "--device", "cpu")
    assert code == 2 and out == ""
    assert err.startswith("error: ") and message in err and err.count("\n") == 1, err


@pytest.mark.parametrize("argv, message", [
    (["--data", "{tmp}/nowhere"], "--data {tmp}/nowhere: no such folder"),
    (["--data", "{tmp}/clips.zip"], "--data {tmp}/clips.zip is a file: unpack it first"),
    (["--frames", "8"], "--frames sets how clips are read and learned: it needs --data FOLDER"),
    (["--freeze"], "--freeze sets how clips are read and learned: it needs --data FOLDER"),
])
def test_a_missing_folder_and_clip_flags_without_data_are_refused(argv, message, tmp_path, monkeypatch):
    import cnnlstm_edu.cli.train as cli

    (tmp_path / "clips.zip").write_bytes(b"PK")
    monkeypatch.setattr(cli, "load_data", lambda args: pytest.fail("data was made"))
    code, _, err = run_main("train", *[a.format(tmp=tmp_path) for a in argv], "--epochs", 1)
    assert code == 2 and err.startswith(f"error: {message.format(tmp=tmp_path)}") and err.count("\n") == 1, err


def test_a_folder_the_reader_refuses_is_named_with_the_command_lines_flags(tmp_path):
    root = write_sample_clips(tmp_path / "clips", classes=("left", "right"), per_class=2, frames=4, formats=("gif",))
    (root / "left" / "notes.txt").write_text("x")
    code, _, err = run_main("train", "--data", root, "--epochs", 1, "--device", "cpu")
    assert code == 2 and err.startswith(f"error: --data {root}: video_folder: ") and "notes.txt is not a clip" in err
    assert "--size H W" in err


def test_ddp_ranks_train_on_the_same_cached_folder_and_rank_0_alone_reports(short_clips, tmp_path, free_port):
    save = tmp_path / "ddp.safetensors"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nnodes=1", "--nproc_per_node=2",
           "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "cnnlstm_edu", "train", "--ddp",
           "--data", str(short_clips), "--frames", "5", "--epochs", "1", "--batch-size", "8", "--json",
           "--save", str(save)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, proc.stdout
    result = json.loads(lines[0])
    assert result["world_size"] == 2 and result["task"] == "clips" and result["frames"] == 5
    assert result["saved"] == str(save) and set(result["per_class"]) == {"down", "left", "right"}
    assert proc.stderr.count("training cnn_lstm on cpu") == 1          # rank 0 alone prints
    assert proc.stderr.count("decoding clips: 100%") <= 1              # rank 0 decoded; rank 1 read its cache
    _, info = load_checkpoint(save)
    assert info["clips"]["settings"]["frames"] == 5


def test_a_clip_classifier_exports_to_onnx_with_its_class_names(trained, tmp_path):
    from cnnlstm_edu.deploy import read_metadata

    _, path = trained
    code, out, err = run_main("export", path, "--onnx", tmp_path / "clips.onnx", "--check", "--clips", 2)
    assert code == 0, err
    assert "2 random clips (the training folder is not in the checkpoint) of 8 frames" in out and "within" in out
    assert read_metadata(tmp_path / "clips.onnx")["class_names"] == ["down", "left", "right"]


def test_export_refuses_a_clip_classifier_of_oblong_frames_in_one_line(short_clips, tmp_path):
    path = tmp_path / "oblong.safetensors"
    code, _, err = run_main("train", "--data", short_clips, "--frames", 3, "--size", 16, 32, "--epochs", 0.2,
                            "--device", "cpu", "--save", path)
    assert code == 0, err
    code, _, err = run_main("export", path, "--onnx", tmp_path / "oblong.onnx")
    assert code == 2 and "reads 16x32 frames" in err and "square frames only" in err and err.count("\n") == 1

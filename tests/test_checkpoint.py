"""Checkpoints round-trip exactly and never unpickle."""

import pickle

import pytest
import torch

from cnnlstm_edu import load_checkpoint, save_checkpoint
from cnnlstm_edu.checkpoint import CheckpointError
from cnnlstm_edu.models import CNNLSTM


def test_roundtrip_is_exact(tmp_path):
    model = CNNLSTM(channels=(4, 8), hidden_size=16, num_layers=2).eval()
    path = save_checkpoint(model, tmp_path / "m.safetensors", order="4321")
    again, info = load_checkpoint(path)
    assert again.config == model.config and info == {"order": "4321"}
    x = torch.randn(2, 4, 1, 14, 14)
    assert torch.equal(again.eval()(x), model(x))
    for (k, a), (_, b) in zip(model.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), k


class Boom:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('ran')",))


@pytest.mark.parametrize("write", [
    lambda p: p.write_bytes(pickle.dumps(Boom())),
    lambda p: torch.save({"x": Boom()}, p),
])
def test_pickles_are_refused_and_never_run(tmp_path, monkeypatch, write):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "evil.safetensors"
    write(path)
    with pytest.raises(CheckpointError, match="pickle"):
        load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_truncated_and_foreign_files(tmp_path):
    good = save_checkpoint(CNNLSTM(channels=(4, 8), hidden_size=8), tmp_path / "m.safetensors")
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(CheckpointError, match="truncated|not a readable"):
        load_checkpoint(cut)
    text = tmp_path / "notes.safetensors"
    text.write_text("hello")
    with pytest.raises(CheckpointError, match="not a safetensors"):
        load_checkpoint(text)
    from safetensors.torch import save_file
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.zeros(2)}, str(foreign))
    with pytest.raises(CheckpointError, match="not one written by"):
        load_checkpoint(foreign)
    with pytest.raises(FileNotFoundError):
        load_checkpoint(tmp_path / "missing.safetensors")

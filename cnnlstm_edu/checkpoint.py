"""Checkpoints that can be shared in a classroom: safetensors weights plus a JSON config.

``torch.save`` writes a pickle, and loading a pickle runs whatever code its author put in it.
A checkpoint here is one ``.safetensors`` file: raw tensors, and in the file's metadata a JSON
object naming the model and its config, so :func:`load_checkpoint` can rebuild the model and
fill it without executing anything from the file.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path

from torch import nn

__all__ = ["save_checkpoint", "load_checkpoint", "CheckpointError"]

FORMAT = "cnnlstm_edu.checkpoint/1"


class CheckpointError(ValueError):
    """The file is not a checkpoint this package wrote (or it is damaged)."""


def save_checkpoint(model: nn.Module, path: str | os.PathLike, **info) -> Path:
    """Write ``model``'s weights and config to ``path`` (a safetensors file).

    ``info`` holds extra JSON-able facts to keep with it (the quadrant order, test accuracy...).

    >>> import tempfile, torch
    >>> from cnnlstm_edu.models import build_model
    >>> model = build_model("cnn_lstm", hidden_size=16)
    >>> path = save_checkpoint(model, tempfile.mkdtemp() + "/m.safetensors", order="1234")
    >>> again, info = load_checkpoint(path)
    >>> info["order"], torch.equal(again.lstm.weight_hh_l0, model.lstm.weight_hh_l0)
    ('1234', True)
    """
    from safetensors.torch import save_file

    from . import __version__
    from .models import model_config

    name, config = model_config(model)
    header = {"format": FORMAT, "model": name, "config": config, "version": __version__, "info": info}
    # safetensors refuses tensors that share memory; contiguous copies on the CPU are always safe.
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    path = Path(path)
    save_file(tensors, str(path), metadata={"cnnlstm_edu": json.dumps(header)})
    return path


def _check_header(path: Path) -> None:
    """Tell pickles and foreign files apart from safetensors before any parser sees them."""
    with open(path, "rb") as f:
        head = f.read(9)
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04":
        raise CheckpointError(
            f"{path} looks like a pickle (torch.save) file. Loading it would run code stored in it, "
            "so this package refuses. Re-save the weights with save_checkpoint(model, path)."
        )
    if len(head) < 9 or head[8:9] != b"{":
        raise CheckpointError(f"{path} is not a safetensors checkpoint (it is empty, truncated or "
                              "another kind of file)")
    (header_len,) = struct.unpack("<Q", head[:8])
    if header_len + 8 > path.stat().st_size:
        raise CheckpointError(f"{path} is truncated: its header says {header_len} bytes, the file "
                              f"has {path.stat().st_size}")


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved at ``path``; returns ``(model, info)``. Never unpickles."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    from .models import build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path), device=device)
    except SafetensorError as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    try:
        header = json.loads(meta["cnnlstm_edu"])
        assert header["format"] == FORMAT
    except (KeyError, ValueError, AssertionError, TypeError):
        raise CheckpointError(f"{path} is a safetensors file, but not one written by "
                              "cnnlstm_edu.save_checkpoint (no model config in its metadata)") from None
    model = build_model(header["model"], **header["config"])
    model.load_state_dict(tensors)
    return model.to(device), header.get("info", {})

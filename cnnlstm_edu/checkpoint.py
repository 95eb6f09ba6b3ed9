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

from .atomic import atomic_path, check_writable

__all__ = ["save_checkpoint", "load_checkpoint", "check_writable", "CheckpointError"]

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
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: the extra facts must be JSON values (str, number, list, dict), "
                        f"got {info!r}: {e}") from None
    try:
        path = check_writable(path)
    except OSError as e:
        raise type(e)(f"save_checkpoint: {e}") from None
    # safetensors refuses tensors that share memory; contiguous copies on the CPU are always safe.
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    # Written beside the target and renamed over it: a crash, a full disk or SIGTERM mid-write
    # leaves the old file (or none), never a truncated checkpoint under the real name.
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"cnnlstm_edu": text})
    return path


def _check_header(path: Path) -> None:
    """Tell pickles and foreign files apart from safetensors before any parser sees them."""
    with open(path, "rb") as f:
        head = f.read(9)
        f.seek(-1 if path.stat().st_size else 0, os.SEEK_END)
        last = f.read(1)
    # Protocol 2+ pickles open with 0x80, torch.save's zip with PK; protocol 0/1 pickles open with
    # a mark, a global or a list and always end with the STOP opcode ".".
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04" or (head[:1] in (b"(", b"c", b"]", b"}", b"N")
                                                           and last == b"."):
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
    """Rebuild the model saved at ``path``; returns ``(model, info)``. Never unpickles.

    The file is checked before anything is built from it: a pickle (whatever its name), an empty,
    truncated or foreign file, a config that does not build a model, or weights whose names and
    shapes are not the model's raise :class:`CheckpointError` (a ``ValueError``) saying which.
    """
    import torch
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    from .models import MODELS, build_model

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_header(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            found = {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except SafetensorError as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    try:
        header = json.loads(meta["cnnlstm_edu"])
        fmt = header["format"]
    except (KeyError, ValueError, TypeError):
        raise CheckpointError(f"{path} is a safetensors file, but not one written by "
                              "cnnlstm_edu.save_checkpoint (no model config in its metadata)") from None
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is a checkpoint in format {fmt!r}; this version of cnnlstm_edu "
                              f"reads {FORMAT!r}. Load it with the version that wrote it "
                              f"({header.get('version', 'unknown')}) and save it again.")
    name, config = header.get("model"), header.get("config")
    if name not in MODELS or not isinstance(config, dict):
        raise CheckpointError(f"{path}: the config names model {name!r} with config {config!r}; "
                              f"expected one of {sorted(MODELS)} and a dict of its fields")
    # Built first on the meta device, which allocates nothing: a config asking for a huge model
    # costs no memory, and its weight shapes can be checked against the file's before any real
    # tensor exists.
    try:
        with torch.device("meta"):
            skeleton = build_model(name, **config)
    except (TypeError, ValueError, RuntimeError) as e:   # RuntimeError: sizes that overflow
        raise CheckpointError(f"{path}: its config does not build a {name} model: {e}") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if found != expected:
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        wrong = [f"{k} {found[k]} (the model has {expected[k]})" for k in expected
                 if k in found and found[k] != expected[k]]
        problems = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else []) \
            + ([f"wrong shape: {', '.join(wrong[:3])}"] if wrong else [])
        raise CheckpointError(f"{path}: its weights do not fit the {name} model its config describes: "
                              + "; ".join(problems) + ". The file was altered, or written by other code.")
    try:
        tensors = load_file(str(path), device=device)
    except SafetensorError as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    model = build_model(name, **config)
    model.load_state_dict(tensors)
    return model.to(device), header.get("info", {})

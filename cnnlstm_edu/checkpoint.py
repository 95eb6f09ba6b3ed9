"""Checkpoints that can be shared in a classroom: safetensors weights plus a JSON config.

``torch.save`` writes a pickle, and loading a pickle runs whatever code its author put in it.
A checkpoint here is one ``.safetensors`` file: raw tensors, and in the file's metadata a JSON
object naming the model and its config, so :func:`load_checkpoint` can rebuild the model and
fill it without executing anything from the file.

The metadata (format ``cnnlstm_edu.checkpoint/2``) is one JSON object:
``{"format", "model", "config", "version", "info", "sha256"}``. ``sha256`` is
:func:`tensor_digest` of the weights, taken at save time and checked at load, so a file whose
weights were changed afterwards is refused. Files of format 1 (cnnlstm_edu 0.1.0 before the
digest) carry none and are refused with a message saying so: they can't be told apart from
altered ones. Retrain and save again. The digest finds damage and edits, not forgery: whoever
can rewrite the weights can rewrite the digest too, so share checkpoints the way you share code.

A model trained on a folder of clips (``train --data``) keeps in ``info["clips"]`` what
``predict`` needs to read a new clip as the training clips were read: the class names and the
settings of :func:`~cnnlstm_edu.data.load_clip` (:func:`clip_info`, :func:`read_clip_info`).
Checkpoints without it (the digits) load as before.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from pathlib import Path

import torch
from torch import nn

from .atomic import atomic_path, check_writable

__all__ = ["save_checkpoint", "load_checkpoint", "check_writable", "CheckpointError", "clip_info",
           "read_clip_info"]

FORMAT = "cnnlstm_edu.checkpoint/2"   # 2: the header holds "sha256", a digest of the tensors
_FORMAT_1 = "cnnlstm_edu.checkpoint/1"  # no digest: refused, since it can't be verified


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
    # safetensors refuses tensors that share memory; contiguous copies on the CPU are always safe.
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {"format": FORMAT, "model": name, "config": config, "version": __version__, "info": info,
              "sha256": tensor_digest(tensors)}
    try:
        text = json.dumps(header)
    except (TypeError, ValueError) as e:
        raise TypeError(f"save_checkpoint: the extra facts must be JSON values (str, number, list, dict), "
                        f"got {info!r}: {e}") from None
    try:
        path = check_writable(path)
    except OSError as e:
        raise type(e)(f"save_checkpoint: {e}") from None
    # Written beside the target and renamed over it: a crash, a full disk or SIGTERM mid-write
    # leaves the old file (or none), never a truncated checkpoint under the real name.
    with atomic_path(path) as tmp:
        save_file(tensors, tmp, metadata={"cnnlstm_edu": text})
    return path


def tensor_digest(tensors: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in name order (hex).

    Stored in the checkpoint at save time and recomputed at load, so a file whose weights were
    changed after saving (one flipped bit is enough) is refused instead of loaded.

    >>> tensor_digest({"w": torch.zeros(2)}) == tensor_digest({"w": torch.zeros(2)})
    True
    >>> tensor_digest({"w": torch.zeros(2)}) == tensor_digest({"w": torch.zeros(1, 2)})
    False
    """
    digest = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        digest.update(json.dumps([name, str(t.dtype), list(t.shape)]).encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())   # the raw bytes, any dtype
    return digest.hexdigest()


def _check_header(path: Path) -> None:
    """Tell pickles and foreign files apart from safetensors before any parser sees them."""
    with open(path, "rb") as f:
        head = f.read(9)
        f.seek(-1 if path.stat().st_size else 0, os.SEEK_END)
        last = f.read(1)
    size = path.stat().st_size
    if head[8:9] == b"{":
        # A safetensors file: 8 bytes of header length, then the JSON header. Decided first, since
        # that length's first byte can be 0x80 (a 2176-byte header), the mark of a pickle. A file
        # shaped like this is only ever parsed as safetensors, never unpickled: a crafted one fails
        # to parse and is refused below.
        (header_len,) = struct.unpack("<Q", head[:8])
        if header_len + 8 > size:
            raise CheckpointError(f"{path} is truncated: its header says {header_len} bytes, the file "
                                  f"has {size}")
        return
    # Protocol 2+ pickles open with 0x80, torch.save's zip with PK; protocol 0/1 pickles open with
    # a mark, a global or a list and always end with the STOP opcode ".".
    if head[:1] == b"\x80" or head[:4] == b"PK\x03\x04" or (head[:1] in (b"(", b"c", b"]", b"}", b"N")
                                                           and last == b"."):
        raise CheckpointError(
            f"{path} looks like a pickle (torch.save) file. Loading it would run code stored in it, "
            "so this package refuses. Re-save the weights with save_checkpoint(model, path)."
        )
    raise CheckpointError(f"{path} is not a safetensors checkpoint (it is empty, truncated or "
                          "another kind of file)")


def _read_metadata(path: Path, meta: dict) -> dict:
    """The checkpoint's JSON header, with every field of the type it must have."""
    def foreign(why: str) -> CheckpointError:
        return CheckpointError(f"{path} is a safetensors file, but not one written by "
                               f"cnnlstm_edu.save_checkpoint ({why})")

    try:
        header = json.loads(meta["cnnlstm_edu"])
    except (KeyError, ValueError, TypeError):
        raise foreign("no model config in its metadata") from None
    if not isinstance(header, dict) or not isinstance(header.get("format"), str):
        raise foreign(f"its metadata is {type(header).__name__} {str(header)[:60]!r}, not a header "
                      "with a format")
    fmt, version = header["format"], header.get("version", "unknown")
    if fmt == _FORMAT_1:
        raise CheckpointError(
            f"{path} was saved by cnnlstm_edu {version} in format 1, which stores no digest of its "
            "weights, so this version can't tell it from an altered file and refuses it. Train the "
            "model again and save it with this version (python -m cnnlstm_edu train ... --save).")
    if fmt != FORMAT:
        raise CheckpointError(f"{path} is a checkpoint in format {fmt!r}; this version of cnnlstm_edu "
                              f"reads {FORMAT!r}. Load it with the version that wrote it "
                              f"({version}) and save it again.")
    types = {"info": dict, "version": str, "sha256": str}   # model and config: checked by the caller
    wrong = [f"{key} is {type(header.get(key)).__name__}, not {kind.__name__}"
             for key, kind in types.items() if not isinstance(header.get(key), kind)]
    if wrong:
        raise CheckpointError(f"{path}: its header is malformed: {'; '.join(wrong)}. The file was "
                              "altered, or written by other code.")
    return header


def _bound_config(path: Path, name: str, config: dict, found: dict) -> None:
    """Refuse a config that asks for more structure than the file's tensors hold, before any
    model is built from it: building 10^5 layers, even on the meta device, takes minutes."""
    from .models import MODELS

    layers = {m.group(1) for key in found if (m := re.search(r"\.weight_ih_l(\d+)$", key))}
    num_layers = config.get("num_layers", 1)
    # Only the recurrent models have layers to count. The others (the baselines) have no
    # num_layers field, and build_model refuses a config that names one.
    recurrent = "num_layers" in MODELS[name][1].__dataclass_fields__
    if recurrent and num_layers != len(layers):
        raise CheckpointError(f"{path}: its config asks for num_layers={num_layers!r}, but the file "
                              f"holds recurrent weights for {len(layers)} layer(s)")
    for field, value in config.items():
        if isinstance(value, list) and len(value) > len(found):
            raise CheckpointError(f"{path}: its config's {field} has {len(value)} entries, more than "
                                  f"the {len(found)} tensors in the file could fill")


def _check_shapes(path: Path, name: str, config: dict, found: dict) -> None:
    """Build the model on the meta device and compare its weight names and shapes with the file's.

    The meta device allocates nothing: a config asking for a huge model costs no memory, and
    its weight shapes can be checked against the file's before any real tensor exists."""
    from .models import build_model

    try:
        with torch.device("meta"):
            skeleton = build_model(name, **config)
    except Exception as e:   # noqa: BLE001  the config is untrusted data: whatever it breaks is "no model"
        raise CheckpointError(f"{path}: its config does not build a {name} model: {e}") from None
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    if found == expected:
        return
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [f"{k} {found[k]} (the model has {expected[k]})" for k in expected
             if k in found and found[k] != expected[k]]
    problems = ([f"missing {missing[:3]}"] if missing else []) + ([f"unexpected {extra[:3]}"] if extra else []) \
        + ([f"wrong shape: {', '.join(wrong[:3])}"] if wrong else [])
    raise CheckpointError(f"{path}: its weights do not fit the {name} model its config describes: "
                          + "; ".join(problems) + ". The file was altered, or written by other code.")


def load_checkpoint(path: str | os.PathLike, device: str = "cpu") -> tuple[nn.Module, dict]:
    """Rebuild the model saved at ``path``; returns ``(model, info)``. Never unpickles.

    The file is checked before anything is built from it: a pickle (whatever its name), an empty,
    truncated or foreign file, malformed metadata, a config that asks for more layers than the
    file holds or does not build a model, weights whose names and shapes are not the model's, and
    weights that no longer match the digest stored at save time raise :class:`CheckpointError`
    (a ``ValueError``) saying which.
    """
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
    header = _read_metadata(path, meta)
    name, config = header.get("model"), header.get("config")
    if not isinstance(name, str) or name not in MODELS or not isinstance(config, dict):
        raise CheckpointError(f"{path}: the config names model {name!r} with config {config!r:.80}; "
                              f"expected one of {sorted(MODELS)} and a dict of its fields")
    _bound_config(path, name, config, found)
    _check_shapes(path, name, config, found)
    try:
        tensors = load_file(str(path), device="cpu")
    except SafetensorError as e:
        raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
    if tensor_digest(tensors) != header["sha256"]:
        raise CheckpointError(f"{path}: its weights do not match the digest stored when it was saved: "
                              "the file was altered or damaged after saving, and is refused.")
    model = build_model(name, **config)
    model.load_state_dict(tensors)
    return model.to(device), header["info"]


_CLIP_SETTINGS = ("frames", "size", "channels", "short")   # load_clip's keywords, as video_folder read them


def clip_info(classes: list[str], settings: dict, backbone: str = "scratch", freeze: bool = False) -> dict:
    """What a clip classifier's checkpoint keeps in ``info["clips"]``: the class names, in label
    order, and how its clips were read (``VideoClips.settings``), with the frame CNN it started from.

    >>> info = clip_info(["left", "right"], {"frames": 8, "size": [32, 32], "channels": 1, "short": "loop"})
    >>> read_clip_info({"clips": info}, "m.safetensors", num_classes=2)
    (['left', 'right'], {'frames': 8, 'size': [32, 32], 'channels': 1, 'short': 'loop'})
    """
    return {"classes": list(classes), "settings": {k: settings[k] for k in _CLIP_SETTINGS},
            "backbone": backbone, "freeze": bool(freeze)}


def read_clip_info(info: dict, path: str | os.PathLike, num_classes: int) -> tuple[list[str], dict]:
    """``(classes, settings)`` from a checkpoint's ``info``; ``load_clip(clip, **settings)`` reads a
    new clip as the training clips were read. A checkpoint without clip settings (trained on the
    built-in digits) or with malformed ones raises :class:`CheckpointError` saying which.

    >>> read_clip_info({"order": "1234"}, "digits.safetensors", num_classes=10)
    Traceback (most recent call last):
    cnnlstm_edu.checkpoint.CheckpointError: digits.safetensors was trained on the built-in MNIST data, not on a folder of clips: it keeps no class names and no clip settings. Use a checkpoint saved by `python -m cnnlstm_edu train --data FOLDER --save PATH`
    """
    clips = info.get("clips")
    if clips is None:
        task = f" (--task {info['task']})" if isinstance(info.get("task"), str) else ""
        raise CheckpointError(f"{path} was trained on the built-in MNIST data{task}, not on a folder of "
                              "clips: it keeps no class names and no clip settings. Use a checkpoint "
                              "saved by `python -m cnnlstm_edu train --data FOLDER --save PATH`")
    classes = clips.get("classes") if isinstance(clips, dict) else None
    settings = clips.get("settings") if isinstance(clips, dict) else None
    if not isinstance(classes, list) or len(classes) != num_classes \
            or not all(isinstance(c, str) for c in classes):
        raise CheckpointError(f"{path}: its clip classes {str(classes)[:80]} are not {num_classes} names, one "
                              "per output of its model. The file was altered, or written by other code.")
    if not isinstance(settings, dict) or set(settings) != set(_CLIP_SETTINGS):
        raise CheckpointError(f"{path}: its clip settings {str(settings)[:80]} are not the keys "
                              f"{list(_CLIP_SETTINGS)}. The file was altered, or written by other code.")
    frames, size, channels, short = (settings[k] for k in _CLIP_SETTINGS)
    pair = isinstance(size, list) and len(size) == 2
    numbers = [frames, *(size if pair else [])]
    if any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in numbers) \
            or not (size is None or pair) or channels not in (None, 1, 3) or short not in ("loop", "pad"):
        raise CheckpointError(f"{path}: its clip settings {settings} are not valid (frames and size whole "
                              "numbers, channels 1 or 3, short 'loop' or 'pad'). The file was altered, or "
                              "written by other code.")
    return list(classes), {k: settings[k] for k in _CLIP_SETTINGS}

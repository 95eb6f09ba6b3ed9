"""What the "Your clips" tab asks for, checked: how clips are read (:class:`ClipFormat`), how a
model trains on them (:class:`ClipSettings`), and the caps that bound one learner's upload.

A learner's zip comes from any browser on the network, so every size is capped before the work it
guards: the zip and what it inflates to (:func:`cnnlstm_edu.data.archive.extract_zip`), the clips
in it, their frame size and length (:func:`cnnlstm_edu.data.video_folder`, checked from each
header), the decoded tensor, the time decoding may take, and the training time.

>>> ClipFormat(frames=6, size=24, colour="grey").read_options()
{'frames': 6, 'size': (24, 24), 'channels': 1, 'short': 'loop'}
>>> ClipFormat(frames=1)
Traceback (most recent call last):
    ...
ValueError: frames must be a whole number from 2 to 32, got 1.
>>> ClipSettings(ClipFormat(), encoder="MNIST-pretrained (frozen)").model_config(["left", "right"])
{'in_channels': 1, 'frame_size': 32, 'num_classes': 2, 'encoder': 'mnist', 'trainable': False}
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..checks import check_number
from .settings import HIDDEN_FIELD, AppTask

__all__ = ["CLIP_CAPS", "COLOURS", "ClipCaps", "ClipFormat", "ClipSettings", "ENCODERS"]

# What the page shows -> (CNNLSTM's encoder, trainable).
ENCODERS = {"trained from scratch": ("scratch", True),
            "MNIST-pretrained (frozen)": ("mnist", False),
            "MNIST-pretrained (fine-tuned)": ("mnist", True)}
COLOURS = {"grey": 1, "colour": 3}


@dataclass(frozen=True)
class ClipCaps:
    """The bounds of one upload and of all of them together. Measured on the 2-core CPU: the
    sample zip (60 H.264 clips of 10 frames, 32x32) inflates to 80 kB and decodes in about a
    second; a phone's 3-second 720p clip is ~2 MB and decodes in under a second."""

    zip_bytes: int = 16 * 2**20          # the .zip itself (gradio's own per-file cap is server.MAX_UPLOAD)
    entries: int = 1000                  # files and folders in it
    member_bytes: int = 16 * 2**20       # one clip, inflated
    total_bytes: int = 64 * 2**20        # everything, inflated: what one session holds on disk
    clips: int = 400                     # clips in the folder
    classes: int = 20                    # class folders
    name_chars: int = 40                 # a class name, as the page shows it
    side: int = 1024                     # pixels a side of a clip's frames (from the header)
    clip_frames: int = 600               # frames decoded from one clip (20 s at 30 fps)
    decoded_bytes: int = 32 * 2**20      # the decoded uint8 tensor of one upload
    decode_seconds: float = 60.0         # decoding one upload
    disk_bytes: int = 512 * 2**20        # every session's extracted clips together
    memory_bytes: int = 1024 * 2**20     # every session's decoded clips (and their float copies)
    single_bytes: int = 16 * 2**20       # one clip uploaded to be classified


CLIP_CAPS = ClipCaps()
MAX_FRAMES = 32                          # T: frames sampled from each clip
SIZE_RANGE = (8, 64)                     # H = W of a frame as the model sees it
MAX_SECONDS = 300                        # of training, per run


@dataclass(frozen=True)
class ClipFormat:
    """How the tab reads every clip: ``frames`` sampled uniformly, resized to ``size`` x ``size``,
    grey or colour; a clip shorter than ``frames`` is looped (``short="loop"``)."""

    frames: int = 8
    size: int = 32
    colour: str = "grey"

    def __post_init__(self) -> None:
        whole = dict(integer=True, whole_floats=True)
        object.__setattr__(self, "frames", check_number(self.frames, "frames", low=2, high=MAX_FRAMES, **whole))
        object.__setattr__(self, "size", check_number(self.size, "frame size", low=SIZE_RANGE[0],
                                                      high=SIZE_RANGE[1], **whole))
        if not isinstance(self.colour, str) or self.colour not in COLOURS:
            raise ValueError(f"colour must be one of {', '.join(COLOURS)}; got {self.colour!r}.")

    @property
    def channels(self) -> int:
        return COLOURS[self.colour]

    def read_options(self) -> dict:
        """The keywords of ``video_folder`` and ``load_clip`` that prepare a clip this way."""
        return {"frames": self.frames, "size": (self.size, self.size), "channels": self.channels, "short": "loop"}

    def describe(self) -> str:
        return f"{self.frames} frames of {self.size}x{self.size}, {self.colour}"


@dataclass
class ClipSettings:
    """A run on the learner's clips, shaped like :class:`~.settings.TrainSettings` so that the
    Train tab's machinery (:func:`~.training.train_updates`, the session's checkpoint) runs it.
    ``task`` is filled by :meth:`for_classes` once the clips are read."""

    read: ClipFormat
    encoder: str = "trained from scratch"   # a key of ENCODERS
    seconds: float | None = 20.0            # time budget of training
    device: str = "auto"
    batch_size: int = 16                    # small: a learner's folder holds tens of clips
    lr: float = 4e-3
    hidden: int | None = None
    final_test: int | None = None           # unused: the held-out clips are few, all are scored
    seed: int = 0
    probe_index: int = 0                    # the held-out clip shown frame by frame
    model: str = "cnn_lstm"
    order: str = "1234"                     # unused (no quadrants); kept for the session's file name rules
    epochs: float | None = None
    task: str = "clips"
    app_task: AppTask = field(default_factory=lambda: AppTask("clips", 1, 1, 64, 16, "clips"))

    def __post_init__(self) -> None:
        if not isinstance(self.read, ClipFormat):
            raise TypeError(f"ClipSettings: read must be a ClipFormat, got {type(self.read).__name__}")
        if not isinstance(self.encoder, str) or self.encoder not in ENCODERS:
            raise ValueError(f"frame encoder must be one of {', '.join(ENCODERS)}; got {self.encoder!r}.")
        self.seconds = check_number(self.seconds, "time budget (seconds)", low=0, high=MAX_SECONDS, low_open=True)

    @classmethod
    def from_form(cls, frames, size, colour, encoder, seconds, **options) -> ClipSettings:
        """From the tab's fields, as gradio hands them over; ``options`` are the app's (``device``)."""
        options = {k: v for k, v in options.items() if k == "device"}
        return cls(ClipFormat(frames, size, colour), encoder=encoder, seconds=seconds, **options)

    def for_classes(self, classes: list[str], train_size: int, test_size: int) -> ClipSettings:
        """These settings for a folder of ``classes`` split into ``train_size`` and ``test_size`` clips."""
        task = AppTask("clips", train_size, test_size, 64, self.batch_size, "clips", classes=tuple(classes),
                       kept_for="classifying one clip below")
        return dataclasses.replace(self, app_task=task)

    def time_budget(self) -> float:
        return self.seconds

    def steps(self) -> None:
        return None

    def model_config(self, classes: list[str] | None = None) -> dict:
        """``build_model("cnn_lstm", **config)``: the frames' channels and size, the classes, the encoder."""
        name, trainable = ENCODERS[self.encoder]
        config = {"in_channels": self.read.channels, "frame_size": self.read.size,
                  "num_classes": len(classes) if classes is not None else self.app_task.num_classes,
                  "encoder": name, "trainable": trainable}
        if self.hidden is not None:
            config[HIDDEN_FIELD[self.model][0]] = self.hidden
        return config

    def describe(self) -> str:
        return (f"CNN-LSTM ({self.encoder}) on your clips, {self.read.describe()}, batch {self.batch_size}, "
                f"lr {self.lr:g}, {self.seconds:g} s")

    def checkpoint_facts(self) -> dict:
        """What a checkpoint keeps to read a new clip as these were read, in the CLI's form
        (:func:`~cnnlstm_edu.checkpoint.clip_info`): ``predict CHECKPOINT CLIP`` runs the app's model."""
        from ..checkpoint import clip_info

        name, trainable = ENCODERS[self.encoder]
        options = self.read.read_options()
        read = {**options, "size": list(options["size"])}
        return {"clips": clip_info(list(self.app_task.classes or ()), read, name, freeze=not trainable)}

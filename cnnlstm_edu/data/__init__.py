"""Data for the lessons: bundled MNIST, the quadrant sequences built from it, and the tasks of
issue 15 where time matters (``direction``, ``first_digit``, ``track``; see data/README.md), and your own
clips (issue 16: ``video_folder`` reads a folder of class sub-folders; ``write_sample_clips``
writes one from the bundled digits; ``extract_zip`` unpacks an uploaded .zip of them safely).

>>> from cnnlstm_edu.data import load_mnist, quadrant_sequences
>>> images, labels = load_mnist("test")            # (N, 28, 28) uint8, (N,) int64
>>> quadrant_sequences(images[:8]).shape           # (B, T, C, H, W)
torch.Size([8, 4, 1, 14, 14])
>>> from cnnlstm_edu.data import direction
>>> clips, labels = direction(8, split="test")     # a digit sliding one of 8 ways
>>> clips.shape                                    # (B, T, C, H, W)
torch.Size([8, 6, 1, 24, 24])
"""

from .mnist import load_mnist
from .quadrants import QUADRANT_ORDERS, quadrant_sequences, stacked_quadrant_sequences, tile_quadrants
from .tasks import DIRECTIONS, direction, first_digit
from .tracking import box_iou, constant_velocity, iou_by_horizon, mean_iou, static_box, track
from .sample_clips import write_clip, write_sample_clips, write_sample_zip
from .video import VideoClips, load_clip, video_folder
from .archive import ArchiveRefused, extract_zip

__all__ = ["load_mnist", "quadrant_sequences", "QUADRANT_ORDERS", "stacked_quadrant_sequences", "tile_quadrants",
           "DIRECTIONS", "direction", "first_digit", "track", "box_iou", "static_box",
           "constant_velocity", "mean_iou", "iou_by_horizon",
           "video_folder", "VideoClips", "load_clip", "write_clip", "write_sample_clips", "write_sample_zip",
           "extract_zip", "ArchiveRefused"]

"""Reading a folder of real clips: video_folder against PyAV's own decode loop, and the cache.

Writes a folder of moving-digit clips (``write_sample_clips``, all .mp4, H.264), then, in one
run on the same files:

1. PyAV's own loop: open each file, decode every frame, ``to_ndarray`` (grey, the file's size).
   The floor: what decoding alone costs.
2. ``video_folder`` with the same frames out (every frame, the file's size, grey), no cache: the
   folder scan, header checks, decoding, sampling and the tensor.
   The ratio 2/1 is the price of what video_folder adds (1.0 = nothing).
3. The same ``video_folder`` call cold (cache written) and again from the cache.

    python benchmarks/video_decode.py [--clips 200 --frames 10 --size 64] [--out benchmarks/video_decode.md]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import hardware  # noqa: E402

from cnnlstm_edu.data import video_folder, write_sample_clips  # noqa: E402


def pyav_loop(files: list[Path]) -> int:
    """Decode every frame of every file with PyAV alone; returns the frame count."""
    import av

    count = 0
    for path in files:
        with av.open(str(path)) as container:
            for frame in container.decode(video=0):
                frame.to_ndarray(format="gray")
                count += 1
    return count


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clips in the folder (3 classes)")
    parser.add_argument("--frames", type=int, default=10, help="frames per clip (at most 11 at size 64)")
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        per_class = -(-args.clips // 3)            # 3 classes: 200 asked gives 67 a class, 201 clips
        root = write_sample_clips(Path(tmp) / "clips", per_class=per_class, frames=args.frames,
                                  size=args.size, formats=("mp4",))
        files = sorted(root.rglob("*.mp4"))
        same = dict(frames=args.frames, size=None, channels=1, progress=False)
        pyav, ours = [], []
        for _ in range(args.repeats):       # interleaved, so both see the same load
            pyav.append(timed(lambda: pyav_loop(files)))
            ours.append(timed(lambda: video_folder(root, cache=False, **same)))
        frames = pyav[0][0]
        assert ours[0][0].clips.shape[:2] == (len(files), args.frames) and frames == len(files) * args.frames
        t_pyav, t_ours = min(s for _, s in pyav), min(s for _, s in ours)
        cold = timed(lambda: video_folder(root, cache=True, **same))[1]
        warm = min(timed(lambda: video_folder(root, cache=True, **same))[1] for _ in range(args.repeats))
    load_end = os.getloadavg()
    rows = [
        ("PyAV's own loop (decode + to_ndarray)", frames / t_pyav, t_pyav, "1.00"),
        ("video_folder, no cache", frames / t_ours, t_ours, f"{t_pyav / t_ours:.2f}"),
    ]
    lines = [
        "# Reading clips: video_folder against PyAV, and the cache (issue 16)",
        "",
        f"`python benchmarks/video_decode.py --clips {args.clips} --frames {args.frames} --size {args.size}`: "
        f"{len(files)} H.264 .mp4 clips of {args.frames} grey {args.size}x{args.size} frames "
        "(moving digits from `write_sample_clips`), every frame decoded at the file's size; best of "
        f"{args.repeats} interleaved timings each, all in one process. video_folder opens each "
        "file twice (the header first, to refuse oversized frames before decoding), checks and samples.",
        "",
        *hardware("cpu"),
        f"- PyAV {__import__('av').__version__}",
        f"- load average (1, 5, 15 min): {' '.join(f'{x:.2f}' for x in load_start)} at the start, "
        f"{' '.join(f'{x:.2f}' for x in load_end)} at the end (2 cores: above 2, other work shared the CPU)",
        "",
        "| reader | frames/s | seconds | speed relative to PyAV |",
        "|---|---:|---:|---:|",
        *[f"| {name} | {fps:,.0f} | {sec:.2f} | {ratio} |" for name, fps, sec, ratio in rows],
        "",
        f"| {len(files)}-clip folder | seconds |",
        "|---|---:|",
        f"| cold (decode and write the cache) | {cold:.2f} |",
        f"| from the cache | {warm:.3f} |",
        "",
        f"The cache reads the folder {cold / warm:.0f}x faster than decoding it.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

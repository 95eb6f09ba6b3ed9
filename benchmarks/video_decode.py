"""Reading a folder of real clips: video_folder against PyAV's own decode loop, and the cache.

Writes a folder of moving-digit clips (``write_sample_clips``, all .mp4, H.264), then, in one
run on the same files:

1. PyAV's own loop: open each file, decode every frame, ``to_ndarray`` (grey, the file's size).
   The floor: what decoding alone costs.
2. ``video_folder`` with the same frames out (every frame, the file's size, grey), no cache: the
   folder scan, header checks, decoding, sampling and the tensor.
   The ratio 2/1 is the price of what video_folder adds (1.0 = nothing).
3. The same ``video_folder`` call cold (cache written) and again from the cache.
4. Training on the folder from the command line, as a user runs it (``python -m cnnlstm_edu
   train --data FOLDER ... --epochs E``: a fixed number of steps), in a fresh process: cold (the
   cache removed first, so the clips are decoded) and again from the cache. Each run's wall time
   is split into reading the folder (``load_seconds``), training (``train_seconds``), and the rest
   (starting Python, importing torch, the test, saving nothing).

    python benchmarks/video_decode.py [--clips 200 --frames 10 --size 64] [--out benchmarks/video_decode.md]
    python benchmarks/video_decode.py --quick        # a smoke run: tiny sizes, nothing written
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import hardware, train_cli  # noqa: E402

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


def train_runs(root: Path, frames: int, size: int, epochs: float) -> list[dict]:
    """``train --data root`` cold (its cache removed first) and then from the cache, each in a
    fresh process; their JSON results, with ``wall_seconds`` and the load at the end."""
    flags = ["--data", str(root), "--frames", str(frames), "--size", str(size), "--channels", "1",
             "--epochs", f"{epochs:g}", "--device", "cpu", "--threads", "1"]
    shutil.rmtree(root / ".cnnlstm_edu-cache", ignore_errors=True)
    return [train_cli(*flags), train_cli(*flags)]


def training_rows(runs: list[dict]) -> list[str]:
    rows = []
    for name, r in zip(("cold (decode, write the cache)", "from the cache"), runs):
        rest = r["wall_seconds"] - r["load_seconds"] - r["train_seconds"]
        rows.append(f"| {name} | {r['wall_seconds']:.1f} | {r['load_seconds']:.2f} | {r['train_seconds']:.1f} | "
                    f"{rest:.1f} | {r['steps']} | {r['test_acc']:.1%} | {r['load']:.1f} |")
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=200, help="clips in the folder (3 classes)")
    parser.add_argument("--frames", type=int, default=10, help="frames per clip (at most 11 at size 64)")
    parser.add_argument("--size", type=int, default=64, help="frame height and width")
    parser.add_argument("--repeats", type=int, default=3, help="best of this many timings")
    parser.add_argument("--epochs", type=float, default=2.0, help="epochs of the training runs (fixed steps)")
    parser.add_argument("--out", type=Path, default=None, help="write the Markdown table here")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 12 small clips, nothing written")
    args = parser.parse_args(argv)
    if args.quick:
        args.clips, args.frames, args.size, args.repeats, args.epochs, args.out = 12, 4, 32, 1, 0.5, None
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
        runs = train_runs(root, args.frames, args.size, args.epochs)
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
        "",
        f"Training on the folder from the command line, {runs[0]['steps']} steps of {runs[0]['batch_size']} "
        f"clips ({args.epochs:g} epochs of the {runs[0]['train_clips']} training clips; "
        f"{runs[0]['test_clips']} held out), each run a fresh process, cold first:",
        "",
        f"`{runs[0]['command'].replace(str(root), 'clips/')}` (`clips/`: the folder above)",
        "",
        "| run | wall s | reading the folder s | training s | the rest s | steps | test acc | load (1 min) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *training_rows(runs),
        "",
        "The rest is starting Python and importing torch, building the model, the last test and writing "
        "the JSON: on a loaded machine, mostly reading torch's files. "
        f"From the cache, reading the folder takes {runs[1]['load_seconds']:.2f} s instead of "
        f"{runs[0]['load_seconds']:.2f} s: "
        f"{runs[0]['load_seconds'] / (runs[0]['load_seconds'] + runs[0]['train_seconds']):.0%} of the cold "
        f"run's reading and training was decoding, "
        f"{runs[1]['load_seconds'] / (runs[1]['load_seconds'] + runs[1]['train_seconds']):.0%} from the cache. "
        f"The whole runs differ by {runs[0]['wall_seconds'] - runs[1]['wall_seconds']:+.1f} s of wall time "
        "(cold minus cached): training and start-up vary with the machine's load by about as much as "
        "decoding this folder costs; the cache matters more the larger and longer the clips.",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()

"""How long the course's nbval run takes: each lesson as `make test` runs it (smoke setting).

Each lesson runs in a fresh pytest process, exactly as the test suite collects it
(``--nbval-lax``, ``CNNLSTM_EDU_SMOKE=1`` from notebooks/conftest.py), kernel start included.
The goal (issues 7 and 17) is every lesson together in <= 5 minutes on a 2-core CPU.

    python benchmarks/course_speed.py            # writes benchmarks/course_speed.md
    python benchmarks/course_speed.py --quick    # the first lesson only, prints, writes nothing
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
from common import hardware  # noqa: E402


def run_lesson(path: Path) -> dict:
    env = dict(os.environ, KERAS_BACKEND="torch")
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pytest", str(path.relative_to(ROOT)), "-q", "-p", "no:cacheprovider"],
                          capture_output=True, text=True, cwd=ROOT, env=env)
    seconds = time.perf_counter() - t0
    summary = proc.stdout.strip().splitlines()[-1] if proc.stdout.strip() else proc.stderr[-500:]
    if proc.returncode != 0:
        raise RuntimeError(f"{path.name} failed under nbval:\n{proc.stdout[-3000:]}")
    return {"lesson": path.stem, "seconds": seconds, "summary": summary, "load": os.getloadavg()[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(HERE / "course_speed.md"))
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    lessons = sorted((ROOT / "notebooks").glob("[0-9]*.ipynb"))[: 1 if args.quick else None]
    rows = []
    for path in lessons:
        rows.append(run_lesson(path))
        print(f"{path.stem}: {rows[-1]['seconds']:.1f} s ({rows[-1]['summary']})", flush=True)
    total = sum(r["seconds"] for r in rows)
    print(f"total: {total:.1f} s")
    if args.quick:
        return 0
    lines = [
        "# The course under nbval: time per lesson", "",
        "Written by `python benchmarks/course_speed.py`. Each lesson in a fresh `pytest` process as "
        "`make test` collects it (`--nbval-lax`, smoke setting `CNNLSTM_EDU_SMOKE=1`): wall seconds, "
        "interpreter and kernel start included. Goal (issues 7 and 17): every lesson together in <= 5 minutes "
        "on a 2-core CPU.", "",
        *hardware("cpu"), "",
        "| lesson | seconds | pytest says | load at end |", "|---|---:|---|---:|",
        *[f"| {r['lesson']} | {r['seconds']:.1f} | {r['summary']} | {r['load']:.2f} |" for r in rows],
        f"| **all {len(rows)}** | **{total:.1f}** | | |", "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""The benchmark scripts run (smoke test: tiny sizes, nothing timed, nothing written)."""

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script", ["train_speed.py", "convlstm_speed.py", "tricks.py", "fold_vs_loop.py", "gpu.py",
                                    "classroom.py", "course_speed.py", "baselines.py", "video_decode.py"])
def test_benchmark_script_runs_quick(script):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--quick"],
                          capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip(), "a benchmark that prints nothing measured nothing"

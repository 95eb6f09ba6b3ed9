"""cnnlstm_edu.bench: the fold-versus-loop timings cover the grid asked for and add up."""

import pytest

from cnnlstm_edu.__main__ import main
from cnnlstm_edu.bench import fold_vs_loop, format_table


@pytest.mark.parametrize("backward", [False, True])
def test_fold_vs_loop_times_every_cell_of_the_grid(backward):
    rows = fold_vs_loop(batch_sizes=[1, 3], steps=[2, 5], frame_size=8, channels=(4,),
                        backward=backward, min_time=0.0)
    assert [(r["batch"], r["steps"]) for r in rows] == [(1, 2), (3, 2), (1, 5), (3, 5)]
    for r in rows:
        assert r["frames"] == r["batch"] * r["steps"]
        assert r["fold_ms"] > 0 and r["loop_ms"] > 0
        assert r["loop_over_fold"] == pytest.approx(r["loop_ms"] / r["fold_ms"])
        assert r["backward"] is backward


def test_format_table_names_the_faster_mode():
    rows = [{"batch": 1, "steps": 4, "frames": 4, "fold_ms": 2.0, "loop_ms": 1.0, "loop_over_fold": 0.5}]
    assert format_table(rows).splitlines()[-1].endswith("| 0.50 | loop |")


def test_bench_command_prints_the_table(capsys):
    assert main(["bench", "--batch", "2", "--steps", "3", "--frame", "8", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("TimeDistributed(FrameCNN) on 8x8 frames, forward, cpu")
    assert out[-1].startswith("| 2 | 3 | 6 |")


def test_time_ms_is_milliseconds_per_call_over_at_least_min_runs_blocks():
    import time

    from cnnlstm_edu.bench import time_ms, time_once_ms

    calls = []

    def sleep_2ms():
        calls.append(1)
        time.sleep(0.002)

    ms = time_ms(sleep_2ms, min_time=0.0, min_runs=4)
    assert 1.9 < ms < 50                        # one call sleeps 2 ms (a busy CPU adds, never removes)
    assert len(calls) >= 2 + 4                  # two warm-up calls, then at least 4 timed ones
    assert 1.9 < time_once_ms(sleep_2ms) < 50


def test_the_timer_prints_nothing_about_cuda_home():
    # Importing torch.utils.benchmark on a machine with a CUDA toolkit but no GPU logs
    # "No CUDA runtime is found, using CUDA_HOME=..."; a benchmark's output should be its table.
    import subprocess
    import sys

    code = ("import logging; from cnnlstm_edu.bench import time_ms; time_ms(lambda: None, min_time=0.0); "
            "print(logging.getLogger('torch.utils.cpp_extension').level)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "CUDA_HOME" not in done.stderr
    assert done.stdout.strip() == "0"               # the logger's level is put back

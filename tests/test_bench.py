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

"""The performance suite runs (small sizes) and checks its results; its rows are timed in
turn so that the ratios in one workload see the same machine."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.__main__ import Contestant, main, race  # noqa: E402


def test_the_quick_suite_runs_and_every_result_is_checked(capsys):
    assert main(["--quick", "--runs", "5", "--only", "saxpy,histogram",
                 "--backends", "interp,jit"]) == 0
    out = capsys.readouterr().out
    for row in ("saxpy         xenovectra interp", "saxpy         xenovectra jit",
                "saxpy         jit backend only", "histogram     xenovectra jit"):
        assert row in out


def test_contestants_are_timed_in_turn():
    order: list[str] = []
    contestants = [Contestant(name, lambda name=name: order.append(name),
                              reset=lambda: order.append("reset"))
                   for name in ("a", "b")]
    times = race(contestants, 3)
    assert [o for o in order if o != "reset"] == ["a", "b"] * 4  # warm-up, then 3 rounds
    assert order.count("reset") == 8
    assert {k: len(v) for k, v in times.items()} == {"a": 3, "b": 3}


def test_the_dispatch_overhead_gives_every_backend_a_row(capsys):
    assert main(["--runs", "5", "--only", "dispatch", "--backends", "interp,jit"]) == 0
    out = capsys.readouterr().out
    assert "median of 5 runs of 200 dispatches, the backends taking turns" in out
    rows = {line.split("|")[1].strip(): float(line.split("|")[2])
            for line in out.splitlines() if line.startswith("| interp |")
            or line.startswith("| jit |")}
    assert set(rows) == {"interp", "jit"} and all(0 < us < 1e5 for us in rows.values())

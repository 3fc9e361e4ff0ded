"""The README's tour stays true: its Python example runs and its commands exist."""

from __future__ import annotations

import re
from pathlib import Path

from typer.testing import CliRunner

from xv_core.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_the_python_tour_runs(monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", README, re.S)
    assert blocks, "the README has no Python example"
    monkeypatch.chdir(ROOT)  # the tour's paths are relative to the repository
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})  # our own README, not user input


def test_the_tour_commands_work(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    runner = CliRunner()
    for line in re.findall(r"^xv (.*?)(?:\s+#.*)?$", README, re.M):
        args = line.split()
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (line, result.output)


def test_the_two_commands_are_the_makefile_targets():
    assert "make demo" in README and "make test" in README
    makefile = (ROOT / "Makefile").read_text()
    assert "demo: setup" in makefile and "test: setup" in makefile
    assert "make test" in (ROOT / ".ci" / "run").read_text()

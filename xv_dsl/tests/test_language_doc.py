"""docs/language.md stays true: every example compiles, every error shown is exact."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xv_core import ir
from xv_core.errors import SourceError
from xv_dsl import compile_source

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "language.md").read_text()
BLOCKS = re.findall(r"```(\w+)\n(.*?)```", DOC, re.S)


def _examples() -> list[tuple[str, str | None]]:
    """(source, expected error text or None) for every ```c block."""
    out = []
    for i, (lang, body) in enumerate(BLOCKS):
        if lang != "c":
            continue
        expected = None
        if body.startswith("// error"):
            nxt_lang, nxt_body = BLOCKS[i + 1]
            assert nxt_lang == "text", "an error example is followed by its output"
            expected = nxt_body.rstrip("\n")
        out.append((body, expected))
    return out


EXAMPLES = _examples()


def test_the_reference_has_examples() -> None:
    assert len(EXAMPLES) >= 15
    assert sum(e is not None for _, e in EXAMPLES) >= 4


@pytest.mark.parametrize("source, expected", EXAMPLES,
                         ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_example(source: str, expected: str | None) -> None:
    if expected is None:
        ir.verify_module(compile_source(source, "example.xvk"))
        return
    with pytest.raises(SourceError) as info:
        compile_source(source, "example.xvk")
    assert str(info.value) == expected


def test_ir_text_example_is_what_vgpucc_prints() -> None:
    shown = [body for lang, body in BLOCKS if lang == "text" and body.startswith("; xvir")]
    assert len(shown) == 1
    path = "examples/kernels/saxpy.xvk"
    module = compile_source((ROOT / path).read_text(), path)
    assert ir.module_text(module) == shown[0]


def test_every_builtin_is_documented() -> None:
    from xv_dsl.builtins import ATOMICS, MATH, SPECIALS

    for name in [*MATH, *ATOMICS, *SPECIALS, "barrier"]:
        assert f"`{name}" in DOC, name

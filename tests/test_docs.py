"""The hook reference must say what the code says."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

from xv_core import hookspecs

DOCS = Path(__file__).resolve().parents[1] / "docs"


def _code_hooks() -> dict[str, str]:
    hooks = {}
    for name, fn in vars(hookspecs).items():
        if name.startswith("xv_") and callable(fn):
            sig = inspect.signature(fn)
            params = ", ".join(f"{p.name}: {p.annotation}" for p in sig.parameters.values())
            hooks[name] = f"{name}({params}) -> {sig.return_annotation}"
    return hooks


def _documented_hooks() -> dict[str, str]:
    text = (DOCS / "hooks.md").read_text()
    found = re.findall(r"^### `(xv_\w+\(.*\) -> .*)`$", text, re.M)
    return {sig.split("(")[0]: sig for sig in found}


def test_every_hook_is_documented_with_its_signature():
    assert _documented_hooks() == _code_hooks()


def test_every_hook_has_a_docstring_and_the_prefix():
    for name, fn in vars(hookspecs).items():
        if callable(fn) and getattr(fn, "xenovectra_spec", None) is not None:
            assert name.startswith("xv_"), name
            assert (fn.__doc__ or "").strip(), f"{name} has no docstring"

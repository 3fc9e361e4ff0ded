"""For the whole test session: a private per-user cache directory.

The suite compiles kernels, builds the native replay helper and the parser's tables; with the
user's own cache directory it would leave entries there (a checkout in another folder makes
new ones, since the kernels' paths are part of their keys) and could trim what the user
keeps.  It is set when pytest is configured, before any test module is imported (collecting
some builds the parser, whose cache path is fixed from then on), and removed at the end.
Tests that are about the cache directory set ``XV_CACHE_DIR`` themselves.
"""

from __future__ import annotations

import os
import shutil
import tempfile

_saved: list[tuple[str | None, str]] = []


def pytest_configure(config):
    private = tempfile.mkdtemp(prefix="xv-test-cache-")
    _saved.append((os.environ.get("XV_CACHE_DIR"), private))
    os.environ["XV_CACHE_DIR"] = private


def pytest_unconfigure(config):
    if not _saved:
        return
    old, private = _saved.pop()
    if old is None:
        os.environ.pop("XV_CACHE_DIR", None)
    else:
        os.environ["XV_CACHE_DIR"] = old
    shutil.rmtree(private, ignore_errors=True)

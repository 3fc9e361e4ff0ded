"""For the whole test session: a private per-user cache directory.

The suite compiles kernels, builds the native replay helper and the parser's tables; with the
user's own cache directory it would leave entries there (a checkout in another folder makes
new ones, since the kernels' paths are part of their keys) and could trim what the user
keeps.  Tests that are about the cache directory set ``XV_CACHE_DIR`` themselves.
"""

from __future__ import annotations

import os

import pytest


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    old = os.environ.get("XV_CACHE_DIR")
    os.environ["XV_CACHE_DIR"] = str(tmp_path_factory.mktemp("xv-cache"))
    yield
    if old is None:
        os.environ.pop("XV_CACHE_DIR", None)
    else:
        os.environ["XV_CACHE_DIR"] = old

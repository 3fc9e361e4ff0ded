"""Undo a name clash between this folder and the package it tests.

The repository folder ``xv_buffer/`` has the same name as the package
``xv_buffer`` (installed from ``xv_buffer/src``).  Under
``--import-mode=importlib`` pytest names this file ``xv_buffer.tests.conftest``
and, before importing it, registers the *folder* as a namespace package
called ``xv_buffer`` -- which hides the real package from the tests.  Put the
real package back; the tests then import it normally.

Also: the ``mem_tier`` fixture, a cache tier in memory.
"""

import importlib
import sys

import pytest

if getattr(sys.modules.get("xv_buffer"), "__file__", None) is None:
    sys.modules.pop("xv_buffer", None)
    importlib.import_module("xv_buffer")


class MemTier:
    """A cache tier in a dict: the smallest object with the PageTier protocol of
    ``xv_core.runtime.interfaces``, for tests that need tiers without the nvme plugin."""

    def __init__(self, name, slots, page_size, profile=None):
        self.name, self.slots, self.page_size, self.profile = name, slots, page_size, profile
        self.pages = {}

    def write_page(self, key, data):
        assert key in self.pages or len(self.pages) < self.slots, "the caller keeps room"
        self.pages[key] = bytes(data)
        return len(data)

    def read_into(self, key, out):
        data = self.pages.get(key)
        if data is None:
            return None
        memoryview(out)[:len(data)] = data
        return len(data)

    def drop(self, key):
        return self.pages.pop(key, None) is not None

    def __contains__(self, key):
        return key in self.pages

    def __len__(self):
        return len(self.pages)

    def stats(self):
        return {"used": len(self.pages), "slots": self.slots}


@pytest.fixture
def mem_tier():
    """``mem_tier(name, slots, page_size)``: a :class:`MemTier`."""
    return MemTier

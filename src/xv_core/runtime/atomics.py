"""The one lock behind every atomic operation on device memory in this process.

Backends and components run tiles on several threads at once, and different
components may run tiles of the same dispatch (a ``cpu`` and a ``net``
component, say).  Atomics are only atomic if every party that performs or
merges them takes the same lock: this one.  Components never import each
other, so it lives in the core.
"""

from __future__ import annotations

import threading

#: Held while an atomic read-modify-write (or the merge of a remote tile's
#: atomic results) touches device memory.
ATOMICS_LOCK = threading.Lock()

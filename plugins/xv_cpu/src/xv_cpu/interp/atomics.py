"""Atomic read-modify-write on buffer elements, for a whole frame at once.

Semantics: the work items of a frame apply their operation one after the
other in item order (ascending work-item number in the tile), each seeing
the previous one's result and getting the element's value before its own
operation.  The vectorised paths below compute exactly that result:
prefix sums for integer add/sub (wrap-around addition is associative), a
shift for exchange, and for the rest (float add/sub, min, max,
compare-exchange) either one round per rank within equal indices or one
``ufunc.accumulate`` per distinct element, whichever takes fewer numpy calls.

Concurrency: tiles of one dispatch may run on several threads, so every
read-modify-write of an ATOMIC statement holds one process-wide lock (the core's
``xv_core.runtime.atomics.ATOMICS_LOCK``, which other components' merges take too).  A
lock per buffer would need a stable identity for buffers that may be views
of one another; the single lock avoids that question, and it is held only
for the vectorised update of one batch (microseconds), so contention stays
small.  Plain loads and stores take no lock, as on a GPU.
"""

from __future__ import annotations

import numpy as np

# The core's one lock: every component that performs or merges atomics takes it.
from xv_core.runtime.atomics import ATOMICS_LOCK

_ACCUMULATE = {"add": np.add, "sub": np.subtract, "min": np.minimum, "max": np.maximum}


def _combine(kind: str, cur: np.ndarray, val: np.ndarray,
             expected: np.ndarray | None) -> np.ndarray:
    if kind == "add":
        return cur + val
    if kind == "sub":
        return cur - val
    if kind == "min":
        return np.minimum(cur, val)
    if kind == "max":
        return np.maximum(cur, val)
    if kind == "exchange":
        return val
    return np.where(cur == expected, val, cur)  # cmpxchg


_AT = {"add": np.add.at, "sub": np.subtract.at, "min": np.minimum.at, "max": np.maximum.at}


def apply_atomic(kind: str, flat: np.ndarray, idx: np.ndarray, val: np.ndarray,
                 expected: np.ndarray | None = None, need_old: bool = True) -> np.ndarray | None:
    """Apply ``kind`` for items ``0..m-1`` in order; return each item's old value
    (None when ``need_old`` is False and the old values were not computed).

    ``idx`` holds in-range element indices; ``val`` (and ``expected`` for
    cmpxchg) one value per item, of ``flat``'s dtype.
    """
    with ATOMICS_LOCK:
        if not need_old and kind in _AT:
            # ufunc.at applies the items one by one in order: the sequential semantics.
            _AT[kind](flat, idx, val)
            return None
        return _apply(kind, flat, idx, val, expected)


def _apply(kind: str, flat: np.ndarray, idx: np.ndarray, val: np.ndarray,
           expected: np.ndarray | None) -> np.ndarray:
    m = len(idx)
    order = np.argsort(idx, kind="stable")
    sidx = idx[order]
    first = np.empty(m, dtype=np.bool_)
    first[0] = True
    np.not_equal(sidx[1:], sidx[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if len(starts) == m:  # all distinct: one vectorised step
        old = flat[idx]
        flat[idx] = _combine(kind, old, val, expected)
        return old
    sval = val[order]
    sexp = expected[order] if expected is not None else None
    ends = np.append(starts[1:], m) - 1
    seg = np.cumsum(first) - 1  # segment of each sorted item
    u = sidx[starts]
    if kind in ("add", "sub") and flat.dtype.kind in "iu":
        d = sval if kind == "add" else -sval
        inclusive = np.cumsum(d, dtype=flat.dtype)
        exclusive = inclusive - d
        base = exclusive[starts]
        cur = flat[u]
        old_sorted = cur[seg] + (exclusive - base[seg])
        flat[u] = cur + (inclusive[ends] - base)
    elif kind == "exchange":
        old_sorted = np.empty(m, dtype=flat.dtype)
        old_sorted[1:] = sval[:-1]
        old_sorted[starts] = flat[u]
        flat[u] = sval[ends]
    else:
        old_sorted = _sequential(kind, flat, sidx, sval, sexp, starts, ends, seg)
    old = np.empty(m, dtype=flat.dtype)
    old[order] = old_sorted
    return old


def _sequential(kind: str, flat: np.ndarray, sidx: np.ndarray, sval: np.ndarray,
                sexp: np.ndarray | None, starts: np.ndarray, ends: np.ndarray,
                seg: np.ndarray) -> np.ndarray:
    m = len(sidx)
    old = np.empty(m, dtype=flat.dtype)
    counts = ends - starts + 1
    rounds = int(counts.max())
    if rounds <= len(starts):
        # Round r applies the r-th item of every distinct element: no index repeats in a round.
        rank = np.arange(m) - starts[seg]
        by_round = np.argsort(rank, kind="stable")
        offsets = np.concatenate(([0], np.cumsum(np.bincount(rank))))
        for r in range(rounds):
            pos = by_round[offsets[r]:offsets[r + 1]]
            i = sidx[pos]
            cur = flat[i]
            old[pos] = cur
            flat[i] = _combine(kind, cur, sval[pos], sexp[pos] if sexp is not None else None)
        return old
    for s in range(len(starts)):
        a, b = int(starts[s]), int(ends[s]) + 1
        i = sidx[a]
        if kind == "cmpxchg":
            cur = flat[i]
            for k in range(a, b):
                old[k] = cur
                if cur == sexp[k]:
                    cur = sval[k]
            flat[i] = cur
        else:
            chain = np.concatenate((flat[i:i + 1], sval[a:b]))
            acc = _ACCUMULATE[kind].accumulate(chain, dtype=flat.dtype)
            old[a:b] = acc[:-1]
            flat[i] = acc[-1]
    return old

"""``xv vram``: replay recorded page traces against eviction policies.

A page trace (``xv fabric run --record-pages FILE``) is the format of
:data:`xv_core.runtime.interfaces.PAGE_TRACE_MAGIC`.  ``xv vram replay`` runs it through
each installed policy named, at each capacity, and prints the miss ratios: one row per
capacity, so a column is the policy's miss-ratio curve.  Policies come from the plugin
registry (``xv_eviction_policies``); a policy with a ``replay(keys)`` method (all of
``xenovectra-buffer``'s) replays a whole trace at once, any other is driven one access at a
time through its ``hit``/``miss``/``evict``/``insert`` methods.

This module also turns a run's VRAM statistics into the lines of ``xv fabric run``'s summary.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import numpy as np
import typer

from xv_core.cli.errors import handle_errors
from xv_core.config.units import format_size, parse_size
from xv_core.errors import XvError
from xv_core.runtime.interfaces import PAGE_TRACE_DTYPE, PAGE_TRACE_MAGIC

app = typer.Typer(help="Replay page traces against eviction policies.", no_args_is_help=True)


# ----------------------------------------------------------------------------------------
# page traces
# ----------------------------------------------------------------------------------------


def read_page_trace(path: str | Path) -> tuple[dict[str, Any], np.ndarray]:
    """The header and the records of a page-trace file (XvError naming the file if it is
    not one)."""
    path = Path(path)
    where = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise XvError("no such page-trace file", where=where,
                      hint="record one with `xv fabric run FABRIC JOB --record-pages FILE`"
                      ) from None
    except OSError as exc:
        raise XvError(f"cannot read the page trace: {exc.strerror}", where=where) from None
    head = len(PAGE_TRACE_MAGIC)
    if not data.startswith(PAGE_TRACE_MAGIC) or len(data) < head + 4:
        raise XvError("not a page-trace file", where=where,
                      hint="record one with `xv fabric run FABRIC JOB --record-pages FILE`")
    (length,) = struct.unpack("<I", data[head:head + 4])
    try:
        header = json.loads(data[head + 4:head + 4 + length].decode("utf-8"))
        page_size = int(header["page_size"])
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        raise XvError("the page trace's header is damaged", where=where) from None
    body = data[head + 4 + length:]
    if page_size < 1 or len(body) % PAGE_TRACE_DTYPE.itemsize:
        raise XvError("the page trace is damaged (truncated?)", where=where)
    return header, np.frombuffer(body, dtype=PAGE_TRACE_DTYPE)


def trace_keys(records: np.ndarray) -> np.ndarray:
    """One int64 key per page access, in order: ``buffer << 32 | page``."""
    counts = records["count"].astype(np.int64)
    if not len(counts):
        return np.zeros(0, dtype=np.int64)
    starts = (records["buffer"].astype(np.int64) << 32) + records["first"].astype(np.int64)
    before = np.cumsum(counts) - counts  # accesses before each record
    return np.repeat(starts - before, counts) + np.arange(int(counts.sum()), dtype=np.int64)


def replay_misses(policy: Any, keys: np.ndarray) -> int:
    """Misses of a fresh ``policy`` over ``keys``: its own ``replay`` when it has one, else
    one access at a time through the pager methods."""
    replay = getattr(policy, "replay", None)
    if replay is not None:
        return int(replay(keys))
    cap = policy.capacity
    misses = 0
    for key in keys.tolist():
        if key in policy:
            policy.hit(key)
            continue
        misses += 1
        policy.miss(key)
        if len(policy) >= cap:
            policy.evict(())
        policy.insert(key)
    return misses


def _split(values: list[str]) -> list[str]:
    return [v.strip() for value in values for v in value.split(",") if v.strip()]


@app.command()
@handle_errors
def replay(trace: Path = typer.Argument(..., help="A page trace (--record-pages FILE)."),
           policy: list[str] = typer.Option(["lru"], "--policy", "-p",
                                            help="Policies, comma-separated (lru,arc,belady)."),
           capacity: list[str] = typer.Option(..., "--capacity", "-c",
                                              help="VRAM capacities, comma-separated "
                                                   "(16MiB,64MiB)."),
           as_json: bool = typer.Option(False, "--json", help="Print the results as JSON.")
           ) -> None:
    """Print each policy's miss ratio at each capacity (a miss-ratio curve)."""
    from xv_core.plugins import load_plugins

    plugins = load_plugins()
    names = _split(policy)
    if not names:
        raise XvError("no policy given", where="--policy", hint="for example --policy lru,arc")
    for name in names:
        plugins.eviction_policies.get(name, where="--policy")
    sizes: list[int] = []
    for text in _split(capacity):
        try:
            sizes.append(parse_size(text))
        except ValueError as exc:
            raise XvError(str(exc), where="--capacity") from None
    if not sizes:
        raise XvError("no capacity given", where="--capacity", hint="for example -c 16MiB,64MiB")
    header, records = read_page_trace(trace)
    page_size = int(header["page_size"])
    for size in sizes:
        if size < page_size:
            raise XvError(f"capacity {format_size(size)} holds no page of the trace "
                          f"({format_size(page_size)})", where="--capacity")
    keys = trace_keys(records)
    results = []
    for size in sizes:
        for name in names:
            pages = size // page_size
            instance = plugins.eviction_policies.get(name).factory(pages)
            start = time.perf_counter()
            misses = replay_misses(instance, keys)
            seconds = time.perf_counter() - start
            results.append({"policy": name, "capacity": size, "pages": pages, "misses": misses,
                            "miss_ratio": misses / len(keys) if len(keys) else 0.0,
                            "seconds": seconds})
    if as_json:
        typer.echo(json.dumps({"trace": str(trace), "accesses": int(len(keys)),
                               "page_size": page_size, "buffers": len(header.get("buffers", {})),
                               "results": results}, indent=2))
        return
    count = len(header.get("buffers", {}))
    typer.echo(f"trace {trace}: {len(keys):,} page accesses ({format_size(page_size)} pages, "
               f"{count} buffer{'' if count == 1 else 's'})")
    label = [f"{format_size(s)} ({s // page_size} pages)" for s in sizes]
    width = max(len("capacity"), *(len(x) for x in label))
    cols = [max(8, len(n)) for n in names]
    typer.echo("miss ratio".ljust(width) + "".join(f"  {n:>{w}}" for n, w in zip(names, cols)))
    by = {(r["capacity"], r["policy"]): r for r in results}
    for size, text in zip(sizes, label):
        cells = "".join(f"  {by[size, n]['miss_ratio'] * 100:>{w - 1}.2f}%"
                        for n, w in zip(names, cols))
        typer.echo(text.ljust(width) + cells)
    rates = []
    for name in names:
        spent = sum(r["seconds"] for r in results if r["policy"] == name)
        rates.append(f"{name} {len(keys) * len(sizes) / spent / 1e6:.1f}M/s" if spent > 0
                     else f"{name} -")
    typer.echo("replay speed (accesses per second): " + ", ".join(rates))


# ----------------------------------------------------------------------------------------
# the run summary
# ----------------------------------------------------------------------------------------


def _bytes(n: float) -> str:
    n = int(n)
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f}{unit}"
    return f"{n}B"


def summary_lines(stats: dict[str, Any]) -> list[str]:
    """The VRAM part of ``xv fabric run``'s summary: the VRAM, each tier, each buffer."""
    if not stats or "tiers" not in stats:
        return []
    vram = stats["tiers"]["vram"]
    paging = "paging " + (stats.get("profile", "plain") if stats.get("paging") else "off")
    lines = [
        f"  vram: {format_size(stats['capacity'])} in {format_size(stats['page_size'])} pages, "
        f"{stats['eviction']}, {paging}; peak resident {_bytes(vram['resident_peak'])}"
        + (f" (over capacity by {_bytes(vram['overcommit_peak'])} while pinned)"
           if vram.get("overcommit_peak") else ""),
        f"    vram      {vram['accesses']:,} page accesses, {vram['hits']:,} hits, "
        f"{vram['misses']:,} faults ({vram['miss_ratio'] * 100:.1f}%"
        + (f", {vram['fault_batches']:,} batches" if vram.get("fault_batches") else "")
        + f"), {vram.get('prefetched', 0):,} prefetched ahead "
        f"({vram.get('prefetch_hits', 0):,} used), {vram['prefetches']:,} by the uvm tree, "
        f"{vram['evictions']:,} evictions, "
        f"{vram['writebacks']:,} written back; {_bytes(vram['bytes_written'])} in, "
        f"{_bytes(vram['bytes_read'])} out; modelled {vram['modelled_s'] * 1e3:.3f} ms",
    ]
    for name, tier in stats["tiers"].items():
        if name in ("vram", "backing"):
            continue
        lines.append(f"    {name:<9} {tier['hits']:,} hits, {tier['misses']:,} misses, "
                     f"{tier['evictions']:,} evictions; {_bytes(tier['bytes_read'])} read, "
                     f"{_bytes(tier['bytes_written'])} written "
                     f"({tier['bandwidth_Bps'] / 1e6:.0f} MB/s measured); "
                     f"modelled {tier['modelled_s'] * 1e3:.3f} ms")
    back = stats["tiers"]["backing"]
    lines.append(f"    backing   {back['kind']}: {back['reads']:,} reads, {back['writes']:,} "
                 f"writes; {_bytes(back['bytes_read'])} read, {_bytes(back['bytes_written'])} "
                 f"written" + (f"; {back['flushes']} flushes" if back.get("flushes") else ""))
    buffers = stats.get("buffers", {})
    if buffers:
        width = max(len("buffer"), *(len(n) for n in buffers))
        lines.append(f"    {'buffer':<{width}}  {'accesses':>9}  {'faults':>7}  {'evicted':>7}  "
                     f"{'in':>8}  {'out':>8}")
        for name, b in buffers.items():
            lines.append(f"    {name:<{width}}  {b['accesses']:>9,}  {b['misses']:>7,}  "
                         f"{b['evictions']:>7,}  {_bytes(b['bytes_written']):>8}  "
                         f"{_bytes(b['bytes_read']):>8}")
    return lines

"""``xv fabric``: validate, describe and run fabrics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import typer

from xv_core.cli.errors import handle_errors

app = typer.Typer(help="Validate, describe and run fabrics.", no_args_is_help=True)

FABRIC_HELP = "A fabric YAML file, or the name of a built-in fabric (default)."


def _load(fabric: str) -> tuple[Any, Any]:
    from xv_core.config.fabric import load_fabric
    from xv_core.plugins import load_plugins

    plugins = load_plugins()
    return load_fabric(fabric, plugins), plugins


def _size(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift}{unit}"
    return f"{n}B"


def fabric_dict(config: Any) -> dict[str, Any]:
    def options(o: Any) -> Any:
        return attrs.asdict(o) if attrs.has(type(o)) else o

    def link(ln: Any) -> dict[str, Any]:
        out = {"name": ln.name, "between": list(ln.between), "profile": ln.profile}
        p = ln.link_profile()
        out.update(model=ln.model or config.bus, bandwidth=p.bandwidth, latency=p.latency,
                   duplex="full" if p.full_duplex else "half")
        return out

    def component(c: Any) -> dict[str, Any]:
        out = {"name": c.name, "kind": c.kind, **options(c.options)}
        if c.timing is not None:
            out["timing"] = {k: v for k, v in attrs.asdict(c.timing).items() if v is not None}
        return out

    return {
        "name": config.name,
        "source": config.source,
        "bus": config.bus,
        "clock": config.clock,
        "scheduler": config.scheduler,
        "vram": attrs.asdict(config.vram),
        "components": [component(c) for c in config.components],
        "links": [link(ln) for ln in config.links],
    }


@app.command()
@handle_errors
def validate(fabric: str = typer.Argument(..., help=FABRIC_HELP)) -> None:
    """Check a fabric: every problem is printed with its $.path."""
    config, _ = _load(fabric)
    typer.echo(f"fabric {config.name!r} is valid: {len(config.components)} components, "
               f"{len(config.links)} links")


@app.command()
@handle_errors
def describe(fabric: str = typer.Argument(..., help=FABRIC_HELP),
             as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Show a fabric's VRAM, components and links, with defaults filled in."""
    config, plugins = _load(fabric)
    data = fabric_dict(config)
    if as_json:
        typer.echo(json.dumps(data, indent=2))
        return
    v = config.vram
    typer.echo(f"fabric {config.name}" + (f" ({config.source})" if config.source else " (built-in)"))
    typer.echo(f"  vram: {_size(v.capacity)} in {_size(v.page_size)} pages, eviction {v.eviction}, "
               f"paging {'on' if v.paging else 'off'}, manager {v.manager}")
    typer.echo("  components:")
    for c in data["components"]:
        extra = ", ".join(f"{k}={val}" for k, val in c.items() if k not in ("name", "kind"))
        plugin = plugins.components.plugin_of(c["kind"])
        typer.echo(f"    {c['name']:<12} {c['kind']:<10} {extra}  [{plugin}]")
    typer.echo(f"  timing: bus {config.bus}, clock {config.clock}, scheduler {config.scheduler}")
    if config.links:
        typer.echo("  links:")
        for ln in config.links:
            p = ln.link_profile()
            model = f", {ln.model}" if ln.model else ""
            typer.echo(f"    {ln.name:<12} {ln.between[0]} <-> {ln.between[1]}  "
                       f"{ln.profile or 'custom'}: {p.bandwidth / 1e9:g} GB/s, "
                       f"{p.latency * 1e6:g} us{model}")


@app.command()
@handle_errors
def run(fabric: str = typer.Argument(..., help=FABRIC_HELP),
        job: Path = typer.Argument(..., help="A job YAML file."),
        backend: str = typer.Option(None, "--backend", help="Run every component on this backend."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        record_pages: Path = typer.Option(None, "--record-pages", metavar="FILE",
                                          help="Record page accesses to FILE "
                                               "(replay it with `xv vram replay`)."),
        scheduler: str = typer.Option(None, "--scheduler", metavar="NAME",
                                      help="Place tiles with this scheduling policy "
                                           "(eft, round-robin, locality, or a plugin's).")
        ) -> None:
    """Run a job's steps on a fabric and write its outputs; print wall and virtual time."""
    from xv_core.config.job import load_job
    from xv_core.runtime.api import Fabric
    from xv_core.runtime.job import run_job

    config, plugins = _load(fabric)
    if scheduler is not None:
        plugins.schedulers.get(scheduler, where="--scheduler")
    job_config = load_job(job)
    if record_pages is not None:  # before anything runs: not a failure at the job's end
        from xv_core.arrays import check_output_path

        check_output_path(record_pages.absolute(), "--record-pages")
    with Fabric(config, plugins, backend=backend, scheduler=scheduler) as fab:
        if record_pages is not None:
            fab.vram.record_pages(str(record_pages))
        result = run_job(job_config, fab)
    timing = result.timing
    spans = timing.get("steps", [])

    def span(s: Any) -> dict[str, Any]:
        if not 0 <= s.dispatch.step < len(spans):
            return {}
        one = spans[s.dispatch.step]
        return {"virtual_start_s": one["virtual_start_s"], "virtual_end_s": one["virtual_end_s"],
                "virtual_s": one["virtual_end_s"] - one["virtual_start_s"],
                "placement": one["placement"], "moved_bytes": one["moved_bytes"],
                "stolen": s.dispatch.stolen}

    summary = {
        "job": str(job),
        "fabric": result.fabric,
        "wall_s": result.wall_s,
        "virtual_s": timing.get("virtual_s", 0.0),
        "compile_s": result.compile_s,
        "native_compile": result.native,
        "scheduler": timing.get("scheduler"),
        "bus": timing.get("bus"),
        "clock": timing.get("clock"),
        "bound": timing.get("bound", {}),
        "steps": [
            {"index": s.index, "kernel": s.kernel, "grid": list(s.launch.grid),
             "block": list(s.launch.block), "tiles": len(s.dispatch.tiles),
             "tiles_per_component": s.dispatch.tiles_per_component(),
             "wall_s": s.dispatch.wall_s, "ops": s.dispatch.work.ops,
             "bytes_read": s.dispatch.work.bytes_read,
             "bytes_written": s.dispatch.work.bytes_written, **span(s)}
            for s in result.steps
        ],
        "links": timing.get("links", {}),
        "components": timing.get("components", {}),
        "paging": timing.get("paging"),
        "outputs": result.outputs,
        "vram": result.vram,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    n = len(result.steps)
    typer.echo(f"ran {job} on fabric {result.fabric}: {n} step{'' if n == 1 else 's'} "
               f"(scheduler {summary['scheduler']}, bus {summary['bus']}, "
               f"clock {summary['clock']})")
    for s in summary["steps"]:
        where = ", ".join(f"{n} {c}" for n, c in s["tiles_per_component"].items())
        stolen = f", {s['stolen']} stolen" if s.get("stolen") else ""
        virtual = (f"; virtual {_ms(s['virtual_start_s'])} to {_ms(s['virtual_end_s'])} ms"
                   if "virtual_s" in s else "")
        typer.echo(f"  step {s['index']}  {s['kernel']:<14} grid {s['grid']} block {s['block']}  "
                   f"{s['tiles']} tile{'' if s['tiles'] == 1 else 's'} ({where}{stolen})  "
                   f"{s['wall_s'] * 1e3:.2f} ms{virtual}")
    typer.echo(f"  kernels loaded in {result.compile_s * 1e3:.1f} ms; "
               f"wall time {result.wall_s * 1e3:.1f} ms; virtual time "
               f"{_ms(summary['virtual_s'])} ms")
    native = result.native
    if native.get("compiles") or native.get("cache_hits"):
        typer.echo(f"  native code: {native['compiles']} compiled in "
                   f"{native['compile_s'] * 1e3:.1f} ms, {native['cache_hits']} from the cache")
    for line in timing_lines(summary):
        typer.echo(line)
    from xv_core.cli.vram_cmd import summary_lines

    for line in summary_lines(result.vram):
        typer.echo(line)
    if record_pages is not None:
        typer.echo(f"page trace: {record_pages}")
    typer.echo("outputs:")
    for name, path in result.outputs.items():
        typer.echo(f"  {name} -> {path}")


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.3f}"


def _rate(bps: float) -> str:
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6), ("kB/s", 1e3)):
        if bps >= scale:
            return f"{bps / scale:.3g} {unit}"
    return f"{bps:.3g} B/s"


def _amount(n: float) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.3g} {unit}"
    return f"{int(n)} B"


def timing_lines(summary: dict[str, Any]) -> list[str]:
    """The modelled part of ``xv fabric run``'s summary: the bound, each link, each component."""
    lines = []
    bound = summary.get("bound") or {}
    if bound.get("lower_bound_s"):
        lines.append(f"  makespan / lower bound: {_ms(bound['makespan_s'])} / "
                     f"{_ms(bound['lower_bound_s'])} ms = {bound['ratio']:.3f} (work / "
                     f"throughput {_ms(bound['area_s'])} ms, critical path "
                     f"{_ms(bound['critical_path_s'])} ms)")
    links = summary.get("links") or {}
    if links:
        lines.append("  links (virtual):")
        for name, ln in links.items():
            lines.append(f"    {name:<12} {ln['between'][0]} <-> {ln['between'][1]}  "
                         f"{_amount(ln['bytes'])} in {ln['transfers']} transfer"
                         f"{'' if ln['transfers'] == 1 else 's'}, {_rate(ln['bandwidth'])} "
                         f"achieved, busy {_ms(ln['busy_s'])} ms "
                         f"({ln['utilisation'] * 100:.1f}% of {ln['profile']}, {ln['model']})")
    components = summary.get("components") or {}
    if components:
        lines.append("  components (virtual):")
        for name, c in components.items():
            lines.append(f"    {name:<12} {c['tiles']} tile{'' if c['tiles'] == 1 else 's'}, "
                         f"busy {_ms(c['busy_s'])} ms ({c['utilisation'] * 100:.1f}%), "
                         f"{c['lanes']} lane{'' if c['lanes'] == 1 else 's'} "
                         f"{c['lane_utilisation'] * 100:.1f}% used ({c['profile']} profile)")
    paging = summary.get("paging")
    if paging and (paging["in"] or paging["down"] or paging["fault_batches"]):
        pager = paging["pager"]
        lines.append(f"  paging (virtual): {paging['in']:,} pages in "
                     f"({_amount(paging['in_bytes'])}), {paging['down']:,} down "
                     f"({_amount(paging['down_bytes'])}), {paging['zero_fills']:,} zero-filled"
                     + (f", {paging['faults']:,} far faults in {paging['fault_batches']:,} "
                        f"batches (pager busy {_ms(pager['busy_s'])} ms)"
                        if paging["fault_batches"] else ""))
        for name, ln in paging["links"].items():
            if ln["transfers"]:
                lines.append(f"    {name:<12} {ln['between'][0]} <-> {ln['between'][1]}  "
                             f"{_amount(ln['bytes'])} in {ln['transfers']} transfer"
                             f"{'' if ln['transfers'] == 1 else 's'}, busy "
                             f"{_ms(ln['busy_s'])} ms ({ln['profile']})")
    return lines

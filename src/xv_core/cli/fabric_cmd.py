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

    return {
        "name": config.name,
        "source": config.source,
        "vram": attrs.asdict(config.vram),
        "components": [{"name": c.name, "kind": c.kind, **options(c.options)}
                       for c in config.components],
        "links": [{"name": ln.name, "between": list(ln.between), "profile": ln.profile}
                  for ln in config.links],
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
    if config.links:
        from xv_core.profiles import get_profile

        typer.echo("  links:")
        for ln in config.links:
            p = get_profile(ln.profile)
            typer.echo(f"    {ln.name:<12} {ln.between[0]} <-> {ln.between[1]}  {ln.profile}: "
                       f"{p.bandwidth / 1e9:g} GB/s, {p.latency * 1e6:g} us")


@app.command()
@handle_errors
def run(fabric: str = typer.Argument(..., help=FABRIC_HELP),
        job: Path = typer.Argument(..., help="A job YAML file."),
        backend: str = typer.Option(None, "--backend", help="Run every component on this backend."),
        as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
        record_pages: Path = typer.Option(None, "--record-pages", metavar="FILE",
                                          help="Record page accesses to FILE "
                                               "(replay it with `xv vram replay`).")) -> None:
    """Run a job's steps on a fabric and write its outputs."""
    from xv_core.config.job import load_job
    from xv_core.runtime.api import Fabric
    from xv_core.runtime.job import run_job

    config, plugins = _load(fabric)
    job_config = load_job(job)
    with Fabric(config, plugins, backend=backend) as fab:
        if record_pages is not None:
            fab.vram.record_pages(str(record_pages))
        result = run_job(job_config, fab)
    summary = {
        "job": str(job),
        "fabric": result.fabric,
        "wall_s": result.wall_s,
        "compile_s": result.compile_s,
        "steps": [
            {"index": s.index, "kernel": s.kernel, "grid": list(s.launch.grid),
             "block": list(s.launch.block), "tiles": len(s.dispatch.tiles),
             "tiles_per_component": s.dispatch.tiles_per_component(),
             "wall_s": s.dispatch.wall_s, "ops": s.dispatch.work.ops,
             "bytes_read": s.dispatch.work.bytes_read, "bytes_written": s.dispatch.work.bytes_written}
            for s in result.steps
        ],
        "outputs": result.outputs,
        "vram": result.vram,
    }
    if as_json:
        typer.echo(json.dumps(summary, indent=2))
        return
    n = len(result.steps)
    typer.echo(f"ran {job} on fabric {result.fabric}: {n} step{'' if n == 1 else 's'}")
    for s in summary["steps"]:
        where = ", ".join(f"{n} {c}" for n, c in s["tiles_per_component"].items())
        typer.echo(f"  step {s['index']}  {s['kernel']:<14} grid {s['grid']} block {s['block']}  "
                   f"{s['tiles']} tile{'' if s['tiles'] == 1 else 's'} ({where})  {s['wall_s'] * 1e3:.2f} ms")
    typer.echo(f"  kernels loaded in {result.compile_s * 1e3:.1f} ms; "
               f"wall time {result.wall_s * 1e3:.1f} ms")
    from xv_core.cli.vram_cmd import summary_lines

    for line in summary_lines(result.vram):
        typer.echo(line)
    if record_pages is not None:
        typer.echo(f"page trace: {record_pages}")
    typer.echo("outputs:")
    for name, path in result.outputs.items():
        typer.echo(f"  {name} -> {path}")

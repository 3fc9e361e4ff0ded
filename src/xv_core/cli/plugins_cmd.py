"""``xv plugins``: what is installed."""

from __future__ import annotations

import json

import typer

from xv_core.cli.errors import handle_errors
from xv_core.plugins import load_plugins

app = typer.Typer(help="Installed plugins and what they provide.", no_args_is_help=True)


@app.command("list")
@handle_errors
def list_plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """List plugin distributions, their versions and the kinds each provides."""
    plugins = load_plugins()
    rows = [
        {"plugin": info.name, "distribution": info.distribution, "version": info.version,
         "provides": plugins.provided_by(info.name)}
        for info in plugins.loaded
    ]
    failures = [{"plugin": f.name, "distribution": f.distribution, "reason": f.reason}
                for f in plugins.failures]
    backends = [{"name": name, "plugin": plugins.backends.plugin_of(name),
                 "checks_bounds": spec.checks_bounds, "description": spec.description}
                for name, spec in ((n, plugins.backends.get(n)) for n in plugins.backends)]
    if as_json:
        typer.echo(json.dumps({"plugins": rows, "backends": backends, "failed": failures},
                              indent=2))
        return
    unchecked = {b["name"] for b in backends if not b["checks_bounds"]}
    for row in rows:
        provides = "; ".join(
            f"{what}: " + ", ".join(f"{n} (no bounds checks)" if what == "backend"
                                    and n in unchecked else n for n in names)
            for what, names in row["provides"].items())
        typer.echo(f"{row['distribution']:<22} {row['version']:<8} {provides or '(nothing)'}")
    for f in failures:
        typer.echo(f"{f['distribution'] or f['plugin']:<22} FAILED   {f['reason']}")

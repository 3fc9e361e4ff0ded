"""``xv``: the command line of Xenovectra."""

from __future__ import annotations

import typer

from xv_core.cli import fabric_cmd, plugins_cmd, vram_cmd
from xv_core.logsetup import LEVELS, configure

app = typer.Typer(
    help="Xenovectra: a virtual GPU on ordinary hardware.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(plugins_cmd.app, name="plugins")
app.add_typer(fabric_cmd.app, name="fabric")
app.add_typer(vram_cmd.app, name="vram")


@app.callback()
def root(
    log_format: str = typer.Option("console", "--log-format", help="console or json."),
    log_level: str = typer.Option("warning", "--log-level", help=", ".join(LEVELS)),
) -> None:
    """Global options: logging goes to standard error."""
    if log_format not in ("console", "json"):
        raise typer.BadParameter("must be console or json", param_hint="--log-format")
    if log_level not in LEVELS:
        raise typer.BadParameter(f"must be one of {', '.join(LEVELS)}", param_hint="--log-level")
    configure(log_format, log_level)


def main() -> None:
    app()


if __name__ == "__main__":
    main()

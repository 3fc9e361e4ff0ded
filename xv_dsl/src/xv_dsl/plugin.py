"""Entry point of xv_dsl: registers the .xvk front end."""

from __future__ import annotations

from xv_core import hookimpl
from xv_core.registry import FrontendSpec


@hookimpl
def xv_frontends() -> list[FrontendSpec]:
    from xv_dsl import compile_source

    return [FrontendSpec(
        name="xvk",
        suffixes=(".xvk",),
        compile=compile_source,
        description="the Xenovectra kernel language (C-like, GLSL types), compiled by vgpucc",
    )]

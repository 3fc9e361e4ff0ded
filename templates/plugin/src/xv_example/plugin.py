"""The hooks of the example plugin: one component kind."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import attrs

from xv_core import hookimpl
from xv_core.registry import ComponentKind


@attrs.frozen
class ExampleOptions:
    """The component's keys in the fabric YAML (unknown keys are rejected with their $.path).

    ``workers`` (or ``threads``) is also what the modelled timeline takes as the component's
    lanes; ``timing: {lanes: ...}`` in the fabric overrides it."""

    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    backend: str = "interp"


class ExampleComponent:
    """Runs tiles on ``workers`` threads with the configured backend."""

    kind = "example"

    def __init__(self, name: str, options: ExampleOptions, context: Any):
        self.name = name
        self.workers = options.workers
        self._options = options
        self._context = context
        self._pool = ThreadPoolExecutor(options.workers, thread_name_prefix=name)

    def submit(self, kernel: Any, tile: Any, args: Any) -> Future[Any]:
        prepared = self._context.prepare(kernel, self._options.backend)
        return self._pool.submit(prepared.run_tile, tile, args)

    def close(self) -> None:
        self._pool.shutdown()


@hookimpl
def xv_component_kinds() -> list[ComponentKind]:
    return [ComponentKind("example", ExampleOptions, ExampleComponent, "an example device")]

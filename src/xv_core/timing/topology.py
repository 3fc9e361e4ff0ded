"""Links between endpoints, and the routes transfers take over them."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

import attrs

from xv_core.errors import XvError
from xv_core.profiles import LinkProfile
from xv_core.timing.models import BusModel


@attrs.frozen
class Link:
    """A link named ``name`` between endpoints ``a`` and ``b`` (``host``, a component or a
    switch), timed by ``profile`` under ``model`` (a bus model or its name; None takes the
    timeline's default ``bus``)."""

    name: str
    a: str
    b: str
    profile: LinkProfile
    model: str | BusModel | None = None


@attrs.frozen
class Route:
    """The links a transfer crosses from ``src`` to ``dst``, in order.

    ``hops`` holds (link index, direction): direction 0 runs from the link's ``a`` to its ``b``.
    """

    src: str
    dst: str
    links: tuple[str, ...]
    hops: tuple[tuple[int, int], ...]

    @property
    def label(self) -> str:
        """The link names joined by ``+`` (what the event log shows for a transfer)."""
        return "+".join(self.links)


class NoRouteError(XvError):
    """Two endpoints that no chain of links joins, or a path that does not connect."""


def shortest_route(links: Sequence[Link], src: str, dst: str) -> Route:
    """The route with the fewest links from ``src`` to ``dst``; among equals, the one whose
    links come first in declaration order (a breadth-first search visiting links in order), so
    the choice never depends on anything but the fabric."""
    if src == dst:
        return Route(src, dst, (), ())
    adjacency: dict[str, list[tuple[int, int, str]]] = {}
    for i, link in enumerate(links):
        adjacency.setdefault(link.a, []).append((i, 0, link.b))
        adjacency.setdefault(link.b, []).append((i, 1, link.a))
    if src not in adjacency or dst not in adjacency:
        missing = src if src not in adjacency else dst
        raise NoRouteError(f"no link reaches {missing!r}", where="timeline",
                           hint=f"endpoints with links: {', '.join(sorted(adjacency)) or 'none'}")
    previous: dict[str, tuple[str, int, int]] = {src: ("", -1, -1)}
    queue = deque([src])
    while queue:
        node = queue.popleft()
        if node == dst:
            break
        for index, direction, other in adjacency[node]:
            if other not in previous:
                previous[other] = (node, index, direction)
                queue.append(other)
    if dst not in previous:
        raise NoRouteError(f"no route from {src!r} to {dst!r}", where="timeline",
                           hint="add a link joining them")
    hops: list[tuple[int, int]] = []
    node = dst
    while node != src:
        node, index, direction = previous[node]
        hops.append((index, direction))
    hops.reverse()
    return Route(src, dst, tuple(links[i].name for i, _ in hops), tuple(hops))


def explicit_route(links: Sequence[Link], src: str, names: Sequence[str]) -> Route:
    """The route from ``src`` over the links called ``names``, in that order."""
    index = {link.name: i for i, link in enumerate(links)}
    hops: list[tuple[int, int]] = []
    node = src
    for name in names:
        if name not in index:
            raise NoRouteError(f"unknown link {name!r}", where="timeline",
                               hint=f"links: {', '.join(index) or 'none'}")
        link = links[index[name]]
        if node == link.a:
            hops.append((index[name], 0))
            node = link.b
        elif node == link.b:
            hops.append((index[name], 1))
            node = link.a
        else:
            raise NoRouteError(f"link {name!r} joins {link.a!r} and {link.b!r}, not {node!r}",
                               where="timeline",
                               hint="list the links in the order they are crossed")
    return Route(src, node, tuple(names), tuple(hops))

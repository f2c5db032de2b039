"""Routes: every way a call can run, as the rows of one ordered table per front-end.

A front-end (``regloss/_numpy_routes.py``, ``regloss/torch/_routes.py``,
``regloss/_jax_routes.py``) describes each call by one record of facts read from metadata
only (dtypes, shapes, device, options, grad mode, tracing) and keeps an ordered list of
:class:`Route` rows. Each row says when it applies — a function of the facts returning
None, or the reason it declines — and how it runs. **The first row that applies serves.**
Rows are self-contained: a row's condition holds on its own (not because the rows above it
declined), which is what makes a row safe to force.

:func:`explain` names the route a call takes and why each row above it declined. A route
is forced with a front-end's ``use_route(name)`` context manager, or for a whole process
with ``REGLOSS_ROUTE=name`` (every front-end whose table has a row of that name); a forced
row that does not apply to a call raises :class:`RouteError` with its reason. Forcing is a
setting of the process (every thread), meant for tests and debugging.

A row may still decline after running, for one reason only: values that metadata cannot
show — weights that are NaN, infinite, negative, all zero or (for a mean) out of range,
or an NLL's negative variance — which the eager row checks, rescales or rejects with its
error. The call then goes on down the table from that row.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from typing import Any, NamedTuple

__all__ = [
    "Explanation",
    "Route",
    "RouteError",
    "Table",
]


class RouteError(ValueError):
    """A forced route that does not exist or does not apply to the call."""


class Route(NamedTuple):
    """One way a call can run."""

    name: str
    #: None when the row applies to the facts, else the reason it declines
    when: Callable[[Any], str | None]
    #: runs the call (a front-end's own signature); None: declined after running
    run: Callable[..., Any]
    #: one line: what this route is
    doc: str
    #: the thresholds (``regloss._thresholds`` keys) its condition reads
    thresholds: tuple[str, ...] = ()


class Explanation(NamedTuple):
    """Which route a call takes, and why each row above it declined."""

    frontend: str
    route: str
    #: (row, reason) for every row above the one that serves
    declined: tuple[tuple[str, str], ...]
    facts: Any
    forced: bool = False

    def __str__(self) -> str:
        how = "forced" if self.forced else "the first row that applies"
        lines = [f"{self.frontend}: route {self.route!r} ({how})"]
        lines += [f"  {name}: declined: {why}" for name, why in self.declined]
        return "\n".join(lines)


class Table:
    """An ordered list of routes: the first that applies serves."""

    def __init__(self, frontend: str, routes: list[Route]) -> None:
        names = [r.name for r in routes]
        if len(set(names)) != len(names):
            raise RuntimeError(f"{frontend}: route names repeat: {names}")
        self.frontend = frontend
        self.routes = tuple(routes)
        self.by_name = {r.name: r for r in routes}
        # a plain attribute, not a ContextVar: torch.compile's Dynamo traces attribute reads
        # (and guards on them) but not ContextVar.get
        self._forced: str | None = None
        #: REGLOSS_ROUTE where it names a row of this table
        self._env = _ENV_ROUTE if _ENV_ROUTE in self.by_name else None

    def forced(self) -> str | None:
        """The route forced by ``use_route`` (in this process), else by ``REGLOSS_ROUTE``."""
        return self._forced or self._env

    def choose(self, facts: Any, start: int = 0) -> Route:
        """The first row from ``start`` that applies (or the forced one, checked)."""
        forced = self._forced or self._env
        if forced is not None:
            return self._check_forced(forced, facts)
        for route in self.routes[start:] if start else self.routes:
            if route.when(facts) is None:
                return route
        raise RouteError(f"{self.frontend}: no route applies")  # the last row always does

    def after(self, route: Route, facts: Any) -> Route:
        """The row that serves when ``route`` declined after running (weights' values)."""
        if self.forced() is not None:
            raise RouteError(
                f"route {route.name!r} was forced but declined these values (weights that "
                "are NaN, infinite, negative, all zero or for a mean outside [2^-30, 2^30], "
                "or a negative variance); force 'eager' to see its error or rescaling"
            )
        return self.choose(facts, self.routes.index(route) + 1)

    def _check_forced(self, name: str, facts: Any) -> Route:
        route = self.by_name.get(name)
        if route is None:
            raise RouteError(
                f"route {name!r} is not a {self.frontend} route; choose one of {list(self.by_name)}"
            )
        why = route.when(facts)
        if why is not None:
            raise RouteError(
                f"route {name!r} was forced (use_route or REGLOSS_ROUTE) but does not "
                f"apply to this {self.frontend} call: {why}"
            )
        return route

    def explain(self, facts: Any) -> Explanation:
        """The route ``facts`` take and the reasons of the rows above it."""
        forced = self.forced()
        if forced is not None:
            route = self._check_forced(forced, facts)
            return Explanation(self.frontend, route.name, (), facts, True)
        declined: list[tuple[str, str]] = []
        for route in self.routes:
            why = route.when(facts)
            if why is None:
                return Explanation(self.frontend, route.name, tuple(declined), facts)
            declined.append((route.name, why))
        raise RouteError(f"{self.frontend}: no route applies")

    @contextlib.contextmanager
    def use(self, name: str) -> Iterator[None]:
        """Force route ``name`` for the calls of this front-end inside the block."""
        if name not in self.by_name:
            raise RouteError(
                f"route {name!r} is not a {self.frontend} route; choose one of {list(self.by_name)}"
            )
        before, self._forced = self._forced, name
        try:
            yield
        finally:
            self._forced = before

    def markdown(self) -> str:
        """The table as Markdown rows: order, name, what it is, its thresholds."""
        rows = [
            f"| {i} | `{r.name}` | {r.doc} | {', '.join(f'`{t}`' for t in r.thresholds)} |"
            for i, r in enumerate(self.routes, 1)
        ]
        head = "| # | route | what it is | thresholds |\n|---|---|---|---|"
        return "\n".join([head, *rows])


#: REGLOSS_ROUTE, read once at import (the tests and users set it before starting Python)
_ENV_ROUTE: str | None = os.environ.get("REGLOSS_ROUTE") or None

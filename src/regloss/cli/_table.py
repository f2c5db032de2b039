"""Plain-text tables for the terminal (no dependency: the CLI must run with NumPy alone).

Tables wider than the terminal wrap their text columns (words kept whole where they fit),
so `regloss losses` reads on a 100-column terminal; ``width=None`` never wraps.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Sequence

__all__ = ["table", "terminal_width"]


def terminal_width() -> int:
    """The terminal's width (``COLUMNS`` or the tty), 100 when there is none."""
    return shutil.get_terminal_size((100, 24)).columns


def table(
    headers: Sequence[str],
    rows: Sequence[Sequence[object]],
    title: str = "",
    width: int | None = None,
) -> str:
    """A boxed table; numbers right-aligned, text left-aligned, wrapped to ``width``.

    Examples
    --------
    >>> print(table(["name", "value"], [["mse", "0.4167"]]))
    +------+--------+
    | name | value  |
    +------+--------+
    | mse  | 0.4167 |
    +------+--------+
    >>> print(table(["loss", "formula"], [["huber", "r^2/2 if |r| <= d, else d |r|"]], width=24))
    +-------+--------------+
    | loss  | formula      |
    +-------+--------------+
    | huber | r^2/2 if |r| |
    |       | <= d, else d |
    |       | |r|          |
    +-------+--------------+
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]
    if width is not None:
        widths = _fit(headers, cells, widths, numeric, width)

    def lines(values: Sequence[str]) -> list[str]:
        wrapped = [
            textwrap.wrap(v, w, break_on_hyphens=False) or [""] for v, w in zip(values, widths)
        ]
        height = max(len(c) for c in wrapped)
        out = []
        for k in range(height):
            parts = [
                (c[k] if k < len(c) else "").rjust(w)
                if num
                else (c[k] if k < len(c) else "").ljust(w)
                for c, w, num in zip(wrapped, widths, numeric)
            ]
            out.append("| " + " | ".join(parts) + " |")
        return out

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = (textwrap.wrap(title, width) if width else [title]) if title else []
    header = [h.ljust(w) for h, w in zip(headers, widths)]
    out += [rule, *lines(header), rule]
    for r in cells:
        out += lines(r)
    out.append(rule)
    return "\n".join(out)


def _fit(
    headers: Sequence[str],
    cells: list[list[str]],
    widths: list[int],
    numeric: list[bool],
    width: int,
) -> list[int]:
    """Narrow the widest text columns, one character at a time, until the table fits
    (never below a column's longest word, nor below 6 characters; numbers never wrap)."""
    floor = []
    for i, (h, num) in enumerate(zip(headers, numeric)):
        head = max((len(word) for word in h.split()), default=1)
        if num:  # numbers never wrap; their header may
            floor.append(max(head, *(len(r[i]) for r in cells)))
        else:
            floor.append(max(6, head, *(len(word) for r in cells for word in r[i].split())))
    widths = list(widths)
    while sum(widths) + 3 * len(widths) + 1 > width:
        room = [i for i, w in enumerate(widths) if w > floor[i]]
        if not room:
            break
        i = max(room, key=lambda j: widths[j])
        widths[i] -= 1
    return widths


def _is_number(text: str) -> bool:
    try:
        float(text.split()[0].strip("[],"))
    except (ValueError, IndexError):
        return False
    return True

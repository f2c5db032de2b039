"""Plain-text tables for the terminal (no dependency: the CLI must run with NumPy alone)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["table"]


def table(headers: Sequence[str], rows: Sequence[Sequence[object]], title: str = "") -> str:
    """A boxed table; numbers right-aligned, text left-aligned.

    Examples
    --------
    >>> print(table(["name", "value"], [["mse", "0.4167"]]))
    +------+--------+
    | name | value  |
    +------+--------+
    | mse  | 0.4167 |
    +------+--------+
    """
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [all(_is_number(r[i]) for r in cells) and bool(cells) for i in range(len(headers))]

    def line(values: Sequence[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(values, widths, numeric)]
        return "| " + " | ".join(parts) + " |"

    rule = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    out = [title] if title else []
    out += [rule, line([h.ljust(w) for h, w in zip(headers, widths)]), rule]
    out += [line(r) for r in cells] + [rule]
    return "\n".join(out)


def _is_number(text: str) -> bool:
    try:
        float(text.split()[0].strip("[],"))
    except (ValueError, IndexError):
        return False
    return True

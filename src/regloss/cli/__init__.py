"""The ``regloss`` command. One module per sub-command; each adds its parser and a ``run``.

Errors in the user's input print one line on stderr and exit with status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from .._version import __version__
from . import demo, diagnose, losses, verify

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's default prints the whole usage; we promise one line.
        self.exit(2, f"regloss: error: {message} (see regloss --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regloss", description="Regression losses defined once.")
    parser.add_argument("--version", action="version", version=f"regloss {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (demo, diagnose, losses, verify):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except (ValueError, TypeError, OSError) as exc:
        print(f"regloss: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regloss: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

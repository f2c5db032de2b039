"""The ``regloss`` command. One module per sub-command; each adds its parser and a ``run``.

Errors in the user's input print one line on stderr and exit with status 2, never a
traceback.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from collections.abc import Sequence

from .._optional import MissingExtra
from .._version import __version__
from . import bench, demo, diagnose, losses, verify

__all__ = ["main"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        # argparse's default prints the whole usage; we promise one line.
        self.exit(2, f"regloss: error: {message} (see regloss --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="regloss", description="Regression losses defined once.")
    parser.add_argument("--version", action="version", version=f"regloss {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in (bench, demo, diagnose, losses, verify):
        module.add_parser(sub)
    return parser


def _tolerant_streams() -> None:
    """A terminal or pipe that cannot encode ρ, ψ or ± gets '?' instead of a crash."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="replace")


def main(argv: Sequence[str] | None = None) -> int:
    _tolerant_streams()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 2
    try:
        return int(args.run(args))
    except BrokenPipeError:  # `regloss losses | head`: the reader left; not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except MissingExtra as exc:
        print(f"regloss: {exc}", file=sys.stderr)
        return 2
    except (ValueError, TypeError, OSError) as exc:
        print(f"regloss: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("regloss: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug in regloss: still one line, never a traceback
        if os.environ.get("REGLOSS_DEBUG"):
            raise
        print(
            f"regloss: internal error: {type(exc).__name__}: {_one_line(exc)} (a bug; please "
            "report it, with REGLOSS_DEBUG=1 for the traceback)",
            file=sys.stderr,
        )
        return 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

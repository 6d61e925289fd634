"""Command-line plumbing shared by train.py and visualize.py.

Why: every command must answer bad input with one line and exit code 2, never a traceback, so
argument errors and `UserError`s are funnelled through `run_cli`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from attnjax.errors import UserError


class OneLineArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (no usage dump) and exits with code 2."""

    def error(self, message: str) -> None:  # noqa: D401 - argparse API
        print(f"error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        raise SystemExit(2)


def run_cli(main: Callable[[], int | None]) -> None:
    """Run `main`, turning a UserError into one stderr line with exit code 2."""
    try:
        code = main()
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    raise SystemExit(code or 0)

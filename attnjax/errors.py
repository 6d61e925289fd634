"""The one exception type that command lines turn into a single line and exit code 2, and the
check that turns an unusable output folder into one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


class UserError(Exception):
    """Bad input from the person at the keyboard: the message says what is wrong and the fix."""


def os_error_reason(err: OSError) -> str:
    """`<path>: <reason>` of an OS error, for one-line messages."""
    reason = err.strerror or str(err)
    return f"{err.filename}: {reason}" if err.filename else reason


def remove_folders(created: list[Path]) -> None:
    """Remove folders this process created (deepest last in the list), if still empty."""
    for folder in reversed(created):
        with contextlib.suppress(OSError):
            folder.rmdir()


def make_folder(folder: str | os.PathLike, created: list[Path] | None = None) -> list[Path]:
    """mkdir -p that records the folders it creates (top first) in `created`; OSError
    propagates (the caller names the flag and removes what was created)."""
    created = [] if created is None else created
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.is_dir()]
    for path in reversed(missing):
        path.mkdir()
        created.append(path)
    return created


def writable_folder(folder: str | os.PathLike, flag: str, given: str | None = None) -> Path:
    """Create `folder` (with its parents) if needed and prove that a file can be written in it
    by creating and removing one: root passes `os.access` almost everywhere (/proc, /sys).
    Any OS error becomes a one-line UserError naming the path (`given`: what the flag said,
    default the folder), and the folders created here are removed again, so a failed check
    leaves nothing behind."""
    folder = Path(folder)
    created: list[Path] = []
    try:
        make_folder(folder, created)
    except OSError as err:
        remove_folders(created)
        reason = os_error_reason(err)
    else:
        try:
            fd, probe = tempfile.mkstemp(dir=folder, prefix=".attnjax-probe-")
            os.close(fd)
            os.unlink(probe)
            return folder
        except OSError as err:
            remove_folders(created)
            reason = f"no file can be created in {folder}: {err.strerror or err}"
    raise UserError(f"{flag} {given or folder}: {reason}; choose another {flag}")

"""Writing files whole: every output goes to a temporary name beside its target and is renamed
onto it only once complete, so a reader (or a crash) never meets half a file and a failed
write never replaces a good one.

`replacing(path)` is the one mechanism; `write_text`, `write_bytes` and `write_json` are it for
text, and writers that want a path of their own (matplotlib's savefig, np.savez, imageio) write
to the path it yields. The temporary name keeps the target's suffix (savefig and np.savez pick
their format by it) and starts with a dot.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def temporary_path(path: str | os.PathLike) -> Path:
    """The temporary name beside `path` that `replacing` writes: .<stem>.<pid>.tmp<suffix>."""
    path = Path(path)
    return path.with_name(f".{path.stem}.{os.getpid()}.tmp{path.suffix}")


@contextlib.contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside `path`; when the block ends without an exception, rename
    it onto `path`. Either way nothing is left at the temporary path."""
    path = Path(path)
    tmp = temporary_path(path)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            if tmp.is_dir() and not tmp.is_symlink():
                shutil.rmtree(tmp)
            else:
                tmp.unlink()


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with replacing(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    with replacing(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, data: Any, indent: int = 1,
               sort_keys: bool = False) -> None:
    """`data` as JSON (no NaN or infinity: strict JSON readers refuse them), newline-ended."""
    write_text(path, json.dumps(data, indent=indent, sort_keys=sort_keys, allow_nan=False) + "\n")


@contextlib.contextmanager
def replacing_folder(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder beside `path`; when the block ends without an exception,
    it takes `path`'s place (an old folder there is moved aside first and removed last)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    old = path.with_name(f".{path.name}.{os.getpid()}.old")
    for leftover in (tmp, old):
        shutil.rmtree(leftover, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
        yield tmp
        moved = path.exists()
        if moved:
            os.replace(path, old)
        try:
            os.replace(tmp, path)
        except OSError:
            if moved:
                os.replace(old, path)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)

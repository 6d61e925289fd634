"""Which command wrote a file, and the check that lets a command replace only its own files.

Why: nothing is ever lost. `visualize.py card`, `evaluate --out`, `publish` and `figures` write
into folders that also hold files of other origins (a run's or a published agent's folder, a
results folder); before writing anything they check every file they would replace and refuse,
naming it, unless it carries their own stamp or is in the format they wrote before stamps.

Stamps: a JSON file holds "written_by": {"command": ..., "attnjax": version}; a Markdown file
starts with the line `<!-- written by <command> (attnjax <version>) -->`; files that cannot
carry one (PNG, PDF, CSV), or tables meant to be pasted elsewhere, are named under "files" of
a stamped JSON manifest beside them.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

from attnjax.errors import UserError

STAMP_KEY = "written_by"
MANIFEST_FILES_KEY = "files"


def attnjax_version() -> str:
    """The installed package's version, else the one pyproject.toml next to it names."""
    try:
        return metadata.version("attnjax")
    except metadata.PackageNotFoundError:
        pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
        try:
            return tomllib.loads(pyproject.read_text())["project"]["version"]
        except (OSError, KeyError, tomllib.TOMLDecodeError):
            return "unknown"


def json_stamp(command: str) -> dict[str, str]:
    """The value of "written_by" in a JSON file `command` writes."""
    return {"command": command, "attnjax": attnjax_version()}


def markdown_stamp(command: str) -> str:
    """The first line of a Markdown file `command` writes (an HTML comment: not rendered)."""
    return f"<!-- written by {command} (attnjax {attnjax_version()}) -->"


def read_json_file(path: Path) -> Any:
    """The JSON content of `path`, or None when it cannot be read or parsed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def has_json_stamp(doc: Any, command: str) -> bool:
    stamp = doc.get(STAMP_KEY) if isinstance(doc, dict) else None
    return isinstance(stamp, dict) and stamp.get("command") == command


def manifest_lists(manifest: Path, name: str, command: str) -> bool:
    """Whether `manifest` is a JSON file stamped by `command` that names file `name`."""
    doc = read_json_file(manifest)
    return has_json_stamp(doc, command) and name in doc.get(MANIFEST_FILES_KEY, [])


def written_by(path: Path, command: str, manifest: Path | None = None) -> bool:
    """Whether the file at `path` carries `command`'s stamp (its own, or its manifest's)."""
    path = Path(path)
    if manifest is not None and manifest_lists(manifest, path.name, command):
        return True
    if path.suffix == ".json":
        return has_json_stamp(read_json_file(path), command)
    if path.suffix == ".md":
        try:
            with path.open(encoding="utf-8") as f:
                first = f.readline()
        except (OSError, UnicodeDecodeError):
            return False
        return first.startswith(f"<!-- written by {command} (")
    return False


def check_replaceable(path: str | Path, command: str, fix: str,
                      legacy: Callable[[Path], bool] | None = None,
                      manifest: Path | None = None) -> None:
    """UserError naming `path` and `fix` unless there is nothing at `path`, or a file `command`
    wrote: stamped by it, listed in its `manifest`, or recognised by `legacy` (the format the
    command wrote before stamps)."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        return
    if path.is_file() and not path.is_symlink() and (
            written_by(path, command, manifest) or (legacy is not None and legacy(path))):
        return
    raise UserError(f"{path} exists and was not written by {command}, which replaces only its "
                    f"own files; {fix}")

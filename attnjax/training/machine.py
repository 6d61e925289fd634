"""Where a run trained: `machine.json` in its run folder, one session appended each time training
starts or resumes on the folder (the backend, the device, the CPU, the JAX versions, how many
runs shared the program and how they were laid out).

Why: the runs of one sweep may train on different machines (some seeds as a CPU grid, others
vmapped on a GPU). Their findings name each run's machine and speed, so a reader sees a
possible confound; `visualize.py assess` and `publish` carry the file along.

    {"written_by": {"command": "train.py", ...},
     "sessions": [{"started", "from_step", "backend", "device", "cpu_model", "cpu_count",
                   "jax", "jaxlib", "malloc", "runs_in_program", "runs_axis", "loops",
                   "microbatch"}, ...]}
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from attnjax.devices import cpu_model, malloc_in_use, usable_cores
from attnjax.errors import UserError, os_error_reason
from attnjax.files import write_json
from attnjax.provenance import STAMP_KEY, check_replaceable, json_stamp, read_json_file
from attnjax.training.runs import MACHINE_FILE

COMMAND = "train.py"  # the stamp of machine.json (attnjax.provenance)
UNKNOWN = "unknown"  # the machine label of a run without machine.json


def device_label(backend: str, device_kind: str, device_count: int, cpu: str | None,
                 cores: int) -> str:
    """What a run trained on, as the findings name it: "NVIDIA H200 x 1" on an accelerator,
    "AMD EPYC (2 cores)" (the cores this process may use) on the CPU."""
    if backend == "cpu":
        return f"{cpu or 'unknown CPU'} ({cores} core{'' if cores == 1 else 's'})"
    return f"{device_kind} x {device_count}"


def session(from_step: int, runs_in_program: int, runs_axis: str, loops: str,
            microbatch: int) -> dict[str, Any]:
    """This process's session entry: training starts (or resumes) at global step `from_step`
    with `runs_in_program` runs in one program laid out by `runs_axis` ("map"/"vmap"), its
    updates looped by `loops` and each minibatch's gradient summed over passes of `microbatch`
    rows (both change float rounding, not the math)."""
    import jax

    backend = jax.default_backend()
    devices = jax.devices()
    cpu = cpu_model()
    return {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "from_step": int(from_step),
            "backend": backend,
            "device": device_label(backend, devices[0].device_kind, len(devices), cpu,
                                   usable_cores()),
            "cpu_model": cpu, "cpu_count": os.cpu_count(), "jax": jax.__version__,
            "jaxlib": _version("jaxlib"), "malloc": malloc_in_use(),
            "runs_in_program": runs_in_program,
            "runs_axis": runs_axis, "loops": loops, "microbatch": int(microbatch)}


def _version(package: str) -> str | None:
    """The installed version of `package`, None when its metadata is missing (never fatal)."""
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def check_machine_file(folder: Path) -> None:
    """UserError unless the run folder's machine.json is absent or a record train.py wrote (a
    file of another origin is never replaced). Run before anything is written."""
    check_replaceable(Path(folder) / MACHINE_FILE, COMMAND,
                      "move it out of the run folder (train.py writes its own machine.json)")
    read_machine(folder)


def read_machine(folder: Path) -> dict[str, Any] | None:
    """The folder's machine.json, None when it has none; UserError when it is no train.py
    record holding a list of sessions."""
    path = Path(folder) / MACHINE_FILE
    if not path.exists():
        return None
    record = read_json_file(path)
    if not isinstance(record, dict) or not isinstance(record.get("sessions"), list) \
            or not all(isinstance(s, dict) for s in record["sessions"]):
        raise UserError(f"{path} is not a machine record of train.py (a JSON object with a list "
                        "of sessions); remove it (the run then counts as trained on an unknown "
                        "machine)")
    return record


def record_session(folders: Sequence[Path], entry: dict[str, Any]) -> None:
    """Append `entry` to the sessions of each folder's machine.json (a folder without one, an
    older run's, gets one), each file written whole. UserError when one cannot be written."""
    for folder in folders:
        previous = read_machine(folder)
        sessions = [] if previous is None else previous["sessions"]
        try:
            write_json(Path(folder) / MACHINE_FILE,
                       {STAMP_KEY: json_stamp(COMMAND), "sessions": [*sessions, entry]}, indent=2)
        except OSError as err:
            raise UserError(f"cannot write {Path(folder) / MACHINE_FILE} "
                            f"({os_error_reason(err)}); free the disk or fix the folder's "
                            "permissions, then run the command again") from None


def last_session(record: dict[str, Any] | None, key: str) -> Any:
    """`key` of the record's last session (the one that finished the run); None without a
    record, a session or that key."""
    sessions = (record or {}).get("sessions") or []
    return sessions[-1].get(key) if sessions and isinstance(sessions[-1], dict) else None


def last_session_start(record: dict[str, Any] | None) -> int:
    """The global step the record's last session started from (0 without a record): the rows of
    metrics.jsonl above it were trained on the machine `machine_label` names."""
    start = last_session(record, "from_step")
    return start if isinstance(start, int) and not isinstance(start, bool) else 0


def machine_label(record: dict[str, Any] | None) -> str:
    """The device of the record's last session (the machine that finished the run); UNKNOWN
    without a record or a device."""
    device = last_session(record, "device")
    return device if isinstance(device, str) and device else UNKNOWN

"""attnjax.files writes whole files or nothing; attnjax.provenance lets a command replace only
the files it wrote."""

from __future__ import annotations

import json

import numpy as np
import pytest

from attnjax.errors import UserError
from attnjax.files import replacing, replacing_folder, write_bytes, write_json, write_text
from attnjax.provenance import (
    check_replaceable,
    json_stamp,
    markdown_stamp,
    written_by,
)


def test_writers_write_the_content_and_leave_no_temporary_file(tmp_path):
    write_text(tmp_path / "a.txt", "λ\n")
    write_bytes(tmp_path / "b.bin", b"\x00\x01")
    write_json(tmp_path / "c.json", {"x": [1, 2]})
    with replacing(tmp_path / "d.npz") as tmp:
        np.savez(tmp, x=np.arange(3))  # np.savez adds .npz to names without it
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "λ\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert json.loads((tmp_path / "c.json").read_text()) == {"x": [1, 2]}
    with np.load(tmp_path / "d.npz") as data:
        assert data["x"].tolist() == [0, 1, 2]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.json", "d.npz"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path):
    target = tmp_path / "plot.png"
    target.write_bytes(b"good")
    with pytest.raises(RuntimeError), replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer failed")
    assert target.read_bytes() == b"good"
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")})  # strict JSON only
    assert sorted(p.name for p in tmp_path.iterdir()) == ["plot.png"]


def test_a_folder_is_replaced_whole_or_not_at_all(tmp_path):
    folder = tmp_path / "agent.v1"
    folder.mkdir()
    (folder / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), replacing_folder(folder) as tmp:
        (tmp / "new.txt").write_text("new")
        raise RuntimeError("the writer failed")
    assert [p.name for p in folder.iterdir()] == ["old.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["agent.v1"]
    with replacing_folder(folder) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in folder.iterdir()] == ["new.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["agent.v1"]


def test_a_command_replaces_only_files_carrying_its_stamp(tmp_path):
    command, fix = "visualize.py thing", "give another --out"
    check_replaceable(tmp_path / "absent.json", command, fix)
    write_json(tmp_path / "own.json", {"written_by": json_stamp(command)})
    write_text(tmp_path / "own.md", f"{markdown_stamp(command)}\n# title\n")
    write_json(tmp_path / "manifest.json", {"written_by": json_stamp(command),
                                            "files": ["own.png"]})
    write_bytes(tmp_path / "own.png", b"png")
    for name in ("own.json", "own.md", "own.png"):
        check_replaceable(tmp_path / name, command, fix, manifest=tmp_path / "manifest.json")
    write_json(tmp_path / "other.json", {"written_by": json_stamp("visualize.py other")})
    write_text(tmp_path / "notes.md", "# my notes\n")
    write_bytes(tmp_path / "other.png", b"png")
    (tmp_path / "folder.json").mkdir()
    for name in ("other.json", "notes.md", "other.png", "folder.json"):
        with pytest.raises(UserError, match=f"{name} exists and was not written by {command}.*"
                                            f"{fix}"):
            check_replaceable(tmp_path / name, command, fix, manifest=tmp_path / "manifest.json")
    assert not written_by(tmp_path / "own.png", command)  # without its manifest: unknown
    check_replaceable(tmp_path / "notes.md", command, fix, legacy=lambda p: "notes" in p.name)

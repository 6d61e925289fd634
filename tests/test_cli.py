"""Bad input answers with one line, exit code 2, no traceback and nothing written (train.py's
flags, OS errors preparing run folders, visualize.py outputs that cannot be written)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = ["--env-id", "Quadrant-v0", "--num-envs", "4", "--num-steps", "16",
        "--num-minibatches", "2", "--update-epochs", "1", "--wandb-mode", "disabled",
        "--log-images-every", "0", "--quiet"]


def run_train(*args, timeout=300):
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT)


def assert_one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = [x for x in proc.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr and lines[0].startswith("error:")
    for needle in needles:
        assert needle in lines[0], lines[0]


BAD_INPUTS = [
    (["--env-id", "Breakout-v4"], ["unknown env id", "Breakout-v5"]),
    (["--env-id", "Brekout-v5"], ["did you mean", "Breakout-v5"]),
    (["--attn-coef", "-0.1"], ["--attn-coef", ">= 0"]),
    (["--attn-coef", "nan"], ["--attn-coef", "finite"]),
    (["--attn-coef", "inf"], ["--attn-coef", "finite"]),
    (["--num-envs", "3", "--num-steps", "5", "--num-minibatches", "4"], ["not divisible"]),
    (["--total-timesteps", "100"], ["smaller than one batch"]),
    (["--num-envs", "0"], ["--num-envs", "at least 1"]),
    (["--network", "resnet"], ["--network", "invalid choice"]),
    (["--num-steps", "many"], ["--num-steps", "invalid int"]),
]


@pytest.mark.parametrize(("args", "needles"), BAD_INPUTS, ids=[" ".join(a) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path, args, needles):
    out = tmp_path / "out"
    proc = run_train("--out-dir", str(out), *args)
    assert_one_line_error(proc, *needles)
    assert not out.exists()


def test_unwritable_out_dir(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = run_train(*TINY, "--out-dir", str(blocker / "runs"))
    assert_one_line_error(proc, "--out-dir", "not writable")


def _tree(folder: Path) -> list[tuple[str, bool]]:
    return sorted((str(p.relative_to(folder)), p.is_dir()) for p in folder.rglob("*"))


def _in_the_way(out: Path, what: str) -> None:
    """Something in the way of preparing the second run folder of the grid below."""
    second = out / "Quadrant__attn0.5__s0"
    if what == "file-as-run-folder":
        out.mkdir()
        second.write_text("a file where the run folder should be")
    elif what == "file-as-checkpoints":
        second.mkdir(parents=True)
        (second / "checkpoints").write_text("a file")
    elif what == "folder-as-metrics":
        (second / "metrics.jsonl").mkdir(parents=True)


@pytest.mark.parametrize("what", ["file-as-run-folder", "file-as-checkpoints",
                                  "folder-as-metrics"])
def test_os_errors_preparing_run_folders_are_one_line_and_leave_nothing(tmp_path, what):
    """A grid whose second run folder cannot be prepared: one line naming the path, exit 2,
    and the first run's folder is not left behind (nor anything else written)."""
    out = tmp_path / "out"
    _in_the_way(out, what)
    before = _tree(tmp_path)
    proc = run_train(*TINY, "--total-timesteps", "64", "--attn-coef", "0", "0.5",
                     "--out-dir", str(out))
    assert_one_line_error(proc, "Quadrant__attn0.5__s0", "--out-dir")
    assert _tree(tmp_path) == before


def test_out_dir_under_proc_is_one_line(tmp_path):
    """/proc/x cannot be created even by root, whom the writability check lets through."""
    if not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    proc = run_train(*TINY, "--out-dir", "/proc/attnjax-test/runs")
    assert_one_line_error(proc, "/proc/attnjax-test", "--out-dir")
    assert not Path("/proc/attnjax-test").exists()


def test_resume_without_checkpoint(tmp_path):
    proc = run_train("--resume", str(tmp_path))
    assert_one_line_error(proc, "--resume")
    (tmp_path / "config.json").write_text(json.dumps({"env_id": "Quadrant-v0"}))
    proc = run_train("--resume", str(tmp_path))
    assert_one_line_error(proc, "no checkpoint")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("finished")
    proc = run_train(*TINY, "--total-timesteps", "128", "--checkpoint-every", "1",
                     "--out-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    return out / "Quadrant__attn0__s0"


VISUALIZE_OUTS = [
    # (command, flags, the output that cannot be written, what the error names)
    ("saliency", ["--run", "{run}"], ["--out", "/proc/attnjax-test.npz"], "/proc"),
    ("video", ["--run", "{run}", "--frames", "2"], ["--out", "/proc/attnjax-test.mp4"], "/proc"),
    ("tree", ["--run", "{run}", "--frames", "2"], ["--out", "/proc/attnjax-test/t.html"],
     "/proc/attnjax-test"),
    ("tree", ["--run", "{run}", "--frames", "2", "--out", "{tmp}/t.html"],
     ["--json", "{tmp}/a-file/t.json"], "a-file"),
    ("figures", ["--runs", "{runs}"], ["--out", "/proc"], "/proc"),
]


@pytest.mark.parametrize(("command", "flags", "out", "names"), VISUALIZE_OUTS,
                         ids=[f"{c}{o[0]}" for c, _, o, _ in VISUALIZE_OUTS])
def test_visualize_output_that_cannot_be_written_is_one_line(finished_run, tmp_path, command,
                                                             flags, out, names):
    """Each command's output path is proven writable (a file created and removed) before any
    work: root passes permission checks in /proc, where nothing can be created."""
    if not Path("/proc").is_dir():
        pytest.skip("no /proc on this system")
    (tmp_path / "a-file").write_text("not a folder")
    before = _tree(tmp_path)
    fill = {"run": str(finished_run), "runs": str(finished_run.parent), "tmp": str(tmp_path)}
    args = [a.format(**fill) for a in [command, *flags, *out]]
    proc = subprocess.run([sys.executable, str(ROOT / "visualize.py"), *args],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert_one_line_error(proc, out[0], out[1].format(**fill), names)
    assert _tree(tmp_path) == before
    assert not Path("/proc/attnjax-test").exists()


def test_resume_refuses_flags_that_change_the_run(finished_run):
    proc = run_train("--resume", str(finished_run), "--attn-coef", "0.5")
    assert_one_line_error(proc, "--attn-coef", "meaning")
    proc = run_train(*TINY, "--total-timesteps", "256", "--out-dir", str(finished_run.parent))
    assert_one_line_error(proc, "another configuration", "total_timesteps 128 there, 256 here",
                          "--resume")


def test_resume_from_checkpoints_of_another_lambda_names_it(finished_run, tmp_path):
    """config.json edited to another lambda than its checkpoints were trained with: the resume
    is refused naming lambda (attn_coef), not the architecture, and nothing changes."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = json.loads((run / "config.json").read_text())
    config["attn_coef"] = 0.5
    (run / "config.json").write_text(json.dumps(config))
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    proc = run_train("--resume", str(run))
    assert_one_line_error(proc, "written by another run", "attn_coef", "0.5 here")
    assert "architecture" not in proc.stderr
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_resume_of_another_architecture(finished_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    config = json.loads((run / "config.json").read_text())
    config["network"] = "nature"
    (run / "config.json").write_text(json.dumps(config))
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    proc = run_train("--resume", str(run))
    assert_one_line_error(proc, "written by another run", "network")
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before


def test_comma_list_is_the_one_list_parser_of_the_flags():
    import argparse

    from attnjax.cli import comma_list, counts
    from attnjax.errors import UserError
    from attnjax.metrics.report import _list

    assert comma_list(" a, b,,c ") == ("a", "b", "c")
    assert comma_list("1,2,5", int) == (1, 2, 5)
    assert comma_list("0.1, 1e-2", float) == (0.1, 0.01)
    for bad, kind in ((" , ", str), ("", str), ("1,x", int)):
        with pytest.raises(ValueError):
            comma_list(bad, kind)
    assert counts("4,3,2,2") == (4, 3, 2, 2)
    with pytest.raises(argparse.ArgumentTypeError, match="positive counts"):
        counts("4,0")
    with pytest.raises(UserError, match="--n-grid needs a comma-separated list, got ','"):
        _list(",", "--n-grid", int)
    assert _list("1, 2", "--n-grid", int) == (1, 2)


def test_a_repeated_list_flag_adds_to_its_values():
    """`--run A --run B` means both everywhere (argparse's default keeps only the last)."""
    sys.path.insert(0, str(ROOT))
    import train
    from visualize import build_parser

    args = train.build_parser().parse_args(
        ["--attn-coef", "0", "--attn-coef", "0.005", "--seed", "0", "--seed", "1",
         "--resume", "a", "--resume", "b", "--wandb-tags", "x", "--wandb-tags", "y"])
    assert (args.attn_coef, args.seed, args.resume, args.wandb_tags) == \
        ([0.0, 0.005], [0, 1], ["a", "b"], ["x", "y"])
    for command, flag in (("card", "--run"), ("video", "--run"), ("assess", "--run"),
                          ("figures", "--runs"), ("figures", "--evaluations")):
        extra = ["--out", "o"] if command in ("figures", "video", "assess") else []
        extra += ["--runs", "r"] if flag == "--evaluations" else []
        args = build_parser(command).parse_args([command, flag, "a", flag, "b", *extra])
        assert getattr(args, flag[2:]) == ["a", "b"], (command, flag)

"""The README's examples fit together: the `visualize.py` commands shown after the quickstart
name run folders that `make train` or the README's own grid command create, and the run-folder
tree lists every file `make train` leaves in the run."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from attnjax.training.config import TrainConfig
from attnjax.training.runs import run_name

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
MAKEFILE = (ROOT / "Makefile").read_text(encoding="utf-8")


def _commands(script: str) -> list[list[str]]:
    return [shlex.split(line, comments=True) for block in
            re.findall(r"```bash\n(.*?)```", README, re.S) for line in block.splitlines()
            if script in line]


def _values(argv: list[str], flag: str) -> list[str]:
    out = []
    for i, token in enumerate(argv):
        if token == flag:
            out += _until_flag(argv[i + 1 :])
    return out


def _until_flag(tokens: list[str]) -> list[str]:
    taken = []
    for token in tokens:
        if token.startswith("--"):
            break
        taken.append(token)
    return taken


def test_visualize_examples_use_runs_that_exist_after_the_quickstart():
    quickstart = re.search(r"^RUN := (\S+)", MAKEFILE, re.M).group(1)
    grids = [argv for argv in _commands("train.py") if "--out-dir" in argv]
    assert grids, "the README shows the grid command its examples need"
    made = {quickstart}
    for argv in grids:
        (out_dir,) = _values(argv, "--out-dir")
        (env_id,) = _values(argv, "--env-id")
        made.add(out_dir)
        for coef in _values(argv, "--attn-coef"):
            for seed in _values(argv, "--seed"):
                config = TrainConfig(env_id=env_id, attn_coef=float(coef), seed=int(seed))
                made.add(f"{out_dir}/{run_name(config)}")
    for argv in _commands("visualize.py"):  # a results folder that `assess` writes
        if argv[2] == "assess":
            made.update(_values(argv, "--out"))
    used = {cmd[2]: set() for cmd in _commands("visualize.py")}
    for argv in _commands("visualize.py"):
        runs = _values(argv, "--run") + _values(argv, "--runs")
        assert runs, argv
        used[argv[2]].update(runs)
        missing = [r for r in runs if r not in made and not r.startswith("agents/")]
        assert not missing, f"{' '.join(argv[:3])} names {missing}, which nothing above creates"
    assert {"video", "figures", "saliency", "tree", "evaluate"} <= set(used)
    assert len(used["video"]) >= 2  # the side-by-side example compares runs


def test_run_folder_tree_lists_what_make_train_leaves():
    tree = re.search(r"### Run folder\n\n```\n(.*?)```", README, re.S).group(1)
    train = MAKEFILE[MAKEFILE.index("\ntrain:"):MAKEFILE.index("\ntest:")]
    left = set(re.findall(r"\$\(RUN\)/([\w.]+)", train))
    assert {"attention.mp4", "viewer.html"} <= left
    for name in (*left, "config.json", "metrics.jsonl", "checkpoints/", "attention.png"):
        assert name in tree, name

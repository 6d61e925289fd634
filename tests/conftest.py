"""Shared fixtures: agents trained once per test session on the tiny Quadrant-v0 env (once in
all: under pytest-xdist the workers share the first worker's training through a file lock)."""

import fcntl
import os
import tempfile
from pathlib import Path

import pytest

# Every process of a test session (xdist workers, the train.py and visualize.py subprocesses)
# shares one persistent XLA compilation cache: many tests compile the same small programs, and
# compiling them is most of those tests' time. The cache is keyed by the program, the flags and
# the JAX version, so a hit is the same executable. Set before JAX is imported anywhere.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      str(Path(tempfile.gettempdir()) / f"attnjax-tests-xla-cache-{os.getuid()}"))

QUADRANT_LAMBDA = 0.01
# Tuned on the 2-core CPU machine: ~2 minutes for both runs together (one compiled program).
QUADRANT_SETTINGS = dict(
    env_id="Quadrant-v0", total_timesteps=8192, num_envs=16, num_steps=32, num_minibatches=8,
    update_epochs=2, learning_rate=3e-3, ent_coef=0.0, wandb_mode="disabled",
    log_images_every=0, checkpoint_every=8,
    microbatch_size=16,  # each minibatch of 64 as 4 summed passes, as the paper preset on CPU
)


@pytest.fixture(scope="session")
def quadrant_grid(tmp_path_factory) -> dict[float, Path]:
    """Run folders of attention agents trained on Quadrant-v0 with lambda = 0 and 0.01 (seed 0),
    trained together as one grid."""
    from attnjax.training.config import TrainConfig, expand_grid
    from attnjax.training.loop import train
    from attnjax.training.runs import run_dir

    base_temp = tmp_path_factory.getbasetemp()
    shared = base_temp.parent if os.environ.get("PYTEST_XDIST_WORKER") else base_temp
    out = shared / "quadrant_grid"
    configs = expand_grid(TrainConfig(**QUADRANT_SETTINGS, out_dir=str(out)),
                          [0.0, QUADRANT_LAMBDA], [0])
    with open(shared / "quadrant_grid.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # the other workers wait here for the first one
        if not (out / "trained").exists():
            train(configs)
            (out / "trained").touch()
    return {0.0: run_dir(configs[0]), QUADRANT_LAMBDA: run_dir(configs[1])}


@pytest.fixture(scope="session")
def quadrant_run(quadrant_grid) -> Path:
    """Run folder of an attention agent trained on Quadrant-v0 with lambda = 0.01: its attention
    concentrates near the bright square."""
    return quadrant_grid[QUADRANT_LAMBDA]


# The shipped agents are never changed by a test: every file under agents/ is hashed when the
# session starts and compared when it ends (in the controlling process only, under xdist).
AGENTS = Path(__file__).resolve().parents[1] / "agents"


def agents_digest() -> dict[str, str]:
    import hashlib

    return {str(p.relative_to(AGENTS)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(AGENTS.rglob("*")) if p.is_file()}


def _is_controller(session) -> bool:
    return not hasattr(session.config, "workerinput")


def pytest_sessionstart(session):
    if _is_controller(session):
        session.config.agents_digest = agents_digest()


def pytest_sessionfinish(session, exitstatus):
    before = getattr(session.config, "agents_digest", None)
    if before is None or not _is_controller(session):
        return
    after = agents_digest()
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    if changed:
        session.config.get_terminal_writer().line(
            f"agents/ changed during the tests: {', '.join(changed)}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED

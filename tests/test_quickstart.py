"""The README's Python quickstart runs as printed: it loads a shipped agent, plays, reads the
attention, computes saliency and writes its two pictures."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]


def quickstart() -> str:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.search(r"<!-- quickstart -->\n```python\n(.*?)```", readme, re.S).group(1)


def test_readme_python_quickstart_runs(tmp_path):
    (tmp_path / "agents").symlink_to(ROOT / "agents")  # "run from the repository root"
    script = tmp_path / "quickstart.py"
    script.write_text(quickstart())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr
    assert "attention peak per head:" in done.stdout
    for name in ("attention_frame.png", "smoothgrad_frame.png"):
        picture = np.asarray(Image.open(tmp_path / name))
        assert picture.shape == (210, 160, 3) and picture.std() > 0, name

# attnjax: `make train` runs a short Breakout training, `make test` runs the tests.
# Both set up .venv from requirements.lock first (idempotent: only redone when the lock changes).

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-from-lock

.PHONY: setup train test test-all lint bench peers lock clean sweep-video docs-pictures

setup: $(STAMP)

$(STAMP): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: attnjax needs Python >= 3.11; run make with PYTHON=/path/to/python3.11")'
	@test -x $(VENV)/bin/pip || $(PYTHON) -m venv --clear $(VENV) || { rm -rf $(VENV); \
		echo "error: $(PYTHON) -m venv failed; on Debian/Ubuntu install python3-venv (sudo apt-get install python3-venv), then run make again"; exit 1; }
	$(PY) -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	@touch $(STAMP)

# The main job (a few minutes on 2 CPU cores): a short Breakout training that writes
# runs/quickstart/<run-name>/ (config.json, metrics.jsonl, checkpoints/, an attention picture;
# a folder of its own, so that a paper-preset run trained into runs/ later is not refused as a
# run of another step budget), then what
# there is to look at from its checkpoint: the attention video and the relevance-tree viewer;
# then the same for the trained reference agents in agents/ (lambda = 0 | lambda = 0.005 side by
# side, as the paper laid them out), which a short training cannot show.
RUN := runs/quickstart/Breakout__attn0__s0
REF0 := agents/Breakout__attn0__s0
REF5 := agents/Breakout__attn0.005__s1
train: setup
	$(PY) train.py --env-id Breakout-v5 --total-timesteps 12288 --num-envs 8 --num-steps 128 \
		--update-epochs 1 --checkpoint-every 4 --out-dir runs/quickstart
	$(PY) visualize.py video --run $(RUN) --frames 400 --out $(RUN)/attention.mp4
	$(PY) visualize.py tree --run $(RUN) --frames 20 --out $(RUN)/viewer.html
	$(PY) visualize.py video --run $(REF0) --run $(REF5) --frames 400 \
		--out runs/reference/attention.mp4
	$(PY) visualize.py tree --run $(REF5) --frames 20 --out runs/reference/viewer.html

# The paper's Figure 4 for the lambda sweep: one agent per lambda from agents/breakout-lambda-sweep
# (seed 0's, or the lowest seed whose attention did not collapse), lambda = 0 ... 0.005 left to
# right, all playing the same game (one env seed).
SWEEP_LAMBDAS := 0 0.0005 0.001 0.002 0.003 0.005
SWEEP_AGENTS := $(foreach l,$(SWEEP_LAMBDAS),$(firstword $(wildcard agents/breakout-lambda-sweep/Breakout__attn$(l)__s*)))
sweep-video: setup
	$(PY) visualize.py video $(foreach a,$(SWEEP_AGENTS),--run $(a)) --frames 400 --seed 0 \
		--out runs/breakout-lambda-sweep/attention.mp4 --stills runs/breakout-lambda-sweep/stills

# Two workers (pytest-xdist), a test file each at a time: the suite is mostly compilation and
# subprocesses, which one core per worker runs nearly as fast as two.
TEST_WORKERS ?= 2
test: setup
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

# Everything, including tests marked slow (longer than CI affords).
test-all: setup
	$(PY) -m pytest -q -m '' -n $(TEST_WORKERS) --dist loadfile

lint: setup
	$(PY) -m ruff check .

# docs/viewer.png and docs/attention.png from the lambda = 0 reference agent; the viewer's
# screenshot needs /usr/bin/chromium (bash .ci/install-browser.sh)
docs-pictures: setup
	$(PY) docs/make_pictures.py

bench: setup
	$(PY) bench/train_throughput.py

# The CPU peer of bench/peer_throughput.py (Stable-Baselines3 on PyTorch's CPU build, ALE) in its
# own environment, from a pinned, hashed lock; never a dependency of attnjax, not needed by CI.
PEERS := .venv-peers
# torch's CPU build is not on PyPI: pip takes it from a local wheel folder (find-links) or, with
# PEER_PIP_FLAGS="--extra-index-url https://download.pytorch.org/whl/cpu", from PyTorch's index
PEER_PIP_FLAGS ?=
peers: $(PEERS)/.installed-from-lock

$(PEERS)/.installed-from-lock: bench/requirements-peers.lock
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "error: the peer lock is for CPython 3.11; run make peers with PYTHON=/path/to/python3.11")'
	@test -x $(PEERS)/bin/pip || $(PYTHON) -m venv --clear $(PEERS) || { rm -rf $(PEERS); \
		echo "error: $(PYTHON) -m venv failed; on Debian/Ubuntu install python3-venv (sudo apt-get install python3-venv), then run make again"; exit 1; }
	$(PEERS)/bin/pip install --quiet --disable-pip-version-check --require-hashes --no-deps \
		$(PEER_PIP_FLAGS) -r bench/requirements-peers.lock
	@touch $@

# Re-resolve requirements.lock (needs network and `uv`): direct pins for Python 3.11 first, then
# one universal, hashed lock constrained to them so every Python >= 3.11 installs the same versions.
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 -q --no-header --no-annotate \
		| grep '==' > /tmp/attnjax-pins.txt
	uv pip compile pyproject.toml --extra dev --universal --generate-hashes --python-version 3.11 \
		-c /tmp/attnjax-pins.txt -o requirements.lock -q

clean:
	rm -rf $(VENV) $(PEERS)

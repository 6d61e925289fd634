#!/usr/bin/env bash
# Debian's Chromium for the Playwright viewer test
# (tests/inspection/relevance/test_viewer_browser.py launches /usr/bin/chromium; Playwright's own
# browser download needs the network at test time, which the project never uses). On Ubuntu the
# apt package is a snap stub that does not run in containers: use a Debian image, or point
# ATTNJAX_CHROMIUM at a working Chromium.
set -euo pipefail
if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi
# fail here, with Chromium's own message, rather than as a skipped test later (its usual stderr,
# D-Bus complaints in containers, is shown only on failure)
if ! log=$(/usr/bin/chromium --headless --no-sandbox --disable-gpu --no-first-run \
        --disable-background-networking --dump-dom about:blank 2>&1 >/dev/null); then
    echo "$log" >&2
    echo "error: /usr/bin/chromium is installed but does not start headless" >&2
    exit 1
fi
/usr/bin/chromium --version 2>/dev/null

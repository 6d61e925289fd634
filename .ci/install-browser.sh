#!/usr/bin/env bash
# Debian's Chromium for the Playwright viewer test (Playwright's own browser download needs the
# network at test time, which the project never uses).
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null

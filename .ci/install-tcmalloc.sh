#!/usr/bin/env bash
# gperftools' tcmalloc (Debian/Ubuntu: libtcmalloc-minimal4). train.py and visualize.py restart
# themselves with it preloaded on a CPU (attnjax.devices.restart_with_tcmalloc), and
# tests/test_devices.py checks that restart only where the library is installed: CI installs
# it so that the check runs.
set -euo pipefail
if ! /sbin/ldconfig -p | grep -q "libtcmalloc_minimal.so.4 "; then
    SUDO=""
    if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq libtcmalloc-minimal4 >/dev/null
fi
/sbin/ldconfig -p | grep "libtcmalloc_minimal.so.4 "

#!/usr/bin/env bash
# Makes sure Debian's PostgreSQL server binaries are installed (the tests start their own server from
# them: tests/pg_server.py). Idempotent: does nothing when /usr/lib/postgresql/*/bin/initdb exists.
# Installs with apt-get as root (or through sudo). Why Debian's package and not a wheel: docs/gallery.md.
set -euo pipefail
if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
    exit 0
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
    SUDO="sudo"
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
# policy-rc.d 101: the package must not start its own cluster (the tests start theirs on a free port)
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod +x /usr/sbin/policy-rc.d
    trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -q --no-install-recommends postgresql
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null

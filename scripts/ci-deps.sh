#!/usr/bin/env bash
# System packages the tests need beyond the Python ones: Debian's chromium, which the web UI tests
# (tests/integration/test_ui.py) drive through Playwright -- no `playwright install` browser download.
# Idempotent, and cheap once installed: `make test` runs it every time.
set -euo pipefail
if ! command -v chromium >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq chromium
fi

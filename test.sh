#!/usr/bin/env bash
# Runs every check and test. Idempotent; installs what is missing first
# (Debian packages, the virtualenv, npm packages, Chromium for browser tests).
# Extra arguments go to pytest, e.g. ./test.sh -k vectors
set -euo pipefail
cd "$(dirname "$0")"
./scripts/bootstrap.sh
PY=.venv/bin/python

echo "== ruff"
.venv/bin/ruff check src tests bench web build.py
echo "== mypy --strict"
.venv/bin/mypy --strict src/mls src/corecrypto src/delivery web/app/chatworker
echo "== browser bundle"
$PY build.py
echo "== pytest"
$PY -m pytest -n auto --dist loadfile -q "$@" tests

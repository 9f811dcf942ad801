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
echo "== interop peers"
# The OpenMLS peer, with each crypto provider (libcrux: the hybrid post-quantum
# suites): built once per machine into ~/.cache/intellacc-interop (the first build
# takes several minutes; later runs only look it up).
interop/openmls/build.sh rust-crypto >/dev/null
interop/openmls/build.sh libcrux >/dev/null
echo "== pytest"
$PY -m pytest -n auto --dist loadfile -q "$@" tests

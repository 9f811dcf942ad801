#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian machine: system packages, the Python
# virtualenv with the project installed, and the npm packages of the browser
# bundle. Every step checks before it acts, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

want_chromium=${WANT_CHROMIUM:-1}
SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi

apt_missing=()
command -v python3 >/dev/null || apt_missing+=(python3 python3-venv)
command -v node >/dev/null || apt_missing+=(nodejs npm)
command -v pg_ctlcluster >/dev/null || apt_missing+=(postgresql)
command -v pgbench >/dev/null || apt_missing+=(postgresql-contrib)
# protoc compiles mls_client.proto for the OpenMLS interop peer (interop/openmls).
command -v protoc >/dev/null || apt_missing+=(protobuf-compiler)
if [ "$want_chromium" = 1 ] && [ ! -x /usr/bin/chromium ]; then apt_missing+=(chromium); fi
if [ ${#apt_missing[@]} -gt 0 ]; then
  echo "bootstrap: installing ${apt_missing[*]} from Debian" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[client,server,interop,dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# npm packages: the browser bundle's (.) and the ts-mls interop peer's (interop/ts-mls).
for dir in . interop/ts-mls; do
  [ -f "$dir/package.json" ] || continue
  nstamp=$dir/node_modules/.installed-$(cat "$dir/package.json" "$dir/package-lock.json" 2>/dev/null | sha256sum | cut -c1-16)
  if [ ! -f "$nstamp" ]; then
    if [ -f "$dir/package-lock.json" ]; then
      (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error)
    else
      (cd "$dir" && npm install --no-audit --no-fund --loglevel=error)
    fi
    rm -f "$dir"/node_modules/.installed-*
    touch "$nstamp"
  fi
done

#!/usr/bin/env bash
# Starts the app: builds the browser bundle and serves it with the delivery
# service on the embedded PostgreSQL. Idempotent; installs what is missing.
#   HOST/PORT override the address (default 127.0.0.1:8000);
#   DATABASE_URL points at an external PostgreSQL instead of the embedded one.
set -euo pipefail
cd "$(dirname "$0")"
WANT_CHROMIUM=0 ./scripts/bootstrap.sh
.venv/bin/python build.py
host=${HOST:-127.0.0.1}
port=${PORT:-8000}
echo "Intellacc starts at http://${host}:${port}/ (ready once Uvicorn reports it is running)"
exec .venv/bin/python -m delivery serve --host "$host" --port "$port"

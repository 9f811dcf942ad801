#!/usr/bin/env bash
# Builds the OpenMLS timing program once per machine and prints the binary's path.
#
# Cached outside the clone like interop/openmls/build.sh, keyed by everything
# that goes into the binary (Cargo.lock, Cargo.toml, src/), and compiled into
# the same shared CARGO_TARGET_DIR so the pinned openmls dependencies built for
# the interop peer are reused. Release profile only.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${INTELLACC_INTEROP_CACHE:-$HOME/.cache/intellacc-interop}"
key=$(cd "$here" && cat Cargo.lock Cargo.toml src/*.rs | sha256sum | cut -c1-16)
bin="$cache/bin/intellacc-openmls-bench-$key"
if [ ! -x "$bin" ]; then
  command -v cargo >/dev/null || { echo "build.sh: cargo is needed to build the OpenMLS bench (rustup or Debian's cargo >= 1.91)" >&2; exit 1; }
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
  mkdir -p "$cache/bin"
  exec 9>"$cache/openmls-bench.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "build.sh: building the OpenMLS bench (first run on this machine: minutes)" >&2
    (cd "$here" && cargo build --release --locked --quiet)
    cp "$CARGO_TARGET_DIR/release/intellacc-openmls-bench" "$bin.tmp.$$"
    mv "$bin.tmp.$$" "$bin"
  fi
fi
echo "$bin"

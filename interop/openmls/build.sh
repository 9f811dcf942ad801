#!/usr/bin/env bash
# Builds the OpenMLS peer once per machine and prints the binary's path.
# The binary is cached outside the clone, keyed by everything that goes into
# it (Cargo.lock, Cargo.toml, build.rs, src/, the proto): a second run, or a
# fresh clone of the same commit, only looks it up. Dependencies compile into
# the shared CARGO_TARGET_DIR so other Rust tools on openmls reuse them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${INTELLACC_INTEROP_CACHE:-$HOME/.cache/intellacc-interop}"
key=$(cd "$here" && cat Cargo.lock Cargo.toml build.rs src/*.rs ../proto/mls_client.proto | sha256sum | cut -c1-16)
bin="$cache/bin/intellacc-openmls-peer-$key"
if [ ! -x "$bin" ]; then
  command -v cargo >/dev/null || { echo "build.sh: cargo is needed to build the OpenMLS peer (rustup or Debian's cargo >= 1.91)" >&2; exit 1; }
  command -v protoc >/dev/null || { echo "build.sh: protoc is needed (Debian: protobuf-compiler; scripts/bootstrap.sh installs it)" >&2; exit 1; }
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
  echo "build.sh: building the OpenMLS peer (first run on this machine: several minutes)" >&2
  (cd "$here" && cargo build --release --locked --quiet)
  mkdir -p "$cache/bin"
  cp "$CARGO_TARGET_DIR/release/intellacc-openmls-peer" "$bin.tmp.$$"
  mv "$bin.tmp.$$" "$bin"
fi
echo "$bin"

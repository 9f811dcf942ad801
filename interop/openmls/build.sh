#!/usr/bin/env bash
# Builds the OpenMLS peer once per machine and prints the binary's path.
#
#   build.sh [rust-crypto|libcrux]     (default rust-crypto)
#
# The crypto provider is a cargo feature: rust-crypto (suites 1-3) or libcrux (1, 3
# and the hybrid post-quantum suites 0x004D-0x004F). The binary is cached outside the
# clone, keyed by the provider and everything that goes into it (Cargo.lock,
# Cargo.toml, build.rs, src/, the proto): a second run, or a fresh clone of the same
# commit, only looks it up. Dependencies compile into the shared CARGO_TARGET_DIR so
# other Rust tools on openmls reuse them; a lock keeps two builds of different
# providers from copying each other's binary.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
provider="${1:-rust-crypto}"
case "$provider" in
  rust-crypto|libcrux) ;;
  *) echo "build.sh: unknown provider '$provider' (rust-crypto or libcrux)" >&2; exit 2 ;;
esac
cache="${INTELLACC_INTEROP_CACHE:-$HOME/.cache/intellacc-interop}"
key=$(cd "$here" && { echo "$provider"; cat Cargo.lock Cargo.toml build.rs src/*.rs ../proto/mls_client.proto; } | sha256sum | cut -c1-16)
suffix=""
[ "$provider" = rust-crypto ] || suffix="-$provider"
bin="$cache/bin/intellacc-openmls-peer$suffix-$key"
if [ ! -x "$bin" ]; then
  command -v cargo >/dev/null || { echo "build.sh: cargo is needed to build the OpenMLS peer (rustup or Debian's cargo >= 1.91)" >&2; exit 1; }
  command -v protoc >/dev/null || { echo "build.sh: protoc is needed (Debian: protobuf-compiler; scripts/bootstrap.sh installs it)" >&2; exit 1; }
  export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$cache/target}"
  mkdir -p "$cache/bin"
  exec 9>"$cache/openmls-peer.lock"
  flock 9
  if [ ! -x "$bin" ]; then
    echo "build.sh: building the OpenMLS peer ($provider; first run on this machine: several minutes)" >&2
    (cd "$here" && cargo build --release --locked --quiet --no-default-features --features "$provider")
    cp "$CARGO_TARGET_DIR/release/intellacc-openmls-peer" "$bin.tmp.$$"
    mv "$bin.tmp.$$" "$bin"
  fi
fi
echo "$bin"

#!/usr/bin/env bash
# Builds the Debian package of `peregrine` with cargo-deb, from
# [package.metadata.deb] in tools/Cargo.toml: /usr/bin/peregrine, the
# systemd template unit /lib/systemd/system/peregrine@.service, the example
# configs under /usr/share/doc/peregrine/examples/, the runbook and docs.
#
#   scripts/package.sh                 # -> target/debian/peregrine_<version>-1_<arch>.deb
#   FEATURES=dpdk scripts/package.sh   # with the DPDK backend (needs libdpdk-dev)
#
# Installs cargo-deb (cargo install cargo-deb --locked) when it is missing.
# Prints the path of the .deb as its last line.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
log() { printf '[package] %s\n' "$*" >&2; }

if ! cargo deb --version >/dev/null 2>&1; then
    log "installing cargo-deb"
    cargo install cargo-deb --locked --quiet
fi

FEATURES=${FEATURES:-}
feature_args=()
[[ -n $FEATURES ]] && feature_args=(--features "$FEATURES")

# Built here (a no-op when the tests already built it) so cargo-deb only
# packages: the release profile's fat LTO is the slow part.
log "building peregrine (release${FEATURES:+, features $FEATURES})"
cargo build --release --locked --quiet -p peregrine-tools --bin peregrine "${feature_args[@]}"

log "packaging"
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
OUT=$TARGET/debian
mkdir -p "$OUT"
cargo deb -p peregrine-tools --no-build --output "$OUT" >&2
DEB=$(ls -t "$OUT"/peregrine_*.deb | head -n1)
log "built $DEB"
dpkg-deb --contents "$DEB" >&2
echo "$DEB"

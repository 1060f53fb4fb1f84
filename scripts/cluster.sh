#!/usr/bin/env bash
# Builds the workspace and runs a local three-node cluster in the foreground:
#   ./scripts/cluster.sh [paxlog cluster up flags...]   e.g. --nodes 5 --data /tmp/px
# Ctrl-C stops every node cleanly; data stays in ./data for the next run.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
# Same cargo selection as `cargo test --workspace`, so both share every artifact (a
# narrower selection can change features and rebuild RocksDB).
cargo build --workspace
exec "$CARGO_TARGET_DIR/debug/paxlog" cluster up "$@"

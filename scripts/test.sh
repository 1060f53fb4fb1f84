#!/usr/bin/env bash
# Everything CI checks: formatting, clippy with warnings as errors, all tests.
#   ./scripts/test.sh [cargo test args...]   e.g. -- --nocapture
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings
cargo test --workspace "$@"

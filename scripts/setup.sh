#!/usr/bin/env bash
# Installs what a fresh Debian machine lacks to build paxlog: libclang (bindgen for
# RocksDB's bindings). Protobuf needs nothing: the proto crate compiles with protox.
# Idempotent and quiet when everything is present.
set -euo pipefail

need=()
if ! dpkg-query -W -f='${Status}' libclang-dev 2>/dev/null | grep -q 'ok installed'; then
  need+=(libclang-dev)
fi
if ! command -v g++ >/dev/null 2>&1; then
  need+=(g++)
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "setup: installing ${need[*]} (apt-get)" >&2
  SUDO=""
  if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi

# One cargo target directory outside the checkout, shared by every run: a clean
# build of RocksDB takes 15-20 minutes on 2 cores, later runs are incremental.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/paxlog/target}"
mkdir -p "$CARGO_TARGET_DIR"

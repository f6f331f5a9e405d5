#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and lints, then runs unit
# and integration tests against private MariaDB servers. This is what .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --deps-only
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/dm-target}"
# Formatting and lints first: a red here costs seconds, not the whole suite.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked

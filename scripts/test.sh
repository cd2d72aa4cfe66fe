#!/usr/bin/env bash
# The project's test command (README, CI): prepares this Debian host (packages, Docker
# Engine, local base image, toolchain image) and runs the whole test suite against the
# real engine. Safe to run again; set-up steps that are already done take seconds.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup-host.sh

# Tests that need the engine or the toolchain image fail (instead of skipping) under CI=true.
export CI="${CI:-true}"
cargo test --locked "$@"

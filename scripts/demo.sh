#!/usr/bin/env bash
# The README's first command: prepares this Debian host (packages, Docker Engine, images)
# and builds examples/hello into a Windows installer in dist/, with compile and packaging
# in disposable Docker containers. Extra arguments go to `perry-ship-windows build`
# (e.g. --distribute portable).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scripts/setup-host.sh
exec cargo run --quiet --locked -- build examples/hello --docker --out dist "$@"

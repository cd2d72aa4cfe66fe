#!/usr/bin/env bash
# Builds the Linux toolchain images from images/linux (docker's layer cache makes a second
# run take seconds):
#   perry-ship-windows/toolchain-linux-standin:latest   toolchain + STAND-IN compiler
#   perry-ship-windows/toolchain-linux:latest           the worker's default image:
#       the real Perry when images/linux/perry-dist/bin/perry exists, else the stand-in
#       (a warning says so; `perry --version` inside prints "...-standin").
# Needs a running engine (scripts/start-docker.sh) and the base image
# (scripts/make-base-image.sh).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
CONTEXT="$ROOT/images/linux"
BASE="${PERRY_BASE_IMAGE:-perry-ship-windows/debian-bookworm:local}"
STANDIN=perry-ship-windows/toolchain-linux-standin:latest
DEFAULT=perry-ship-windows/toolchain-linux:latest
log() { echo "[build-images] $*" >&2; }

docker image inspect "$BASE" >/dev/null 2>&1 || "$ROOT/scripts/make-base-image.sh"

build() { # target tag
  log "building target $1 as $2"
  local out
  if ! out="$(DOCKER_BUILDKIT=0 docker build -q --build-arg "BASE_IMAGE=$BASE" --target "$1" -t "$2" "$CONTEXT" 2>&1)"; then
    echo "$out" >&2
    exit 1
  fi
}

build standin "$STANDIN"
if [ -x "$CONTEXT/perry-dist/bin/perry" ]; then
  build perry "$DEFAULT"
else
  docker tag "$STANDIN" "$DEFAULT"
  log "WARNING: no images/linux/perry-dist/bin/perry: $DEFAULT is the STAND-IN compiler"
fi
log "$DEFAULT: $(docker run --rm --network=none "$DEFAULT" perry --version)"

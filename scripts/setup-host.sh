#!/usr/bin/env bash
# Prepares a Debian/Ubuntu host (developer machine or CI) for perry-ship-windows:
#   1. installs the host tools (only the missing ones; quiet):
#      docker.io debootstrap nsis p7zip-full gcc-mingw-w64-x86-64 osslsigncode openssl ca-certificates
#      wine wine64 (the Windows build of the worker runs under wine in tests/windows_wine.rs)
#      and the Rust target x86_64-pc-windows-gnu (cross-build and clippy for Windows)
#   2. starts a Docker engine when none answers          (scripts/start-docker.sh)
#   3. creates the local Debian base image when missing  (scripts/make-base-image.sh)
#   4. builds the toolchain images (cached)              (scripts/build-images.sh)
# Safe to run again: every step checks before it acts. Needs root (or sudo).
set -euo pipefail

HERE="$(cd "$(dirname "$0")" && pwd)"
PACKAGES=(docker.io debootstrap nsis p7zip-full gcc-mingw-w64-x86-64 osslsigncode openssl ca-certificates wine wine64)
log() { echo "[setup-host] $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || { log "run as root (or install sudo)"; exit 1; }
  SUDO="sudo"
fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  log "host packages already installed"
fi

# The Windows target belongs to the user's toolchain (no sudo).
if command -v rustup >/dev/null 2>&1; then
  if ! rustup target list --installed | grep -qx x86_64-pc-windows-gnu; then
    log "adding the Rust target x86_64-pc-windows-gnu"
    rustup target add x86_64-pc-windows-gnu >/dev/null
  fi
else
  log "rustup not found: add the Rust target x86_64-pc-windows-gnu yourself"
fi

$SUDO "$HERE/start-docker.sh"
$SUDO "$HERE/make-base-image.sh"
$SUDO "$HERE/build-images.sh"
log "done"

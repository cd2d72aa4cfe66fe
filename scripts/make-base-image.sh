#!/usr/bin/env bash
# Creates the local Debian base image perry-ship-windows/debian-bookworm:local that
# images/linux/Dockerfile builds FROM, without any registry:
#   - does nothing when the image already exists;
#   - re-tags debian:bookworm-slim when that image is present locally;
#   - otherwise runs `debootstrap --variant=minbase bookworm` against the Debian mirror this
#     machine's apt already uses (read from /etc/apt/sources.list{,.d/*}) and `docker import`s it.
# Needs root (debootstrap), the docker CLI and a running engine (scripts/start-docker.sh).
set -euo pipefail

IMAGE="${PERRY_BASE_IMAGE:-perry-ship-windows/debian-bookworm:local}"
SUITE=bookworm
log() { echo "[make-base-image] $*" >&2; }

if docker image inspect "$IMAGE" >/dev/null 2>&1; then
  log "$IMAGE already exists"
  exit 0
fi

if docker image inspect debian:bookworm-slim >/dev/null 2>&1; then
  log "tagging local debian:bookworm-slim as $IMAGE"
  docker tag debian:bookworm-slim "$IMAGE"
  exit 0
fi

# The first http(s) Debian mirror apt uses here (deb822 "URIs:" or one-line "deb URL ..."),
# skipping the security archive; deb.debian.org when nothing is found.
pick_mirror() {
  local files=() f
  [ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && files+=("$f")
  done
  [ "${#files[@]}" -gt 0 ] || { echo "http://deb.debian.org/debian"; return; }
  {
    grep -hE '^[[:space:]]*URIs:' "${files[@]}" | sed -E 's/^[[:space:]]*URIs:[[:space:]]*//' | tr ' ' '\n'
    grep -hE '^[[:space:]]*deb[[:space:]]' "${files[@]}" | sed -E 's/^[[:space:]]*deb[[:space:]]+(\[[^]]*\][[:space:]]+)?//' | awk '{print $1}'
  } | grep -E '^https?://' | grep -v -- '-security' | grep -iE 'debian' | head -n1 || true
}

MIRROR="${PERRY_DEBIAN_MIRROR:-$(pick_mirror)}"
MIRROR="${MIRROR:-http://deb.debian.org/debian}"

command -v debootstrap >/dev/null 2>&1 || {
  log "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
}

ROOTFS="$(mktemp -d /var/tmp/perry-rootfs.XXXXXX)"
trap 'rm -rf "$ROOTFS"' EXIT
log "debootstrap --variant=minbase $SUITE from $MIRROR (about 30 s)"
debootstrap --variant=minbase "$SUITE" "$ROOTFS" "$MIRROR" >"$ROOTFS.log" 2>&1 || {
  tail -30 "$ROOTFS.log" >&2
  rm -f "$ROOTFS.log"
  exit 1
}
rm -f "$ROOTFS.log"
# Keep the image's apt pointed at the same mirror (debootstrap writes it; make sure updates are there too).
printf 'deb %s %s main\ndeb %s %s-updates main\n' "$MIRROR" "$SUITE" "$MIRROR" "$SUITE" >"$ROOTFS/etc/apt/sources.list"
rm -rf "$ROOTFS"/var/cache/apt/archives/*.deb "$ROOTFS"/var/lib/apt/lists/*

log "importing as $IMAGE"
tar -C "$ROOTFS" -c . | docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["/bin/bash"]' - "$IMAGE" >/dev/null
log "done: $IMAGE"

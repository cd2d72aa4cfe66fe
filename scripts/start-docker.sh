#!/usr/bin/env bash
# Makes sure a Docker Engine answers on this Debian machine:
# installs docker.io when dockerd is missing, starts dockerd in the background when no
# engine answers, and waits for the socket. Safe to run again: it does nothing when an
# engine already answers.
set -euo pipefail

log() { echo "[start-docker] $*" >&2; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if engine_answers; then
  log "engine already running ($(docker version --format '{{.Server.Version}}'))"
  exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
  log "installing docker.io"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq docker.io >/dev/null
fi

log "starting dockerd in the background (log: /var/log/perry-dockerd.log)"
# setsid: the engine outlives the shell, test or CI job that started it.
setsid nohup dockerd </dev/null >/var/log/perry-dockerd.log 2>&1 &

for _ in $(seq 1 120); do
  if [ -S /var/run/docker.sock ] && engine_answers; then
    log "engine ready ($(docker version --format '{{.Server.Version}}'))"
    exit 0
  fi
  sleep 0.5
done
log "dockerd did not answer within 60 s; see /var/log/perry-dockerd.log"
tail -20 /var/log/perry-dockerd.log >&2 || true
exit 1

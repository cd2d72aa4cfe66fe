#!/usr/bin/env bash
# Restarts the Docker Engine on this machine and waits until it answers again: through
# systemd when systemd runs dockerd, otherwise by stopping the dockerd that
# scripts/start-docker.sh started (SIGTERM, as `systemctl restart` sends) and starting it
# again with that script. Used by the engine-restart fault test (tests/fault_docker_restart.rs).
set -euo pipefail
cd "$(dirname "$0")"

log() { echo "[restart-docker] $*" >&2; }

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker 2>/dev/null; then
  log "systemctl restart docker"
  systemctl restart docker
else
  pid_file=/var/run/docker.pid
  if [ -s "$pid_file" ] && kill -0 "$(cat "$pid_file")" 2>/dev/null; then
    pid=$(cat "$pid_file")
    log "stopping dockerd (pid $pid)"
    kill -TERM "$pid"
    for _ in $(seq 1 120); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.5
    done
    if kill -0 "$pid" 2>/dev/null; then
      log "dockerd did not stop within 60 s"
      exit 1
    fi
  elif engine_answers; then
    log "an engine answers, but neither systemd nor $pid_file says which process it is;"
    log "restart it by hand (this script only restarts engines it can find)"
    exit 1
  else
    log "no engine is running; starting one"
  fi
fi
exec ./start-docker.sh

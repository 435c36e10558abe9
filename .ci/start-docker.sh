#!/usr/bin/env bash
# Start a Docker engine in the background for the `containers` backend, on a machine without one running
# (CI, a dev VM): installs nothing (apt-get install -y docker.io first), waits until `docker info` answers.
#
# The machines this runs on have loopback-only networking and no iptables to spare, so the engine gets no
# bridge and touches no firewall rules: containers must use the host network (gate/stack/containers/backend.py does).
# Already running? Then it only checks that it answers. Exits non-zero with the log tail on failure.
#
# Environment:
#   DOCKERD_LOG              log file (default /var/log/relay-gate-dockerd.log)
#   DOCKERD_TIMEOUT          seconds to wait for the engine (default 60)
#   DOCKERD_STORAGE_DRIVER   force a storage driver (e.g. vfs where overlay2 cannot mount); default: the
#                            engine picks the first that works here (overlay2 on ext4/xfs, vfs as a last resort)
set -euo pipefail

LOG=${DOCKERD_LOG:-/var/log/relay-gate-dockerd.log}
TIMEOUT=${DOCKERD_TIMEOUT:-60}
PIDFILE=/var/run/docker.pid

die() {
  echo "start-docker: $*" >&2
  if [ -s "$LOG" ]; then
    echo "--- last lines of $LOG ---" >&2
    tail -n 25 "$LOG" >&2
  fi
  exit 1
}

engine_answers() { timeout 5 docker info >/dev/null 2>&1; }

describe() {
  docker info --format 'Docker {{.ServerVersion}} ready: storage driver {{.Driver}}, cgroup {{.CgroupVersion}}, root {{.DockerRootDir}}'
}

command -v dockerd >/dev/null || die "dockerd is missing: apt-get install -y docker.io"
command -v docker >/dev/null || die "the docker CLI is missing: apt-get install -y docker.io"

if engine_answers; then
  echo "start-docker: already running. $(describe)"
  exit 0
fi

pid=""
if [ -s "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
  # Started earlier and still coming up (or wedged): wait for that one rather than fight its pid file.
  pid=$(cat "$PIDFILE")
  echo "start-docker: dockerd (pid $pid) is running but not answering yet; waiting for it"
else
  [ "$(id -u)" -eq 0 ] || die "dockerd must be started as root"
  args=(--bridge=none --iptables=false --ip-masq=false --ip6tables=false)
  if [ -n "${DOCKERD_STORAGE_DRIVER:-}" ]; then
    args+=(--storage-driver="$DOCKERD_STORAGE_DRIVER")
  fi
  mkdir -p "$(dirname "$LOG")"
  echo "== $(date -u +%FT%TZ) dockerd ${args[*]}" >>"$LOG"
  # Its own session, stdin closed and output in the log: it outlives this script and holds no CI pipe open.
  setsid dockerd "${args[@]}" </dev/null >>"$LOG" 2>&1 &
  pid=$!
  echo "start-docker: started dockerd (pid $pid), log in $LOG"
fi

deadline=$((SECONDS + TIMEOUT))
until engine_answers; do
  kill -0 "$pid" 2>/dev/null || die "dockerd (pid $pid) exited before answering"
  [ "$SECONDS" -lt "$deadline" ] || die "dockerd (pid $pid) did not answer \`docker info\` within ${TIMEOUT} s"
  sleep 0.2
done
echo "start-docker: $(describe)"

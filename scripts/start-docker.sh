#!/usr/bin/env bash
# Start a Docker engine for havoc's Docker backend, idempotently:
#   1. install Debian's docker.io if dockerd is missing;
#   2. start dockerd in the background (log: /tmp/dockerd.log) unless `docker info` works;
#   3. wait up to 60 s for `docker info`.
# Exits 0 when an engine answers, 1 otherwise (with the tail of the log).
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
log=/tmp/dockerd.log

as_root() {
	if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

if docker info >/dev/null 2>&1; then
	echo "start-docker: engine already running"
	exit 0
fi

if ! command -v dockerd >/dev/null 2>&1; then
	echo "start-docker: installing docker.io"
	as_root apt-get update -qq
	as_root apt-get install -y -qq docker.io >/dev/null
fi

if ! pgrep -x dockerd >/dev/null 2>&1; then
	echo "start-docker: starting dockerd (log: $log)"
	# setsid: the daemon must outlive this script and not get the caller's Ctrl-C.
	as_root setsid dockerd >"$log" 2>&1 </dev/null &
fi

for _ in $(seq 1 60); do
	if docker info >/dev/null 2>&1; then
		echo "start-docker: engine ready ($(docker version --format '{{.Server.Version}} API {{.Server.APIVersion}}' 2>/dev/null))"
		exit 0
	fi
	sleep 1
done
echo "start-docker: no engine after 60 s; last lines of $log:" >&2
tail -n 20 "$log" >&2 || true
exit 1

#!/usr/bin/env bash
# Try kvfs: builds it if needed and mounts a standalone node (a cluster of one) at ./mnt/1, with
# its data and log in ./run/1/data. Stays in the foreground until Ctrl-C, then unmounts cleanly.
#
#   scripts/start.sh          install dependencies, build, start, wait for Ctrl-C
#   scripts/start.sh stop     stop the node(s) a running start.sh started (from another terminal)
#   scripts/start.sh status   print each node's /.status
#
# Layout per node N: ./run/N/data (data directory, kvfs.log), ./run/N/kvfs.pid, ./mnt/N (mount).
# NODES lists the nodes to run; each node gets the arguments of node_args.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KVFS=${KVFS_BIN:-"$ROOT/build/fs/kvfs"} # KVFS_BIN: run another binary (and skip the build)
NODES=(1)
STOP_TIMEOUT=10

node_run() { printf '%s\n' "$ROOT/run/$1"; }
node_data() { printf '%s\n' "$ROOT/run/$1/data"; }
node_mnt() { printf '%s\n' "$ROOT/mnt/$1"; }
node_pidfile() { printf '%s\n' "$ROOT/run/$1/kvfs.pid"; }
node_log() { printf '%s\n' "$ROOT/run/$1/data/kvfs.log"; }

# node_args ID: the options of node ID besides --data and the mount point.
node_args() {
	printf '%s\n' --id "$1"
}

is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

# node_pid ID: prints the PID of node ID if it is running.
node_pid() {
	local pidfile pid
	pidfile=$(node_pidfile "$1")
	[[ -f "$pidfile" ]] || return 1
	pid=$(cat "$pidfile")
	[[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null || return 1
	printf '%s\n' "$pid"
}

build() {
	[[ -z "${KVFS_BIN:-}" ]] || return 0
	./scripts/install-deps.sh
	if [[ ! -f build/build.ninja ]]; then
		meson setup build --buildtype=debugoptimized
	fi
	ninja -C build
}

start_node() {
	local id=$1 mnt data pid deadline
	local -a args
	mnt=$(node_mnt "$id")
	data=$(node_data "$id")
	mapfile -t args < <(node_args "$id")
	if pid=$(node_pid "$id"); then
		echo "node $id is already running (pid $pid, mounted at $mnt); stop it with: $0 stop" >&2
		return 1
	fi
	mkdir -p "$data" "$(dirname "$mnt")"
	if is_mounted "$mnt"; then
		# A node that crashed leaves a dead mount ("Transport endpoint is not connected").
		echo "node $id: detaching the stale mount at $mnt"
		fusermount3 -uz "$mnt"
	fi
	mkdir -p "$mnt"
	echo "=== $(date '+%F %T') start.sh: kvfs ${args[*]} --data $data $mnt" >>"$(node_log "$id")"
	# Its own session: Ctrl-C reaches this script, which then unmounts cleanly.
	setsid "$KVFS" -f "${args[@]}" --data "$data" "$mnt" >>"$(node_log "$id")" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$(node_pidfile "$id")"
	deadline=$((SECONDS + 15))
	until timeout 5 cat "$mnt/.status" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "node $id did not come up; the end of $(node_log "$id"):" >&2
			tail -n 20 "$(node_log "$id")" >&2
			stop_node "$id" >/dev/null 2>&1 || true
			return 1
		fi
		sleep 0.1
	done
	echo "node $id: pid $pid, mounted at $mnt, log in $(node_log "$id")"
}

# stop_node ID: unmounts (the daemon then exits by itself), waits, and kills it by PID if it has
# not exited after STOP_TIMEOUT seconds.
stop_node() {
	local id=$1 mnt pid i
	mnt=$(node_mnt "$id")
	pid=$(node_pid "$id") || pid=
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || {
			echo "node $id: $mnt is busy (a shell or program is using it); retrying" >&2
			for i in 1 2 3 4 5; do
				sleep 1
				fusermount3 -u "$mnt" 2>/dev/null && break
			done
		}
	fi
	if [[ -n "$pid" ]]; then
		for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "node $id (pid $pid) did not exit within $STOP_TIMEOUT s; killing it" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if is_mounted "$mnt"; then
		fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	rm -f "$(node_pidfile "$id")"
	echo "node $id stopped"
}

stop_all() {
	local id
	for id in "${NODES[@]}"; do
		stop_node "$id"
	done
}

cmd_start() {
	local id pids=() rc
	build
	for id in "${NODES[@]}"; do
		if ! start_node "$id"; then
			stop_all
			return 1
		fi
		pids+=("$(node_pid "$id")")
	done
	trap 'echo; stop_all; exit 0' INT TERM
	cat <<EOF

kvfs is running (standalone). Try, in another terminal:

  echo hello > mnt/1/greeting
  cat mnt/1/greeting
  ls -la mnt/1
  mkdir mnt/1/dir && mv mnt/1/greeting mnt/1/dir/
  cat mnt/1/.status

Press Ctrl-C here (or run: $0 stop) to unmount and stop.
EOF
	# Wakes up on Ctrl-C (the trap) or when a node exits by itself (unmounted from elsewhere).
	rc=0
	wait -n "${pids[@]}" || rc=$?
	trap - INT TERM
	if ((rc == 0)); then
		echo "a node exited (it was unmounted); stopping"
	else
		echo "a node exited with status $rc; the end of the logs:" >&2
		for id in "${NODES[@]}"; do
			tail -n 10 "$(node_log "$id")" | sed "s/^/  [$id] /" >&2
		done
	fi
	stop_all
	return "$rc"
}

cmd_status() {
	local id
	for id in "${NODES[@]}"; do
		echo "--- node $id ($(node_mnt "$id"))"
		cat "$(node_mnt "$id")/.status" 2>/dev/null || echo "not running"
	done
}

case "${1:-start}" in
start) cmd_start ;;
stop) stop_all ;;
status) cmd_status ;;
-h | --help | help)
	sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	echo "usage: $0 [start|stop|status]" >&2
	exit 2
	;;
esac

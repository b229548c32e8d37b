#!/usr/bin/env bash
# Replicated small-file benchmark: builds kvfs, starts a local one-server ZooKeeper and a cluster
# of three nodes (scripts/start.sh, in a temporary directory under ./run, on ports away from the
# demo's), and prints one table: puts/s and gets/s through the mounts with 1 and 16 writers spread
# over the three nodes (100-byte values; a put is durable on a majority, fdatasync on every
# replica), and the latency of a single writer on the leader's mount and on a follower's. Beside
# them, the disk's one-at-a-time append+fdatasync rate, the anchor every put pays at least once.
# Stops and removes everything it started, also when interrupted. Needs root (FUSE mounts).
#
# Usage: scripts/bench_cluster.sh [SECONDS-PER-RUN (default 5)]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_PER_RUN=${1:-5}
BENCH="$ROOT/build/tests/bench/bench_smallfile"
W=
START_PID=

cleanup() {
	set +e
	[[ -n "$W" ]] || return 0
	KVFS_RUN_DIR="$W/run" KVFS_MNT_DIR="$W/mnt" scripts/start.sh stop >/dev/null 2>&1
	if [[ -n "$START_PID" ]]; then
		wait "$START_PID" 2>/dev/null
	fi
	rm -rf --one-file-system "$W"
}

# field NAME LINE: the value of NAME=... in a bench_smallfile output line
field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

main() {
	local i leader follower line t

	./scripts/install-deps.sh >/dev/null
	[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
	ninja -C build >/dev/null

	mkdir -p "$ROOT/run"
	W=$(mktemp -d "$ROOT/run/bench-cluster.XXXXXX")
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	export KVFS_RUN_DIR="$W/run" KVFS_MNT_DIR="$W/mnt" KVFS_PORT_BASE=17100
	setsid scripts/start.sh >"$W/start.log" 2>&1 </dev/null &
	START_PID=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "^Press Ctrl-C" "$W/start.log" 2>/dev/null && break
		kill -0 "$START_PID" 2>/dev/null || { cat "$W/start.log"; exit 1; }
		sleep 0.1
	done
	for ((i = 0; i < 100; i++)); do
		leader=$(sed -n 's/^leader: //p' "$W/mnt/1/.status" 2>/dev/null || true)
		grep -q '^role: leader' "$W/mnt/$leader/.status" 2>/dev/null && break
		sleep 0.1
	done
	follower=$((leader % 3 + 1))

	echo "kvfs cluster benchmark: 3 nodes on one machine ($(nproc) cores), ${SECONDS_PER_RUN} s per run, 100-byte values"
	echo "data directories on $(df --output=source,fstype "$W" | tail -1 | awk '{print $1" ("$2")"}')"
	printf '\n%-34s %10s %10s %10s %10s\n' "run" "puts/s" "put p50" "put p99" "gets/s"
	for t in 1 16; do
		line=$("$BENCH" "$W/mnt/1" "$W/mnt/2" "$W/mnt/3" --threads "$t" --seconds "$SECONDS_PER_RUN" --names 200)
		printf '%-34s %10s %8s µs %8s µs %10s\n' "$t writer(s) spread over 3 nodes" \
			"$(field puts_per_s "$line")" "$(field put_p50_us "$line")" \
			"$(field put_p99_us "$line")" "$(field gets_per_s "$line")"
	done
	for t in leader follower; do
		local n=${!t}
		line=$("$BENCH" "$W/mnt/$n" --threads 1 --seconds "$SECONDS_PER_RUN" --names 200)
		printf '%-34s %10s %8s µs %8s µs %10s\n' "1 writer on the $t (node $n)" \
			"$(field puts_per_s "$line")" "$(field put_p50_us "$line")" \
			"$(field put_p99_us "$line")" "$(field gets_per_s "$line")"
	done
	line=$("$BENCH" --append-fsync "$W/fsync-probe" --seconds "$SECONDS_PER_RUN")
	printf '\nanchor: one 128-byte append+fdatasync at a time on that disk: %s/s\n' \
		"$(field append_fsync_per_s "$line")"
	echo "(a put through a follower crosses loopback to the leader and back; every put waits for"
	echo " the leader's fdatasync and one follower's, in parallel)"
}

main "$@"

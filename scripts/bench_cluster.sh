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
#        scripts/bench_cluster.sh --security [ROUNDS (default 3) [SECONDS-PER-RUN]]
#          the cost of encrypted peers: 16 writers, encrypted and --insecure alternately
# KVFS_BENCH_DIR=/dev/shm puts the data directories on tmpfs (no disk in the figures).
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

# start_cluster: starts ZooKeeper and three nodes in $W (peers per $KVFS_PEER_SECURITY), sets
# leader and follower.
start_cluster() {
	local i
	setsid scripts/start.sh >"$W/start.log" 2>&1 </dev/null &
	START_PID=$!
	for ((i = 0; i < 300; i++)); do
		grep -q "^Press Ctrl-C" "$W/start.log" 2>/dev/null && break
		kill -0 "$START_PID" 2>/dev/null || { cat "$W/start.log"; exit 1; }
		sleep 0.1
	done
	wait_leader
}

# cpu_ticks: the CPU time (user + system, clock ticks) the three nodes have used so far.
cpu_ticks() {
	local n t=0 f
	for n in 1 2 3; do
		read -r -a f <"/proc/$(cat "$W/run/$n/kvfs.pid")/stat"
		t=$((t + f[13] + f[14]))
	done
	echo "$t"
}

# wait_leader: sets leader and follower once a node says it leads.
wait_leader() {
	local i
	for ((i = 0; i < 100; i++)); do
		leader=$(sed -n 's/^leader: //p' "$W/mnt/1/.status" 2>/dev/null || true)
		grep -q '^role: leader' "$W/mnt/$leader/.status" 2>/dev/null && break
		sleep 0.1
	done
	follower=$((leader % 3 + 1))
}

# security_main ROUNDS: the cost of encrypted peers. The same 16-writer run, alternately with
# encrypted peers and with --insecure, ROUNDS times each in one run: ZooKeeper keeps running (it
# is warm), the three nodes are restarted in the mode of the run, and the medians are compared:
# puts/s, p50, and the CPU time the three nodes spent per put (the steadiest of the three).
security_main() {
	local rounds=$1 r mode line n order t0 t1 cpu
	declare -A rates p50s cpus
	start_cluster
	echo "kvfs peer encryption cost: 3 nodes on one machine ($(nproc) cores), 16 writers spread over"
	echo "the 3 mounts, ${SECONDS_PER_RUN} s per run, 100-byte values, alternating, $rounds rounds"
	echo "data directories on $(df --output=source,fstype "$W" | tail -1 | awk '{print $1" ("$2")"}')"
	printf '\n%-8s %-10s %10s %10s %10s %11s\n' "round" "peers" "puts/s" "put p50" "put p99" \
		"CPU/put"
	for ((r = 1; r <= rounds; r++)); do
		# Each mode goes first in every other round: what a run leaves behind (writeback,
		# a longer log to recover) weighs on the next one.
		order="encrypted insecure"
		((r % 2 == 0)) && order="insecure encrypted"
		for mode in $order; do
			for n in 1 2 3; do
				KVFS_PEER_SECURITY=$mode scripts/start.sh restart "$n" >/dev/null
			done
			wait_leader
			grep -q "^peer_security: $mode" "$W/mnt/1/.status" ||
				{ echo "node 1 does not say peer_security: $mode" >&2; exit 1; }
			"$BENCH" "$W/mnt/1" "$W/mnt/2" "$W/mnt/3" --threads 16 --seconds 1 --names 200 \
				>/dev/null # warm-up
			t0=$(cpu_ticks)
			line=$("$BENCH" "$W/mnt/1" "$W/mnt/2" "$W/mnt/3" --threads 16 \
				--seconds "$SECONDS_PER_RUN" --names 200)
			t1=$(cpu_ticks)
			cpu=$(python3 -c "print('%.0f' % (($t1 - $t0) / $(getconf CLK_TCK) * 1e6 / \
				($(field puts_per_s "$line") * $SECONDS_PER_RUN)))")
			printf '%-8s %-10s %10s %8s µs %8s µs %8s µs\n' "$r" "$mode" \
				"$(field puts_per_s "$line")" "$(field put_p50_us "$line")" \
				"$(field put_p99_us "$line")" "$cpu"
			rates[$mode]+="$(field puts_per_s "$line") "
			p50s[$mode]+="$(field put_p50_us "$line") "
			cpus[$mode]+="$cpu "
		done
	done
	python3 - "${rates[encrypted]}" "${rates[insecure]}" "${p50s[encrypted]}" "${p50s[insecure]}" \
		"${cpus[encrypted]}" "${cpus[insecure]}" <<'PY'
import statistics, sys
re_, ri, pe, pi, ce, ci = ([float(x) for x in a.split()] for a in sys.argv[1:7])
mre, mri, mpe, mpi, mce, mci = (statistics.median(v) for v in (re_, ri, pe, pi, ce, ci))
print("\nmedian    encrypted %.0f puts/s, p50 %.0f µs, %.0f µs CPU/put;  insecure %.0f puts/s, "
      "p50 %.0f µs, %.0f µs CPU/put" % (mre, mpe, mce, mri, mpi, mci))
print("cost of encryption: %+.1f %% puts/s, %+.1f %% p50, %+.1f %% CPU per put" %
      ((mre - mri) / mri * 100, (mpe - mpi) / mpi * 100, (mce - mci) / mci * 100))
PY
}

main() {
	local line t rounds=0

	if [[ "${1:-}" == --security ]]; then
		rounds=${2:-3}
		SECONDS_PER_RUN=${3:-5}
	fi
	./scripts/install-deps.sh >/dev/null
	[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
	ninja -C build >/dev/null

	# KVFS_BENCH_DIR: where the data directories go (default ./run; /dev/shm takes the disk out
	# of the figures, leaving the CPU: what encryption costs)
	mkdir -p "${KVFS_BENCH_DIR:-$ROOT/run}"
	W=$(mktemp -d "${KVFS_BENCH_DIR:-$ROOT/run}/bench-cluster.XXXXXX")
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	export KVFS_RUN_DIR="$W/run" KVFS_MNT_DIR="$W/mnt" KVFS_PORT_BASE=17100
	if ((rounds > 0)); then
		security_main "$rounds"
		return
	fi
	start_cluster

	echo "kvfs cluster benchmark: 3 nodes on one machine ($(nproc) cores), ${SECONDS_PER_RUN} s per run, 100-byte values"
	echo "data directories on $(df --output=source,fstype "$W" | tail -1 | awk '{print $1" ("$2")"}')"
	echo "peers: $(sed -n 's/^peer_security: //p' "$W/mnt/1/.status")"
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

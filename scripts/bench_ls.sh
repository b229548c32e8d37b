#!/usr/bin/env bash
# Directory listing benchmark: the time of `ls -l` (and of a plain `ls`) over a directory of
# 10,000 files of 100 bytes on a kvfs mount, against the same directory on a tmpfs. "cold": the
# first listing on node 1 of entries another node (2) has just made, so node 1's kernel knows
# none of them; "warm": the listings right after it (median of 5). Prints rows of the table of
# scripts/bench_compare.sh (| workload | figure | target | ratio |); progress goes to stderr.
# Stops and removes everything it started, also when interrupted. Needs root (mounts).
#
# Usage: scripts/bench_ls.sh                      builds kvfs, starts ZooKeeper and three nodes
#                                                  (scripts/start.sh) in a temporary directory
#        scripts/bench_ls.sh MAKE_MNT LIST_MNT     uses two mounts of a running cluster instead:
#                                                  makes the entries on MAKE_MNT, lists on LIST_MNT
# KVFS_BIN=PATH runs another kvfs binary (and skips the build), as scripts/start.sh does.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

ENTRIES=10000
WARM_RUNS=5
W=
START_PID=

is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

cleanup() {
	set +e
	[[ -n "$W" ]] || return 0
	if [[ -n "$START_PID" ]]; then
		KVFS_RUN_DIR="$W/run" KVFS_MNT_DIR="$W/mnt" scripts/start.sh stop >/dev/null 2>&1
		wait "$START_PID" 2>/dev/null
	fi
	is_mounted "$W/tmpfs" && umount "$W/tmpfs"
	rm -rf --one-file-system "$W"
}

log() { printf 'bench_ls: %s\n' "$*" >&2; }

# start_cluster: ZooKeeper and three nodes in $W (ports away from the demo's and bench_cluster's).
start_cluster() {
	local i
	export KVFS_RUN_DIR="$W/run" KVFS_MNT_DIR="$W/mnt" KVFS_PORT_BASE=17200
	export KVFS_PEER_SECURITY=insecure
	setsid scripts/start.sh >"$W/start.log" 2>&1 </dev/null &
	START_PID=$!
	for ((i = 0; i < 600; i++)); do
		grep -q "^Press Ctrl-C" "$W/start.log" 2>/dev/null && return 0
		kill -0 "$START_PID" 2>/dev/null || break
		sleep 0.1
	done
	cat "$W/start.log" >&2
	exit 1
}

# make_entries DIR: ENTRIES files of 100 bytes, f00000 ..., written by 16 threads.
make_entries() {
	mkdir "$1"
	python3 - "$1" "$ENTRIES" <<'PY'
import sys, threading
d, n, t = sys.argv[1], int(sys.argv[2]), 16
def put(k):
    for i in range(k, n, t):
        with open("%s/f%05d" % (d, i), "wb") as f:
            f.write(b"v" * 100)
ths = [threading.Thread(target=put, args=(k,)) for k in range(t)]
for th in ths: th.start()
for th in ths: th.join()
PY
}

# status_field MNT KEY
status_field() { awk -F': ' -v k="$2" '$1 == k { print $2; exit }' "$1/.status"; }

# wait_applied MNT INDEX: until the node of MNT has applied INDEX (without listing anything).
wait_applied() {
	local i
	for ((i = 0; i < 300; i++)); do
		(($(status_field "$1" applied_index) >= $2)) && return 0
		sleep 0.1
	done
	log "$1 did not apply index $2 within 30 s"
	exit 1
}

# time_ms CMD...: runs CMD (output discarded) and prints its wall time in milliseconds; fails
# (with a message) when CMD fails, so that no failed listing passes for a fast one.
time_ms() {
	local t0 t1
	t0=$(date +%s%N)
	if ! "$@" >/dev/null; then
		log "failed: $*"
		return 1
	fi
	t1=$(date +%s%N)
	awk -v ns=$((t1 - t0)) 'BEGIN { printf "%.1f\n", ns / 1e6 }'
}

# warm_ms CMD...: the median of WARM_RUNS timed runs of CMD.
warm_ms() {
	local i
	for ((i = 0; i < WARM_RUNS; i++)); do
		time_ms "$@" || exit 1
	done | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'
}

# row WORKLOAD MS TMPFS_MS: one table row, the ratio to tmpfs against the target of 2x.
row() {
	awk -v w="$1" -v ms="$2" -v base="$3" 'BEGIN {
		printf "| %s | %.1f ms | <= 2x tmpfs (%.1f ms) | %.2fx |\n", w, ms, base, ms / base }'
}

main() {
	local make_mnt list_mnt index tmpfs_l tmpfs_plain cold_l warm_l cold_plain warm_plain
	W=$(mktemp -d /tmp/kvfs-bench-ls.XXXXXX)
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	export LC_ALL=C
	if (($# == 2)); then
		make_mnt=$1 list_mnt=$2
	else
		if [[ -z "${KVFS_BIN:-}" ]]; then
			[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
			ninja -C build >/dev/null
		fi
		start_cluster
		make_mnt=$W/mnt/2 list_mnt=$W/mnt/1
	fi

	mkdir "$W/tmpfs"
	mount -t tmpfs -o size=256m tmpfs "$W/tmpfs"
	make_entries "$W/tmpfs/d"
	tmpfs_l=$(warm_ms ls -l "$W/tmpfs/d")
	tmpfs_plain=$(warm_ms ls "$W/tmpfs/d")

	# Two directories made on one node, each listed first (cold) on the other: one for ls -l,
	# one for plain ls, so that neither finds what the other brought into the kernel.
	log "making 2 x $ENTRIES entries on $make_mnt"
	make_entries "$make_mnt/ls-l.$$"
	make_entries "$make_mnt/ls.$$"
	index=$(status_field "$make_mnt" commit_index)
	wait_applied "$list_mnt" "$index"
	cold_l=$(time_ms ls -l "$list_mnt/ls-l.$$")
	warm_l=$(warm_ms ls -l "$list_mnt/ls-l.$$")
	cold_plain=$(time_ms ls "$list_mnt/ls.$$")
	warm_plain=$(warm_ms ls "$list_mnt/ls.$$")
	if (($# == 2)); then
		rm -rf "$make_mnt/ls-l.$$" "$make_mnt/ls.$$"
	fi

	row "ls -l $ENTRIES entries, cold (made on another node)" "$cold_l" "$tmpfs_l"
	row "ls -l $ENTRIES entries, warm" "$warm_l" "$tmpfs_l"
	row "ls $ENTRIES entries (names only), cold" "$cold_plain" "$tmpfs_plain"
	row "ls $ENTRIES entries (names only), warm" "$warm_plain" "$tmpfs_plain"
}

main "$@"

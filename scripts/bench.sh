#!/usr/bin/env bash
# Small-file benchmark: builds kvfs, starts a standalone node (data on the ordinary disk, in a
# temporary directory under ./run), mounts a tmpfs for comparison, and prints one table: puts/s and
# gets/s at 1 and 2 threads through kvfs and through tmpfs, and the 128-byte append+fdatasync rate
# of the disk that holds the data directory (what one unbatched commit costs), and what a key costs
# in memory (the daemon's RSS growth over 100,000 keys). Stops and removes
# everything it started, also when interrupted. Needs root (tmpfs and FUSE mounts).
#
# Usage: scripts/bench.sh [SECONDS-PER-RUN (default 5)]
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_PER_RUN=${1:-5}
MEM_KEYS=100000
BENCH="$ROOT/build/tests/bench/bench_smallfile"
KVFS="$ROOT/build/fs/kvfs"
W=
KVFS_PID=

is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

cleanup() {
	local i
	set +e
	[[ -n "$W" ]] || return 0
	if is_mounted "$W/kvfs"; then
		fusermount3 -u "$W/kvfs" 2>/dev/null
	fi
	if [[ -n "$KVFS_PID" ]]; then
		for ((i = 0; i < 100; i++)); do
			kill -0 "$KVFS_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$KVFS_PID" 2>/dev/null
		wait "$KVFS_PID" 2>/dev/null
	fi
	is_mounted "$W/kvfs" && fusermount3 -uz "$W/kvfs"
	is_mounted "$W/tmpfs" && umount "$W/tmpfs"
	rm -rf --one-file-system "$W"
}

main() {
	local line fs_type dev cpu i target threads rss_before rss_after
	local -A puts=() gets=() p99=()

	./scripts/install-deps.sh >/dev/null
	[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
	ninja -C build >/dev/null

	mkdir -p "$ROOT/run"
	W=$(mktemp -d "$ROOT/run/bench.XXXXXX")
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	mkdir -p "$W/data" "$W/kvfs" "$W/tmpfs"

	"$KVFS" -f --data "$W/data" "$W/kvfs" 2>"$W/kvfs.log" &
	KVFS_PID=$!
	for ((i = 0; i < 100; i++)); do
		cat "$W/kvfs/.status" >/dev/null 2>&1 && break
		sleep 0.1
	done
	if ! cat "$W/kvfs/.status" >/dev/null 2>&1; then
		echo "bench: kvfs did not start; its log:" >&2
		cat "$W/kvfs.log" >&2
		exit 1
	fi
	mount -t tmpfs -o size=512m tmpfs "$W/tmpfs"

	for target in kvfs tmpfs; do
		for threads in 1 2; do
			mkdir "$W/$target/t$threads"
			line=$("$BENCH" "$W/$target/t$threads" --threads "$threads" --seconds "$SECONDS_PER_RUN")
			puts[$target.$threads]=$(sed -n 's/.*puts_per_s=\([0-9]*\).*/\1/p' <<<"$line")
			gets[$target.$threads]=$(sed -n 's/.*gets_per_s=\([0-9]*\).*/\1/p' <<<"$line")
			p99[$target.$threads]=$(sed -n 's/.*put_p99_us=\([0-9]*\).*/\1/p' <<<"$line")
		done
	done
	# What a key costs in memory: the daemon's resident size before and after 100,000 new keys
	# of 100 bytes, named k0000000..k0099999, written by 16 threads.
	rss_before=$(awk '/^VmRSS:/ { print $2 }' "/proc/$KVFS_PID/status")
	mkdir "$W/kvfs/mem"
	python3 - "$W/kvfs/mem" "$MEM_KEYS" <<'PY'
import sys, threading
d, n, t = sys.argv[1], int(sys.argv[2]), 16
def put(k):
    for i in range(k, n, t):
        with open("%s/k%07d" % (d, i), "wb") as f:
            f.write(b"v" * 100)
ths = [threading.Thread(target=put, args=(k,)) for k in range(t)]
for th in ths: th.start()
for th in ths: th.join()
PY
	rss_after=$(awk '/^VmRSS:/ { print $2 }' "/proc/$KVFS_PID/status")

	line=$("$BENCH" --append-fsync "$W/data/fsync-probe" --seconds "$SECONDS_PER_RUN")
	rm -f "$W/data/fsync-probe"

	fs_type=$(stat -f -c %T "$W/data")
	dev=$(df --output=source "$W/data" | tail -n 1)
	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)

	echo
	echo "kvfs small-file benchmark ($SECONDS_PER_RUN s per run, 100-byte files, 300 names per thread)"
	echo "machine: $(nproc) cores, ${cpu:-unknown CPU}, Linux $(uname -r), $(free -g | awk '/^Mem:/ { print $2 }') GiB"
	echo "data directory: $W/data on $dev ($fs_type)"
	echo
	printf '%-8s %8s %12s %14s %12s\n' target threads puts/s 'put p99 (us)' gets/s
	for target in kvfs tmpfs; do
		for threads in 1 2; do
			printf '%-8s %8s %12s %14s %12s\n' "$target" "$threads" "${puts[$target.$threads]}" \
				"${p99[$target.$threads]}" "${gets[$target.$threads]}"
		done
	done
	echo
	printf '128-byte append+fdatasync on the data directory'"'"'s disk: %s/s\n' \
		"$(sed -n 's/.*append_fsync_per_s=\([0-9]*\).*/\1/p' <<<"$line")"
	printf 'memory: %d keys of 100 bytes (8-byte names) grew kvfs from %d to %d KiB RSS: %d bytes per key\n' \
		"$MEM_KEYS" "$rss_before" "$rss_after" $(((rss_after - rss_before) * 1024 / MEM_KEYS))
}

main "$@"

#!/usr/bin/env bash
# Crash safety of a standalone node: a writer streams puts and appends into the mount and prints
# each operation once close() acknowledged it; the daemon is killed with SIGKILL mid-stream; after
# a restart on the same data directory every acknowledged write must be there, byte for byte, and
# every acknowledged append line exactly once, in order (crash_writer -c is the precise check).
# Several rounds per node, killed at different times, each round re-checking all earlier ones;
# a second node runs with tiny --snapshot-bytes and --segment-bytes so that snapshots, segment
# rotation and log truncation happen during the stream.
#
# Usage: test_crash.sh KVFS_BIN CRASH_WRITER_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

if (($# < 2)); then
	echo "usage: $0 KVFS_BIN CRASH_WRITER_BIN" >&2
	exit 2
fi
CRASH_WRITER=$(realpath "$2")
BASE_SEED=${KVFS_CRASH_SEED:-$((RANDOM * 32768 + RANDOM))}

# round_seed NAME ROUND
round_seed() {
	echo $((BASE_SEED + $2 * 101 + ${#1}))
}

# verify_rounds NAME LAST: re-checks rounds 1..LAST of node NAME.
verify_rounds() {
	local name=$1 last=$2 r mnt
	mnt=$(kvfs_mnt "$name")
	for ((r = 1; r <= last; r++)); do
		check "$name round $r: every acknowledged put and append is there" \
			"$CRASH_WRITER" -c "$T/$name.round$r.ack" -s "$(round_seed "$name" "$r")" "$mnt/round$r"
	done
}

# crash_round NAME ROUND KILL_AFTER EXTRA-ARGS...: one writer, one SIGKILL, one restart, checks.
crash_round() {
	local name=$1 r=$2 delay=$3 mnt dir wpid acks
	shift 3
	mnt=$(kvfs_mnt "$name")
	dir="$mnt/round$r"
	mkdir "$dir"
	lib_log "$name round $r: writing (seed $(round_seed "$name" "$r")), SIGKILL after $delay s"
	"$CRASH_WRITER" -s "$(round_seed "$name" "$r")" "$dir" >"$T/$name.round$r.ack" \
		2>"$T/$name.round$r.err" &
	wpid=$!
	lib_track_pid "$wpid"
	sleep "$delay"
	check "$name round $r: the writer is still writing when the daemon is killed" lib_alive "$wpid"
	check "$name round $r: kill -9 the daemon" kvfs_kill9 "$name"
	if ! lib_wait_exit "$wpid" 10; then
		lib_fail "$name round $r: the writer did not stop within 10 s of the daemon's death" \
			"its stderr: $(cat "$T/$name.round$r.err")"
		kill -9 "$wpid"
		lib_wait_exit "$wpid" 5 || true
	fi
	acks=$(wc -l <"$T/$name.round$r.ack")
	lib_log "$name round $r: $acks operations acknowledged; writer: $(tail -n 1 "$T/$name.round$r.err")"
	check "$name round $r: the writer got acknowledgements ($acks)" test "$acks" -ge 5
	check "$name round $r: the writer saw an error after the kill" grep -q 'failed at' "$T/$name.round$r.err"
	check "$name round $r: the dead mount detaches (fusermount3 -uz)" kvfs_umount_dead "$name"
	check "$name round $r: restart on the same data directory" kvfs_start "$name" "$@"
	verify_rounds "$name" "$r"
}

# run_node NAME "DELAYS" EXTRA-ARGS...
run_node() {
	local name=$1 delays=$2 r=0 d
	shift 2
	check "$name: start" kvfs_start "$name" "$@"
	for d in $delays; do
		r=$((r + 1))
		crash_round "$name" "$r" "$d" "$@"
	done
	check "$name: clean stop after the crashes" kvfs_stop "$name"
	check "$name: start once more" kvfs_start "$name" "$@"
	verify_rounds "$name" "$r"
	lib_log "$name: data directory: $(du -sh "$(kvfs_dir "$name")/data" | cut -f1)" \
		"($(find "$(kvfs_dir "$name")/data" -type f | wc -l) files)"
	check "$name: final clean stop" kvfs_stop "$name"
}

main() {
	lib_log "base seed $BASE_SEED (set KVFS_CRASH_SEED to replay)"
	run_node plain "1.5 0.7 2.3"
	run_node snap "1.5 1.0 2.0" --snapshot-bytes 65536 --segment-bytes 131072
	lib_finish
}

main

#!/usr/bin/env bash
# fsx on a real standalone mount: a few fixed seeds and one random seed (printed, replayable), two
# at a time in separate directories, each checking every read and size against its model. Then the
# node is stopped and started again on the same data directory and every directory must still
# equal its model's final state (fsx -V replays the model and compares).
#
# Usage: test_fsx.sh KVFS_BIN FSX_BIN
# Environment: KVFS_FSX_OPS (operations per seed, default 10000), KVFS_FSX_SEED (the "random" one).
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

if (($# < 2)); then
	echo "usage: $0 KVFS_BIN FSX_BIN" >&2
	exit 2
fi
FSX=$(realpath "$2")
OPS=${KVFS_FSX_OPS:-10000}
RANDOM_SEED=${KVFS_FSX_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
SEEDS=(1 2 3 1000003 "$RANDOM_SEED")

# fsx_report DESCRIPTION LOG RC
fsx_report() {
	if (($3 == 0)); then
		lib_pass "$1"
	else
		lib_fail "$1" "exit status $3; fsx output:" "$(tail -n 40 "$2")"
	fi
}

# run_seeds SEED...: runs fsx for the seeds at once (two at a time here), each in its own directory.
run_seeds() {
	local seed pid rc i
	local -a pids=() seeds=()
	for seed in "$@"; do
		mkdir "$M/s$seed"
		"$FSX" -s "$seed" -n "$OPS" "$M/s$seed" >"$T/fsx.$seed.log" 2>&1 &
		pid=$!
		lib_track_pid "$pid"
		pids+=("$pid")
		seeds+=("$seed")
	done
	for ((i = 0; i < ${#pids[@]}; i++)); do
		rc=0
		wait "${pids[$i]}" || rc=$?
		fsx_report "fsx seed ${seeds[$i]}, $OPS operations" "$T/fsx.${seeds[$i]}.log" "$rc"
	done
}

main() {
	local i seed rc
	lib_log "seeds ${SEEDS[*]} ($RANDOM_SEED is random: KVFS_FSX_SEED=$RANDOM_SEED replays it)," \
		"$OPS operations each"
	kvfs_start a --snapshot-bytes 4194304
	M=$(kvfs_mnt a)
	for ((i = 0; i < ${#SEEDS[@]}; i += 2)); do
		run_seeds "${SEEDS[@]:i:2}"
	done
	check "stop the node" kvfs_stop a
	check "start it again on the same data directory" kvfs_start a --snapshot-bytes 4194304
	for seed in "${SEEDS[@]}"; do
		rc=0
		"$FSX" -V -s "$seed" -n "$OPS" "$M/s$seed" >"$T/fsx.$seed.replay.log" 2>&1 || rc=$?
		fsx_report "after restart: seed $seed's files equal the model" "$T/fsx.$seed.replay.log" "$rc"
	done
	check "final stop" kvfs_stop a
	lib_finish
}

main

#!/usr/bin/env bash
# A data disk that fails under a running standalone node. The daemon runs with fail_sync.c
# preloaded ($2): once the test creates the trigger file, every fsync/fdatasync fails with EIO, as
# on a dying disk. Then the write that meets the failure fails with EIO (it was not acknowledged),
# writers racing with it end with an error instead of hanging, the daemon says in its log why it
# stops (naming its data directory), unmounts by itself within a few seconds and exits with
# status 1 (README: runtime error). Started again on a healthy disk, it has every write that was
# acknowledged before the failure.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

SHIM=$(realpath "$2")
ARM="$T/disk-fails-now"
D=$(kvfs_dir a)
# An AddressSanitizer build refuses a preloaded library unless told not to check the order.
KVFS_ENV=(LD_PRELOAD="$SHIM" KVFS_FAIL_SYNC_TRIGGER="$ARM"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
kvfs_start a
M=$(kvfs_mnt a)
PID=${KVFS_PID[a]}

ms_now() { echo $(($(date +%s%N) / 1000000)); }

# expect_gone T0 WHAT: waits until the daemon has unmounted and exited by itself after the failure
# (armed at T0 ms), and checks it did within 5 s, with status 1.
expect_gone() {
	local t0=$1 what=$2 gone=""
	while (($(ms_now) - t0 < 10000)); do
		if ! lib_is_mounted "$M"; then
			gone=$(($(ms_now) - t0))
			break
		fi
		sleep 0.05
	done
	lib_log "$what: mount gone ${gone:-never} ms after the failure"
	check "$what: the mount is gone within 5 s" test -n "$gone" -a "${gone:-99999}" -lt 5000
	if lib_wait_exit "$PID" 10; then
		KVFS_RC[a]=$LIB_WAIT_RC
		unset "KVFS_PID[a]"
		assert_eq "$what: the daemon exits with status 1 (runtime error)" 1 "${KVFS_RC[a]}"
	else
		lib_fail "$what: the daemon exits by itself" "pid $PID still runs 10 s after the failure"
		kvfs_kill9 a
	fi
	if lib_is_mounted "$M"; then
		kvfs_umount_dead a
	fi
}

# Writes acknowledged on a healthy disk: files, a directory, an append.
head -c 5000 /dev/urandom >"$T/ref"
ok=1
for i in $(seq 1 20); do
	cp "$T/ref" "$M/before$i" || ok=0
done
mkdir "$M/dir" || ok=0
echo "line 1" >>"$M/dir/log" || ok=0
echo "line 2" >>"$M/dir/log" || ok=0
check "writes on the healthy disk succeed" test "$ok" = 1

t0=$(ms_now)
touch "$ARM"
lib_log "the disk fails now"
expect_errno "the write that meets the failed disk is not acknowledged" EIO cp "$T/ref" "$M/doomed"
expect_gone "$t0" "one write"
check_grep "the log says the disk failed, naming the data directory" \
	"$D/data.*(fsync|Input/output)" "$(kvfs_log a)"
check_grep "the log says the node stops with status 1" "fatal error.*exit status 1" "$(kvfs_log a)"

# Again, with writers busy when the disk fails: each notes a file once cp said it was done.
# They write under dir/, which exists only inside the mount: once it is gone, cp fails.
rm -f "$ARM"
kvfs_start a
PID=${KVFS_PID[a]}
WRITERS=()
for k in 1 2 3; do
	(
		for i in $(seq 1 100000); do
			cp "$T/ref" "$M/dir/w$k-$i" 2>/dev/null || exit 0
			echo "dir/w$k-$i" >>"$T/acked"
		done
	) &
	lib_track_pid $!
	WRITERS+=($!)
done
sleep 1
t0=$(ms_now)
touch "$ARM"
lib_log "the disk fails now, under $(wc -l <"$T/acked") acknowledged writes"
expect_gone "$t0" "busy writers"
writers_done=1
for pid in "${WRITERS[@]}"; do
	lib_wait_exit "$pid" 10 || writers_done=0
done
check "every writer racing with the failure got an answer (none hangs)" test "$writers_done" = 1

# On a healthy disk again: everything acknowledged is there.
KVFS_ENV=()
rm -f "$ARM"
check "it starts again on a healthy disk" kvfs_start a
missing=""
for i in $(seq 1 20); do
	cmp -s "$T/ref" "$M/before$i" || missing+=" before$i"
done
while read -r f; do
	cmp -s "$T/ref" "$M/$f" || missing+=" $f"
done <"$T/acked"
lib_log "$(wc -l <"$T/acked") writes were acknowledged while the writers ran"
assert_eq "every write acknowledged before a failure is there after the restart" "" "$missing"
assert_eq "the appended file is intact" "line 1
line 2" "$(cat "$M/dir/log")"
check "writes work again" cp "$T/ref" "$M/after"
check "clean stop" kvfs_stop a

lib_finish

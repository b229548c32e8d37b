#!/usr/bin/env bash
# A node out of file descriptors (issue 9: idle connections took them all) is not a node with a
# failed disk: it must not stop. The daemon runs with fail_open.c preloaded ($2): once the test
# creates the trigger file, every open of a log segment or a snapshot fails with EMFILE, the
# retry after kvfs gives up its reserve descriptor included. With tiny segments every few writes
# need a new segment: those writes fail with EIO (outcome unknown; here, not written), the others
# succeed, the daemon keeps serving (its log says it ran out of descriptors, not that it stops),
# and once descriptors are back every write succeeds again. After a restart every acknowledged
# write is there. First of all, the daemon raises its soft limit on open files to the hard one.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# A low soft limit, as on most systems (1024), below the hard one: the daemon raises it.
HARD=$(ulimit -Hn)
if [[ "$HARD" == unlimited ]] || ((HARD > 256)); then
	ulimit -Sn 256
fi
kvfs_start a -v
soft=$(awk '/^Max open files/ {print $4}' "/proc/${KVFS_PID[a]}/limits")
hard=$(awk '/^Max open files/ {print $5}' "/proc/${KVFS_PID[a]}/limits")
lib_log "daemon's open files limit: soft $soft, hard $hard (the shell's soft limit: $(ulimit -Sn))"
assert_eq "the daemon raised its soft open files limit to the hard one" "$hard" "$soft"
check_grep "it says so at debug level" "open files limit: $soft \\(was 256" "$(kvfs_log a)"
check "clean stop" kvfs_stop a

SHIM=$(realpath "$2")
ARM="$T/out-of-descriptors-now"
# An AddressSanitizer build refuses a preloaded library unless told not to check the order.
KVFS_ENV=(LD_PRELOAD="$SHIM" KVFS_FAIL_OPEN_TRIGGER="$ARM" KVFS_FAIL_OPEN_MATCH="log-,snap-"
	ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0")
ARGS=(--segment-bytes 4096 --snapshot-bytes 8192)
kvfs_start a "${ARGS[@]}"
M=$(kvfs_mnt a)
PID=${KVFS_PID[a]}
: >"$T/acked"

head -c 3000 /dev/urandom >"$T/ref"
ok=1
for i in $(seq 1 10); do
	cp "$T/ref" "$M/before$i" && echo "before$i" >>"$T/acked" || ok=0
done
check "writes succeed with descriptors to spare" test "$ok" = 1

touch "$ARM"
lib_log "no descriptor for log segments or snapshots from now"
failed=0
other=""
for i in $(seq 1 12); do
	if cp "$T/ref" "$M/during$i" 2>"$T/err"; then
		echo "during$i" >>"$T/acked"
	elif grep -qF "$(lib_strerror EIO)" "$T/err"; then
		failed=$((failed + 1))
	else
		other+=" during$i: $(cat "$T/err")"
	fi
done
lib_log "$failed of 12 writes failed while out of descriptors"
check "writes that need a new segment fail (at least one did)" test "$failed" -ge 1
assert_eq "a write that fails says EIO (outcome unknown), nothing else" "" "$other"
check "the daemon still runs" lib_alive "$PID"
check "the mount still answers" cat "$M/.status"
check "reads still work" cmp "$T/ref" "$M/before1"
check_grep "the log says it ran out of descriptors" "Too many open files" "$(kvfs_log a)"
check_fails "the log does not say it stops" grep -qE "stopping|fatal error" "$(kvfs_log a)"

rm -f "$ARM"
lib_log "descriptors are back"
ok=1
for i in $(seq 1 20); do
	cp "$T/ref" "$M/after$i" && echo "after$i" >>"$T/acked" || ok=0
done
check "once descriptors are back, every write succeeds" test "$ok" = 1
check "the daemon still runs" lib_alive "$PID"
check "clean stop" kvfs_stop a

KVFS_ENV=()
check "it starts again" kvfs_start a "${ARGS[@]}"
missing=""
while read -r f; do
	cmp -s "$T/ref" "$M/$f" || missing+=" $f"
done <"$T/acked"
lib_log "$(wc -l <"$T/acked") writes were acknowledged"
assert_eq "every acknowledged write is there after the restart" "" "$missing"
check "clean stop" kvfs_stop a

lib_finish

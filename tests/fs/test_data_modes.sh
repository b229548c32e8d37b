#!/usr/bin/env bash
# The data directory is private (DESIGN §5): the directory 0700 and every file in it 0600, log
# segments, snapshots, metadata, lock and commit files alike, even under a permissive umask (this
# script runs with umask 022), so that a value kept `chmod 600` on the mount cannot be read by
# another local user from the disk. Modes seen through the mount are the users' own, unchanged.
# A data directory left with 0755/0644 by an older kvfs is tightened at the next start, which
# says so in one info line and does not refuse to start.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

D=$(kvfs_dir a)/data
ARGS=(--segment-bytes 4096 --snapshot-bytes 8192)

# loose_entries: prints every entry under $D whose mode is not 0700 (directories) or 0600 (files).
loose_entries() {
	find "$D" \( -type d ! -perm 0700 \) -o \( -type f ! -perm 0600 \) -printf '%m %p\n'
}

kvfs_start a "${ARGS[@]}"
M=$(kvfs_mnt a)
echo "secret" >"$M/secret"
chmod 600 "$M/secret"
head -c 3000 /dev/urandom >"$T/ref"
ok=1
for i in $(seq 1 40); do
	cp "$T/ref" "$M/f$i" || ok=0
done
check "writes succeed" test "$ok" = 1
snap=0
for _ in $(seq 1 100); do
	snap=$(kvfs_status_field a snapshot_index)
	((snap > 0)) && break
	sleep 0.05
done
check "a snapshot was taken (snapshot_index $snap)" test "$snap" -gt 0
assert_eq "the chmod 600 file is 600 on the mount" "600" "$(stat -c %a "$M/secret")"
assert_eq "a new file on the mount gets the writer's umask (022), not the data directory's mode" \
	"644" "$(stat -c %a "$M/f1")"
check "the log has several segments" test "$(find "$D" -name 'log-*' | wc -l)" -ge 2
check "there is a snapshot file" test "$(find "$D" -name 'snap-*.snap' | wc -l)" -ge 1
assert_eq "while running: the data directory is 0700 and every file in it 0600" "" "$(loose_entries)"
check "clean stop" kvfs_stop a
assert_eq "after the stop: the data directory is 0700 and every file in it 0600" "" \
	"$(loose_entries)"
check "the data directory itself is 0700" test "$(stat -c %a "$D")" = 700

# What an older kvfs left: a readable directory and readable files.
chmod 0755 "$D"
find "$D" -type f -exec chmod 0644 {} +
check "(set up) the directory is 0755 and its files 0644 now" test -n "$(loose_entries)"
check "it starts on the loose directory" kvfs_start a "${ARGS[@]}"
assert_eq "at start the loose data directory was tightened" "" "$(loose_entries)"
check_grep "the log says so, once" "made data directory .*private.*0755 to 0700" "$(kvfs_log a)"
assert_eq "... in one line" 1 "$(grep -c 'made data directory' "$(kvfs_log a)")"
assert_eq "the data is all there" "secret" "$(cat "$M/secret")"
check "the values are intact" cmp "$T/ref" "$M/f40"
assert_eq "the chmod 600 file is still 600 on the mount" "600" "$(stat -c %a "$M/secret")"
check "clean stop" kvfs_stop a
check "a start on a private directory" kvfs_start a "${ARGS[@]}"
assert_eq "... says nothing about modes" 1 "$(grep -c 'made data directory' "$(kvfs_log a)")"
check "clean stop" kvfs_stop a

lib_finish

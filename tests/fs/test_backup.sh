#!/usr/bin/env bash
# Whole-mount copies and backups, on real standalone kvfs mounts, as a user would make them.
#
# 1. Copies of a whole mount into another mount: `tar -C A -cf x.tar .` and its extraction,
#    `rsync -a --delete A/ B/`, `cp -a A/. C/`, `find A`. The virtual files (/.status ...) are not
#    listed, so none of them sees or copies them; the trees must compare equal (names, types,
#    modes, sizes, mtimes to the nanosecond, symlink targets, contents) for a tree with nested and
#    empty directories, empty files, symlinks (dangling, absolute, long), a file at --max-value,
#    names with spaces, newlines and unicode, paths over 100 bytes and a time before 1970.
# 2. /.kvfs-backup.tar: a tar archive of the store as of its open. It lists and extracts with GNU
#    tar and Python's tarfile, names its cluster, node and applied index in a pax global header,
#    restores into a new node, shows the store as it was at the open however the store changes
#    meanwhile, and is a consistent cut while writers run (file b, written after a, is never
#    newer than a in any backup). Two readers at once, readers that stop halfway, reads of every
#    size and at random offsets, --read linearizable, and a tree of 20,000 keys streamed with
#    the node's memory growing by far less than the data.
#
# Usage: test_backup.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

HELPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/backup_helper.py"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
MAX=262144
BK=.kvfs-backup.tar

listing() { "$PY" "$HELPER" list "$@"; }

# The reference tree, made directly in mount A (so its mtimes come from the store's own clock
# where the test sets none).
make_tree() {
	local a=$1 long255 deep longtarget
	long255=$(printf 'L%.0s' {1..255})
	deep="dir/sub/deeper/$(printf 'p%.0s' {1..120})"
	longtarget=$(printf 'T%.0s' {1..300})
	mkdir -p "$a/dir/sub/deeper" "$a/empty dir" "$a/only/dirs/here"
	printf 'alpha\n' >"$a/a.txt"
	: >"$a/empty"
	: >"$a/dir/sub/empty too"
	head -c "$MAX" /dev/urandom >"$a/max.bin"
	head -c 70000 /dev/urandom >"$a/dir/mid.bin"
	printf 'space\n' >"$a/with space"
	printf 'newline\n' >"$a/new"$'\n'"line"
	printf 'unicode\n' >"$a/ünïcødé-日本語-😀"
	printf '255\n' >"$a/$long255"
	printf 'deep\n' >"$a/$deep"
	ln -s a.txt "$a/link"
	ln -s ../../a.txt "$a/dir/sub/uplink"
	ln -s /nonexistent/absolute "$a/abs-dangling"
	ln -s "$longtarget" "$a/longlink"
	chmod 600 "$a/a.txt"
	chmod 755 "$a/dir/mid.bin"
	chmod 700 "$a/dir/sub"
	chmod 751 "$a/only"
	touch -d '2001-02-03 04:05:06.123456789' "$a/a.txt" "$a/max.bin" "$a/$deep"
	touch -d '1969-12-31 23:59:58.5' "$a/empty"
	touch -h -d '2003-04-05 06:07:08.5' "$a/link" "$a/longlink"
	touch -d '2010-10-10 10:10:10.000000001' "$a/dir/sub/deeper" "$a/empty dir" "$a/dir"
	touch -d '2011-11-11 11:11:11' "$a"
}

# --- 1. whole-mount copies ---------------------------------------------------------------------

test_find() {
	local n
	check "the virtual files are reachable by name" test -s "$A/.status"
	check "/.kvfs-backup.tar is reachable by name" test -f "$A/$BK"
	assert_eq "find of the whole mount lists no virtual file" "" \
		"$(find "$A" \( -name '.status*' -o -name '.kvfs*' \) -print)"
	n=$(find "$A" -mindepth 1 -printf x | wc -c)
	assert_eq "find lists the user's entries only (21)" 21 "$n"
	assert_eq "ls -A of the root lists no virtual file" "" \
		"$(ls -A "$A" | grep -E '^\.(status|kvfs)' || true)"
}

# GNU tar's warning about the file dated 1969, the only one allowed.
tar_warnings() {
	grep -v 'implausibly old time stamp' "$LIB_OUT" || true
}

test_tar_copy() {
	check "tar -C A -cf x.tar . exits 0" tar -C "$A" -cf "$T/x.tar" .
	assert_eq "tar -c writes no warning" "" "$(cat "$LIB_OUT")"
	check "tar -C B -xpf x.tar exits 0" tar -C "$B" -xpf "$T/x.tar"
	assert_eq "tar -x writes no warning (but about 1969)" "" "$(tar_warnings)"
	# GNU tar's default format keeps whole seconds; pax (--format=posix) keeps nanoseconds.
	assert_eq "tar: B is A (names, types, modes, mtimes in seconds, sizes, contents, targets)" \
		"$(listing "$A" --seconds)" "$(listing "$B" --seconds)"
	assert_same_tree "tar: diff -r finds no difference" "$A" "$B"
	check "tar --format=posix -C A -cf xp.tar . exits 0" \
		tar --format=posix -C "$A" -cf "$T/xp.tar" .
	assert_eq "tar --format=posix -c writes no warning" "" "$(cat "$LIB_OUT")"
	check "tar -C B -xpf xp.tar over the first copy exits 0" tar -C "$B" -xpf "$T/xp.tar"
	assert_eq "tar --format=posix -x writes no warning (but about 1969)" "" "$(tar_warnings)"
	assert_eq "tar --format=posix: B is A, mtimes to the nanosecond" "$(listing "$A")" \
		"$(listing "$B")"
}

test_rsync_copy() {
	# rsync's quick check takes mtimes in the same second as equal and leaves them (also on a
	# local disk); --modify-window=-1 makes it compare nanoseconds.
	check "rsync -a A/ C/ into an empty mount exits 0" rsync -a "$A/" "$C/"
	assert_eq "rsync: C is A (mtimes in seconds)" "$(listing "$A" --seconds)" \
		"$(listing "$C" --seconds)"
	check "rsync -a --modify-window=-1 A/ C/ exits 0" rsync -a --modify-window=-1 "$A/" "$C/"
	assert_eq "rsync --modify-window=-1: C is A, mtimes to the nanosecond" "$(listing "$A")" \
		"$(listing "$C")"
	echo changed >"$A/a.txt"
	rm "$A/empty"
	mkdir "$A/newdir"
	echo new >"$A/newdir/new file"
	rmdir "$A/only/dirs/here"
	check "rsync -a --delete A/ B/ exits 0" rsync -a --delete "$A/" "$B/"
	assert_eq "rsync --delete: B is A again (mtimes in seconds)" "$(listing "$A" --seconds)" \
		"$(listing "$B" --seconds)"
	check "rsync -a --delete --modify-window=-1 A/ B/ exits 0" \
		rsync -a --delete --modify-window=-1 "$A/" "$B/"
	assert_eq "rsync --modify-window=-1: B is A, mtimes to the nanosecond" "$(listing "$A")" \
		"$(listing "$B")"
	check "rsync -a --delete again (nothing to do) exits 0" rsync -a --delete "$A/" "$B/"
	assert_eq "rsync again: B is A" "$(listing "$A")" "$(listing "$B")"
}

test_cp_copy() {
	check "cp -a A/. D/ into an empty mount exits 0" cp -a "$A/." "$D/"
	assert_eq "cp -a: D is A, mtimes to the nanosecond" "$(listing "$A")" "$(listing "$D")"
	echo "changed again" >"$A/a.txt"
	check "cp -a again over the copy exits 0" cp -a "$A/." "$D/"
	assert_eq "cp -a again: D is A" "$(listing "$A")" "$(listing "$D")"
}

# --- 2. /.kvfs-backup.tar ----------------------------------------------------------------------

test_backup_basics() {
	local applied size
	applied=$(kvfs_status_field a applied_index)
	size=$(stat -c %s "$A/$BK")
	check "cp MNT/.kvfs-backup.tar FILE exits 0" cp "$A/$BK" "$T/bk.tar"
	check "cat MNT/.kvfs-backup.tar > FILE exits 0" sh -c 'cat "$1" >"$2"' - "$A/$BK" "$T/bk2.tar"
	assert_eq "stat shows the size the archive has" "$size" "$(stat -c %s "$T/bk.tar")"
	check "tar -tvf lists the backup" tar -tvf "$T/bk.tar"
	assert_eq "tar -tvf writes no warning" "" "$(grep -v '^[-dl]r' "$LIB_OUT" || true)"
	assert_eq "tar -t: the root and 21 entries" 22 "$(tar -tf "$T/bk.tar" | wc -l)"
	assert_eq "cp and cat give the same archive (tar -tv)" "$(tar -tvf "$T/bk.tar")" \
		"$(tar -tvf "$T/bk2.tar")"
	"$PY" "$HELPER" globals "$T/bk.tar" >"$T/globals"
	check_grep "the global header names the applied index of /.status" \
		"^KVFS.applied_index=$applied\$" "$T/globals"
	check_grep "the global header names the node" '^KVFS.node=1$' "$T/globals"
	check_grep "the global header says standalone" '^KVFS.cluster=standalone$' "$T/globals"
	check_grep "the global header has the epoch" '^KVFS.epoch=[0-9]+$' "$T/globals"
	check_grep "the global header counts the keys" '^KVFS.keys=21$' "$T/globals"
	check_grep "the global header says when" '^KVFS.taken_at=20[0-9-]+T[0-9:]+Z$' "$T/globals"
	assert_eq "Python's tarfile reads every member" 22 "$("$PY" "$HELPER" members "$T/bk.tar")"

	mkdir "$T/gnu" "$T/py"
	check "GNU tar extracts the backup" tar -C "$T/gnu" -xpf "$T/bk.tar"
	assert_eq "GNU tar: the extracted tree is the mount" "$(listing "$A")" "$(listing "$T/gnu")"
	check "Python's tarfile extracts the backup" "$PY" "$HELPER" extract "$T/bk.tar" "$T/py"
	# tarfile sets times through floats (whole seconds here), and none on symlinks.
	assert_eq "tarfile: the extracted tree is the mount" \
		"$(listing "$A" --seconds --no-link-times)" "$(listing "$T/py" --seconds --no-link-times)"

	check "restore: tar -C NEWMOUNT -xpf FILE exits 0" tar -C "$R" -xpf "$T/bk.tar"
	assert_eq "restore: the new node's tree is the old one's" "$(listing "$A")" "$(listing "$R")"
	assert_same_tree "restore: diff -r finds no difference" "$A" "$R"

	expect_errno "the backup cannot be written" EACCES sh -c 'echo x >"$1"' - "$A/$BK"
	expect_errno "the backup cannot be removed" EACCES rm -f "$A/$BK"
	expect_errno "no file can be made under the reserved name" EACCES touch "$A/.kvfs-other"
	assert_eq "stat: a regular file for the mounting user only" "regular file 400" \
		"$(stat -c '%F %a' "$A/$BK")"
}

# The backup is the store at its open: changes made while it is open are not in it, and nothing
# waits for the reader.
test_point_in_time() {
	local before fd t0 t1
	before=$(listing "$A")
	exec {fd}<"$A/$BK"
	t0=$(date +%s%N)
	echo "after the open" >"$A/a.txt"
	rm "$A/with space"
	mkdir "$A/made later"
	head -c 1000 /dev/urandom >"$A/dir/mid.bin"
	t1=$(date +%s%N)
	cat <&"$fd" >"$T/pit.tar"
	exec {fd}<&-
	check "writes while a backup is open are not held up (< 5 s)" test $(((t1 - t0) / 1000000)) -lt 5000
	mkdir "$T/pit"
	check "the archive taken before the changes extracts" tar -C "$T/pit" -xpf "$T/pit.tar"
	assert_eq "it holds the store as of its open, not the changes made since" "$before" \
		"$(listing "$T/pit")"
	cp "$A/$BK" "$T/after.tar"
	assert_eq "a new backup has the changes" "after the open" \
		"$(tar -xOf "$T/after.tar" ./a.txt)"
}

# A writer (backup_helper.py writer) updates a, then b (after a's close returned: committed),
# then appends to log, round after round. Every backup must be a state the store went through: a
# is b or b + 1, the log's last line is b or b - 1, and the log holds exactly 1..last.
test_consistent_cut() {
	local wpid k a b last lines bad=0 seen=""
	mkdir "$A/cut"
	echo 0 >"$A/cut/a"
	echo 0 >"$A/cut/b"
	: >"$A/cut/log"
	rm -f "$T/stop-writer"
	"$PY" "$HELPER" writer "$A/cut" "$T/stop-writer" &
	wpid=$!
	lib_track_pid "$wpid"
	sleep 0.3
	for k in $(seq 1 15); do
		cp "$A/$BK" "$T/cut.tar"
		a=$(tar -xOf "$T/cut.tar" ./cut/a)
		b=$(tar -xOf "$T/cut.tar" ./cut/b)
		tar -xOf "$T/cut.tar" ./cut/log >"$T/cut.log"
		last=$(tail -n 1 "$T/cut.log")
		last=${last:-0}
		lines=$(wc -l <"$T/cut.log")
		if ! { ((a == b || a == b + 1)) && ((last == b || last == b - 1)) &&
			[[ "$(seq 1 "$last")" == "$(cat "$T/cut.log")" || $last == 0 ]]; }; then
			bad=$((bad + 1))
			lib_fail "backup $k is not a state the store went through" \
				"a=$a b=$b log: $lines lines, last $last"
		fi
		seen+="$b "
		sleep 0.1
	done
	# Stopped between rounds: a writer killed between its open(O_TRUNC) and its write would leave
	# a empty, as on any filesystem.
	touch "$T/stop-writer"
	lib_wait_exit "$wpid" 10 || kill "$wpid" 2>/dev/null || true
	assert_eq "15 backups taken while the writer ran were consistent cuts" 0 "$bad"
	assert_match "the writer made progress between backups" '^0 .*[1-9]' "0 $seen"
	check "the writer's files are fine afterwards" test "$(cat "$A/cut/a")" -ge "$b"
}

test_hostile_readers() {
	local p1 p2 k
	cat "$A/$BK" >"$T/r1.tar" &
	p1=$!
	cat "$A/$BK" >"$T/r2.tar" &
	p2=$!
	lib_track_pid "$p1"
	lib_track_pid "$p2"
	lib_wait_exit "$p1" 30 && check "reader 1 of two at once finished" test "$LIB_WAIT_RC" = 0
	lib_wait_exit "$p2" 30 && check "reader 2 of two at once finished" test "$LIB_WAIT_RC" = 0
	assert_eq "two readers at once get the same archive" "$(tar -tvf "$T/r1.tar")" \
		"$(tar -tvf "$T/r2.tar")"
	for k in $(seq 1 20); do
		head -c $((k * 5000)) "$A/$BK" >/dev/null
	done
	check "20 readers that close halfway leave the node serving" test -s "$A/.status"
	check "reads of 1, 511, 4097 and 1 MiB, and at random offsets, give one archive" \
		"$PY" "$HELPER" chunks "$A/$BK"
}

test_linearizable() {
	kvfs_start lin --read linearizable
	local L
	L=$(kvfs_mnt lin)
	echo linear >"$L/f"
	check "--read linearizable: the backup opens and reads" cp "$L/$BK" "$T/lin.tar"
	assert_eq "--read linearizable: it holds the file" linear "$(tar -xOf "$T/lin.tar" ./f)"
	check "stop the linearizable node" kvfs_stop lin
}

# 20,000 small keys and 40 values of 1 MiB: the archive streams while the node's memory grows by
# far less than the data (the capture holds references, not copies).
test_huge_tree() {
	local G pid out base peak bytes data=$((20000 * 200 + 40 * 1048576))
	kvfs_start big
	G=$(kvfs_mnt big)
	check "20,000 keys and 40 files of 1 MiB made" "$PY" "$HELPER" make "$G" 100 20000 200 40 1048576
	pid=${KVFS_PID[big]}
	out=$("$PY" "$HELPER" rss-read "$G/$BK" "$pid")
	read -r base peak bytes <<<"$out"
	lib_log "huge tree: archive $bytes bytes, node RSS $base KiB before, $peak KiB at most"
	check "the archive holds all the data" test "$bytes" -gt "$data"
	# (Not `ldd | grep -q`: under pipefail, grep leaving early makes the pipeline fail.)
	if [[ "$(ldd "$KVFS_BIN")" == *libasan* ]]; then
		lib_log "AddressSanitizer build: its quarantine keeps freed memory, RSS not checked"
	else
		check "the node's memory grew by less than a quarter of the data" \
			test $(((peak - base) * 1024)) -lt $((data / 4))
	fi
	cp "$G/$BK" "$T/huge.tar"
	assert_eq "tar -t lists every key, directory and the root" 20141 \
		"$(tar -tf "$T/huge.tar" | wc -l)"
	rm -f "$T/huge.tar"
	check "stop the big node" kvfs_stop big
}

main() {
	kvfs_start a --max-value "$MAX"
	kvfs_start b --max-value "$MAX"
	kvfs_start c --max-value "$MAX"
	kvfs_start d --max-value "$MAX"
	kvfs_start r --max-value "$MAX"
	A=$(kvfs_mnt a)
	B=$(kvfs_mnt b)
	C=$(kvfs_mnt c)
	D=$(kvfs_mnt d)
	R=$(kvfs_mnt r)
	make_tree "$A"
	test_find
	test_tar_copy
	test_rsync_copy
	test_cp_copy
	test_backup_basics
	test_point_in_time
	test_consistent_cut
	test_hostile_readers
	test_linearizable
	for n in b c d r; do
		check "stop $n" kvfs_stop "$n"
	done
	test_huge_tree
	check "stop a" kvfs_stop a
	lib_finish
}

main

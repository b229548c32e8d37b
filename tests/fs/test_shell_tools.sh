#!/usr/bin/env bash
# Shell tools on a real standalone kvfs mount, checked the way a user would notice: contents, ls
# output, stat fields, error messages. Then a restart on the same data directory must bring back
# everything (contents, modes, mtimes, symlinks, directories, inode numbers).
#
# Usage: test_shell_tools.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

MAX=1048576

# A reference tree on the local disk, copied in and out with cp, tar and rsync.
make_source_tree() {
	local s=$1
	mkdir -p "$s/sub/deeper" "$s/emptydir" "$s/sub/more"
	printf 'alpha\n' >"$s/a.txt"
	: >"$s/empty"
	head -c 30000 /dev/urandom >"$s/bin.dat"
	printf 'bravo\n' >"$s/sub/b.txt"
	printf 'charlie\n' >"$s/sub/deeper/c.txt"
	printf 'delta\n' >"$s/sub/deeper/spaced name.txt"
	seq 1 5000 >"$s/sub/more/numbers"
	printf '#!/bin/sh\necho hi\n' >"$s/sub/run.sh"
	chmod 755 "$s/sub/run.sh"
	chmod 600 "$s/sub/b.txt"
	ln -s a.txt "$s/link"
	ln -s ../a.txt "$s/sub/uplink"
	touch -h -d '2003-04-05 06:07:08' "$s/link"
	touch -d '2001-02-03 04:05:06' "$s/a.txt" "$s/empty" "$s/sub/b.txt"
	touch -d '2010-10-10 10:10:10' "$s/bin.dat" "$s/sub/deeper" "$s/emptydir" "$s/sub"
	touch -d '2011-11-11 11:11:11' "$s"
}

# Prints one line per entry under $1: relative path, type, mode, size (regular files), mtime in
# whole seconds, symlink target. The reserved /.status files are left out.
tree_listing() {
	(cd "$1" && find . -mindepth 1 ! -path './.status*' -printf '%P|%y|%m|%s|%T@|%l\n' |
		awk -F'|' -v OFS='|' '{ if ($2 != "f") $4 = "-"; sub(/\..*/, "", $5); print }' | sort)
}


# rename(2) itself, without mv's own checks in front of it.
py_rename() {
	python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$1" "$2"
}

file_content_is() { # FILE EXPECTED
	[[ "$(cat -- "$1")" == "$2" ]]
}

# --- basic file operations -----------------------------------------------------------------------

test_echo_cat() {
	echo hello >"$M/greeting"
	assert_eq "echo > then cat" "hello" "$(cat "$M/greeting")"
	echo world >>"$M/greeting"
	assert_eq ">> appends a line" $'hello\nworld' "$(cat "$M/greeting")"
	assert_eq "size after append" 12 "$(stat -c %s "$M/greeting")"
	printf 'no newline' >"$M/greeting"
	assert_eq "> replaces the whole value" "no newline" "$(cat "$M/greeting")"
	assert_eq "stat: regular file, 644" "regular file 644" "$(stat -c '%F %a' "$M/greeting")"
	: >"$M/zero"
	assert_eq "empty file has size 0" "0" "$(stat -c %s "$M/zero")"
	assert_eq "the file is owned by the mounting user (root)" "0 0" "$(stat -c '%u %g' "$M/zero")"
}

test_ls() {
	mkdir "$M/lsdir"
	echo 1 >"$M/lsdir/b"
	echo 22 >"$M/lsdir/a"
	echo 333 >"$M/lsdir/c"
	mkdir "$M/lsdir/sub"
	echo 4 >"$M/lsdir/sub/d"
	assert_eq "ls lists the names sorted" $'a\nb\nc\nsub' "$(ls "$M/lsdir")"
	local la
	la=$(ls -la --time-style=+ "$M/lsdir")
	assert_match "ls -la shows . and .." $'(^|\n)d[rwx-]{9} +[0-9]+ root root +[0-9]+ +\\.\n' "$la"
	assert_match "ls -la shows .." $'\nd[rwxsStT-]{9} +[0-9]+ [a-z0-9]+ [a-z0-9]+ +[0-9]+ +\\.\\.(\n|$)' "$la"
	assert_match "ls -la shows a: mode, nlink 1, owner, size 3" \
		$'\n-rw-r--r-- +1 root root +3 +a(\n|$)' "$la"
	assert_match "ls -la shows c with size 4" $'\n-rw-r--r-- +1 root root +4 +c(\n|$)' "$la"
	assert_match "ls -la shows sub as a directory" $'\ndrwxr-xr-x +[0-9]+ root root +[0-9]+ +sub(\n|$)' "$la"
	assert_eq "ls -R walks the tree" \
		"$(printf '%s:\na\nb\nc\nsub\n\n%s/sub:\nd' "$M/lsdir" "$M/lsdir")" "$(ls -R "$M/lsdir")"
	assert_eq "find lists every entry" $'a\nb\nc\nsub\nsub/d' \
		"$(cd "$M/lsdir" && find . -mindepth 1 -printf '%P\n' | sort)"
	assert_eq "stat of a directory" "directory 755" "$(stat -c '%F %a' "$M/lsdir/sub")"
}

test_dirs() {
	check "mkdir -p a/b/c" mkdir -p "$M/a/b/c"
	check "a/b/c is a directory" test -d "$M/a/b/c"
	check "mkdir -p again is fine" mkdir -p "$M/a/b/c"
	echo x >"$M/a/b/c/file"
	check "rm a file" rm "$M/a/b/c/file"
	check_fails "the removed file is gone" test -e "$M/a/b/c/file"
	check "rmdir an empty directory" rmdir "$M/a/b/c"
	check_fails "the removed directory is gone" test -e "$M/a/b/c"
	assert_eq "its parent is now empty" "" "$(ls -A "$M/a/b")"
	check "rm -r a tree" rm -r "$M/a"
	check_fails "the tree is gone" test -e "$M/a"
	expect_errno "cat of a missing file" ENOENT cat "$M/missing"
	expect_errno "a file is not a directory" ENOTDIR ls "$M/greeting/x"
	expect_errno "mkdir under a missing parent" ENOENT mkdir "$M/nope/x"
	expect_errno "create under a regular file" ENOTDIR touch "$M/greeting/x"
}

test_mv() {
	echo moved >"$M/mvsrc"
	check "mv a file" mv "$M/mvsrc" "$M/mvdst"
	check_fails "mv: the source is gone" test -e "$M/mvsrc"
	assert_eq "mv: the target has the content" moved "$(cat "$M/mvdst")"

	mkdir -p "$M/mvdir/in/deep"
	echo deep >"$M/mvdir/in/deep/f"
	check "mv a directory tree" mv "$M/mvdir" "$M/mvdir2"
	assert_eq "mv dir: the contents moved along" deep "$(cat "$M/mvdir2/in/deep/f")"
	check_fails "mv dir: the old path is gone" test -e "$M/mvdir"
	check "mv a directory into another one" mv "$M/mvdir2/in" "$M/lsdir/"
	assert_eq "mv into: reachable at the new place" deep "$(cat "$M/lsdir/in/deep/f")"

	echo new >"$M/replacer"
	echo old >"$M/replaced"
	check "mv replacing an existing file" mv -f "$M/replacer" "$M/replaced"
	assert_eq "mv replace: target has the new content" new "$(cat "$M/replaced")"
	check_fails "mv replace: source is gone" test -e "$M/replacer"

	mkdir -p "$M/rdir1/x" "$M/rdir2"
	check "mv -T a directory over an empty directory" mv -T "$M/rdir1" "$M/rdir2"
	check "mv -T: the contents are at the target" test -d "$M/rdir2/x"

	# The inode number follows the file through a rename.
	echo ino >"$M/inode-a"
	INO_BEFORE=$(stat -c %i "$M/inode-a")
	mv "$M/inode-a" "$M/inode-b"
	assert_eq "the inode number is unchanged by mv" "$INO_BEFORE" "$(stat -c %i "$M/inode-b")"
	check "inode numbers differ between files" \
		test "$(stat -c %i "$M/inode-b")" != "$(stat -c %i "$M/replaced")"
}

test_sed_i() {
	printf 'one\ntwo\nthree\n' >"$M/sed.txt"
	check "sed -i" sed -i 's/two/2/' "$M/sed.txt"
	assert_eq "sed -i changed the line in place" $'one\n2\nthree' "$(cat "$M/sed.txt")"
	check "no sed temporary file is left" test -z "$(find "$M" -maxdepth 1 -name 'sed*' ! -name sed.txt)"
}

test_cp_r() {
	check "cp -r a tree in" cp -r "$SRC" "$M/cp-in"
	assert_same_tree "cp -r in: same tree" "$SRC" "$M/cp-in"
	check "cp -r a tree out" cp -r "$M/cp-in" "$T/cp-out"
	assert_same_tree "cp -r out: same tree" "$SRC" "$T/cp-out"
	check "cp -a a tree in" cp -a "$SRC" "$M/cpa-in"
	assert_eq "cp -a keeps modes, mtimes and links" "$(tree_listing "$SRC")" "$(tree_listing "$M/cpa-in")"
}

test_metadata() {
	echo t >"$M/timed"
	check "touch -d" touch -d '2001-02-03 04:05:06' "$M/timed"
	assert_eq "stat shows the mtime set by touch -d" \
		"$(date -d '2001-02-03 04:05:06' +%s)" "$(stat -c %Y "$M/timed")"
	check "touch -m -d on a directory" touch -m -d '2002-03-04 05:06:07' "$M/lsdir"
	assert_eq "directory mtime" "$(date -d '2002-03-04 05:06:07' +%s)" "$(stat -c %Y "$M/lsdir")"
	local before now
	before=$(date +%s)
	echo again >"$M/timed"
	now=$(date +%s)
	check "writing sets mtime to now" test "$(stat -c %Y "$M/timed")" -ge "$((before - 2))" -a \
		"$(stat -c %Y "$M/timed")" -le "$((now + 2))"

	check "chmod 640" chmod 640 "$M/timed"
	assert_eq "stat shows mode 640" 640 "$(stat -c %a "$M/timed")"
	check "chmod +x" chmod +x "$M/timed"
	assert_eq "stat shows mode 751" 751 "$(stat -c %a "$M/timed")"
	check "chmod 700 on a directory" chmod 700 "$M/lsdir/sub"
	assert_eq "directory mode 700" 700 "$(stat -c %a "$M/lsdir/sub")"
	check "chmod does not change the content" file_content_is "$M/timed" again

	printf '#!/bin/sh\necho script-ran\n' >"$M/script.sh"
	chmod 755 "$M/script.sh"
	assert_eq "an executable script on the mount runs" script-ran "$("$M/script.sh" 2>&1)"
}

test_truncate_dd() {
	printf '0123456789' >"$M/trunc"
	printf '0123456789' >"$T/trunc.ref"
	check "truncate -s 3 (shrink)" truncate -s 3 "$M/trunc"
	assert_eq "shrunk content" 012 "$(cat "$M/trunc")"
	check "truncate -s 10000 (grow)" truncate -s 10000 "$M/trunc"
	truncate -s 3 "$T/trunc.ref"
	truncate -s 10000 "$T/trunc.ref"
	assert_eq "grown size" 10000 "$(stat -c %s "$M/trunc")"
	assert_same_file "grown part reads as zeros" "$T/trunc.ref" "$M/trunc"
	check "truncate -s 0" truncate -s 0 "$M/trunc"
	assert_eq "truncated to empty" 0 "$(stat -c %s "$M/trunc")"

	head -c 50000 /dev/urandom >"$T/dd.ref"
	cp "$T/dd.ref" "$M/dd"
	printf 'XYZ-in-the-middle' >"$T/patch"
	dd if="$T/patch" of="$T/dd.ref" bs=1 seek=20000 conv=notrunc status=none
	check "dd conv=notrunc seek=20000" dd if="$T/patch" of="$M/dd" bs=1 seek=20000 conv=notrunc status=none
	assert_same_file "dd patched the middle only" "$T/dd.ref" "$M/dd"
	dd if="$T/patch" of="$T/dd.ref" bs=4096 seek=20 conv=notrunc status=none
	check "dd seek past the end (hole)" dd if="$T/patch" of="$M/dd" bs=4096 seek=20 conv=notrunc status=none
	assert_same_file "dd past the end leaves zeros in the gap" "$T/dd.ref" "$M/dd"
}

test_symlinks() {
	echo target-content >"$M/target"
	check "ln -s" ln -s target "$M/link"
	assert_eq "readlink" target "$(readlink "$M/link")"
	assert_eq "cat through the link" target-content "$(cat "$M/link")"
	assert_eq "stat -c %F of the link" "symbolic link" "$(stat -c %F "$M/link")"
	assert_match "ls -l shows the arrow" 'link -> target$' "$(ls -l "$M/link")"
	check "ln -s to a directory" ln -s lsdir "$M/dirlink"
	assert_eq "ls through a directory link" $'a\nb\nc\nin\nsub' "$(ls "$M/dirlink/")"
	check "ln -s dangling" ln -s /nonexistent/x "$M/dangling"
	assert_eq "readlink of a dangling link" /nonexistent/x "$(readlink "$M/dangling")"
	expect_errno "cat of a dangling link" ENOENT cat "$M/dangling"
	local long
	long=$(printf 'x%.0s' {1..1000})
	check "ln -s with a 1000-byte target" ln -s "$long" "$M/longlink"
	assert_eq "readlink gives the 1000-byte target back" "$long" "$(readlink "$M/longlink")"
	check "rm a symlink" rm "$M/dangling"
	check "the target of a removed link is still there" test -f "$M/target"
}

test_atomic_primitives() {
	check "noclobber: first write succeeds" bash -c "set -C; echo first > '$M/clobber'"
	expect_error "noclobber: second write fails" "cannot overwrite existing file" \
		bash -c "set -C; echo second > '$M/clobber'"
	assert_eq "noclobber: content of the first write" first "$(cat "$M/clobber")"
	check "mkdir as a lock: first mkdir" mkdir "$M/lockdir"
	expect_errno "mkdir as a lock: second mkdir fails" EEXIST mkdir "$M/lockdir"
	check "mv tmp final publishes atomically" bash -c "echo v1 > '$M/final.tmp' && mv '$M/final.tmp' '$M/final'"
	assert_eq "published content" v1 "$(cat "$M/final")"
}

test_tar_rsync() {
	check "tar c a tree into the mount" tar -C "$SRC" -cf "$M/tree.tar" .
	check "the archive is below the value limit" test "$(stat -c %s "$M/tree.tar")" -lt "$MAX"
	mkdir "$M/untarred"
	check "tar x it elsewhere on the mount" tar -C "$M/untarred" -xf "$M/tree.tar"
	assert_same_tree "tar: same tree" "$SRC" "$M/untarred"
	assert_eq "tar: modes, mtimes and links kept" "$(tree_listing "$SRC")" \
		"$(tree_listing "$M/untarred")"
	check "tar t lists the archive" test "$(tar -tf "$M/tree.tar" | wc -l)" -eq \
		"$(cd "$SRC" && find . | wc -l)"

	check "rsync -a a tree in" rsync -a "$SRC/" "$M/rsynced/"
	assert_same_tree "rsync: same tree" "$SRC" "$M/rsynced"
	assert_eq "rsync -a: modes, mtimes and links kept" "$(tree_listing "$SRC")" \
		"$(tree_listing "$M/rsynced")"
	echo changed >>"$SRC/sub/b.txt"
	touch -d '2020-01-01 00:00:00' "$SRC/sub/b.txt"
	check "rsync -a again after a change" rsync -a --delete "$SRC/" "$M/rsynced/"
	assert_same_tree "rsync again: same tree" "$SRC" "$M/rsynced"
	assert_eq "rsync again: metadata" "$(tree_listing "$SRC")" "$(tree_listing "$M/rsynced")"
	check "rsync -a out of the mount" rsync -a "$M/rsynced/" "$T/rsync-out/"
	assert_same_tree "rsync out: same tree" "$SRC" "$T/rsync-out"
}

test_values() {
	head -c 100000 /dev/urandom >"$T/bin100k"
	check "cp a 100 kB binary file" cp "$T/bin100k" "$M/bin100k"
	assert_same_file "binary value byte for byte" "$T/bin100k" "$M/bin100k"
	head -c "$MAX" /dev/urandom >"$T/big"
	check "write exactly 1 MiB" cp "$T/big" "$M/big"
	assert_eq "size of the 1 MiB file" "$MAX" "$(stat -c %s "$M/big")"
	assert_same_file "1 MiB byte for byte" "$T/big" "$M/big"
	printf '\0\0\0x\0' >"$T/nuls"
	cp "$T/nuls" "$M/nuls"
	assert_same_file "NUL bytes survive" "$T/nuls" "$M/nuls"
}

test_many_files() {
	mkdir "$M/many"
	local i
	for ((i = 0; i < 300; i++)); do
		printf '%d\n' "$i" >"$M/many/f$i"
	done
	assert_eq "300 files in one directory (ls | wc -l)" 300 "$(ls "$M/many" | wc -l)"
	assert_eq "file 299 has its content" 299 "$(cat "$M/many/f299")"
	assert_eq "ls -U (readdir order) also sees 300" 300 "$(ls -U "$M/many" | wc -l)"
	check "rm of all of them" rm -r "$M/many"
}

test_names() {
	local n255 n256
	n255=$(printf 'n%.0s' {1..255})
	n256=$(printf 'n%.0s' {1..256})
	check "a name with spaces" bash -c "echo sp > '$M/name with  spaces'"
	assert_eq "cat a name with spaces" sp "$(cat "$M/name with  spaces")"
	check "a unicode name" bash -c "echo u > '$M/héllo wörld ✓ 日本'"
	assert_eq "cat a unicode name" u "$(cat "$M/héllo wörld ✓ 日本")"
	check "ls finds the unicode name" bash -c "ls '$M' | grep -qx 'héllo wörld ✓ 日本'"
	check "a name of 255 bytes" bash -c "echo long > '$M/$n255'"
	assert_eq "cat the 255-byte name" long "$(cat "$M/$n255")"
	expect_errno "a name of 256 bytes" ENAMETOOLONG touch "$M/$n256"
	expect_errno "mkdir with a 256-byte name" ENAMETOOLONG mkdir "$M/$n256"
	check "names with odd characters" touch "$M/-dash" "$M/a:b" "$M/q'uote" "$M/back\\slash" "$M/tab	x"
	check "a dot file" bash -c "echo hidden > '$M/.hidden'"
	check "ls -A shows the dot file" bash -c "ls -A '$M' | grep -qx .hidden"
	check ".kvfs names below the root are ordinary" bash -c "echo ok > '$M/lsdir/.kvfs-x'"
}

test_status() {
	local status json commit_before applied
	status=$(cat "$M/.status")
	assert_match "/.status says role: standalone" $'(^|\n)role: standalone(\n|$)' "$status"
	assert_match "/.status says leader: 1" $'(^|\n)leader: 1(\n|$)' "$status"
	assert_match "/.status says node: 1" $'^node: 1(\n|$)' "$status"
	assert_eq "/.status has the documented keys in order" \
		"node role leader leader_addr epoch zk election priority commit_index applied_index lag_entries lag_ms" \
		"$(printf '%s\n' "$status" | awk -F: '{ print $1 }' | grep -xE 'node|role|leader|leader_addr|epoch|zk|election|priority|commit_index|applied_index|lag_entries|lag_ms' | tr '\n' ' ' | sed 's/ $//')"
	assert_match "/.status: zk: none when standalone" $'(^|\n)zk: none(\n|$)' "$status"
	check "/.status.json parses (python3 -m json.tool)" python3 -m json.tool "$M/.status.json"
	json=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["role"], d["leader"], d["node"])' \
		"$M/.status.json" 2>&1 || true)
	assert_eq "/.status.json: role, leader, node" "standalone 1 1" "$json"
	check "ls -a lists neither .status nor .status.json" bash -c "! ls -a '$M' | grep -q '^\\.status'"
	check ".status and .status.json are reachable by name" test -r "$M/.status" -a -r "$M/.status.json"
	check ".status is not listed without -a" bash -c "! ls '$M' | grep -q '^\\.status'"

	commit_before=$(kvfs_status_field a commit_index)
	echo tick >"$M/tick"
	applied=$(kvfs_status_field a applied_index)
	check "a write advances applied_index" test "$applied" -gt "$commit_before"
	assert_eq "standalone: applied_index equals commit_index" \
		"$(kvfs_status_field a commit_index)" "$(kvfs_status_field a applied_index)"
	assert_eq "standalone: lag_entries 0" 0 "$(kvfs_status_field a lag_entries)"
}

# --- concurrency: what scripts on one node rely on ------------------------------------------

# appender ID N FILE: N lines "ID j" appended with >>, one open/close each.
appender() {
	local j
	for ((j = 0; j < $2; j++)); do
		echo "$1 $j" >>"$3"
	done
}

# racer ID FILE: tries to create FILE with noclobber (O_EXCL); prints "won" if it did.
racer() {
	if (set -C && echo "$1" >"$2") 2>/dev/null; then
		echo won
	fi
}

test_concurrency() {
	local p j winners bad=0 rpid wpid
	local -a pids=()
	for p in a b c d; do
		appender "$p" 150 "$M/shared.log" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do
		wait "$p"
	done
	assert_eq "4 parallel appenders x 150 lines: 600 lines" 600 "$(wc -l <"$M/shared.log")"
	assert_eq "every appended line exactly once" 600 "$(sort -u "$M/shared.log" | wc -l)"
	check "each appender's lines are in its order" bash -c "for p in a b c d; do
		grep \"^\$p \" '$M/shared.log' | cut -d' ' -f2 | sort -n -c || exit 1
		test \"\$(grep -c \"^\$p \" '$M/shared.log')\" -eq 150 || exit 1; done"

	for ((j = 0; j < 20; j++)); do
		pids=()
		for p in a b c d; do
			racer "$p" "$M/excl$j" >"$T/race.$j.$p" &
			pids+=($!)
		done
		wait "${pids[@]}"
		winners=$(cat "$T"/race."$j".* | grep -c won || true)
		if [[ "$winners" != 1 ]] || ! grep -qx "[abcd]" "$M/excl$j"; then
			bad=$((bad + 1))
		fi
	done
	assert_eq "O_EXCL race (set -C) between 4 processes, 20 rounds: always exactly one winner" 0 "$bad"

	mkdir "$M/publish"
	printf '\nversion start\n' >"$M/publish/final"
	(
		for ((j = 0; j < 300; j++)); do
			head -c $((j * 37 % 5000)) /dev/zero | tr '\0' x >"$M/publish/tmp"
			printf '\nversion %d\n' "$j" >>"$M/publish/tmp"
			mv "$M/publish/tmp" "$M/publish/final"
		done
	) &
	wpid=$!
	(
		n=0
		re=$'^x*\nversion ([0-9]+|start)$'
		while kill -0 "$wpid" 2>/dev/null; do
			c=$(cat "$M/publish/final" 2>&1) || { echo "cat failed: $c"; exit 1; }
			[[ "$c" =~ $re ]] || { echo "torn content: ${c:0:80}"; exit 1; }
			n=$((n + 1))
		done
		echo "$n reads"
	) >"$T/reader.out" 2>&1 &
	rpid=$!
	wait "$wpid"
	check "mv tmp final while another process reads final: never missing, never torn" wait "$rpid"
	lib_log "atomic publish: $(cat "$T/reader.out")"
	assert_match "the last published version" $'\nversion 299$' "$(cat "$M/publish/final")"
}

# --- errors --------------------------------------------------------------------------------------

test_errors() {
	head -c "$MAX" /dev/urandom >"$M/limit"
	cp "$M/limit" "$T/limit.before"
	head -c 5000 /dev/urandom >"$M/small"
	cp "$M/small" "$T/small.before"

	expect_errno "write of 1 MiB + 1 over a 1 MiB file" EFBIG \
		bash -c "head -c $((MAX + 1)) /dev/urandom > '$M/limit'"
	assert_same_file "EFBIG: the previous 1 MiB content is unchanged" "$T/limit.before" "$M/limit"
	expect_errno "write of 1 MiB + 1 over a small file" EFBIG \
		bash -c "head -c $((MAX + 1)) /dev/zero > '$M/small'"
	assert_same_file "EFBIG: the small file is unchanged" "$T/small.before" "$M/small"
	expect_errno ">> past the limit" EFBIG bash -c "head -c 100 /dev/zero >> '$M/limit'"
	assert_same_file "EFBIG on >>: content unchanged" "$T/limit.before" "$M/limit"
	expect_errno "a new file of 1 MiB + 1" EFBIG bash -c "head -c $((MAX + 1)) /dev/zero > '$M/toobig'"
	check "the new too-big file did not get a 1 MiB+1 value" \
		test "$(stat -c %s "$M/toobig" 2>/dev/null || echo 0)" -le "$MAX"
	expect_errno "truncate -s past the limit" EFBIG truncate -s $((MAX + 1)) "$M/small"
	assert_same_file "EFBIG on truncate: unchanged" "$T/small.before" "$M/small"
	expect_errno "dd writing past the limit with seek" EFBIG \
		dd if=/dev/zero of="$M/small" bs=1 count=1 seek="$MAX" conv=notrunc status=none
	assert_same_file "EFBIG on dd seek: unchanged" "$T/small.before" "$M/small"

	mkdir -p "$M/full/inner" "$M/full2/x"
	expect_errno "rmdir of a non-empty directory" ENOTEMPTY rmdir "$M/full"
	check "the non-empty directory is still there" test -d "$M/full/inner"
	expect_errno "mv -T a directory over a non-empty directory" ENOTEMPTY mv -T "$M/full" "$M/full2"
	check "both directories unchanged" test -d "$M/full/inner" -a -d "$M/full2/x"
	expect_errno "mkdir of an existing directory" EEXIST mkdir "$M/full"
	expect_errno "mkdir over an existing file" EEXIST mkdir "$M/greeting"
	expect_errno "ln -s over an existing file" EEXIST ln -s target "$M/greeting"
	expect_errno "rmdir of a file" ENOTDIR rmdir "$M/greeting"
	expect_errno "rename(2) of a file over a directory" EISDIR py_rename "$M/greeting" "$M/full"
	expect_errno "rename(2) of a directory over a file" ENOTDIR py_rename "$M/full" "$M/greeting"
	check_fails "mv a directory into itself" mv "$M/full" "$M/full/inner/"

	expect_errno "writing /.status" EACCES bash -c "echo x > '$M/.status'"
	expect_errno "appending to /.status.json" EACCES bash -c "echo x >> '$M/.status.json'"
	check "/.status still reads after the refused write" grep -q '^role: standalone$' "$M/.status"
	check_fails "creating /.kvfs-x at the root is refused" touch "$M/.kvfs-x"
	check_fails "/.kvfs-x does not exist" test -e "$M/.kvfs-x"
	check_fails "mkdir /.kvfs at the root is refused" mkdir "$M/.kvfs"
	check_fails "creating /.status-foo at the root is refused" bash -c "echo x > '$M/.status-foo'"
	check_fails "renaming onto /.status is refused" mv "$M/small" "$M/.status"
	check "the renamed file is still there" test -f "$M/small"
	check_fails "rm /.status is refused" rm -f "$M/.status"

	# Hard links, FIFOs and devices work (test_links.sh); the virtual files cannot be linked.
	expect_errno "ln /.status (hard link of a virtual file)" EPERM ln "$M/.status" "$M/st"
	check_fails "the link was not created" test -e "$M/st"
}

# --- restart -------------------------------------------------------------------------------------

test_restart() {
	local before after ino_big ino_link sums_before
	ino_big=$(stat -c %i "$M/big")
	ino_link=$(stat -c %i "$M/link")
	before=$(tree_listing "$M")
	sums_before=$(cd "$M" && find . ! -path './.status*' -type f -print0 | sort -z | xargs -0 md5sum)
	check "stop the node (fusermount3 -u), exit status 0" kvfs_stop a
	check "mount point released" bash -c "! awk '\$2 == \"$M\"' /proc/mounts | grep -q ."
	check "start again on the same data directory" kvfs_start a
	after=$(tree_listing "$M")
	assert_eq "after restart: same names, types, modes, sizes, mtimes, links" "$before" "$after"
	assert_eq "after restart: same contents" "$sums_before" \
		"$(cd "$M" && find . ! -path './.status*' -type f -print0 | sort -z | xargs -0 md5sum)"
	assert_eq "after restart: inode of a file unchanged" "$ino_big" "$(stat -c %i "$M/big")"
	assert_eq "after restart: inode of a symlink unchanged" "$ino_link" "$(stat -c %i "$M/link")"
	assert_eq "after restart: inode unchanged across the earlier mv" "$INO_BEFORE" \
		"$(stat -c %i "$M/inode-b")"
	assert_same_file "after restart: 1 MiB file byte for byte" "$T/big" "$M/big"
	assert_eq "after restart: readlink" target "$(readlink "$M/link")"
	assert_eq "after restart: the mv'ed directory" deep "$(cat "$M/lsdir/in/deep/f")"
	echo after-restart >"$M/post"
	assert_eq "after restart: writes work" after-restart "$(cat "$M/post")"
	check "stop again" kvfs_stop a
}

main() {
	SRC="$T/src"
	make_source_tree "$SRC"
	kvfs_start a
	M=$(kvfs_mnt a)
	test_echo_cat
	test_ls
	test_dirs
	test_mv
	test_sed_i
	test_cp_r
	test_metadata
	test_truncate_dd
	test_symlinks
	test_atomic_primitives
	test_tar_rsync
	test_values
	test_many_files
	test_names
	test_status
	test_concurrency
	test_errors
	test_restart
	lib_finish
}

main

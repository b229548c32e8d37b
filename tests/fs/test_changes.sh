#!/usr/bin/env bash
# The change feed on one node (issue 13): /.changes and /.changes.json are reachable but not
# listed; `while read` over /.changes blocks and gets each change as it commits, in the
# documented text format (escaped names stay on one line); .changes@INDEX starts at an index,
# ?prefix=%2Fdir keeps one directory's changes; O_NONBLOCK (EAGAIN), poll and an interrupted
# read (EINTR) behave (changes_helper.py); an index older than --changes-history is refused with
# ERANGE at open, and a reader that falls that far behind gets ERANGE from read; names starting
# with .changes at the root are reserved; /.status shows changes_first and changes_last;
# `kvfs watch` prints the changes under its paths and exits with its documented statuses;
# extended-attribute changes have lines, lock operations none.
#
# Usage: test_changes.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

HELPER=$(dirname "$(realpath "${BASH_SOURCE[0]}")")/changes_helper.py

# wait_lines FILE N: waits (10 s at most) until FILE has N lines.
wait_lines() {
	local deadline=$((SECONDS + 10))
	until (($(wc -l <"$1" 2>/dev/null || echo 0) >= $2)); do
		((SECONDS < deadline)) || return 1
		sleep 0.02
	done
}

# first N FILE: the first N lines of FILE, read as a script would (a feed blocks after them).
first() {
	local k line
	for ((k = 0; k < $1; k++)); do
		IFS= read -r -t 5 line || return 1
		printf '%s\n' "$line"
	done <"$2"
}

# field LINE N: the Nth space-separated field of LINE (1-based).
field() { awk -v n="$2" '{ print $n }' <<<"$1"; }

kvfs_start a
M=$(kvfs_mnt a)

check "/.changes is not listed" bash -c "! ls -a '$M' | grep -q changes"
check "stat /.changes" stat "$M/.changes" "$M/.changes.json"
check "/.status shows changes_first and changes_last" \
	bash -c "grep -q '^changes_first: ' '$M/.status' && grep -q '^changes_last: ' '$M/.status' &&
		grep -q '\"changes_last\": ' '$M/.status.json'"

# A `while read` loop over the feed, from now.
: >"$T/loop.out"
(while read -r line; do echo "$line" >>"$T/loop.out"; done <"$M/.changes") &
LOOP=$!
lib_track_pid "$LOOP"
sleep 0.2 # the loop's open must come before the changes (it starts at the next change)
first=$(kvfs_status_field a changes_last)
echo hi >"$M/f"
mkdir "$M/d"
mv "$M/f" "$M/d/g"
touch "$M/a b
c"
check "the while-read loop gets each change as it commits" wait_lines "$T/loop.out" 5
kill "$LOOP" 2>/dev/null || true
mapfile -t L <"$T/loop.out"
assert_eq "1st: create /f" "create 1 0 /f" "$(cut -d' ' -f4- <<<"${L[0]}")"
assert_eq "2nd: put, 3 bytes" "put 1 3 /f" "$(cut -d' ' -f4- <<<"${L[1]}")"
assert_eq "3rd: mkdir" "mkdir 1 0 /d" "$(cut -d' ' -f4- <<<"${L[2]}")"
assert_eq "4th: rename, both paths" "rename 1 3 /f /d/g" "$(cut -d' ' -f4- <<<"${L[3]}")"
assert_eq "a name with a space and a newline stays on one line, escaped" \
	'create 1 0 /a\040b\012c' "$(cut -d' ' -f4- <<<"${L[4]}")"
assert_match "index, epoch, seconds.nanoseconds" '^[0-9]+ [0-9]+ [0-9]+\.[0-9]{9} ' "${L[0]}"
i0=$(field "${L[0]}" 1)
check "indices grow" test "$(field "${L[3]}" 1)" -gt "$i0"

# From an index; with a prefix.
assert_eq ".changes@INDEX starts at INDEX" "${L[1]}" "$(first 1 "$M/.changes@$((i0 + 1))")"
assert_eq ".changes@INDEX?prefix=%2Fd keeps /d's changes" "${L[2]}" \
	"$(first 1 "$M/.changes@$i0?prefix=%2Fd")"
assert_eq "a prefix matches a rename into it" "${L[3]}" \
	"$(first 2 "$M/.changes@$i0?prefix=%2Fd" | tail -n 1)"
check "JSON lines (.changes.json@INDEX)" /usr/bin/python3 "$HELPER" json "$M" "$i0"
check "O_NONBLOCK with nothing ready: EAGAIN" /usr/bin/python3 "$HELPER" nonblock "$M"
check "poll: not ready, then POLLIN when a change commits" /usr/bin/python3 "$HELPER" poll "$M"
check "a signal interrupts a waiting read (EINTR); the feed goes on" \
	/usr/bin/python3 "$HELPER" eintr "$M"

# Reserved names.
expect_errno "create .changes@5" EACCES touch "$M/.changes@5"
expect_errno "mkdir .changesX" EACCES mkdir "$M/.changesX"
expect_errno "write /.changes" EACCES bash -c "echo x > '$M/.changes'"
expect_errno "rm /.changes" EACCES rm -f "$M/.changes"
expect_errno "a feed name that is none: .changes@x" ENOENT cat "$M/.changes@x"

# kvfs watch.
mkdir "$M/w"
: >"$T/watch.out"
"$KVFS_BIN" watch "$M/w" "$M/not-yet/x" >"$T/watch.out" 2>&1 &
WATCH=$!
lib_track_pid "$WATCH"
sleep 0.2
echo 1 >"$M/w/in"
echo 2 >"$M/elsewhere"
mkdir "$M/not-yet"
echo 3 >"$M/not-yet/x"
check "kvfs watch prints the changes under its paths" wait_lines "$T/watch.out" 4
kill "$WATCH" 2>/dev/null || true
check "... and only those" bash -c "! grep -q elsewhere '$T/watch.out' &&
	! grep -q ' /not-yet\$' '$T/watch.out' && grep -c ' /w/in\$' '$T/watch.out' | grep -qx 2 &&
	grep -c ' /not-yet/x\$' '$T/watch.out' | grep -qx 2"
check "kvfs watch --json --from" bash -c "timeout 2 '$KVFS_BIN' watch --json --from $i0 '$M/d' |
	head -n 2 | grep -q '\"newpath\":\"/d/g\"'"
expect_exit "kvfs watch of a path in no kvfs mount" 2 "$KVFS_BIN" watch /tmp
expect_exit "kvfs watch without a path" 2 "$KVFS_BIN" watch

# Attribute changes are in the feed; lock operations are not (they change no file).
touch "$M/x"
x0=$(kvfs_status_field a changes_last)
flock "$M/x" true
setfattr -n user.k -v v "$M/x"
setfattr -x user.k "$M/x"
check "setxattr and removexattr have lines, flock none" bash -c "
	timeout 2 head -n 2 '$M/.changes@$((x0 + 1))' | awk '{ print \$4, \$7 }' |
	tr '\n' ' ' | grep -qx 'setxattr /x removexattr /x '"

# A small history: an old index is refused, a reader falling behind learns it.
kvfs_start b --changes-history 4
B=$(kvfs_mnt b)
for i in 1 2 3 4 5 6; do mkdir "$B/d$i"; done
expect_error "an index older than the history: ERANGE at open" "Numerical result out of range" \
	cat "$B/.changes@1"
expect_exit "kvfs watch --from an index no longer kept" 3 "$KVFS_BIN" watch --from 1 "$B"
check "a reader that falls behind the history gets ERANGE from read" \
	/usr/bin/python3 "$HELPER" fallout "$B" 10
first=$(kvfs_status_field b changes_first)
check "changes_first is where reading may start" first 1 "$B/.changes@$first"

kvfs_stop a
kvfs_stop b
lib_finish

#!/usr/bin/env bash
# Hard links, FIFOs, sockets, device nodes, RENAME_EXCHANGE and fallocate on a real standalone
# kvfs mount, with the tools people use them with, and across a restart (log replay) and a
# restart from a snapshot.
#
# 1. Hard links: ln, st_nlink on every name, one inode, writes through one name read through
#    another, unlink of one name keeps the others, rename between two names of one inode changes
#    nothing (POSIX), link of a directory EPERM, onto an existing name EEXIST, into a missing
#    directory ENOENT; `cp -al` and `rsync -aH` keep link groups; times change as on Linux.
# 2. mkfifo: a FIFO passes bytes between two processes; a UNIX socket binds and echoes on the
#    mount; mknod makes character and block devices (the daemon runs as root) with their numbers.
# 3. renameat2(RENAME_EXCHANGE): two files, a file and a directory; a missing side ENOENT; with
#    NOREPLACE EINVAL.
# 4. fallocate(2): mode 0 grows with zeros, KEEP_SIZE leaves the size, PUNCH_HOLE and ZERO_RANGE
#    zero a range, past --max-value EFBIG, COLLAPSE_RANGE EOPNOTSUPP; on a descriptor with
#    unsaved writes the result is what a local filesystem gives.
# 4b. /.kvfs-backup.tar holds hard links, FIFOs and devices, and a restore gets them back.
# 4c. Paths are limited per system call (the kernel's PATH_MAX), not from the mount point.
# 5. All of it again after a restart and after a restart from a snapshot.
#
# Usage: test_links.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

HELPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/links_helper.py"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
MAX=1048576

nlink() { stat -c %h -- "$1"; }
ino() { stat -c %i -- "$1"; }

kvfs_start a --max-value "$MAX" --snapshot-bytes 4096
M=$(kvfs_mnt a)

# --- 1. hard links -------------------------------------------------------------------------------
printf 'one\n' >"$M/a"
mkdir "$M/d" "$M/e"
check "ln a d/b" ln "$M/a" "$M/d/b"
check "link a e/c" "$PY" "$HELPER" link "$M/a" "$M/e/c"
assert_eq "st_nlink of a" 3 "$(nlink "$M/a")"
assert_eq "st_nlink of d/b" 3 "$(nlink "$M/d/b")"
assert_eq "one inode for all names" "$(ino "$M/a")" "$(ino "$M/e/c")"
printf 'two\n' >>"$M/d/b"
assert_eq "a write through d/b is read through a" "$(printf 'one\ntwo')" "$(cat "$M/a")"
lib_helper_errno "link of a directory" EPERM link "$M/d" "$M/dlink"
lib_helper_errno "link onto an existing name" EEXIST link "$M/a" "$M/d/b"
lib_helper_errno "link into a missing directory" ENOENT link "$M/a" "$M/nodir/x"
lib_helper_errno "link of a missing file" ENOENT link "$M/nofile" "$M/x"
lib_helper_errno "link named .status at the root" EEXIST link "$M/a" "$M/.status"
before_ctime=$(stat -c %Z.%z "$M/a")
before_dir=$(stat -c %Y.%y "$M/e")
sleep 0.01
check "rm a" rm "$M/a"
assert_eq "d/b keeps the value" "$(printf 'one\ntwo')" "$(cat "$M/d/b")"
assert_eq "st_nlink after one unlink" 2 "$(nlink "$M/d/b")"
check "rename between two names of one inode" "$PY" "$HELPER" rename "$M/d/b" "$M/e/c"
assert_eq "both names remain (POSIX)" "2 2" "$(nlink "$M/d/b") $(nlink "$M/e/c")"
after_ctime=$(stat -c %Z.%z "$M/e/c")
[[ "$after_ctime" != "$before_ctime" ]] && lib_pass "unlink of one name changed the inode's ctime" ||
	lib_fail "unlink of one name changed the inode's ctime" "ctime stayed $before_ctime"
sleep 0.01
check "ln e/c e/c2" ln "$M/e/c" "$M/e/c2"
[[ "$(stat -c %Y.%y "$M/e")" != "$before_dir" ]] && lib_pass "link changed the directory's mtime" ||
	lib_fail "link changed the directory's mtime" "mtime stayed $before_dir"
check "rm e/c2" rm "$M/e/c2"

# cp -al / rsync -aH keep the link groups.
mkdir -p "$M/tree/sub"
printf 'x\n' >"$M/tree/x"
ln "$M/tree/x" "$M/tree/sub/x2"
printf 'y\n' >"$M/tree/y"
check "cp -al tree tree2" cp -al "$M/tree" "$M/tree2"
assert_eq "cp -al: one inode for x, x2 and their copies" "4 4" \
	"$(nlink "$M/tree2/x") $(nlink "$M/tree/sub/x2")"
mkdir "$T/outside"
check "rsync -aH to a local directory" rsync -aH "$M/tree/" "$T/outside/tree/"
assert_eq "rsync -aH kept x and sub/x2 one file" "$(ino "$T/outside/tree/x")" \
	"$(ino "$T/outside/tree/sub/x2")"
check "rsync -aH back into the mount" rsync -aH "$T/outside/tree/" "$M/tree3/"
assert_eq "rsync -aH into kvfs kept the link" "$(ino "$M/tree3/x")" "$(ino "$M/tree3/sub/x2")"

# --- 2. FIFOs, sockets, devices ------------------------------------------------------------------
check "mkfifo" mkfifo -m 0640 "$M/fifo"
assert_eq "the FIFO's type and mode" "fifo 640" "$(stat -c '%F %a' "$M/fifo")"
(cat "$M/fifo" >"$T/fifo.out") &
reader=$!
lib_track_pid "$reader"
printf 'through a fifo\n' >"$M/fifo"
wait_gone "$reader" 10 || true
assert_eq "bytes pass through the FIFO" "through a fifo" "$(cat "$T/fifo.out")"
out=$("$PY" "$HELPER" socket-echo "$M/sock" 2>&1) || true
assert_eq "a UNIX socket bound on the mount echoes" "hello over a socket on kvfs" "$out"
assert_eq "the socket's type" "socket" "$(stat -c %F "$M/sock")"
check "mknod c 1 3" mknod -m 0600 "$M/null" c 1 3
check "mknod b 7 300" mknod "$M/blk" b 7 300
assert_eq "character device, numbers 1,3" "character special file 1 3" \
	"$(stat -c '%F %Hr %Lr' "$M/null")"
assert_eq "block device, numbers 7,300" "block special file 7 300" "$(stat -c '%F %Hr %Lr' "$M/blk")"
check "ln of a FIFO" ln "$M/fifo" "$M/fifo2"
assert_eq "the FIFO has two names" 2 "$(nlink "$M/fifo")"

# --- 3. RENAME_EXCHANGE ----------------------------------------------------------------------------
printf 'left\n' >"$M/l"
mkdir "$M/r"
printf 'in r\n' >"$M/r/f"
check "exchange a file and a directory" "$PY" "$HELPER" exchange "$M/l" "$M/r"
assert_eq "l is now the directory" "in r" "$(cat "$M/l/f")"
assert_eq "r is now the file" "left" "$(cat "$M/r")"
printf 'p\n' >"$M/p"
printf 'q\n' >"$M/d/q"
check "exchange two files in two directories" "$PY" "$HELPER" exchange "$M/p" "$M/d/q"
assert_eq "contents swapped" "q p" "$(cat "$M/p") $(cat "$M/d/q")"
lib_helper_errno "exchange with a missing name" ENOENT exchange "$M/p" "$M/missing"
lib_helper_errno "exchange with NOREPLACE" EINVAL noreplace-exchange "$M/p" "$M/d/q"
lib_helper_errno "exchange a directory into its own subdirectory" EINVAL exchange "$M/l" "$M/l/f"

# --- 4. fallocate ------------------------------------------------------------------------------------
check "fallocate -l 10000" fallocate -l 10000 "$M/fa"
assert_eq "mode 0 grows the file" 10000 "$(stat -c %s "$M/fa")"
assert_eq "with zeros (no other byte)" 0 "$(tr -d '\0' <"$M/fa" | wc -c)"
check "fallocate -n -l 50000 (KEEP_SIZE)" fallocate -n -l 50000 "$M/fa"
assert_eq "KEEP_SIZE keeps the size" 10000 "$(stat -c %s "$M/fa")"
head -c 3000 /dev/zero | tr '\0' 'x' >"$M/fp"
check "fallocate -p -o 1000 -l 500 (PUNCH_HOLE)" fallocate -p -o 1000 -l 500 "$M/fp"
assert_eq "the hole reads as zeros, the rest stays" "1000 2500" \
	"$(head -c 1000 "$M/fp" | tr -d '\0' | wc -c) $(tr -d '\0' <"$M/fp" | wc -c)"
assert_eq "PUNCH_HOLE keeps the size" 3000 "$(stat -c %s "$M/fp")"
check "fallocate -z -o 2500 -l 1000 (ZERO_RANGE)" fallocate -z -o 2500 -l 1000 "$M/fp"
assert_eq "ZERO_RANGE zeroes and grows" "3500 2000" \
	"$(stat -c %s "$M/fp") $(tr -d '\0' <"$M/fp" | wc -c)"
lib_helper_errno "fallocate past --max-value" EFBIG falloc "$M/fp" 0 0 $((MAX + 1))
lib_helper_errno "COLLAPSE_RANGE" ENOTSUP falloc "$M/fp" collapse 0 4096
check "write, punch, write on one descriptor" "$PY" "$HELPER" falloc-buffered "$M/fb"
"$PY" - "$M/fb" >"$T/fb.check" <<'PYEOF'
import sys
d = open(sys.argv[1], "rb").read()
print(len(d), d[:100] == b"A" * 100, d[100:200] == b"\0" * 100, d[200:990] == b"A" * 790,
      d[990:] == b"B" * 10)
PYEOF
assert_eq "the buffered writes and the hole combine as on a local fs" "1000 True True True True" \
	"$(cat "$T/fb.check")"

# --- 4b. /.kvfs-backup.tar keeps link groups, FIFOs and devices; a restore gets them back -------
check "copy the backup" cp "$M/.kvfs-backup.tar" "$T/bk.tar"
tar -tvf "$T/bk.tar" >"$T/bk.list" 2>&1
check_grep "the second name of a file is a hard link entry" '^hrw.* \./e/c link to \./d/b$' \
	"$T/bk.list"
check_grep "the FIFO is a FIFO" '^prw-r----- .* \./fifo$' "$T/bk.list"
check_grep "the character device keeps its numbers" '^crw------- .* 1,3 .*\./null$' "$T/bk.list"
check_grep "the block device keeps its numbers" '^brw-r--r-- .* 7,300 .*\./blk$' "$T/bk.list"
check_fails "the socket is left out" grep -q '\./sock$' "$T/bk.list"
kvfs_start r --max-value "$MAX"
R=$(kvfs_mnt r)
check "restore with tar -xpf" tar -C "$R" -xpf "$T/bk.tar"
assert_eq "restored: d/b and e/c are one file with two names" "$(ino "$R/e/c") 2" \
	"$(ino "$R/d/b") $(nlink "$R/d/b")"
assert_eq "restored: the same contents" "$(cat "$M/d/b")" "$(cat "$R/d/b")"
assert_eq "restored: FIFO and devices" "fifo|character special file 1 3|block special file 7 300" \
	"$(stat -c %F "$R/fifo")|$(stat -c '%F %Hr %Lr' "$R/null")|$(stat -c '%F %Hr %Lr' "$R/blk")"
check "stop the restored node" kvfs_stop r

# --- 4c. path limits are the kernel's: per system call, relative to the working directory ------
"$PY" - "$M" >"$T/deep.out" 2>&1 <<'PYEOF' || true
import os, sys
os.chdir(sys.argv[1])
name = "D" * 250
for _ in range(20):          # 20 x 251 bytes: a directory 5,020 bytes below the mount point
    os.mkdir(name)
    os.chdir(name)
with open("leaf", "w") as f:
    f.write("deep\n")
rel = "/".join([name] * 16) + "/leaf"  # 4,020 bytes, from 4 levels down
os.chdir("/".join([".."] * 16))
print(open(rel).read().strip(), len(rel))
PYEOF
assert_eq "a file 5,020 bytes below the mount point, opened by a 4,020-byte relative path" \
	"deep 4020" "$(cat "$T/deep.out")"

# --- 5. after restarts -------------------------------------------------------------------------------
listing() {
	(cd "$M" && find . -path ./tree3 -prune -o -path ./DDD* -prune -o -printf '%p %y %n %m %s\n' |
		LC_ALL=C sort)
	(cd "$M" && find . -name leaf -printf '%d %s\n')
	stat -c '%Hr %Lr' "$M/null" "$M/blk"
	cat "$M/d/b" "$M/fp" | md5sum
}
listing >"$T/before"
check "stop" kvfs_stop a
check "restart (log replay)" kvfs_start a --max-value "$MAX" --snapshot-bytes 4096
listing >"$T/after1"
assert_same_file "the same tree after a restart" "$T/before" "$T/after1"
# Enough log for a snapshot: the next restart loads it.
for i in $(seq 1 40); do head -c 2000 /dev/urandom >"$M/fill"; done
rm "$M/fill"
check "stop again" kvfs_stop a
snaps=$(find "$(kvfs_dir a)/data" -name 'snap*' | wc -l)
((snaps > 0)) && lib_pass "a snapshot was written" || lib_fail "a snapshot was written" \
	"$(ls -R "$(kvfs_dir a)/data")"
check "restart (snapshot)" kvfs_start a --max-value "$MAX" --snapshot-bytes 4096
listing >"$T/after2"
assert_same_file "the same tree after a restart from a snapshot" "$T/before" "$T/after2"
check "stop at the end" kvfs_stop a
lib_finish

#!/usr/bin/env bash
# Directory listings that carry attributes (READDIRPLUS, fs/fuse_dir.c) on a real standalone kvfs
# mount:
# 1. `ls -l` shows type, mode, link count, size and name of every entry as a local filesystem
#    does for the same tree (made beside it in $T), before and right after the entries change
#    (append, truncate, chmod, a hard link, a rename over a name, rmdir, unsaved writes of a
#    file still open), with the listings made within the kernel's attribute timeout.
# 2. A listing answers from the copy taken at opendir; a name renamed or replaced since then
#    must not be cached from it: stat of the old name is ENOENT, of the replaced one its new file.
# 3. The kernel counts a lookup for every entry of a listing: kvfs must pin the inode as for a
#    LOOKUP. After a restart (the kernel knows no entry), a directory known only from a listing
#    is made the working directory and removed: stat(".") still answers (as on tmpfs) instead
#    of ENOENT from an inode dropped while the kernel still held it.
# 4. The virtual files stay out of listings.
#
# Usage: test_readdir.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3
export LC_ALL=C

kvfs_start a
M=$(kvfs_mnt a)
REF=$T/ref
mkdir "$REF" "$M/d"

# listing DIR: `ls -l` of DIR without owner and times; directory sizes are the filesystem's own.
listing() {
	# shellcheck disable=SC2012 # ls -l is what is tested
	ls -l --time-style=+ "$1" | awk 'NR > 1 { if ($1 ~ /^d/) $5 = "-"; $3 = $4 = ""; print }'
}

# make DIR: the same small tree in DIR.
make() {
	printf '%0100d' 0 >"$1/a"
	: >"$1/b"
	mkdir "$1/c" "$1/c/sub"
	printf 'x\n' >"$1/x"
	chmod 755 "$1/x"
	ln -s a "$1/s"
	printf 'r\n' >"$1/r"
}

# change DIR: the same changes in DIR.
change() {
	printf 'more' >>"$1/a"
	truncate -s 7 "$1/b"
	chmod 600 "$1/x"
	ln "$1/a" "$1/h"
	mv "$1/x" "$1/r"
	rmdir "$1/c/sub"
}

# --- 1. ls -l before and right after changes ------------------------------------------------------
make "$REF"
make "$M/d"
assert_eq "ls -l of a new tree" "$(listing "$REF")" "$(listing "$M/d")"
change "$REF"
change "$M/d"
assert_eq "ls -l right after changes" "$(listing "$REF")" "$(listing "$M/d")"
exec {ref_fd}>"$REF/open" {kvfs_fd}>"$M/d/open"
printf 12345 >&"$ref_fd"
printf 12345 >&"$kvfs_fd"
assert_eq "ls -l with unsaved writes of an open file" "$(listing "$REF")" "$(listing "$M/d")"
exec {ref_fd}>&- {kvfs_fd}>&-
assert_eq "ls -l after its close" "$(listing "$REF")" "$(listing "$M/d")"

# --- 2. names changed since opendir ----------------------------------------------------------------
printf 'old\n' >"$M/d/old"
printf 'other\n' >"$M/d/other"
printf 'keep\n' >"$M/d/keep"
# shellcheck disable=SC2016 # Python
check "a listing from the copy at opendir caches no stale name" "$PY" -c '
import os, sys
d = sys.argv[1]
fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)   # opendir: the listing is taken here
os.rename(d + "/old", d + "/moved")              # "old" goes away
os.rename(d + "/other", d + "/keep")             # "keep" becomes another file
names = os.listdir(fd)                           # the listing of opendir, with attributes
assert "old" in names, names
try:
    os.stat(d + "/old")
    sys.exit("stat of the renamed name succeeded")
except FileNotFoundError:
    pass
with open(d + "/keep") as f:
    assert f.read() == "other\n", "keep shows the replaced file"
assert os.stat(d + "/keep").st_ino == os.stat(d + "/keep").st_ino
' "$M/d"

# --- 3. the lookup count of entries known from a listing ------------------------------------------
mkdir "$M/p" "$M/p/q"
check "restart (the kernel forgets every entry)" kvfs_stop a
kvfs_start a
# shellcheck disable=SC2016 # Python
check "a removed working directory known only from a listing still answers stat" "$PY" -c '
import os, sys
p = sys.argv[1]
for e in os.scandir(p):                          # READDIRPLUS: q comes with its attributes
    e.stat(follow_symlinks=False)
os.chdir(p + "/q")                               # through the entry the listing gave
os.rmdir(p + "/q")
st = os.stat(".")
assert st.st_nlink == 0, st
' "$M/p"
assert_eq "the daemon is alive" "" "$(ls -A "$M/p")"

# --- 4. virtual files stay hidden ------------------------------------------------------------------
# shellcheck disable=SC2010 # the listing is what is tested
assert_eq "ls -la of the root lists no virtual file" "" \
	"$(ls -la "$M" | grep -E ' \.(status|metrics|changes|kvfs)' || true)"

lib_finish

#!/usr/bin/env bash
# Extended attributes on a real standalone kvfs mount, with the tools people use them with.
#
# 1. setfattr / getfattr: a text, a binary and an empty value on a file and a directory;
#    getfattr -d lists user.* only (no kvfs-reserved name without a value); remove; ctime moves.
# 2. setxattr(2)'s flags (XATTR_CREATE: EEXIST, XATTR_REPLACE: ENODATA), a missing name
#    (ENODATA), a buffer too small (ERANGE) and a size query; other namespaces (ENOTSUP to set,
#    ENODATA to get); user.kvfs.* (EPERM); symlinks and virtual files (EPERM); a value over
#    64 KiB (E2BIG, from the kernel); more than 256 KiB on one file (ENOSPC); an unlinked open
#    file still answers fgetxattr; a new file of a removed one's name starts with none.
# 3. cp --preserve=xattr, rsync -X (onto and off the mount) and tar --xattrs keep them, and so
#    does /.kvfs-backup.tar restored with tar --xattrs.
# 4. allow_other with --no-default-permissions (kvfs checks permissions): another user may read
#    attributes of a file it may read, may not set them on a file it may not write (EACCES).
# 5. All of it is still there after a restart (log replay) and after a restart from a snapshot.
#
# Usage: test_xattr.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

HELPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/xattr_helper.py"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3

hx() { "$PY" "$HELPER" "$@"; }
dump() { (cd "$1" && getfattr -R -d -e hex . 2>/dev/null); }

kvfs_start a --snapshot-bytes 4096
M=$(kvfs_mnt a)

# --- 1. setfattr / getfattr ------------------------------------------------------------------------
printf 'data\n' >"$M/f"
mkdir "$M/d"
ctime0=$(stat -c %Z.%z "$M/f")
check "setfattr a text value" setfattr -n user.color -v blue "$M/f"
check "setfattr a binary value" setfattr -n user.bin -v 0x00ff00 "$M/f"
check "setfattr an empty value" setfattr -n user.empty -v "" "$M/f"
check "setfattr on a directory" setfattr -n user.dir -v yes "$M/d"
assert_eq "getfattr reads it back" blue "$(getfattr --only-values -n user.color "$M/f")"
assert_eq "a binary value, byte for byte" 0x00ff00 \
	"$(getfattr -e hex -n user.bin "$M/f" 2>/dev/null | sed -n 's/^user.bin=//p')"
assert_eq "getfattr -d lists the user.* names, sorted" "$(printf 'user.bin\nuser.color\nuser.empty')" \
	"$(getfattr -d -m - "$M/f" 2>/dev/null | sed -n 's/=.*//p' | grep -v '^#' | sort)"
assert_eq "listxattr: names and nothing kvfs-reserved" "$(printf 'user.bin\nuser.color\nuser.empty')" \
	"$(hx list "$M/f" | sort)"
assert_eq "a directory's" yes "$(getfattr --only-values -n user.dir "$M/d")"
assert_match "the ctime moved" . "$([[ "$(stat -c %Z.%z "$M/f")" != "$ctime0" ]] && echo moved)"
check "setfattr -x removes" setfattr -x user.empty "$M/f"
lib_helper_errno "the removed name" ENODATA get "$M/f" user.empty
lib_helper_errno "removing it again" ENODATA remove "$M/f" user.empty
check "overwrite a value" setfattr -n user.color -v green "$M/f"
assert_eq "the new value" green "$(hx get "$M/f" user.color)"

# --- 2. flags, errors, limits ----------------------------------------------------------------------
lib_helper_errno "XATTR_CREATE of an existing name" EEXIST set "$M/f" user.color red create
check "XATTR_CREATE of a new name" hx set "$M/f" user.new one create
lib_helper_errno "XATTR_REPLACE of a missing name" ENODATA set "$M/f" user.missing x replace
check "XATTR_REPLACE of an existing name" hx set "$M/f" user.new two replace
assert_eq "replaced" two "$(hx get "$M/f" user.new)"
lib_helper_errno "a name never set" ENODATA get "$M/f" user.nope
assert_eq "a size query (getxattr with size 0)" 5 "$(hx size "$M/f" user.color)"
lib_helper_errno "a buffer one byte too small" ERANGE get "$M/f" user.color 4
assert_eq "a buffer just big enough" green "$(hx get "$M/f" user.color 5)"
lib_helper_errno "a list buffer too small" ERANGE list "$M/f" 3
lib_helper_errno "trusted.* cannot be set" ENOTSUP set "$M/f" trusted.x 1
lib_helper_errno "security.* cannot be set" ENOTSUP set "$M/f" security.x 1
lib_helper_errno "security.capability is not supported" ENOTSUP get "$M/f" security.capability
# ... nor ACLs or security labels, so `ls -l` asks for them once, not for every entry
lib_helper_errno "ACLs are not supported" ENOTSUP get "$M/f" system.posix_acl_access
lib_helper_errno "security labels are not supported" ENOTSUP get "$M" security.selinux
lib_helper_errno "user.kvfs.* is kvfs's own" EPERM set "$M/f" user.kvfs.lock 1
lib_helper_errno "... and cannot be removed" EPERM remove "$M/f" user.kvfs.lock
lib_helper_errno "... and has no value without a lock" ENODATA get "$M/f" user.kvfs.lock
ln -s f "$M/l"
lib_helper_errno "user.* on a symlink" EPERM set "$M/l" user.x 1
lib_helper_errno "user.* on /.status" EPERM set "$M/.status" user.x 1
lib_helper_errno "get on /.status" ENODATA get "$M/.status" user.x
assert_eq "/.status lists none" "" "$(hx list "$M/.status")"
lib_helper_errno "get on a missing file" ENOENT get "$M/nofile" user.x
touch "$M/big"
check "a 64 KiB value" hx setsize "$M/big" user.v0 65536
lib_helper_errno "a value over 64 KiB" E2BIG setsize "$M/big" user.v1 65537
check "a second 64 KiB value" hx setsize "$M/big" user.v1 65536
check "a third" hx setsize "$M/big" user.v2 65536
lib_helper_errno "over 256 KiB of one file's attributes" ENOSPC setsize "$M/big" user.v3 65536
assert_eq "the value survived whole" 65536 "$(hx get "$M/big" user.v0 | wc -c)"
printf 'x' >"$M/gone"
setfattr -n user.keep -v kept "$M/gone"
assert_eq "an unlinked open file answers fgetxattr" kept "$(hx unlinked "$M/gone" user.keep)"
printf 'y' >"$M/gone"
lib_helper_errno "a new file of the same name has none" ENODATA get "$M/gone" user.keep

# --- 3. the tools ------------------------------------------------------------------------------------
S="$T/src"
mkdir -p "$S/sub"
printf 'one\n' >"$S/a"
printf 'two\n' >"$S/sub/b"
setfattr -n user.k1 -v v1 "$S/a"
setfattr -n user.k2 -v 0x000102 "$S/a"
setfattr -n user.mime -v text/plain "$S/sub/b"
setfattr -n user.dir -v here "$S/sub"
check "cp -a --preserve=xattr onto the mount" cp -a --preserve=xattr "$S" "$M/cp"
assert_eq "cp kept them all" "$(dump "$S")" "$(dump "$M/cp")"
check "rsync -aX onto the mount" rsync -aX "$S/" "$M/rs/"
assert_eq "rsync -X kept them all" "$(dump "$S")" "$(dump "$M/rs")"
check "rsync -aX off the mount" rsync -aX "$M/rs/" "$T/back/"
assert_eq "and back" "$(dump "$S")" "$(dump "$T/back")"
check "tar --xattrs off the mount" tar --xattrs --xattrs-include='user.*' -cf "$T/x.tar" -C "$M/rs" .
mkdir "$M/tx"
check "tar --xattrs onto the mount" tar --xattrs --xattrs-include='user.*' -xf "$T/x.tar" -C "$M/tx"
assert_eq "tar kept them all" "$(dump "$S")" "$(dump "$M/tx")"
touch "$M/eq"
setfattr -n user.ok -v 1 "$M/eq"
check "a name holding '=' is an attribute like another" setfattr -n user.a=b -v 2 "$M/eq"
check "copy /.kvfs-backup.tar" cp "$M/.kvfs-backup.tar" "$T/backup.tar"
mkdir "$M/restored"
check "restore it with tar --xattrs onto the mount" \
	tar --xattrs --xattrs-include='user.*' -xf "$T/backup.tar" -C "$M/restored"
assert_eq "the backup kept them (SCHILY.xattr records)" "$(dump "$M/cp")" "$(dump "$M/restored/cp")"
assert_eq "... binary values and 64 KiB ones too" "$(getfattr -d -e hex "$M/big" 2>/dev/null | tail -n +2)" \
	"$(getfattr -d -e hex "$M/restored/big" 2>/dev/null | tail -n +2)"
assert_eq "... but one whose name holds '=' is left out (a pax keyword ends there)" \
	"$(getfattr -d "$M/restored/eq" 2>/dev/null | tail -n +2)" 'user.ok="1"'

# --- 4. permissions checked by kvfs (allow_other --no-default-permissions) ---------------------------
NOBODY=$(id -u nobody)
chmod 755 "$T" # mktemp -d made it 0700: the other user must reach the mount
kvfs_start p -o allow_other --no-default-permissions
P=$(kvfs_mnt p)
chmod 0755 "$P" "$(kvfs_dir p)"
printf 'r\n' >"$P/readable"
chmod 0644 "$P/readable"
setfattr -n user.x -v 1 "$P/readable"
printf 's\n' >"$P/secret"
chmod 0600 "$P/secret"
setfattr -n user.x -v 1 "$P/secret"
as_nobody() { setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$@"; }
assert_eq "another user reads a readable file's attributes" 1 \
	"$(as_nobody "$PY" "$HELPER" get "$P/readable" user.x)"
out=$(as_nobody "$PY" "$HELPER" set "$P/readable" user.y 1 2>&1) || true
assert_eq "... but may not set them without write permission" EACCES "$out"
out=$(as_nobody "$PY" "$HELPER" remove "$P/readable" user.x 2>&1) || true
assert_eq "... nor remove them" EACCES "$out"
out=$(as_nobody "$PY" "$HELPER" get "$P/secret" user.x 2>&1) || true
assert_eq "... nor read those of a file it may not read" EACCES "$out"
check "stop the shared mount" kvfs_stop p

# --- 5. after restarts -------------------------------------------------------------------------------
state() { dump "$M"; }
state >"$T/before"
check "stop" kvfs_stop a
check "restart (log replay)" kvfs_start a --snapshot-bytes 4096
state >"$T/after1"
assert_same_file "the same attributes after a restart" "$T/before" "$T/after1"
for i in $(seq 1 40); do head -c 2000 /dev/urandom >"$M/fill"; done
rm "$M/fill"
check "stop again" kvfs_stop a
snaps=$(find "$(kvfs_dir a)/data" -name 'snap*' | wc -l)
((snaps > 0)) && lib_pass "a snapshot was written" || lib_fail "a snapshot was written" \
	"$(ls -R "$(kvfs_dir a)/data")"
check "restart (snapshot)" kvfs_start a --snapshot-bytes 4096
state >"$T/after2"
assert_same_file "the same attributes after a restart from a snapshot" "$T/before" "$T/after2"
check "stop at the end" kvfs_stop a
lib_finish

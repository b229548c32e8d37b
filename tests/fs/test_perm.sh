#!/usr/bin/env bash
# Owners and permissions on real mounts, with steps run as unprivileged users (setpriv): chown and
# chgrp stored and kept across a restart, symlinks included; set-id bits cleared as Linux clears
# them; POSIX's errno for chown, chgrp, chmod, utimes, the sticky bit, read/write/search; a
# SETATTR of the ctime alone. Three mounts: allow_other (default_permissions implied: the kernel
# checks), allow_other with --no-default-permissions (kvfs checks, fuse_perm.c), and a private
# mount of an unprivileged user (kvfs applies the chown/chgrp rules).
#
# Usage: test_perm.sh KVFS_BIN          (needs root: it switches to uids 65534 and 4242)
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

if ((EUID != 0)); then
	echo "test_perm: SKIP (needs root to switch users)"
	exit 77
fi
chmod 755 "$T" # mktemp -d made it 0700: the other users must reach the mounts

NOBODY=65534
OTHER=4242 # a second user, in supplementary group 4343
as_nobody() { setpriv --reuid=$NOBODY --regid=$NOBODY --clear-groups "$@"; }
as_other() { setpriv --reuid=$OTHER --regid=$OTHER --groups=4343 "$@"; }

# op USER OP PATH [ARG...]: runs one system call as USER (root, nobody, other) and prints "ok" or
# the errno's name.
op() {
	local user=$1
	shift
	case "$user" in
	root) /usr/bin/python3 -c "$PYOP" "$@" ;;
	nobody) as_nobody /usr/bin/python3 -c "$PYOP" "$@" ;;
	other) as_other /usr/bin/python3 -c "$PYOP" "$@" ;;
	esac
}
PYOP='
import errno, os, sys
op, path, a = sys.argv[1], sys.argv[2], sys.argv[3:]
try:
    if op == "chown":
        os.chown(path, int(a[0]), int(a[1]), follow_symlinks=False)
    elif op == "chmod":
        os.chmod(path, int(a[0], 8))
    elif op == "utime_now":
        os.utime(path)
    elif op == "utime":
        os.utime(path, (int(a[0]), int(a[0])))
    elif op == "unlink":
        os.unlink(path)
    elif op == "rmdir":
        os.rmdir(path)
    elif op == "rename":
        os.rename(path, a[0])
    elif op == "append":
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, b"more\n")
        os.close(fd)
    elif op == "read":
        open(path, "rb").read()
    elif op == "create":
        os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_EXCL, 0o644))
    elif op == "listdir":
        os.listdir(path)
    elif op == "stat":
        os.stat(path)
    elif op == "truncate":
        os.truncate(path, int(a[0]))
    elif op == "mkfifo":
        os.mkfifo(path)
    elif op == "open_creat_rw":
        os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o644))
    elif op == "access_w":
        if not os.access(path, os.W_OK):
            raise OSError(errno.EACCES, "")
    print("ok")
except OSError as e:
    print(errno.errorcode.get(e.errno, e.errno))
'

# expect DESC WANT USER OP PATH [ARG...]
expect() {
	local desc=$1 want=$2
	shift 2
	assert_eq "$desc: $want" "$want" "$(op "$@")"
}

mode_of() { stat -c %a -- "$1"; }

# --- the rules every mount with allow_other must follow ---------------------------------------------

# shared_rules NAME: (a), (b), (c) and (e) on the mount of node NAME, which has allow_other.
shared_rules() {
	local n=$1 M c0 c1 t0 t1
	M=$(kvfs_mnt "$n")
	lib_log "--- $n: owners and set-id bits"
	chmod 1777 "$M"
	echo data >"$M/f"
	check "$n: root chowns a file" chown 1234:5678 "$M/f"
	assert_eq "$n: stat shows the new owner" "1234:5678" "$(stat -c %u:%g "$M/f")"
	ln -s f "$M/l"
	check "$n: chown -h of a symlink" chown -h 77:88 "$M/l"
	assert_eq "$n: the symlink's owner changed" "77:88" "$(stat -c %u:%g "$M/l")"
	assert_eq "$n: not its target's" "1234:5678" "$(stat -c %u:%g "$M/f")"
	expect "$n: O_CREAT|O_RDWR of another user's 0644 file" EACCES nobody open_creat_rw "$M/f"
	expect "$n: O_CREAT|O_RDWR of a new file in a 1777 directory" ok nobody open_creat_rw \
		"$M/new-by-nobody"
	assert_eq "$n: the new file is nobody's" "$NOBODY" "$(stat -c %u "$M/new-by-nobody")"
	check "$n: O_CREAT without O_EXCL of an existing file as its owner (shell >>)" \
		as_nobody sh -c 'echo more >>"$1"' - "$M/new-by-nobody"

	echo s >"$M/suid"
	chmod 04777 "$M/suid"
	expect "$n: another user writes a set-uid file" ok nobody append "$M/suid"
	assert_eq "$n: the write cleared S_ISUID" 777 "$(mode_of "$M/suid")"
	echo s >"$M/sgid"
	chmod 02777 "$M/sgid"
	expect "$n: another user writes a set-gid, group-executable file" ok nobody append "$M/sgid"
	assert_eq "$n: the write cleared S_ISGID" 777 "$(mode_of "$M/sgid")"
	echo s >"$M/rootsuid"
	chmod 04755 "$M/rootsuid"
	expect "$n: root writes a set-uid file" ok root append "$M/rootsuid"
	assert_eq "$n: root's write keeps S_ISUID" 4755 "$(mode_of "$M/rootsuid")"
	chmod 06755 "$M/rootsuid"
	c0=$(kvfs_status_field "$n" commit_index)
	check "$n: root chowns a set-uid file" chown 1:1 "$M/rootsuid"
	c1=$(kvfs_status_field "$n" commit_index)
	assert_eq "$n: chown cleared S_ISUID and S_ISGID" "755 1:1" "$(stat -c '%a %u:%g' "$M/rootsuid")"
	assert_eq "$n: owner and mode changed in one log entry" 1 "$((c1 - c0))"

	lib_log "--- $n: chown, chgrp and chmod by other users"
	expect "$n: nobody creates a file" ok nobody create "$M/nf"
	assert_eq "$n: owned by its creator" "$NOBODY:$NOBODY" "$(stat -c %u:%g "$M/nf")"
	expect "$n: the owner chowns to another uid" EPERM nobody chown "$M/nf" 0 -1
	expect "$n: the owner chowns to itself" ok nobody chown "$M/nf" $NOBODY -1
	expect "$n: the owner chgrps to a group it is not in" EPERM nobody chown "$M/nf" -1 0
	expect "$n: the owner chgrps to its own group" ok nobody chown "$M/nf" -1 $NOBODY
	expect "$n: a non-owner chgrps" EPERM other chown "$M/nf" -1 4343
	expect "$n: a non-owner chmods" EPERM other chmod "$M/nf" 666
	expect "$n: the owner chmods" ok nobody chmod "$M/nf" 666
	chgrp 4343 "$M/nf"
	expect "$n: the owner, not in the file's group, chmods g+s" ok nobody chmod "$M/nf" 2755
	assert_eq "$n: S_ISGID silently dropped" 755 "$(mode_of "$M/nf")"
	expect "$n: a member of the group chgrps? no: not the owner" EPERM other chown "$M/nf" -1 4343
	chown $OTHER "$M/nf"
	expect "$n: an owner in the file's group chmods g+s" ok other chmod "$M/nf" 2755
	assert_eq "$n: S_ISGID kept" 2755 "$(mode_of "$M/nf")"

	lib_log "--- $n: times"
	echo t >"$M/ro"
	chmod 0644 "$M/ro"
	echo t >"$M/rw"
	chmod 0666 "$M/rw"
	expect "$n: a non-owner sets explicit times" EPERM nobody utime "$M/rw" 1000000
	expect "$n: a non-owner without write permission touches" EACCES nobody utime_now "$M/ro"
	expect "$n: a non-owner with write permission touches" ok nobody utime_now "$M/rw"
	expect "$n: the owner sets explicit times" ok root utime "$M/ro" 1000000
	assert_eq "$n: mtime set" 1000000 "$(stat -c %Y "$M/ro")"

	lib_log "--- $n: the sticky bit"
	mkdir "$M/stk"
	chmod 1777 "$M/stk"
	echo r >"$M/stk/rootf"
	mkdir "$M/stk/rootd"
	expect "$n: nobody creates in the sticky directory" ok nobody create "$M/stk/nf"
	expect "$n: unlink of another's file" EPERM nobody unlink "$M/stk/rootf"
	expect "$n: rmdir of another's directory" EPERM nobody rmdir "$M/stk/rootd"
	expect "$n: rename of another's file" EPERM nobody rename "$M/stk/rootf" "$M/stk/x"
	expect "$n: rename over another's file" EPERM nobody rename "$M/stk/nf" "$M/stk/rootf"
	expect "$n: rename of its own file" ok nobody rename "$M/stk/nf" "$M/stk/nf2"
	expect "$n: unlink of its own file" ok nobody unlink "$M/stk/nf2"
	chown $NOBODY "$M/stk"
	expect "$n: the directory's owner unlinks another's file" ok nobody unlink "$M/stk/rootf"

	lib_log "--- $n: read, write, search"
	echo secret >"$M/secret"
	chmod 0600 "$M/secret"
	mkdir "$M/closed"
	echo in >"$M/closed/inside"
	chmod 0700 "$M/closed"
	mkdir "$M/rodir"
	expect "$n: read of a 0600 file of root" EACCES nobody read "$M/secret"
	expect "$n: write of a 0644 file of root" EACCES nobody append "$M/ro"
	expect "$n: truncate of a 0644 file of root" EACCES nobody truncate "$M/ro" 0
	expect "$n: access(W_OK) of a 0644 file of root" EACCES nobody access_w "$M/ro"
	expect "$n: create in a 0755 directory of root" EACCES nobody create "$M/rodir/x"
	expect "$n: listing a 0700 directory of root" EACCES nobody listdir "$M/closed"
	expect "$n: a name inside a 0700 directory of root" EACCES nobody stat "$M/closed/inside"
	expect "$n: group permission for a member" ok other read "$M/nf"

	lib_log "--- $n: a SETATTR of the ctime alone"
	t0=$(stat -c %Z "$M/ro")
	c0=$(kvfs_status_field "$n" commit_index)
	sleep 1.1
	expect "$n: chown(f, -1, -1)" ok root chown "$M/ro" -1 -1
	t1=$(stat -c %Z "$M/ro")
	c1=$(kvfs_status_field "$n" commit_index)
	assert_eq "$n: it changed the ctime (in one log entry)" "yes 1" \
		"$( ((t1 > t0)) && echo yes || echo no) $((c1 - c0))"
}

# --- allow_other: the kernel checks (default_permissions implied) -----------------------------------

kvfs_start k -o allow_other
check_grep "allow_other adds default_permissions, and says so" \
	'adding default_permissions' "$(kvfs_log k)"
check_grep "the mount has default_permissions" \
	"$(kvfs_mnt k) .*default_permissions" /proc/mounts
shared_rules k
check "k stops" kvfs_stop k
kvfs_start k -o allow_other
M=$(kvfs_mnt k)
assert_eq "owners survive a restart (replayed from the log)" "1234:5678 77:88" \
	"$(stat -c %u:%g "$M/f") $(stat -c %u:%g "$M/l")"
check "k stops again" kvfs_stop k

# --- allow_other --no-default-permissions: kvfs checks -----------------------------------------------

kvfs_start d -o allow_other --no-default-permissions
check_grep "the opt-out is logged as a warning" 'kvfs checks permissions itself' "$(kvfs_log d)"
if grep -E "$(kvfs_mnt d) .*default_permissions" /proc/mounts >/dev/null; then
	lib_fail "--no-default-permissions: the mount has no default_permissions"
else
	lib_pass "--no-default-permissions: the mount has no default_permissions"
fi
shared_rules d
# The kernel opens FIFOs, sockets and devices without asking kvfs: in this mode none are made.
expect "--no-default-permissions: mkfifo is refused" EPERM root mkfifo "$(kvfs_mnt d)/fifo"
check "d stops" kvfs_stop d

# --- a private mount of an unprivileged user ---------------------------------------------------------

private_mount() {
	local M
	mkdir -p "$T/p/mnt"
	chown -R $NOBODY:$NOBODY "$T/p"
	printf '#!/bin/sh\nexec setpriv --reuid=%s --regid=%s --clear-groups %q "$@"\n' \
		$NOBODY $NOBODY "$KVFS_BIN" >"$T/as_nobody_kvfs"
	chmod 755 "$T/as_nobody_kvfs"
	KVFS_BIN="$T/as_nobody_kvfs" kvfs_start p
	M=$(kvfs_mnt p)
	expect "private: the mounting user creates a file" ok nobody create "$M/f"
	assert_eq "private: shown as the mounting user's" "$NOBODY:$NOBODY" \
		"$(as_nobody stat -c %u:%g "$M/f")"
	expect "private: chown to another uid" EPERM nobody chown "$M/f" 0 -1
	expect "private: chgrp to a group it is not in" EPERM nobody chown "$M/f" -1 0
	expect "private: chown to itself" ok nobody chown "$M/f" $NOBODY $NOBODY
	expect "private: chmod" ok nobody chmod "$M/f" 4755
	expect "private: explicit times" ok nobody utime "$M/f" 1000000
	expect "private: other users cannot reach the mount" EACCES other stat "$M/f"
	check "p stops" kvfs_stop p
}

# fusermount3 mounts for users only where /dev/fuse is open to them (mode 0666, as distributions
# ship it); some containers have it 0600.
if as_nobody test -r /dev/fuse -a -w /dev/fuse; then
	private_mount
else
	lib_log "SKIP the private mount of an unprivileged user: /dev/fuse is $(stat -c %a /dev/fuse)"
fi

lib_finish

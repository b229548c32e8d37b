#!/usr/bin/env bash
# Cluster-wide locks (issue 13) on one standalone kvfs mount, between real processes
# (locks_helper.py): flock exclusion, shared readers and downgrade; a blocking flock woken when
# the holder closes; fcntl byte ranges, F_GETLK, F_SETLKW woken by F_UNLCK and interrupted by a
# signal (EINTR); EDEADLK between two waiting processes; release on close(2) of any descriptor
# and on kill -9; OFD locks; flock on the mount's root (node-local); the fencing
# token user.kvfs.lock. Then a node killed while a process holds a lock: the lock is in the log,
# but the node's next start is a new incarnation, which releases what the earlier one held.
#
# Usage: test_locks.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

HELPER="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/locks_helper.py"
PY=/usr/bin/python3
[[ -x "$PY" ]] || PY=python3

kvfs_start a
M=$(kvfs_mnt a)
check "lock checks between processes (locks_helper.py)" "$PY" "$HELPER" "$M"

# A lock held when the node stops is not inherited by its next start (a new incarnation).
"$PY" - "$M/held" <<'PYEOF' &
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
open(sys.argv[1] + ".ready", "w").close()
time.sleep(60)
PYEOF
HOLDER=$!
lib_track_pid "$HOLDER"
for _ in $(seq 100); do [[ -e "$M/held.ready" ]] && break; sleep 0.05; done
check "the holder's token is readable" getfattr --only-values -n user.kvfs.lock "$M/held"
check "getfattr -d lists it while the lock is held" \
	bash -c "getfattr -d -m - '$M/held' | grep -q '^user.kvfs.lock=\"[0-9]*\"\$'"
expect_errno "user.kvfs.lock cannot be set" EPERM setfattr -n user.kvfs.lock -v 1 "$M/held"
check "kill -9 the daemon while the lock is held" kvfs_kill9 a
kill -9 "$HOLDER" 2>/dev/null || true
wait "$HOLDER" 2>/dev/null || true
check "the dead mount detaches" kvfs_umount_dead a
kvfs_start a
check "after a restart the file can be locked at once" \
	"$PY" -c 'import fcntl, os, sys; fcntl.flock(os.open(sys.argv[1], os.O_RDONLY), fcntl.LOCK_EX | fcntl.LOCK_NB)' "$M/held"

lib_finish

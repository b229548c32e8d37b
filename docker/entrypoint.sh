#!/bin/sh
# Entry point of the kvfs image: readies the mountpoint (kvfs's last argument), then execs kvfs,
# which stays PID 1 and handles SIGTERM itself (writes in flight finish, a leader hands over).
#
# Under Compose or the Swarm launcher the mountpoint lies in a host directory shared with
# application containers (bind propagation). When a node dies without unmounting (kill -9, OOM),
# its dead FUSE mount stays on the host and comes back into the restarted container with that
# directory; kvfs refuses a dead mount (exit 3), so it is unmounted here first. The unmount
# propagates to the host and to the application containers, which see the new mount once the
# node is up again.
set -eu

if [ "$#" -eq 0 ]; then
	exec kvfs --help
fi
for mnt in "$@"; do :; done # the last argument
case "$mnt" in
/*) ;;
*) exec kvfs "$@" ;; # --help, --version, or a usage error kvfs reports itself
esac

# statfs reaches the filesystem: on a FUSE mount whose daemon is gone it fails (ENOTCONN).
if grep -q " $mnt fuse.kvfs " /proc/self/mounts && ! stat -f "$mnt" >/dev/null 2>&1; then
	echo "kvfs-entrypoint: $mnt is a dead kvfs mount (a node that did not unmount); unmounting it" >&2
	fusermount3 -u -z "$mnt"
fi
mkdir -p "$mnt"
exec kvfs "$@"

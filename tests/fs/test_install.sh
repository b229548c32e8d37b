#!/usr/bin/env bash
# `meson install` as an operator uses it (issue 10): installed into a --destdir, every file is
# there (the binary, the mount helper, the systemd unit, the man page, the example
# configuration); the unit passes `systemd-analyze verify` (its ExecStart pointed at the installed
# binary, its man page found); the man page has no groff warnings, renders with man(1) and names
# every option of `kvfs --help`, as the example configuration names every key. Then end to end,
# with the installed files: `mount -t fuse.kvfs NAME MNT -o config=FILE` mounts, a write reads
# back, `umount MNT` unmounts and the daemon exits; the same from an fstab line with _netdev
# (`mount -T ALTFSTAB MNT`); a mount with a missing configuration fails and mounts nothing.
#
# The host's /sbin and bin directory are never written: the test runs in a private mount namespace
# (unshare) in which the installed helper and binary are laid over the real directories with a
# read-only overlayfs, exactly where `meson install` without --destdir would put them. mount(8)
# runs helpers without PATH, so mount.fuse3's /bin/sh finds kvfs on sh's default path
# (/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin): that is checked too.
#
# Usage: test_install.sh KVFS_BIN   with KVFS_BUILD_DIR, KVFS_BINDIR, KVFS_UNITDIR,
#        KVFS_HELPERDIR, KVFS_MANDIR and KVFS_DOCDIR from meson (tests/fs/meson.build).
if [[ -z "${KVFS_IN_MOUNT_NS:-}" ]]; then
	export KVFS_IN_MOUNT_NS=1
	exec unshare --mount --propagation private -- "$0" "$@"
fi
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

for v in KVFS_BUILD_DIR KVFS_BINDIR KVFS_UNITDIR KVFS_HELPERDIR KVFS_MANDIR KVFS_DOCDIR; do
	if [[ -z "${!v:-}" ]]; then
		echo "$TEST_NAME: $v is not set (run through meson test)" >&2
		exit 2
	fi
done
D=$T/destdir
BIN=$D$KVFS_BINDIR/kvfs
HELPER=$D$KVFS_HELPERDIR/mount.fuse.kvfs
UNIT=$D$KVFS_UNITDIR/kvfs@.service
MAN=$D$KVFS_MANDIR/man8/kvfs.8
CONF_EXAMPLE=$D$KVFS_DOCDIR/example.conf

# --- the files -----------------------------------------------------------------------------------

check "meson install --destdir installs" \
	meson install -C "$KVFS_BUILD_DIR" --destdir "$D" --no-rebuild --quiet
check "the binary is installed and runs" "$BIN" --version
check "the mount helper mount.fuse.kvfs is a link to mount.fuse3" \
	bash -c '[[ -L "$1" && "$(basename "$(readlink -f "$1")")" == mount.fuse3 &&
		-x "$(readlink -f "$1")" ]]' _ "$HELPER"
check "the systemd unit kvfs@.service is installed" test -s "$UNIT"
check "the man page kvfs(8) is installed" test -s "$MAN"
check "the example configuration is installed" test -s "$CONF_EXAMPLE"

# --- the unit ------------------------------------------------------------------------------------

assert_eq "the unit runs the installed binary in the foreground on /etc/kvfs/NAME.conf" \
	"ExecStart=$KVFS_BINDIR/kvfs -f --config /etc/kvfs/%i.conf" "$(grep '^ExecStart=' "$UNIT")"
check_grep "the unit is Type=notify" '^Type=notify$' "$UNIT"
check_grep "the unit waits for the network" '^After=.*network-online\.target' "$UNIT"

# verify checks that ExecStart is executable and that man:kvfs(8) exists: point both at the
# destdir. Any output is a warning (an unknown key, a bad value): none is allowed.
verify_unit() {
	local dir=$T/unit out rc=0
	mkdir -p "$dir"
	sed "s#^ExecStart=$KVFS_BINDIR/kvfs #ExecStart=$BIN #" "$UNIT" >"$dir/kvfs@.service"
	out=$(MANPATH=$D$KVFS_MANDIR systemd-analyze verify "$dir/kvfs@.service" 2>&1) || rc=$?
	echo "$out"
	[[ $rc -eq 0 && -z "$out" ]]
}
check "systemd-analyze verify accepts the unit, without a warning" verify_unit
# The same check must fail on a unit that is wrong (so it proves something).
verify_broken() {
	sed 's/^Type=notify$/Type=notify\nNotAKey=1/' "$UNIT" >"$T/broken@.service"
	sed -i "s#^ExecStart=$KVFS_BINDIR/kvfs #ExecStart=$BIN #" "$T/broken@.service"
	[[ -n "$(MANPATH=$D$KVFS_MANDIR systemd-analyze verify "$T/broken@.service" 2>&1)" ]]
}
check "(systemd-analyze verify does complain about an unknown key)" verify_broken

# --- the man page and the example configuration ----------------------------------------------------

check "groff -man -ww finds nothing to warn about in kvfs.8" \
	bash -c 'out=$(groff -man -ww -z "$1" 2>&1); echo "$out"; [[ -z "$out" ]]' _ "$MAN"
MANWIDTH=100 man -l "$MAN" >"$T/man.txt" 2>"$T/man.err" || true
check "man -l renders it, without an error" \
	bash -c '[[ ! -s "$2" ]] && grep -q "^NAME" "$1" && grep -q "^SYNOPSIS" "$1"' _ \
	"$T/man.txt" "$T/man.err"
for section in OPTIONS "CONFIGURATION FILE" "MOUNT HELPER AND FSTAB" SIGNALS "EXIT STATUS" \
	FILES "VIRTUAL FILES" EXAMPLES "SEE ALSO"; do
	check_grep "the man page has a section $section" "^$section\$" "$T/man.txt"
done
# Every long option of --help is in the man page, and (but for these) a key of the example.
"$BIN" --help >"$T/help.txt"
grep -oE -- '--[a-z][a-z-]+' "$T/help.txt" | sort -u >"$T/options.txt"
missing_man=() missing_conf=()
while read -r opt; do
	grep -qF -- "${opt//-/\\-}" "$MAN" || missing_man+=("$opt")
	case "$opt" in --help | --version | --config) continue ;; esac
	grep -qE "^#?${opt#--} = " "$CONF_EXAMPLE" || missing_conf+=("$opt")
done <"$T/options.txt"
assert_eq "every long option of kvfs --help ($(wc -l <"$T/options.txt")) is in kvfs(8)" "" \
	"${missing_man[*]}"
assert_eq "every long option of kvfs --help is a key of example.conf" "" "${missing_conf[*]}"
check_grep "example.conf shows the mountpoint key" '^#?mountpoint = ' "$CONF_EXAMPLE"

# --- end to end: mount(8) with the installed helper and binary -------------------------------------

# overlay DIR-ON-HOST DIR-IN-DESTDIR: the destdir's files over the real ones (this namespace only).
overlay() {
	mount -t overlay "kvfs-test-$1" -o "lowerdir=$2:$1" "$1"
}
HOST_HELPERDIR=$(readlink -f "$KVFS_HELPERDIR")
HOST_BINDIR=$(readlink -f "$KVFS_BINDIR")
check "the installed helper is laid over $HOST_HELPERDIR (private mount namespace)" \
	overlay "$HOST_HELPERDIR" "$D$KVFS_HELPERDIR"
if [[ "$HOST_BINDIR" != "$HOST_HELPERDIR" ]]; then
	check "the installed binary is laid over $HOST_BINDIR (private mount namespace)" \
		overlay "$HOST_BINDIR" "$D$KVFS_BINDIR"
fi
# libmount keeps the mounts' user options (_netdev) in /run/mount/utab: keep ours private.
if [[ -d /run/mount ]]; then
	mount -t tmpfs kvfs-test-utab /run/mount
fi
check "sh without PATH (as mount.fuse3 runs it under mount) finds the installed kvfs" \
	bash -c 'cmp -- "$(env -u PATH /bin/sh -c "command -v kvfs")" "$1"' _ "$BIN"

N=$T/node
MNT=$N/mnt
CONF=$T/kvtest.conf
mkdir -p "$MNT"
ln -s data/kvfs.log "$N/kvfs.log" # where lib.sh shows logs from
cat >"$CONF" <<EOF
# written by test_install.sh
data = $N/data
write-timeout = 5000
EOF

# The daemon serving MNT (background mode: mount(8) never shows us its PID).
daemon_pid() {
	pgrep -f -- "kvfs .*$MNT" | head -n 1 || true
}
is_kvfs_mount() {
	awk -v p="$MNT" '$2 == p && $3 == "fuse.kvfs" { f = 1 } END { exit !f }' /proc/mounts
}
# write_on_mount NAME TEXT: writes TEXT into MNT/NAME, only if MNT is the kvfs mount.
write_on_mount() {
	is_kvfs_mount && echo "$2" >"$MNT/$1"
}
# umount_and_wait: umount(8) MNT; the daemon must then exit by itself within 15 s.
umount_and_wait() {
	local pid
	pid=$(daemon_pid)
	[[ -n "$pid" ]] || { echo "no daemon serves $MNT"; return 1; }
	umount "$MNT" || return 1
	for ((i = 0; i < 300; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "kvfs (pid $pid) still runs 15 s after umount"
		return 1
	fi
	! lib_is_mounted "$MNT"
}
# After a failed check, nothing may stay mounted or running for the next one.
reset_mount() {
	local pid
	if lib_is_mounted "$MNT"; then
		umount -l "$MNT" 2>/dev/null
	fi
	pid=$(daemon_pid)
	if [[ -n "$pid" ]]; then
		kill -9 "$pid" 2>/dev/null
	fi
	return 0
}

check "mount -t fuse.kvfs kvtest MNT -o config=FILE mounts" \
	mount -t fuse.kvfs kvtest "$MNT" -o "config=$CONF"
daemon_pid >"$N/pid" # for lib.sh's watchdog
check "MNT is a fuse.kvfs mount once mount(8) returns" is_kvfs_mount
check "a write on it succeeds" write_on_mount greeting "written through mount(8)"
assert_eq "and reads back" "written through mount(8)" "$(cat "$MNT/greeting" 2>&1)"
check_grep "the node there is a standalone node on the configured data directory" \
	'^role: standalone$' "$MNT/.status"
check "umount MNT unmounts it and the daemon exits" umount_and_wait
reset_mount

printf 'kvtest %s fuse.kvfs config=%s,_netdev 0 0\n' "$MNT" "$CONF" >"$T/fstab"
check "mount -T ALTFSTAB MNT mounts the fstab line (fuse.kvfs, config=FILE,_netdev)" \
	mount -T "$T/fstab" "$MNT"
daemon_pid >"$N/pid"
check "MNT is a fuse.kvfs mount" is_kvfs_mount
assert_eq "the earlier write is there (same data directory)" "written through mount(8)" \
	"$(cat "$MNT/greeting" 2>&1)"
check "a write on it succeeds" write_on_mount second again
assert_eq "and reads back" "again" "$(cat "$MNT/second" 2>&1)"
check "umount MNT unmounts it and the daemon exits" umount_and_wait
reset_mount

# As mount(8) runs the helper (without PATH): util-linux would also fall back to mount.fuse -t
# fuse.kvfs, so this is what shows the installed helper itself works.
check "the installed $KVFS_HELPERDIR/mount.fuse.kvfs, run as mount(8) runs it, mounts" \
	env -u PATH "$KVFS_HELPERDIR/mount.fuse.kvfs" kvtest "$MNT" -o "rw,config=$CONF,_netdev"
daemon_pid >"$N/pid"
check "MNT is a fuse.kvfs mount" is_kvfs_mount
assert_eq "with the data written before" "again" "$(cat "$MNT/second" 2>&1)"
check "umount MNT unmounts it and the daemon exits" umount_and_wait
reset_mount

check_fails "mount with a configuration file that does not exist fails" \
	mount -t fuse.kvfs kvtest "$MNT" -o "config=$T/missing.conf"
check_fails "and mounts nothing" lib_is_mounted "$MNT"
reset_mount

lib_finish

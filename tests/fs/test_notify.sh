#!/usr/bin/env bash
# Readiness notification for systemd (Type=notify, sd_notify(3)), with this test in systemd's
# place: a datagram socket bound here (notify_listen.py) is given to the daemon as NOTIFY_SOCKET.
# READY=1 comes once and only when /.status answers on the mount, from the daemon's own pid, with
# a STATUS= naming its role; STOPPING=1 when SIGTERM or an unmount begins its shutdown; the
# abstract-namespace form (@name) works; a background start's parent says MAINPID= of the daemon
# with READY=1; an unusable NOTIFY_SOCKET is reported and the node runs anyway. (A cluster node's
# STATUS= with role and leader: tests/cluster/test_notify.py.)
#
# Usage: test_notify.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

LISTEN=$(dirname "$(realpath "${BASH_SOURCE[0]}")")/notify_listen.py
LISTENER=

# listen ADDRESS OUT MNT: starts the listener and waits until it is bound.
listen() {
	: >"$2"
	/usr/bin/python3 "$LISTEN" "$1" "$2" "$3" >"$T/listener.out" 2>&1 &
	LISTENER=$!
	lib_track_pid "$LISTENER"
	for ((i = 0; i < 100; i++)); do
		grep -q listening "$T/listener.out" 2>/dev/null && return 0
		sleep 0.05
	done
	echo "the listener did not start:" >&2
	cat "$T/listener.out" >&2
	return 1
}

stop_listener() {
	kill "$LISTENER" 2>/dev/null || true
	lib_wait_exit "$LISTENER" 5 || true
}

# wait_msg OUT REGEX [SECONDS]: waits until a line of OUT matches.
wait_msg() {
	local deadline=$((SECONDS + ${3:-10}))
	until grep -qE -- "$2" "$1" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# --- foreground, path socket, SIGTERM ------------------------------------------------------------

OUT=$T/notify-a.txt
listen "$T/notify.sock" "$OUT" "$(kvfs_mnt a)"
# An earlier life of the node, so that READY=1 also follows a recovery.
kvfs_start a
echo "before the restart" >"$(kvfs_mnt a)/old"
check "a node without NOTIFY_SOCKET stops cleanly" kvfs_stop a
assert_eq "and notified nobody" "0" "$(wc -l <"$OUT")"

KVFS_ENV=("NOTIFY_SOCKET=$T/notify.sock")
kvfs_start a
check "READY=1 arrives" wait_msg "$OUT" 'READY=1'
assert_eq "READY=1 comes once" "1" "$(grep -c 'READY=1' "$OUT")"
# first_ready_check OUT: what the listener found on the mount when the first READY=1 came.
first_ready_check() {
	grep -m 1 'READY=1' "$1" | awk '{ print $NF }'
}
assert_eq "when READY=1 arrives, /.status already answers on the mount" "status=ok" \
	"$(first_ready_check "$OUT")"
check_grep "READY=1 comes with a STATUS= naming the role" \
	'READY=1\|STATUS=role: standalone, leader: 1, epoch: [0-9]+' "$OUT"
assert_eq "READY=1 comes from the daemon itself" "${KVFS_PID[a]}" \
	"$(awk '/READY=1/ { print $1; exit }' "$OUT")"
assert_eq "the recovered data is there" "before the restart" "$(cat "$(kvfs_mnt a)/old")"
sleep 1
assert_eq "a node whose role does not change sends nothing more" "1" "$(wc -l <"$OUT")"
pid=${KVFS_PID[a]}
kill -TERM "$pid"
check "STOPPING=1 arrives on SIGTERM" wait_msg "$OUT" '^[0-9]+ STOPPING=1'
check "the daemon exits 0" lib_wait_exit "$pid" 15
assert_eq "with status 0" "0" "$LIB_WAIT_RC"
unset "KVFS_PID[a]"
assert_eq "STOPPING=1 is the last message, from the daemon" "$pid STOPPING=1" \
	"$(tail -n 1 "$OUT" | cut -d'|' -f1)"
stop_listener

# --- abstract socket, stop by unmount ------------------------------------------------------------

OUT=$T/notify-b.txt
ABSTRACT="@kvfs-test-notify-$$-$RANDOM"
listen "$ABSTRACT" "$OUT" "$(kvfs_mnt b)"
KVFS_ENV=("NOTIFY_SOCKET=$ABSTRACT")
kvfs_start b
check "READY=1 arrives on an abstract socket (NOTIFY_SOCKET=@name)" wait_msg "$OUT" \
	'READY=1.* status=ok$'
fusermount3 -u "$(kvfs_mnt b)"
check "STOPPING=1 arrives when the mount is unmounted" wait_msg "$OUT" '^[0-9]+ STOPPING=1'
check "the daemon exits 0" kvfs_stop b
stop_listener

# --- background start: MAINPID= from the parent ---------------------------------------------------

OUT=$T/notify-c.txt
listen "$T/notify-c.sock" "$OUT" "$(kvfs_mnt c)"
mkdir -p "$(kvfs_mnt c)"
check "kvfs in the background starts (exit 0 once mounted)" \
	env "NOTIFY_SOCKET=$T/notify-c.sock" "$KVFS_BIN" --data "$(kvfs_dir c)/data" "$(kvfs_mnt c)"
daemon=$(pgrep -f -- "--data $(kvfs_dir c)/data " | head -n 1 || true)
echo "$daemon" >"$(kvfs_dir c)/pid"
check "MAINPID= and READY=1 arrive together" wait_msg "$OUT" 'MAINPID=[0-9]+\|READY=1'
assert_eq "MAINPID= names the daemon that serves the mount" "$daemon" \
	"$(sed -nE 's/.*MAINPID=([0-9]+).*/\1/p' "$OUT" | head -n 1)"
assert_eq "when READY=1 arrives, /.status already answers" "status=ok" "$(first_ready_check "$OUT")"
check "then the daemon itself sends its STATUS=" wait_msg "$OUT" "^$daemon STATUS=role: standalone"
assert_eq "READY=1 comes once" "1" "$(grep -c 'READY=1' "$OUT")"
fusermount3 -u "$(kvfs_mnt c)"
check "STOPPING=1 from the daemon when it is unmounted" wait_msg "$OUT" "^$daemon STOPPING=1"
check "the daemon exits" bash -c 'for i in $(seq 200); do kill -0 "$1" 2>/dev/null || exit 0;
	sleep 0.05; done; exit 1' _ "$daemon"
stop_listener

# --- an unusable NOTIFY_SOCKET ---------------------------------------------------------------------

KVFS_ENV=("NOTIFY_SOCKET=relative/path")
kvfs_start d
check_grep "an unusable NOTIFY_SOCKET is reported in one line that says what is accepted" \
	"NOTIFY_SOCKET='relative/path' is not usable: expected an absolute path or an @abstract" \
	"$(kvfs_log d)"
check "and the node serves anyway" bash -c 'echo x >"$1/x" && [[ "$(cat "$1/x")" == x ]]' _ \
	"$(kvfs_mnt d)"
check "and stops cleanly" kvfs_stop d

lib_finish

#!/usr/bin/env bash
# The README's first command, scripts/start.sh, as a user runs it: from a copy of scripts/ in a
# temporary directory (so that its defaults, ./run and ./mnt next to it, are what is exercised,
# and a demo running in the checkout is not touched), with the binary under test (KVFS_BIN) and
# node ports away from the demo's (KVFS_PORT_BASE). It must start ZooKeeper and three nodes,
# say who leads; a write on one node is read on the others; `status` answers; the nodes use the
# ZooKeeper credentials it made; `stop` unmounts and stops everything. Whatever happens, everything it started is stopped and unmounted.
#
# Usage: test_start.sh KVFS_BIN        (run by `meson test --suite cluster`)
set -uo pipefail

KVFS_BIN=$(realpath "$1")
SRC=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
T=$(mktemp -d /tmp/kvfs-test-start.XXXXXX)
PASS=0
FAIL=0
START_PID=

check() { # check DESCRIPTION COMMAND...
	local desc=$1
	shift
	if "$@"; then
		echo "ok   $desc"
		PASS=$((PASS + 1))
	else
		echo "FAIL $desc"
		FAIL=$((FAIL + 1))
	fi
}

cleanup() {
	local m
	"$T/scripts/start.sh" stop >/dev/null 2>&1
	[[ -n "$START_PID" ]] && { kill "$START_PID" 2>/dev/null; wait "$START_PID" 2>/dev/null; }
	for m in "$T"/mnt/*; do
		grep -q " $m fuse" /proc/mounts && fusermount3 -uz "$m"
	done
	rm -rf --one-file-system "$T"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

mkdir -p "$T/scripts"
cp "$SRC/scripts/start.sh" "$SRC/scripts/install-deps.sh" "$T/scripts/"
export KVFS_BIN KVFS_PORT_BASE=$((20000 + RANDOM % 20000))
cd "$T"

setsid scripts/start.sh >"$T/start.out" 2>&1 </dev/null &
START_PID=$!
for ((i = 0; i < 600; i++)); do
	grep -q "^Press Ctrl-C" "$T/start.out" 2>/dev/null && break
	kill -0 "$START_PID" 2>/dev/null || break
	sleep 0.1
done
check "start.sh starts ZooKeeper and three nodes and tells what to try" \
	grep -q "^Press Ctrl-C" "$T/start.out"
check "it names the leader" grep -Eq "^Node [123] leads" "$T/start.out"
check "the mounts are under ./mnt next to the scripts" \
	bash -c "for n in 1 2 3; do grep -q \" $T/mnt/\$n fuse\" /proc/mounts || exit 1; done"

echo hello >"$T/mnt/2/greeting"
check "a write on node 2 succeeds" test "$(cat "$T/mnt/2/greeting" 2>/dev/null)" = hello
ok=0
for ((i = 0; i < 50; i++)); do
	[[ "$(cat "$T/mnt/1/greeting" 2>/dev/null)" == hello &&
		"$(cat "$T/mnt/3/greeting" 2>/dev/null)" == hello ]] && { ok=1; break; }
	sleep 0.1
done
check "nodes 1 and 3 read it" test "$ok" = 1
check "start.sh status shows each node's /.status" \
	bash -c "scripts/start.sh status | grep -c '^role: ' | grep -qx 3"
check "start.sh made the ZooKeeper credentials run/zk-auth, mode 600, user:password" \
	bash -c "test \"\$(stat -c %a run/zk-auth)\" = 600 && grep -Eqx '[^:]+:.+' run/zk-auth"
check "every node authenticates to ZooKeeper (zk_auth: digest in /.status)" \
	bash -c "grep -h '^zk_auth: ' mnt/1/.status mnt/2/.status mnt/3/.status | grep -cx 'zk_auth: digest' | grep -qx 3"

PIDS=$(cat "$T"/run/*/kvfs.pid "$T"/run/zk/zk.pid 2>/dev/null | tr '\n' ' ')
check "start.sh recorded the pids of ZooKeeper and the three nodes" \
	test "$(wc -w <<<"$PIDS")" -eq 4
scripts/start.sh stop >"$T/stop.out" 2>&1
for ((i = 0; i < 100; i++)); do
	kill -0 "$START_PID" 2>/dev/null || break
	sleep 0.1
done
check "start.sh stop ends the foreground start.sh" bash -c "! kill -0 $START_PID 2>/dev/null"
check "nothing is left mounted" bash -c "! grep -q \" $T/mnt/\" /proc/mounts"
left=
for pid in $PIDS; do
	kill -0 "$pid" 2>/dev/null && left="$left $pid"
done
check "no ZooKeeper or kvfs of ours is left running" test -z "$left"
if ((FAIL)); then
	echo "--- start.sh output:"
	cat "$T/start.out"
	echo "--- logs:"
	tail -n 20 "$T"/run/*/data/kvfs.log 2>/dev/null
fi
echo "$PASS passed, $FAIL failed"
((FAIL == 0))

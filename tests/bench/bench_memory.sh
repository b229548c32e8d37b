#!/bin/bash
# bench_memory.sh KVFS_BIN [N]: what a key and a hard link cost in the daemon's memory. Starts a
# standalone node with its data directory on tmpfs (/dev/shm), writes N keys of 100 bytes with
# 8-byte names, then N hard links to them, and prints the growth of the daemon's RSS per key and
# per link (VmRSS of /proc/PID/status). Prints figures; it is not a test. Default N: 100000.
set -euo pipefail
BIN=$(realpath "$1")
N=${2:-100000}
D=$(mktemp -d /dev/shm/kvfs-bench-memory.XXXXXX)
PID=
cleanup() {
	if [[ -n "$PID" ]]; then
		fusermount3 -u "$D/mnt" 2>/dev/null || true
		kill "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
	fi
	rm -rf "$D"
}
trap cleanup EXIT
mkdir -p "$D/mnt"
"$BIN" -f --data "$D/data" "$D/mnt" >"$D/log" 2>&1 &
PID=$!
for _ in $(seq 100); do [[ -e "$D/mnt/.status" ]] && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$PID/status"; }
r0=$(rss)
python3 - "$D/mnt" "$N" <<'PY'
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
os.mkdir(m + "/k")
for i in range(n):
    with open("%s/k/%08d" % (m, i), "wb") as f:
        f.write(b"v" * 100)
PY
r1=$(rss)
links=failed
if python3 - "$D/mnt" "$N" 2>/dev/null <<'PY'; then
import os, sys
m, n = sys.argv[1], int(sys.argv[2])
os.mkdir(m + "/l")
for i in range(n):
    os.link("%s/k/%08d" % (m, i), "%s/l/%08d" % (m, i))
PY
	links="$(((($(rss) - r1) * 1024) / N)) bytes per link"
fi
echo "$N keys: $((((r1 - r0) * 1024) / N)) bytes per key; hard links: $links"

#!/usr/bin/env bash
# kvfs at scale (issue 14): memory per key at a million keys, start-up of a node holding them
# (from its log alone, and from a snapshot and a short log tail), catch-up of a replica 100,000
# entries behind, and the rate at which a replica installs a snapshot beside the disk's sequential
# write rate. Prints table rows in the shared format `| workload | figure | target | ratio |`
# (ratio = figure / target: at most 1 meets a "≤" target, at least 1 a "≥" one), for
# scripts/bench_compare.sh to include.
#
# The work is tests/bench/bench_scale.py on the cluster test harness: a real three-server
# ZooKeeper and three kvfs nodes on real mounts under /tmp, every process stopped by PID and every
# mount detached when it ends, fails or is interrupted. The load (48 writers over the 3 mounts;
# kvfs has no bulk load) takes a few minutes at a million keys; its rate is one of the rows. The
# harness's own log goes to $KVFS_SCALE_LOG (default: a temporary file, named on failure).
# Needs root (FUSE mounts).
#
# Usage: scripts/bench_scale.sh [KEYS (default 1000000) [CATCHUP (default 100000)]]
# KVFS_BUILD=DIR uses the build in DIR instead of ./build of this checkout (built if missing).
# KVFS_SCALE_PERF=DIR records `perf record -a -g` of the start-ups and of the snapshot install
# into DIR/*.data (perf report --pid PID: the restarted node's PID is in the harness log).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KEYS=${1:-1000000}
CATCHUP=${2:-100000}
BUILD=${KVFS_BUILD:-"$ROOT/build"}
TMP=

cleanup() {
	set +e
	[[ -n "$TMP" ]] && rm -rf "$TMP"
}

# build: the kvfs binary in $BUILD, built from this checkout when missing.
build() {
	if [[ -z "${KVFS_BUILD:-}" ]]; then
		./scripts/install-deps.sh >/dev/null
		[[ -f "$BUILD/build.ninja" ]] || meson setup "$BUILD" --buildtype=debugoptimized >/dev/null
	fi
	ninja -C "$BUILD" >/dev/null
}

main() {
	local log rc=0

	build
	TMP=$(mktemp -d /tmp/kvfs-bench-scale.XXXXXX)
	trap cleanup EXIT
	trap 'exit 1' INT TERM
	log=${KVFS_SCALE_LOG:-"$TMP/harness.log"}
	# The harness's watchdog ends everything it started if the run hangs.
	KVFS_TEST_TIMEOUT=${KVFS_TEST_TIMEOUT:-1800} KVFS_SCALE_ROWS="$TMP/rows" \
		/usr/bin/python3 tests/bench/bench_scale.py "$BUILD/fs/kvfs" "$KEYS" "$CATCHUP" \
		>"$log" 2>&1 || rc=$?
	[[ -f "$TMP/rows" ]] && cat "$TMP/rows"
	if ((rc != 0)); then
		echo "bench_scale.py failed (exit $rc); the end of its log:" >&2
		tail -n 40 "$log" >&2
		return "$rc"
	fi
}

main "$@"

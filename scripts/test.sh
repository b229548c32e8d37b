#!/usr/bin/env bash
# The test command: builds kvfs twice and runs every test (unit, fs, cluster) in each build:
#   build       debugoptimized, warnings are errors
#   build-asan  the same with AddressSanitizer + UndefinedBehaviorSanitizer, every report fatal
#               (leaks included, in the unit tests and in the FUSE daemon the fs tests start)
# and ends with one line "N passed, N failed" over both builds. Exits non-zero when anything
# failed (a build error counts as a failed test). Works from any directory.
#
# Usage: scripts/test.sh [extra `meson test` arguments, e.g. --suite unit or a test name]
# Needs the packages of scripts/install-deps.sh, and root (FUSE mounts) for the fs and cluster
# suites; the cluster suite starts its own ZooKeeper ensembles on free loopback ports.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

PASSED=0
FAILED=0
SKIPPED=0
FAILED_NAMES=()

# setup DIR OPTIONS...: meson setup, or --reconfigure when DIR is already configured.
setup() {
	local dir=$1
	shift
	if [[ -f "$dir/build.ninja" || -f "$dir/meson-private/coredata.dat" ]]; then
		meson setup --reconfigure "$dir" "$@"
	else
		rm -rf "$dir"
		meson setup "$dir" "$@"
	fi
}

# count DIR: adds DIR's results (meson-logs/testlog.json, one JSON object per test) to the totals.
count() {
	local dir=$1 p f s name
	local -a lines
	mapfile -t lines < <(python3 - "$dir/meson-logs/testlog.json" <<'EOF'
import json, sys
passed = failed = skipped = 0
names = []
with open(sys.argv[1]) as f:
    for line in f:
        if not line.strip():
            continue
        t = json.loads(line)
        r = t.get("result", "")
        if r in ("OK", "EXPECTEDFAIL"):
            passed += 1
        elif r == "SKIP":
            skipped += 1
        else:
            failed += 1
            names.append("%s (%s)" % (t.get("name", "?"), r))
print(passed, failed, skipped)
for n in names:
    print(n)
EOF
	)
	read -r p f s <<<"${lines[0]:-0 1 0}"
	PASSED=$((PASSED + p))
	FAILED=$((FAILED + f))
	SKIPPED=$((SKIPPED + s))
	for name in "${lines[@]:1}"; do
		FAILED_NAMES+=("$dir: $name")
	done
}

# run DIR SETUP-OPTIONS...: configure, build and test one build directory.
run() {
	local dir=$1 rc=0 before
	shift
	echo "=== $dir: configure"
	if ! setup "$dir" "$@"; then
		echo "=== $dir: meson setup FAILED"
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$dir:configure")
		return
	fi
	echo "=== $dir: build"
	if ! ninja -C "$dir"; then
		echo "=== $dir: build FAILED"
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$dir:build")
		return
	fi
	echo "=== $dir: test"
	rm -f "$dir/meson-logs/testlog.json"
	meson test -C "$dir" --print-errorlogs "${TEST_ARGS[@]}" || rc=$?
	before=$FAILED
	if [[ -f "$dir/meson-logs/testlog.json" ]]; then
		count "$dir"
	fi
	if ((rc != 0 && FAILED == before)); then
		# meson test failed without a failed test to show for it: count that too.
		FAILED=$((FAILED + 1))
		FAILED_NAMES+=("$dir: meson test exited with status $rc")
	fi
}

main() {
	TEST_ARGS=("$@")

	# Two seeded chaos runs of 55 s of faults each here (test_chaos.py's own default is 70 s;
	# scripts/chaos.sh runs long campaigns): the whole suite stays under 30 minutes.
	local chaos=${KVFS_CHAOS_SECONDS:-}
	export KVFS_CHAOS_SECONDS=${chaos:-55}
	run build --werror --buildtype=debugoptimized

	# Sanitizer reports end the process (and so fail the test) instead of scrolling by.
	export ASAN_OPTIONS=halt_on_error=1:abort_on_error=1:detect_leaks=1:print_summary=1:disable_coredump=1
	export UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1:print_summary=1
	export LSAN_OPTIONS="print_suppressions=0:suppressions=$ROOT/tests/lsan.supp"
	# The chaos runs look for memory errors here, not for rare schedules (the werror build runs
	# them longer).
	export KVFS_CHAOS_SECONDS=${chaos:-30}
	run build-asan --werror --buildtype=debugoptimized -Db_sanitize=address,undefined \
		-Dc_args=-fno-sanitize-recover=all

	if ((FAILED != 0)); then
		echo "=== failed:"
		printf '  %s\n' "${FAILED_NAMES[@]}"
	fi
	if ((SKIPPED != 0)); then
		echo "$PASSED passed, $FAILED failed, $SKIPPED skipped"
	else
		echo "$PASSED passed, $FAILED failed"
	fi
	((FAILED == 0))
}

main "$@"

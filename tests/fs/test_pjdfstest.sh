#!/usr/bin/env bash
# pjdfstest (POSIX conformance: chmod, chown, link, mkdir, mkfifo, mknod, open, rename, rmdir,
# symlink, truncate, unlink, utimensat ...; vendored in pjdfstest/, see its README.md) on a real
# standalone mount, run as root from a directory on the mount with `prove -rv`, as upstream's CI
# does. pjdfstest/check.py compares the failures with pjdfstest/expected_failures.txt: a failure
# not listed fails this test, and so does a listed one that passes now (shrink the list).
#
# Usage: test_pjdfstest.sh KVFS_BIN PJDFSTEST_BIN
# Environment:
#   KVFS_PJDFSTEST_OPTS      mount options (unset: allow_other,default_permissions, as pjdfstest
#                            acts as other users, who need allow_other; empty: no -o at all)
#   KVFS_PJDFSTEST_EXPECTED  the list of expected failures (default pjdfstest/expected_failures.txt)
#   KVFS_PJDFSTEST_GROUPS    run only these groups, e.g. "chmod link" (default: all of tests/)
#   KVFS_PJDFSTEST_LOG_DIR   keep prove's output there as pjdfstest-standalone.tap (meson sets it
#                            to the build directory's tests/fs), for check.py --write-expected
: "${KVFS_TEST_TIMEOUT:=870}" # the suite takes minutes; meson's timeout is 900 s
export KVFS_TEST_TIMEOUT
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

if (($# < 2)); then
	echo "usage: $0 KVFS_BIN PJDFSTEST_BIN" >&2
	exit 2
fi
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PJD_BIN=$(realpath "$2")
OPTS=${KVFS_PJDFSTEST_OPTS-allow_other,default_permissions}
EXPECTED=${KVFS_PJDFSTEST_EXPECTED:-$HERE/pjdfstest/expected_failures.txt}
for tool in prove perl openssl; do
	command -v "$tool" >/dev/null || {
		echo "$0: $tool is missing (scripts/install-deps.sh)" >&2
		exit 1
	}
done
if ((EUID != 0)); then
	echo "$0: pjdfstest runs as root (it switches to other users itself); skipped" >&2
	exit 77
fi
# pjdfstest's helper processes act as other users too; they reach nothing through $T by name,
# but a 0700 $T would make this run differ from a mount in an ordinary place.
chmod 755 "$T"

# Upstream's layout: tests/<group>/*.t find ../../pjdfstest (misc.sh walks up from the .t).
mkdir "$T/pjdfstest"
tar -xzf "$HERE"/pjdfstest/pjdfstest-*.tar.gz -C "$T/pjdfstest" --strip-components=1 \
	--wildcards '*/tests/'
ln -s "$PJD_BIN" "$T/pjdfstest/pjdfstest"
ROOTS=()
for g in ${KVFS_PJDFSTEST_GROUPS:-}; do
	ROOTS+=("$T/pjdfstest/tests/$g")
done
((${#ROOTS[@]})) || ROOTS=("$T/pjdfstest/tests")

kvfs_start a ${OPTS:+-o "$OPTS"}
M=$(kvfs_mnt a)
mkdir "$M/pjd"
lib_log "prove -rv over ${ROOTS[*]#"$T/pjdfstest/"} from $M/pjd (mount options ${OPTS:-none})"
t0=$SECONDS
rc=0
# In the background and waited for by PID, so that a signal or the watchdog ends the test at once
# (the cleanup kills prove; the .t running then fails fast on the detached mount).
(cd "$M/pjd" && exec prove -rv "${ROOTS[@]}") >"$T/prove.out" 2>"$T/prove.err" </dev/null &
PROVE_PID=$!
lib_track_pid "$PROVE_PID"
wait "$PROVE_PID" || rc=$?
lib_log "prove exited with status $rc after $((SECONDS - t0)) s"
if [[ -n "${KVFS_PJDFSTEST_LOG_DIR:-}" ]]; then
	cp "$T/prove.out" "$KVFS_PJDFSTEST_LOG_DIR/pjdfstest-standalone.tap"
	lib_log "prove's output kept in $KVFS_PJDFSTEST_LOG_DIR/pjdfstest-standalone.tap"
fi

CHECK_ARGS=(--expected "$EXPECTED" --title "standalone, -o ${OPTS:-(none)}")
for r in "${ROOTS[@]}"; do
	CHECK_ARGS+=(--tests-dir "$r")
done
crc=0
python3 "$HERE/pjdfstest/check.py" "${CHECK_ARGS[@]}" "$T/prove.out" || crc=$?
if ((crc == 0)); then
	lib_pass "pjdfstest's failures are exactly the expected ones ($(basename "$EXPECTED"))"
else
	lib_fail "pjdfstest's failures are exactly the expected ones ($(basename "$EXPECTED"))" \
		"check.py exit status $crc (its report above); last lines prove wrote on stderr:" \
		"$(tail -n 10 "$T/prove.err")"
fi
check "the node still answers after the suite" cat "$M/.status"
check "kvfs unmounts and exits with status 0" kvfs_stop a
lib_finish

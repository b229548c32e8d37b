#!/usr/bin/env bash
# The daemon's command line and life cycle, as DESIGN §6 and the issue give them: --help and
# --version, exit codes (2 bad usage, 3 mountpoint problem, 4 data directory problem), background
# mode (returns once the mount is ready, logs to DATA/kvfs.log), SIGTERM, --max-value, and start-up
# on a damaged data directory (DESIGN §5: a torn or zero-filled tail is cut, damage inside an
# acknowledged record is refused).
#
# Usage: test_cli.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# The PID of a kvfs serving data directory $1 (for the background mode, whose PID we never see).
daemon_pid() {
	pgrep -f -x -- ".*--data $1 .*" | head -n 1
}

# The newest log segment of a data directory (the layout is the daemon's: update if it changes).
last_segment() {
	find "$1" -maxdepth 1 -type f -name 'log-*' | sort | tail -n 1
}

write_keys() { # MNT N
	local i
	for ((i = 1; i <= $2; i++)); do
		printf 'value %d of the key k%d\n' "$i" "$i" >"$1/k$i"
	done
}

count_good_keys() { # MNT N: prints how many of k1..kN have their value
	local i n=0
	for ((i = 1; i <= $2; i++)); do
		[[ "$(cat "$1/k$i" 2>/dev/null)" == "value $i of the key k$i" ]] && n=$((n + 1))
	done
	echo "$n"
}

test_usage() {
	local rc=0
	"$KVFS_BIN" --help >"$T/help" 2>&1 || rc=$?
	assert_eq "--help exits 0" 0 "$rc"
	check "--help prints the usage" grep -q 'usage:.*MOUNTPOINT' "$T/help"
	check "--help documents --data" grep -q -- '--data' "$T/help"
	rc=0
	"$KVFS_BIN" --version >"$T/version" 2>&1 || rc=$?
	assert_eq "--version exits 0" 0 "$rc"
	check "--version prints the name and a version" grep -qE '^kvfs [0-9]+\.[0-9]+' "$T/version"

	mkdir -p "$T/m"
	expect_exit "an unknown option" 2 "$KVFS_BIN" --no-such-option "$T/m"
	check_grep "an unknown option points to the usage" 'usage:|--help' "$T/out"
	expect_exit "--max-value that is not a number" 2 "$KVFS_BIN" --max-value lots --data "$T/d0" "$T/m"
	expect_exit "--read with a bad mode" 2 "$KVFS_BIN" --read sometimes --data "$T/d0" "$T/m"
	expect_exit "--id 0" 2 "$KVFS_BIN" --id 0 --data "$T/d0" "$T/m"
	expect_exit "no mount point" 2 "$KVFS_BIN" --data "$T/d0"
	expect_exit "two mount points" 2 "$KVFS_BIN" --data "$T/d0" "$T/m" "$T/m2"
	expect_exit "the test hook --test-peer-delay without KVFS_TEST_HOOKS=1" 2 \
		env -u KVFS_TEST_HOOKS "$KVFS_BIN" --test-peer-delay "$T/delay" --data "$T/d0" "$T/m"
	check_grep "the refusal names KVFS_TEST_HOOKS=1" 'test hook.*KVFS_TEST_HOOKS=1' "$T/out"
	check "bad usage mounted nothing" bash -c "! awk '\$2 == \"$T/m\"' /proc/mounts | grep -q ."
}

test_mountpoint_problems() {
	expect_exit "a missing mount point" 3 "$KVFS_BIN" -f --data "$T/d1" "$T/missing"
	check_grep "the message names the mount point" "$T/missing" "$T/out"
	: >"$T/regular"
	expect_exit "a mount point that is a regular file" 3 "$KVFS_BIN" -f --data "$T/d1" "$T/regular"

	kvfs_start a
	expect_exit "a mount point already mounted by another kvfs" 3 \
		"$KVFS_BIN" -f --data "$T/d1" "$(kvfs_mnt a)"
	check "the first node still serves its mount" grep -q '^role: standalone$' "$(kvfs_mnt a)/.status"
	check "the mount point is mounted once only" \
		test "$(awk -v p="$(kvfs_mnt a)" '$2 == p' /proc/mounts | wc -l)" -eq 1

	mkdir -p "$T/other-mnt"
	expect_exit "a data directory in use by another kvfs" 4 \
		"$KVFS_BIN" -f --data "$(kvfs_dir a)/data" "$T/other-mnt"
	check_grep "the message says the data directory is in use" '[Ll]ock|in use|running' "$T/out"
	check "nothing was mounted for the refused node" \
		bash -c "! awk '\$2 == \"$T/other-mnt\"' /proc/mounts | grep -q ."

	: >"$T/data-file"
	expect_exit "a data directory that is a regular file" 4 "$KVFS_BIN" -f --data "$T/data-file" "$T/other-mnt"

	check "kill -9 the node" kvfs_kill9 a
	expect_exit "a dead mount (after kill -9) as mount point" 3 \
		"$KVFS_BIN" -f --data "$(kvfs_dir a)/data" "$(kvfs_mnt a)"
	check_grep "the message says what to do" 'fusermount3? -u|not connected|dead|stale' "$T/out"
	check "fusermount3 -uz the dead mount" kvfs_umount_dead a
	check "then it starts again" kvfs_start a
	check "and stops cleanly" kvfs_stop a
}

test_background_mode() {
	local d="$T/bg" pid rc=0
	mkdir -p "$d/mnt"
	"$KVFS_BIN" --data "$d/data" "$d/mnt" >"$T/bg.out" 2>&1 || rc=$?
	assert_eq "without -f kvfs returns 0 once mounted" 0 "$rc"
	check "the mount is ready when it returns" grep -q '^role: standalone$' "$d/mnt/.status"
	pid=$(daemon_pid "$d/data")
	check "the daemon runs in the background" test -n "$pid"
	echo "${pid:-}" >"$d/pid" # for the watchdog
	check "it logs to DATA/kvfs.log" test -s "$d/data/kvfs.log"
	check "writes work in background mode" bash -c "echo bg > '$d/mnt/x' && test \"\$(cat '$d/mnt/x')\" = bg"
	check "fusermount3 -u unmounts it" fusermount3 -u "$d/mnt"
	if [[ -n "$pid" ]]; then
		check "and the daemon exits" wait_gone "$pid" 10
	fi
}

test_sigterm() {
	local pid
	kvfs_start t
	echo before-term >"$(kvfs_mnt t)/x"
	pid=${KVFS_PID[t]}
	kill -TERM "$pid"
	if lib_wait_exit "$pid" 10; then
		assert_eq "SIGTERM: exit status 0" 0 "$LIB_WAIT_RC"
	else
		lib_fail "SIGTERM: the daemon did not exit within 10 s"
		kill -9 "$pid"
		lib_wait_exit "$pid" 5 || true
	fi
	unset "KVFS_PID[t]"
	check "SIGTERM: the mount is gone" bash -c "! awk '\$2 == \"$(kvfs_mnt t)\"' /proc/mounts | grep -q ."
	check "SIGTERM: start again" kvfs_start t
	assert_eq "SIGTERM: the data is there" before-term "$(cat "$(kvfs_mnt t)/x")"
	check "stop" kvfs_stop t
}

test_max_value() {
	local m
	kvfs_start mv --max-value 1000
	m=$(kvfs_mnt mv)
	check "--max-value 1000: 1000 bytes are fine" bash -c "head -c 1000 /dev/zero > '$m/ok'"
	assert_eq "--max-value 1000: size" 1000 "$(stat -c %s "$m/ok")"
	expect_errno "--max-value 1000: 1001 bytes" EFBIG bash -c "head -c 1001 /dev/zero > '$m/ok'"
	assert_eq "--max-value 1000: the file is unchanged" 1000 "$(stat -c %s "$m/ok")"
	check "stop" kvfs_stop mv
}

test_damaged_log() {
	local m data seg size off
	kvfs_start dmg
	m=$(kvfs_mnt dmg)
	data="$(kvfs_dir dmg)/data"
	write_keys "$m" 60
	check "stop before damaging" kvfs_stop dmg
	seg=$(last_segment "$data")
	if [[ -z "$seg" ]]; then
		lib_fail "no log segment (log-*) in $data: update last_segment() to the layout" \
			"$(ls -la "$data")"
		return
	fi

	# A zero-filled tail (a crash after the file grew but before the data landed).
	cp "$seg" "$T/seg.orig"
	head -c 4096 /dev/zero >>"$seg"
	check "zero-filled tail: the node starts" kvfs_start dmg
	assert_eq "zero-filled tail: every key is there" 60 "$(count_good_keys "$m" 60)"
	echo after >"$m/after-zero-tail"
	check "zero-filled tail: writes work after it" test "$(cat "$m/after-zero-tail")" = after
	echo sacrificial >"$m/sacrificial" # its last record is torn below
	check "stop" kvfs_stop dmg

	# A torn last record: cut the last 3 bytes of the newest segment.
	seg=$(last_segment "$data")
	size=$(stat -c %s "$seg")
	truncate -s $((size - 3)) "$seg"
	check "torn last record: the node starts" kvfs_start dmg
	assert_eq "torn last record: the keys are there" 60 "$(count_good_keys "$m" 60)"
	assert_eq "torn last record: a write made after the zero-filled tail was cut survives" after \
		"$(cat "$m/after-zero-tail" 2>&1)"
	check "torn last record: writes work after it" bash -c "echo x > '$m/after-torn'"
	check "stop" kvfs_stop dmg

	# A flipped byte inside an acknowledged record in the middle of the log must be refused.
	seg=$(last_segment "$data")
	off=$(grep -a -b -o 'value 17 of the key k17' "$seg" | head -n 1 | cut -d: -f1)
	if [[ -z "$off" ]]; then
		lib_fail "cannot find the value of k17 in $seg (values compressed?)"
		return
	fi
	printf 'V' | dd of="$seg" bs=1 seek="$off" conv=notrunc status=none
	mkdir -p "$T/dmg-mnt2"
	expect_exit "a flipped byte inside an acknowledged record: refused" 4 \
		"$KVFS_BIN" -f --data "$data" "$T/dmg-mnt2"
	check_grep "the refusal names the data directory or the segment" "$(basename "$seg")|$data" "$T/out"
	check "nothing was mounted" bash -c "! awk '\$2 == \"$T/dmg-mnt2\"' /proc/mounts | grep -q ."
}

main() {
	test_usage
	test_mountpoint_problems
	test_background_mode
	test_sigterm
	test_max_value
	test_damaged_log
	lib_finish
}

main

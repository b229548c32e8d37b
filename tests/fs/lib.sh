# Small bash library for kvfs filesystem tests: starts and stops real standalone nodes on real
# FUSE mounts inside one temporary directory, counts checks, and cleans up everything it started
# (daemons by PID, mounts, the directory) on every exit, failures and timeouts included.
#
# Use:   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"     # $1 = the kvfs binary
#        kvfs_start a; M=$(kvfs_mnt a); check "it works" touch "$M/x"; ...; lib_finish
#
# Layout: $T/NAME/{data,mnt,kvfs.log}. $T is made with mktemp -d under /tmp.
# Never use a bare `wait`: the watchdog is a background job too. Wait for PIDs.
# Environment: KVFS_TEST_TIMEOUT (seconds, default 240): a watchdog kills the daemons (so that
# nothing stays blocked on a hung mount) and ends the test after that long.

set -euo pipefail
set -E # the ERR trap also fires inside functions

if (($# < 1)); then
	echo "usage: $0 KVFS_BIN [HELPER...]" >&2
	exit 2
fi
KVFS_BIN=$(realpath "$1")
if [[ ! -x "$KVFS_BIN" ]]; then
	echo "$0: $KVFS_BIN is not an executable" >&2
	exit 2
fi

TEST_NAME=$(basename "$0" .sh)
T=$(mktemp -d "/tmp/kvfs-$TEST_NAME.XXXXXX")
export TZ=UTC LC_ALL=C.UTF-8
umask 022

declare -A KVFS_PID=() # NAME -> PID of the running daemon
declare -A KVFS_RC=()  # NAME -> exit status of the last daemon of that name
declare -a LIB_PIDS=() # other background processes the test asked us to reap
declare -a KVFS_ENV=() # NAME=VALUE words added to the environment of the daemons kvfs_start starts
LIB_PASS=0
LIB_FAIL=0
LIB_FAILED=() # descriptions of the failed checks, repeated at the end
LIB_WATCHDOG=
LIB_OUT="$T/.check-output"

# --- output --------------------------------------------------------------------------------------

lib_log() {
	printf '[%s %s] %s\n' "$TEST_NAME" "$(date +%T.%3N)" "$*"
}

# Prints the last lines of every node's log under $T, indented.
lib_show_logs() {
	local lines=${1:-15} log
	for log in "$T"/*/kvfs.log; do
		[[ -s "$log" ]] || continue
		echo "    --- last $lines lines of $log:"
		tail -n "$lines" "$log" | sed 's/^/    | /'
	done
}

# lib_helper_errno DESCRIPTION ERRNO-NAME ARGS...: the test's Python helper ("$PY" "$HELPER"
# ARGS...) exits with status 1 and prints exactly ERRNO-NAME (e.g. ENOENT).
lib_helper_errno() {
	local desc=$1 want=$2 out rc=0
	shift 2
	out=$("$PY" "$HELPER" "$@" 2>&1) || rc=$?
	if ((rc == 1)) && [[ "$out" == "$want" ]]; then
		lib_pass "$desc ($want)"
	else
		lib_fail "$desc" "${HELPER##*/} $*" "expected $want, got exit $rc: $out"
	fi
}

lib_pass() {
	LIB_PASS=$((LIB_PASS + 1))
	printf 'ok   %s\n' "$1"
}

# lib_fail DESCRIPTION [DETAIL...]: counts a failure and prints it with the caller's line, the
# details and the tail of the kvfs logs.
lib_fail() {
	local desc=$1 i line="?"
	shift
	LIB_FAIL=$((LIB_FAIL + 1))
	# Find the first caller outside this library for the line number.
	for ((i = 1; i < ${#BASH_SOURCE[@]}; i++)); do
		if [[ "${BASH_SOURCE[$i]}" != "${BASH_SOURCE[0]}" ]]; then
			line="${BASH_SOURCE[$i]##*/}:${BASH_LINENO[$((i - 1))]}"
			break
		fi
	done
	printf 'FAIL %s   (%s)\n' "$desc" "$line"
	LIB_FAILED+=("$desc   ($line)")
	for i in "$@"; do
		printf '%s\n' "$i" | sed 's/^/    /'
	done
	lib_show_logs 10
}

lib_output_tail() {
	if [[ -s "$LIB_OUT" ]]; then
		echo "output:"
		tail -n 20 "$LIB_OUT" | sed 's/^/  | /'
	else
		echo "output: (none)"
	fi
}

# --- assertions ----------------------------------------------------------------------------------
# Each runs in the current shell (so `check "..." kvfs_stop a` keeps the library's state) with
# stdout and stderr of the command captured.

# check DESCRIPTION CMD...: passes when CMD exits 0.
check() {
	local desc=$1 rc=0
	shift
	"$@" >"$LIB_OUT" 2>&1 || rc=$?
	if ((rc == 0)); then
		lib_pass "$desc"
	else
		lib_fail "$desc" "command: $(printf '%q ' "$@")" "exit status: $rc" "$(lib_output_tail)"
	fi
	return 0
}

# check_fails DESCRIPTION CMD...: passes when CMD exits non-zero.
check_fails() {
	local desc=$1 rc=0
	shift
	"$@" >"$LIB_OUT" 2>&1 || rc=$?
	if ((rc != 0)); then
		lib_pass "$desc"
	else
		lib_fail "$desc" "command: $(printf '%q ' "$@")" "expected failure, got exit status 0" \
			"$(lib_output_tail)"
	fi
	return 0
}

# wait_gone PID SECONDS: waits until process PID has exited; fails after SECONDS.
wait_gone() {
	local deadline=$((SECONDS + $2))
	while kill -0 "$1" 2>/dev/null; do
		((SECONDS < deadline)) || return 1
		sleep 0.05
	done
}

# expect_exit DESCRIPTION STATUS CMD...: passes when CMD exits with STATUS within 10 s (its output
# is left in $T/out for further checks).
expect_exit() {
	local desc=$1 want=$2 rc=0
	shift 2
	timeout -k 2 10 "$@" >"$T/out" 2>&1 || rc=$?
	if ((rc == want)); then
		lib_pass "$desc (exit $want)"
	else
		lib_fail "$desc" "command: $(printf '%q ' "$@")" "exit status $rc, expected $want" \
			"output: $(head -c 2000 "$T/out")"
	fi
}

# expect_error DESCRIPTION MESSAGE CMD...: passes when CMD fails and its output contains MESSAGE
# (the strerror text, e.g. "File too large").
expect_error() {
	local desc=$1 msg=$2 rc=0
	shift 2
	"$@" >"$LIB_OUT" 2>&1 || rc=$?
	if ((rc != 0)) && grep -qF -- "$msg" "$LIB_OUT"; then
		lib_pass "$desc"
	elif ((rc == 0)); then
		lib_fail "$desc" "command: $(printf '%q ' "$@")" \
			"expected failure with \"$msg\", got exit status 0" "$(lib_output_tail)"
	else
		lib_fail "$desc" "command: $(printf '%q ' "$@")" \
			"failed (exit status $rc) but without \"$msg\"" "$(lib_output_tail)"
	fi
	return 0
}

# expect_errno DESCRIPTION ERRNO-NAME CMD...: like expect_error with the strerror text of an errno
# name (EFBIG, ENOTEMPTY, ...), so a test reads like the contract.
expect_errno() {
	local desc=$1 name=$2 msg
	shift 2
	msg=$(lib_strerror "$name")
	expect_error "$desc ($name)" "$msg" "$@"
}

lib_strerror() {
	case "$1" in
	EPERM) echo "Operation not permitted" ;;
	ENOENT) echo "No such file or directory" ;;
	EACCES) echo "Permission denied" ;;
	EEXIST) echo "File exists" ;;
	ENOTDIR) echo "Not a directory" ;;
	EISDIR) echo "Is a directory" ;;
	EFBIG) echo "File too large" ;;
	ENAMETOOLONG) echo "File name too long" ;;
	ENOTEMPTY) echo "Directory not empty" ;;
	ENOTSUP | EOPNOTSUPP) echo "Operation not supported" ;;
	EIO) echo "Input/output error" ;;
	EROFS) echo "Read-only file system" ;;
	*)
		echo "lib_strerror: unknown errno name $1" >&2
		return 1
		;;
	esac
}

# check_grep DESCRIPTION EXTENDED-REGEX FILE: passes when a line of FILE matches; else shows FILE.
check_grep() {
	if grep -qE -- "$2" "$3" 2>/dev/null; then
		lib_pass "$1"
	else
		lib_fail "$1" "no line of $3 matches: $2" "$3 holds:" "$(head -c 3000 "$3" 2>&1)"
	fi
	return 0
}

# assert_eq DESCRIPTION EXPECTED ACTUAL
assert_eq() {
	if [[ "$2" == "$3" ]]; then
		lib_pass "$1"
	else
		lib_fail "$1" "expected: $(printf '%q' "$2")" "actual:   $(printf '%q' "$3")"
	fi
	return 0
}

# assert_match DESCRIPTION EXTENDED-REGEX ACTUAL
assert_match() {
	if [[ "$3" =~ $2 ]]; then
		lib_pass "$1"
	else
		lib_fail "$1" "expected to match: $2" "actual: $(printf '%q' "$3")"
	fi
	return 0
}

# assert_same_file DESCRIPTION EXPECTED-FILE ACTUAL-FILE: byte for byte (cmp).
assert_same_file() {
	local rc=0
	cmp -- "$2" "$3" >"$LIB_OUT" 2>&1 || rc=$?
	if ((rc == 0)); then
		lib_pass "$1"
	else
		lib_fail "$1" "cmp $2 $3 (exit status $rc):" "$(lib_output_tail)" \
			"expected size $(stat -c %s -- "$2" 2>&1), actual size $(stat -c %s -- "$3" 2>&1)"
	fi
	return 0
}

# assert_same_tree DESCRIPTION EXPECTED-DIR ACTUAL-DIR: same names, types and contents (diff -r).
assert_same_tree() {
	local rc=0
	diff -r --no-dereference -- "$2" "$3" >"$LIB_OUT" 2>&1 || rc=$?
	if ((rc == 0)); then
		lib_pass "$1"
	else
		lib_fail "$1" "diff -r $2 $3 (exit status $rc):" "$(lib_output_tail)"
	fi
	return 0
}

# --- nodes ---------------------------------------------------------------------------------------

kvfs_dir() { printf '%s\n' "$T/$1"; }
kvfs_mnt() { printf '%s\n' "$T/$1/mnt"; }
kvfs_log() { printf '%s\n' "$T/$1/kvfs.log"; }

# True when PATH is a mount point in /proc/mounts (works for dead FUSE mounts too, unlike stat).
lib_is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

# Prints the mount points under DIR (deepest first), from /proc/mounts.
lib_mounts_under() {
	awk -v d="$1/" 'substr($2, 1, length(d)) == d { print $2 }' /proc/mounts | sort -r
}

# True while PID is alive and not yet a zombie.
lib_alive() {
	local state
	state=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
	[[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# lib_wait_exit PID SECONDS: waits for PID (a child of this shell) to exit and reaps it; sets
# LIB_WAIT_RC to its exit status. Returns 1 when it is still alive after SECONDS.
lib_wait_exit() {
	local pid=$1 deadline=$((SECONDS + $2))
	while lib_alive "$pid"; do
		if ((SECONDS >= deadline)); then
			return 1
		fi
		sleep 0.05
	done
	LIB_WAIT_RC=0
	wait "$pid" 2>/dev/null || LIB_WAIT_RC=$?
	return 0
}

# kvfs_start NAME [EXTRA-ARGS...]: starts `kvfs -f` on $T/NAME/data at $T/NAME/mnt in the background
# (KVFS_ENV added to its environment) and waits (at most 10 s) until the mount answers
# `cat mnt/.status`. Fails (with the log) when the daemon exits or the mount does not answer.
kvfs_start() {
	local name=$1 dir mnt pid deadline
	shift
	dir=$(kvfs_dir "$name")
	mnt=$(kvfs_mnt "$name")
	if [[ -n "${KVFS_PID[$name]:-}" ]]; then
		echo "kvfs_start: $name is already running (pid ${KVFS_PID[$name]})" >&2
		return 1
	fi
	mkdir -p "$mnt"
	echo "=== $(date +%T.%3N) kvfs -f --data $dir/data $* $mnt" >>"$dir/kvfs.log"
	env "${KVFS_ENV[@]}" "$KVFS_BIN" -f --data "$dir/data" "$@" "$mnt" >>"$dir/kvfs.log" 2>&1 &
	pid=$!
	KVFS_PID[$name]=$pid
	echo "$pid" >"$dir/pid"
	deadline=$((SECONDS + 10))
	while :; do
		if timeout 5 cat "$mnt/.status" >/dev/null 2>&1; then
			return 0
		fi
		if ! lib_alive "$pid"; then
			lib_wait_exit "$pid" 1 || true
			KVFS_RC[$name]=$LIB_WAIT_RC
			unset "KVFS_PID[$name]"
			echo "kvfs_start: $name exited with status ${KVFS_RC[$name]} before its mount" \
				"answered; last lines of $dir/kvfs.log:" >&2
			tail -n 20 "$dir/kvfs.log" >&2
			return 1
		fi
		if ((SECONDS >= deadline)); then
			echo "kvfs_start: $mnt/.status not readable after 10 s; last lines of" \
				"$dir/kvfs.log:" >&2
			tail -n 20 "$dir/kvfs.log" >&2
			return 1
		fi
		sleep 0.05
	done
}

# kvfs_stop NAME [SECONDS]: unmounts with fusermount3 -u (as a user would), waits for the daemon to
# exit (default 10 s), then kills it by PID with SIGKILL and detaches a leftover mount. Returns 0 only
# when the daemon exited by itself with status 0; its status is kept in KVFS_RC[NAME].
kvfs_stop() {
	local name=$1 wait_s=${2:-10} pid mnt ok=1
	mnt=$(kvfs_mnt "$name")
	pid=${KVFS_PID[$name]:-}
	if [[ -z "$pid" ]]; then
		echo "kvfs_stop: $name is not running" >&2
		return 1
	fi
	for _ in 1 2 3 4 5 6 7 8 9 10; do
		lib_is_mounted "$mnt" || break
		fusermount3 -u "$mnt" 2>/dev/null && break
		# Busy: someone (a crashed helper?) still has a file open. Retry for a while.
		sleep 0.2
	done
	if ! lib_wait_exit "$pid" "$wait_s"; then
		echo "kvfs_stop: $name (pid $pid) did not exit within $wait_s s of unmount; SIGKILL" >&2
		kill -9 "$pid" 2>/dev/null || true
		lib_wait_exit "$pid" 5 || true
		ok=0
	fi
	KVFS_RC[$name]=$LIB_WAIT_RC
	unset "KVFS_PID[$name]"
	if lib_is_mounted "$mnt"; then
		echo "kvfs_stop: $mnt still mounted after the daemon exited; fusermount3 -uz" >&2
		fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
		ok=0
	fi
	if ((KVFS_RC[$name] != 0)); then
		echo "kvfs_stop: $name exited with status ${KVFS_RC[$name]}; last lines of its log:" >&2
		tail -n 20 "$(kvfs_log "$name")" >&2
		ok=0
	fi
	((ok))
}

# kvfs_kill9 NAME: SIGKILL by PID, reaped. The mount is left dead (ENOTCONN) on purpose; see
# kvfs_umount_dead.
kvfs_kill9() {
	local name=$1 pid
	pid=${KVFS_PID[$name]:-}
	if [[ -z "$pid" ]]; then
		echo "kvfs_kill9: $name is not running" >&2
		return 1
	fi
	kill -9 "$pid"
	lib_wait_exit "$pid" 10
	KVFS_RC[$name]=$LIB_WAIT_RC
	unset "KVFS_PID[$name]"
	echo "=== $(date +%T.%3N) killed with SIGKILL by the test" >>"$(kvfs_log "$name")"
}

# kvfs_umount_dead NAME: detaches the dead mount left by kvfs_kill9.
kvfs_umount_dead() {
	local mnt
	mnt=$(kvfs_mnt "$1")
	if lib_is_mounted "$mnt"; then
		fusermount3 -uz "$mnt"
	fi
	! lib_is_mounted "$mnt"
}

# kvfs_status_field NAME KEY: prints the value of KEY in NAME's /.status.
kvfs_status_field() {
	awk -v k="$2" -F': ' '$1 == k { sub(/^[^:]*: */, ""); print; exit }' "$(kvfs_mnt "$1")/.status"
}

# lib_track_pid PID: a helper process started in the background that cleanup must kill.
lib_track_pid() {
	LIB_PIDS+=("$1")
}

# --- cleanup -------------------------------------------------------------------------------------

lib_cleanup() {
	local rc=$? name pid mnt
	trap - ERR
	set +e
	if [[ -n "$LIB_WATCHDOG" ]]; then
		kill "$LIB_WATCHDOG" 2>/dev/null
		wait "$LIB_WATCHDOG" 2>/dev/null
	fi
	for pid in "${LIB_PIDS[@]}"; do
		if lib_alive "$pid"; then
			kill -9 "$pid" 2>/dev/null
		fi
		wait "$pid" 2>/dev/null
	done
	for name in "${!KVFS_PID[@]}"; do
		kvfs_stop "$name" 5 >/dev/null 2>&1
	done
	# Every mount under $T, dead or alive (stacked ones too), is detached before anything is
	# removed; a daemon in background mode then exits by itself.
	for _ in 1 2 3 4 5; do
		lib_mounts_under "$T" >"$T/.mounts" || break
		[[ -s "$T/.mounts" ]] || break
		while IFS= read -r mnt; do
			fusermount3 -uz "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null
		done <"$T/.mounts"
	done
	if ((rc != 0 || LIB_FAIL != 0)) && [[ -n "${KVFS_KEEP:-}" ]]; then
		echo "kept $T for inspection (KVFS_KEEP is set)"
	else
		rm -rf --one-file-system -- "$T"
	fi
	exit "$rc"
}

lib_on_err() {
	# Command substitutions inherit the trap (set -E); only the test's own shell reports.
	[[ "$BASHPID" == "$$" ]] || return 0
	echo "ERROR: unexpected failure at ${BASH_SOURCE[1]##*/}:$1: $2 (exit status $3)" >&2
	lib_show_logs 30 >&2
}

lib_on_signal() {
	echo "$TEST_NAME: interrupted by SIG$1" >&2
	exit 1
}

lib_start_watchdog() {
	local timeout=${KVFS_TEST_TIMEOUT:-240} main=$$
	(
		set +eE
		trap - ERR EXIT INT HUP
		trap 'kill "$sp" 2>/dev/null; exit 0' TERM
		sleep "$timeout" &
		sp=$!
		wait "$sp"
		echo "$TEST_NAME: TIMEOUT after $timeout s: killing the daemons" >&2
		for f in "$T"/*/pid; do
			kill -9 "$(cat "$f")" 2>/dev/null
		done
		kill -TERM "$main"
	) </dev/null &
	LIB_WATCHDOG=$!
}

# lib_finish: prints the count and exits non-zero when any check failed (cleanup runs on exit).
lib_finish() {
	echo "$TEST_NAME: $LIB_PASS checks ok, $LIB_FAIL failed"
	if ((LIB_FAIL != 0)); then
		echo "--- logs at the end:"
		lib_show_logs 40
		echo "--- failed checks (details above):"
		printf '  FAIL %s\n' "${LIB_FAILED[@]}"
		echo "$TEST_NAME: $LIB_PASS checks ok, $LIB_FAIL failed"
		exit 1
	fi
	exit 0
}

trap lib_cleanup EXIT
trap 'lib_on_err "$LINENO" "$BASH_COMMAND" "$?"' ERR
trap 'lib_on_signal TERM' TERM
trap 'lib_on_signal INT' INT
trap 'lib_on_signal HUP' HUP
lib_start_watchdog
lib_log "temporary directory $T, kvfs binary $KVFS_BIN"

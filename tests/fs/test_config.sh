#!/usr/bin/env bash
# How kvfs is configured and started, as an operator does it (issue 10): --config files (flags win,
# errors name the file and line), size suffixes, the mount helper form through the real
# /sbin/mount.fuse3 and mount(8), FUSE options checked before anything is created, --version, the
# log file with its rotation (SIGUSR1, SIGHUP), journald priorities, every line in the chosen log
# from the first, and a user other than root (default data directory, allow_other).
#
# Usage: test_config.sh KVFS_BIN
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh" "$@"

# wait_for DESCRIPTION SECONDS CMD...: polls CMD until it succeeds.
wait_for() {
	local desc=$1 deadline=$((SECONDS + $2))
	shift 2
	until "$@" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			lib_fail "$desc" "still false after $2 s: $(printf '%q ' "$@")"
			return 1
		fi
		sleep 0.05
	done
	lib_pass "$desc"
}

# The PID of the background kvfs whose command line ends with mount point $1.
daemon_pid() {
	pgrep -f -x -- "(.*/)?kvfs .*$1( .*)?" | head -n 1
}

# track_daemon NAME MNT: remembers the background daemon of MNT for the watchdog (cleanup unmounts
# everything under $T, which ends it).
track_daemon() {
	local pid
	pid=$(daemon_pid "$2")
	mkdir -p "$T/$1"
	echo "${pid:-}" >"$T/$1/pid"
	echo "${pid:-}"
}

# start_fg NAME ARGS...: `kvfs -f ARGS` in the background with its output in $T/NAME/out, tracked
# like kvfs_start's (kvfs_stop NAME stops it); waits for $T/NAME/mnt/.status.
start_fg() {
	local name=$1 pid
	shift
	mkdir -p "$T/$name/mnt"
	"$KVFS_BIN" -f "$@" >>"$T/$name/out" 2>&1 &
	pid=$!
	KVFS_PID[$name]=$pid
	echo "$pid" >"$T/$name/pid"
	wait_for "$name: the mount answers" 10 cat "$T/$name/mnt/.status"
}

test_version() {
	local rc=0
	"$KVFS_BIN" --version >"$T/version" 2>&1 || rc=$?
	assert_eq "--version exits 0" 0 "$rc"
	assert_eq "--version: first line" "kvfs 0.1.0" "$(head -n 1 "$T/version")"
	check_grep "--version names libfuse's release, not its API number" \
		'libfuse 3\.[0-9]+\.[0-9]+' "$T/version"
	check_grep "--version names libuv, libsodium and ZooKeeper's client" \
		'libuv [0-9]+\.[0-9]+\.[0-9]+, libsodium [0-9]+\.[0-9]+\.[0-9]+, ZooKeeper C client [0-9]+\.' \
		"$T/version"
}

test_bad_fuse_option() {
	mkdir -p "$T/bo/mnt"
	expect_exit "-o bogus_opt is bad usage" 2 "$KVFS_BIN" -o bogus_opt --data "$T/bo/data" "$T/bo/mnt"
	check_grep "the message names the option" 'bogus_opt' "$T/out"
	check "nothing was created for it (no data directory)" test ! -e "$T/bo/data"
	expect_exit "-o bogus_opt in the background too" 2 \
		"$KVFS_BIN" -o allow_other,bogus_opt --data "$T/bo/data" "$T/bo/mnt"
	check "still no data directory" test ! -e "$T/bo/data"
}

test_config_file() {
	local d="$T/cf" m
	mkdir -p "$d/mnt"
	cat >"$d/kvfs.conf" <<-'EOF'
		# node one, standalone
		id = 1

		data = data
		max-value 1K
		log-level = debug
		options = default_permissions
		mountpoint = mnt
	EOF
	chmod 640 "$d/kvfs.conf"
	# The flag comes before --config and still wins; everything else comes from the file.
	start_fg cf --max-value 2K --config "$d/kvfs.conf"
	m="$d/mnt"
	check "the data directory is relative to the file's directory" test -f "$d/data/meta"
	check "--max-value 2K from the command line: 2048 bytes are fine" \
		bash -c "head -c 2048 /dev/zero > '$m/big'"
	expect_errno "--max-value 2K: 2049 bytes are too many" EFBIG \
		bash -c "head -c 2049 /dev/zero > '$m/big'"
	check_grep "log-level = debug from the file" ' debug: ' "$d/out"
	check "the file's FUSE options are used (default_permissions shows in /proc/mounts)" \
		grep -q "$m fuse.kvfs .*default_permissions" /proc/mounts
	check "stop" kvfs_stop cf

	printf 'id = 1\n\n# comment\nzk_hosts = h:2181\n' >"$d/bad.conf"
	expect_exit "an unknown key" 2 "$KVFS_BIN" --config "$d/bad.conf" "$d/mnt"
	check_grep "the error names the file and the line" "^kvfs: $d/bad.conf:4: unknown key 'zk_hosts'" "$T/out"
	printf 'max-value = 3Q\n' >"$d/bad.conf"
	expect_exit "a bad size in the file" 2 "$KVFS_BIN" --config "$d/bad.conf" "$d/mnt"
	check_grep "the error names the line and the key" "bad.conf:1: --max-value: '3Q' is not a size" "$T/out"
	chmod 666 "$d/kvfs.conf"
	expect_exit "a config file writable by everyone" 2 "$KVFS_BIN" --config "$d/kvfs.conf"
	check_grep "the error says why" 'writable by everyone' "$T/out"
	expect_exit "a missing config file" 2 "$KVFS_BIN" --config "$d/none.conf" "$d/mnt"
}

test_sizes() {
	local m
	kvfs_start sz --max-value 1k --segment-bytes 64K --snapshot-bytes 1M
	m=$(kvfs_mnt sz)
	check "--max-value 1k: 1024 bytes are fine" bash -c "head -c 1024 /dev/zero > '$m/v'"
	expect_errno "--max-value 1k: 1025 bytes" EFBIG bash -c "head -c 1025 /dev/zero > '$m/v'"
	check "stop" kvfs_stop sz
	expect_exit "--max-value 2G is out of range" 2 "$KVFS_BIN" --max-value 2G --data "$T/sz2" "$m"
	check_grep "the range is given" 'out of range 1\.\.[0-9]+ bytes' "$T/out"
}

# mount.fuse3 (what mount -t fuse.kvfs and an fstab line run) starts `kvfs SOURCE MNT -o ...`.
test_mount_helper() {
	local d="$T/mh" pid rc=0
	mkdir -p "$d/mnt" "$d/bin"
	ln -s "$KVFS_BIN" "$d/bin/kvfs"
	printf 'data = data\nmax-value = 4K\n' >"$d/node.conf"
	PATH="$d/bin:$PATH" timeout 20 mount.fuse3 mh "$d/mnt" -t fuse.kvfs \
		-o "config=$d/node.conf,_netdev,nofail,id=1" >"$T/out" 2>&1 || rc=$?
	assert_eq "mount.fuse3 returns 0" 0 "$rc"
	pid=$(track_daemon mh "$d/mnt")
	check "the mount is ready when it returns" grep -q '^role: standalone$' "$d/mnt/.status"
	check "nothing was printed on the terminal" test ! -s "$T/out"
	check_grep "the recovery line is in DATA/kvfs.log" 'info: recovered ' "$d/data/kvfs.log"
	check "it is the first line there" bash -c "head -n 1 '$d/data/kvfs.log' | grep -q 'info: recovered '"
	check "the config file's max-value holds" bash -c "head -c 4096 /dev/zero > '$d/mnt/v'"
	expect_errno "and 4097 bytes are refused" EFBIG bash -c "head -c 4097 /dev/zero > '$d/mnt/v'"
	check "umount unmounts it" umount "$d/mnt"
	if [[ -n "$pid" ]]; then
		check "and the daemon exits" wait_gone "$pid" 10
	fi

	rc=0
	PATH="$d/bin:$PATH" timeout 20 mount.fuse3 mh "$d/mnt" -t fuse.kvfs \
		-o "config=$d/node.conf,bogus_opt" >"$T/out" 2>&1 || rc=$?
	assert_eq "mount.fuse3 with a bad option returns kvfs's status 2" 2 "$rc"
	check "nothing is mounted" bash -c "! grep -q ' $d/mnt ' /proc/mounts"
}

# /etc/kvfs/SOURCE.conf is read when no config= is given.
test_source_conf() {
	local d="$T/sc" name="kvfs-test-$$" made_dir=0 pid rc=0
	mkdir -p "$d/mnt" "$d/bin"
	ln -s "$KVFS_BIN" "$d/bin/kvfs"
	if [[ ! -d /etc/kvfs ]]; then
		mkdir /etc/kvfs
		made_dir=1
	fi
	printf 'data = %s\n' "$d/data" >"/etc/kvfs/$name.conf"
	PATH="$d/bin:$PATH" timeout 20 mount.fuse3 "$name" "$d/mnt" -t fuse.kvfs -o _netdev \
		>"$T/out" 2>&1 || rc=$?
	rm -f "/etc/kvfs/$name.conf"
	((made_dir)) && rmdir /etc/kvfs
	assert_eq "mount.fuse3 NAME MNT with /etc/kvfs/NAME.conf returns 0" 0 "$rc"
	pid=$(track_daemon sc "$d/mnt")
	check "it used the file's data directory" test -f "$d/data/meta"
	check "umount" umount "$d/mnt"
	if [[ -n "$pid" ]]; then
		check "and the daemon exits" wait_gone "$pid" 10
	fi
}

# mount(8) runs /sbin/mount.fuse with a fixed PATH: in a private mount namespace, kvfs is bound
# over /usr/local/sbin for the time of the test (nothing is installed).
test_mount_command() {
	local d="$T/mc" rc=0
	mkdir -p "$d/mnt" "$d/bin"
	cp "$KVFS_BIN" "$d/bin/kvfs"
	printf 'data = data\n' >"$d/node.conf"
	cat >"$d/run.sh" <<-EOF
		set -e
		mount --bind "$d/bin" /usr/local/sbin
		mount -t fuse.kvfs mc "$d/mnt" -o "config=$d/node.conf,_netdev,nofail,x-systemd.requires=zk.service,comment=kv"
		pgrep -f -x -- "kvfs mc $d/mnt .*" >"$T/mc/pid" || true
		grep -q '^role: standalone\$' "$d/mnt/.status"
		echo from-mount >"$d/mnt/k"
		grep -q '^from-mount\$' "$d/mnt/k"
		umount "$d/mnt"
	EOF
	timeout 30 unshare --mount --propagation private bash "$d/run.sh" >"$T/out" 2>&1 || rc=$?
	assert_eq "mount -t fuse.kvfs NAME MNT -o config=...,_netdev,x-systemd...: mounted, served, unmounted" \
		0 "$rc"
	if ((rc != 0)); then
		lib_output_tail
	fi
	if [[ -s "$d/pid" ]]; then
		check "the daemon exits after umount" wait_gone "$(cat "$d/pid")" 10
	fi
	check "the node logged into its data directory" test -s "$d/data/kvfs.log"
}

test_log_file_rotation() {
	local d="$T/lf" pid m
	start_fg lf --data "$d/data" --log-file "$d/node.log" "$d/mnt"
	pid=${KVFS_PID[lf]}
	m="$d/mnt"
	assert_eq "--log-file is created 0600" 600 "$(stat -c %a "$d/node.log")"
	check "its first line is the recovery line" \
		bash -c "head -n 1 '$d/node.log' | grep -q 'info: recovered '"
	check "nothing goes to stderr" test ! -s "$d/out"
	mv "$d/node.log" "$d/node.log.1"
	kill -USR1 "$pid"
	wait_for "SIGUSR1: a new log file" 10 grep -q 'reopened the log file' "$d/node.log"
	check "the node still serves" bash -c "echo a > '$m/x' && grep -q '^a$' '$m/x'"
	check "the old file has no line after the rotation" bash -c "! grep -q reopened '$d/node.log.1'"
	mv "$d/node.log" "$d/node.log.2"
	kill -HUP "$pid"
	wait_for "SIGHUP: a new log file" 10 grep -q 'reopened the log file' "$d/node.log"
	check "SIGHUP did not stop the node" bash -c "echo b > '$m/x' && grep -q '^b$' '$m/x'"
	check "stop" kvfs_stop lf
	check_grep "the stop is in the new file" 'stopped cleanly|unmounted' "$d/node.log"
}

test_background_log() {
	local d="$T/bg" pid rc=0
	mkdir -p "$d/mnt"
	"$KVFS_BIN" --data "$d/data" "$d/mnt" >"$T/out" 2>&1 || rc=$?
	assert_eq "background start returns 0" 0 "$rc"
	pid=$(track_daemon bg "$d/mnt")
	check "nothing on the terminal" test ! -s "$T/out"
	check "the first line of DATA/kvfs.log is the recovery line" \
		bash -c "head -n 1 '$d/data/kvfs.log' | grep -q 'info: recovered '"
	check "fusermount3 -u" fusermount3 -u "$d/mnt"
	if [[ -n "$pid" ]]; then
		check "the daemon exits" wait_gone "$pid" 10
	fi
	# A start that fails before the log file is open shows its lines on the terminal.
	mkdir -p "$d/m2"
	: >"$d/data-file"
	expect_exit "a data directory that is a file" 4 "$KVFS_BIN" --data "$d/data-file" "$d/m2"
	check_grep "the reason is on the terminal" 'data-file' "$T/out"
}

test_journal() {
	local d="$T/jn" pid
	mkdir -p "$d/mnt"
	: >"$d/err"
	JOURNAL_STREAM=$(stat -c '%d:%i' "$d/err") "$KVFS_BIN" -f -v --data "$d/data" "$d/mnt" \
		2>>"$d/err" &
	pid=$!
	KVFS_PID[jn]=$pid
	echo "$pid" >"$d/pid"
	wait_for "journal: the mount answers" 10 cat "$d/mnt/.status"
	check_grep "JOURNAL_STREAM names stderr: info lines start with <6>" '^<6>kvfs\[1\] info: recovered ' "$d/err"
	check_grep "debug lines with <7>" '^<7>kvfs\[1\] debug: ' "$d/err"
	check "no line without a priority" bash -c "! grep -v '^<[3467]>kvfs' '$d/err'"
	check "stop" kvfs_stop jn

	: >"$d/err2"
	JOURNAL_STREAM=1:2 "$KVFS_BIN" -f --log-level warn --data "$d/data" "$d/mnt" 2>>"$d/err2" &
	pid=$!
	KVFS_PID[jn]=$pid
	wait_for "journal: the mount answers again" 10 cat "$d/mnt/.status"
	echo "=== marker" >>"$d/err2"
	kill -TERM "$pid"
	lib_wait_exit "$pid" 10 || true
	unset "KVFS_PID[jn]"
	check "another JOURNAL_STREAM, --log-level warn: no <N> prefix, no info line" \
		bash -c "! grep -qE '^<[0-9]>| info: ' '$d/err2'"
}

# A user other than root: the default data directory is under HOME; allow_other without
# user_allow_other is refused before anything is created, with the right reason.
test_non_root() {
	local d="$T/nr" rc=0 home
	chmod 711 "$T"
	mkdir -p "$d/mnt" "$d/home"
	chown nobody "$d/mnt" "$d/home"
	home="$d/home"
	if grep -qx '[[:space:]]*user_allow_other[[:space:]]*' /etc/fuse.conf 2>/dev/null; then
		lib_log "skipping the allow_other check: /etc/fuse.conf has user_allow_other"
	else
		expect_exit "allow_other as nobody without user_allow_other" 2 \
			setpriv --reuid=nobody --regid=nogroup --clear-groups \
			env -u XDG_DATA_HOME HOME="$home" "$KVFS_BIN" -f -o allow_other "$d/mnt"
		check_grep "the message names user_allow_other in /etc/fuse.conf" \
			'user_allow_other.*/etc/fuse.conf|/etc/fuse.conf.*user_allow_other' "$T/out"
		check "the message does not blame /dev/fuse" bash -c "! grep -q /dev/fuse '$T/out'"
		check "nothing was created" test ! -e "$home/.local"
	fi
	setpriv --reuid=nobody --regid=nogroup --clear-groups env -u XDG_DATA_HOME HOME="$home" \
		timeout -k 2 10 "$KVFS_BIN" -f "$d/mnt" >"$T/out" 2>&1 &
	rc=$!
	echo "$rc" >"$d/pid"
	sleep 0.2
	for _ in $(seq 1 100); do
		lib_is_mounted "$d/mnt" && break
		lib_alive "$rc" || break
		sleep 0.05
	done
	check "the default data directory is HOME/.local/share/kvfs/default/1" \
		test -f "$home/.local/share/kvfs/default/1/meta"
	if lib_is_mounted "$d/mnt"; then
		fusermount3 -u "$d/mnt" || true
	else
		check_grep "if the mount fails, the reason is given" 'cannot mount .*: ' "$T/out"
	fi
	lib_wait_exit "$rc" 10 || kill -9 "$rc"
}

main() {
	test_version
	test_bad_fuse_option
	test_config_file
	test_sizes
	test_mount_helper
	test_source_conf
	test_mount_command
	test_log_file_rotation
	test_background_log
	test_journal
	test_non_root
	lib_finish
}

main

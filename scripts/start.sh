#!/usr/bin/env bash
# Try kvfs: builds it if needed, starts a local one-server ZooKeeper and a cluster of three nodes
# mounted at ./mnt/1, ./mnt/2 and ./mnt/3, prints what to try (who leads, write on the leader,
# kill it and watch another take over), and stays in the foreground until Ctrl-C, which stops
# everything cleanly (nodes first, then ZooKeeper).
#
#   scripts/start.sh              install dependencies, build, start ZooKeeper and 3 nodes, wait
#   scripts/start.sh standalone   one node without ZooKeeper (a cluster of one) at ./mnt/1
#   scripts/start.sh stop         stop what a running start.sh started (from another terminal)
#   scripts/start.sh status       who leads: each node's /.status, and ZooKeeper's state
#   scripts/start.sh restart N    start node N again after you stopped or killed it
#
# Layout: ./run/zk/{zoo.cfg,data/,zookeeper.log,zk.pid} (ZooKeeper on 127.0.0.1:2181, or the next
# free port), ./run/N/{data/,data/kvfs.log,kvfs.pid} and ./mnt/N for node N of the cluster "demo",
# ./run/standalone/... for the standalone node (mounted at ./mnt/1), ./run/secret and ./run/zk-auth
# (the peers' secret and the nodes' ZooKeeper credentials, mode 600). Start afresh: rm -rf run.
# Everything is started in its own session (Ctrl-C reaches only this script) and stopped by PID.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

KVFS=${KVFS_BIN:-"$ROOT/build/fs/kvfs"} # KVFS_BIN: run another binary (and skip the build)
RUN=${KVFS_RUN_DIR:-"$ROOT/run"} # KVFS_RUN_DIR, KVFS_MNT_DIR: elsewhere than ./run and ./mnt
# KVFS_PEER_SECURITY=insecure: nodes with --insecure instead of the secret (benchmarks only)
MNT=${KVFS_MNT_DIR:-"$ROOT/mnt"}
PORT_BASE=${KVFS_PORT_BASE:-7000} # node N listens on 127.0.0.1:PORT_BASE+N
CLUSTER_NODES=(1 2 3)
ALL_NODES=(standalone 1 2 3)
CLUSTER=demo
STOP_TIMEOUT=10
ZK_DIR="$RUN/zk"
SECRET="$RUN/secret" # --secret-file of the three nodes
ZK_AUTH="$RUN/zk-auth" # --zk-auth-file of the three nodes: their znodes are theirs alone
ZK_JAR=/usr/share/java/zookeeper.jar
EXIT_CLUSTER_MISMATCH=5

# --- layout --------------------------------------------------------------------------------------
# A node is "standalone" or a cluster node id.

node_run() { printf '%s\n' "$RUN/$1"; }
node_data() { printf '%s\n' "$RUN/$1/data"; }
node_mnt() { if [[ "$1" == standalone ]]; then printf '%s\n' "$MNT/1"; else printf '%s\n' "$MNT/$1"; fi; }
node_pidfile() { printf '%s\n' "$RUN/$1/kvfs.pid"; }
node_log() { printf '%s\n' "$RUN/$1/data/kvfs.log"; }
node_name() { if [[ "$1" == standalone ]]; then echo "the standalone node"; else echo "node $1"; fi; }

# node_args NODE: the options of NODE besides --data and the mount point.
node_args() {
	if [[ "$1" == standalone ]]; then
		printf '%s\n' --id 1
	else
		printf '%s\n' --zk "127.0.0.1:$(zk_port)" --cluster "$CLUSTER" --cluster-size 3 \
			--id "$1" --listen "127.0.0.1:$((PORT_BASE + $1))"
		if [[ "${KVFS_PEER_SECURITY:-encrypted}" == insecure ]]; then
			printf '%s\n' --insecure
		else
			printf '%s\n' --secret-file "$SECRET"
		fi
		# A ./run made before start.sh made credentials has none: its nodes run without
		# (`restart N` must not lock the others out of their own znodes).
		if [[ -f "$ZK_AUTH" ]]; then
			printf '%s\n' --zk-auth-file "$ZK_AUTH"
		fi
	fi
}

# make_secret: the peers' shared secret (README, Security), made once: 32 random bytes, mode 600;
# and the nodes' ZooKeeper credentials, kvfs:<random>, mode 600.
make_secret() {
	if [[ ! -s "$SECRET" ]]; then
		(umask 077 && head -c 32 /dev/urandom | base64 >"$SECRET")
		echo "made the cluster's peer secret: $SECRET (mode 600)"
	fi
	# The ZooKeeper digest credentials, user:password: only the nodes may read or change the
	# cluster's znodes (the election, /config).
	if [[ ! -s "$ZK_AUTH" ]]; then
		(umask 077 && printf 'kvfs:%s\n' "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')" >"$ZK_AUTH")
		echo "made the cluster's ZooKeeper credentials: $ZK_AUTH (mode 600)"
	fi
}

is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

# pid_of PIDFILE PATTERN: prints the PID in PIDFILE if that process runs and its command line
# contains PATTERN (so that a stale PID file never makes us signal an unrelated process).
pid_of() {
	local pid
	[[ -f "$1" ]] || return 1
	pid=$(cat "$1")
	[[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
	tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2" || return 1
	printf '%s\n' "$pid"
}

node_pid() { pid_of "$(node_pidfile "$1")" "$(node_mnt "$1")"; }

# --- ZooKeeper -----------------------------------------------------------------------------------

zk_pid() { pid_of "$ZK_DIR/zk.pid" "$ZK_DIR/zoo.cfg"; }
zk_port() { sed -n 's/^clientPort=//p' "$ZK_DIR/zoo.cfg"; }

# zk_4lw PORT WORD: a ZooKeeper four-letter word (ruok, srvr, ...) and its answer.
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
zk_4lw() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf %s "$2" >&3 && cat <&3' _ "$1" "$2" \
		2>/dev/null
}

# listening PORT: true when something accepts connections on 127.0.0.1:PORT.
# shellcheck disable=SC2016 # $1 is the inner shell's
listening() {
	timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

zk_start() {
	local port=2181 pid deadline
	if pid=$(zk_pid); then
		echo "ZooKeeper is already running (pid $pid, port $(zk_port)); stop it with: $0 stop" >&2
		return 1
	fi
	if [[ ! -f "$ZK_JAR" ]] || ! command -v java >/dev/null; then
		echo "ZooKeeper or java is missing: run scripts/install-deps.sh" >&2
		return 1
	fi
	while listening "$port"; do
		port=$((port + 1))
		if ((port > 2299)); then
			echo "no free port for ZooKeeper between 2181 and 2299" >&2
			return 1
		fi
	done
	mkdir -p "$ZK_DIR/data"
	echo 1 >"$ZK_DIR/data/myid"
	cat >"$ZK_DIR/zoo.cfg" <<EOF
# Written by scripts/start.sh: one ZooKeeper server for trying kvfs.
tickTime=1000
dataDir=$ZK_DIR/data
clientPort=$port
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
EOF
	cat >"$ZK_DIR/log4j.properties" <<'EOF'
log4j.rootLogger=INFO, CONSOLE
log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender
log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout
log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p [%t:%C{1}@%L] - %m%n
EOF
	local cp=$ZK_JAR j
	for j in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do
		[[ -f "$j" ]] && cp+=":$j"
	done
	echo "=== $(date '+%F %T') start.sh: ZooKeeper on 127.0.0.1:$port" >>"$ZK_DIR/zookeeper.log"
	# shellcheck disable=SC2086 # JVMFLAGS is a list of flags
	setsid java -Xmx128m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.net.preferIPv4Stack=true \
		-Dzookeeper.admin.enableServer=false -Dzookeeper.log.dir="$ZK_DIR" \
		-Dlog4j.configuration="file:$ZK_DIR/log4j.properties" ${JVMFLAGS:-} \
		-cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZK_DIR/zoo.cfg" \
		>>"$ZK_DIR/zookeeper.log" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$ZK_DIR/zk.pid"
	deadline=$((SECONDS + 30))
	until [[ "$(zk_4lw "$port" ruok)" == imok ]] && zk_4lw "$port" srvr | grep -q '^Mode:'; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			echo "ZooKeeper did not come up; the end of $ZK_DIR/zookeeper.log:" >&2
			tail -n 20 "$ZK_DIR/zookeeper.log" >&2
			zk_stop >/dev/null 2>&1 || true
			return 1
		fi
		sleep 0.2
	done
	disown "$pid"
	echo "ZooKeeper: pid $pid, 127.0.0.1:$port, data and log in ${ZK_DIR#"$ROOT"/}"
}

# zk_stop: SIGTERM by PID, SIGKILL after STOP_TIMEOUT seconds.
zk_stop() {
	local pid i
	pid=$(zk_pid) || return 0
	kill "$pid" 2>/dev/null || true
	for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		echo "ZooKeeper (pid $pid) did not exit within $STOP_TIMEOUT s; killing it" >&2
		kill -9 "$pid" 2>/dev/null || true
	fi
	wait "$pid" 2>/dev/null || true
	rm -f "$ZK_DIR/zk.pid"
	echo "ZooKeeper stopped"
}

# --- nodes ---------------------------------------------------------------------------------------

build() {
	[[ -z "${KVFS_BIN:-}" ]] || return 0
	./scripts/install-deps.sh
	if [[ ! -f build/build.ninja ]]; then
		meson setup build --buildtype=debugoptimized
	fi
	ninja -C build
}

start_node() {
	local n=$1 mnt data pid deadline rc
	local -a args
	mnt=$(node_mnt "$n")
	data=$(node_data "$n")
	mapfile -t args < <(node_args "$n")
	if pid=$(node_pid "$n"); then
		echo "$(node_name "$n") is already running (pid $pid, mounted at $mnt); stop it with: $0 stop" >&2
		return 1
	fi
	mkdir -p "$data" "$(dirname "$mnt")"
	if is_mounted "$mnt"; then
		# A node that crashed leaves a dead mount ("Transport endpoint is not connected").
		echo "$(node_name "$n"): detaching the stale mount at $mnt"
		fusermount3 -uz "$mnt"
	fi
	mkdir -p "$mnt"
	echo "=== $(date '+%F %T') start.sh: kvfs ${args[*]} --data $data $mnt" >>"$(node_log "$n")"
	# Its own session: Ctrl-C reaches this script, which then stops everything in order.
	setsid "$KVFS" -f "${args[@]}" --data "$data" "$mnt" >>"$(node_log "$n")" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$(node_pidfile "$n")"
	deadline=$((SECONDS + 15))
	until timeout 5 cat "$mnt/.status" >/dev/null 2>&1; do
		if ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); then
			rc=0
			kill -0 "$pid" 2>/dev/null || wait "$pid" 2>/dev/null || rc=$?
			echo "$(node_name "$n") did not come up; the end of $(node_log "$n"):" >&2
			tail -n 20 "$(node_log "$n")" >&2
			if ((rc == EXIT_CLUSTER_MISMATCH)) && grep -q NOAUTH "$(node_log "$n")"; then
				echo "ZooKeeper's data in $ZK_DIR protects the cluster's znodes for other" \
					"credentials than $ZK_AUTH (was it made anew?): start afresh with: rm -rf run" >&2
			elif ((rc == EXIT_CLUSTER_MISMATCH)); then
				echo "$data belongs to another cluster (an earlier standalone run, or ZooKeeper's" \
					"data in $ZK_DIR was removed): start afresh with: rm -rf run" >&2
			fi
			stop_node "$n" >/dev/null 2>&1 || true
			return 1
		fi
		sleep 0.1
	done
	disown "$pid" # no "Killed" from bash when you kill -9 it to watch a takeover
	echo "$(node_name "$n"): pid $pid, mounted at ${mnt#"$ROOT"/}, log in ${data#"$ROOT"/}/kvfs.log"
}

# stop_node NODE: unmounts (the daemon then exits by itself, handing over if it leads), waits, and
# kills it by PID if it has not exited after STOP_TIMEOUT seconds.
stop_node() {
	local n=$1 mnt pid i
	mnt=$(node_mnt "$n")
	pid=$(node_pid "$n") || pid=
	if [[ -z "$pid" ]]; then
		# Not running. A dead mount it left behind goes; a live one is another node's (the
		# standalone node and node 1 share ./mnt/1).
		if is_mounted "$mnt" && ! timeout 2 stat -- "$mnt" >/dev/null 2>&1; then
			fusermount3 -uz "$mnt" 2>/dev/null || true
			echo "$(node_name "$n"): detached the dead mount at $mnt"
		fi
		rm -f "$(node_pidfile "$n")"
		return 0
	fi
	if is_mounted "$mnt"; then
		fusermount3 -u "$mnt" 2>/dev/null || {
			echo "$(node_name "$n"): $mnt is busy (a shell or program is using it); retrying" >&2
			for i in 1 2 3 4 5; do
				sleep 1
				fusermount3 -u "$mnt" 2>/dev/null && break
			done
		}
	fi
	if [[ -n "$pid" ]]; then
		for ((i = 0; i < STOP_TIMEOUT * 10; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
		if kill -0 "$pid" 2>/dev/null; then
			echo "$(node_name "$n") (pid $pid) did not exit within $STOP_TIMEOUT s; killing it" >&2
			kill -9 "$pid" 2>/dev/null || true
		fi
		wait "$pid" 2>/dev/null || true
	fi
	if is_mounted "$mnt"; then
		fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	rm -f "$(node_pidfile "$n")"
	echo "$(node_name "$n") stopped"
}

# stop_all: every node (cluster or standalone), then ZooKeeper.
stop_all() {
	local n
	mkdir -p "$RUN"
	touch "$RUN/stopping" # tells a waiting start.sh that nodes go away on purpose
	for n in "${ALL_NODES[@]}"; do
		stop_node "$n"
	done
	zk_stop
	rm -f "$RUN/stopping"
}

# status_field NODE KEY: the value of KEY in NODE's /.status (empty when it does not answer).
# shellcheck disable=SC2016 # awk's $1 and $2
status_field() {
	timeout 2 awk -F': ' -v k="$2" '$1 == k { print $2; exit }' "$(node_mnt "$1")/.status" 2>/dev/null
}

# leader: prints the id that every running cluster node names as leader, if they agree.
leader() {
	local n l all=
	for n in "${CLUSTER_NODES[@]}"; do
		node_pid "$n" >/dev/null || continue
		l=$(status_field "$n" leader)
		[[ -n "$l" && "$l" != none ]] || return 1
		[[ -z "$all" || "$all" == "$l" ]] || return 1
		all=$l
	done
	[[ -n "$all" ]] && printf '%s\n' "$all"
}

# --- commands ------------------------------------------------------------------------------------

# wait_foreground: until Ctrl-C, or until ZooKeeper / the standalone node is gone (`start.sh
# stop` from another terminal). Reports nodes that exit meanwhile: in the cluster demo killing
# a node is part of the fun, so that alone does not end anything.
wait_foreground() {
	local mode=$1 n pid
	local -A known=()
	trap 'echo; stop_all; exit 0' INT TERM
	while :; do
		if [[ "$mode" == cluster ]]; then
			zk_pid >/dev/null || break
		else
			node_pid standalone >/dev/null || break
		fi
		for n in "${CLUSTER_NODES[@]}"; do
			if pid=$(node_pid "$n"); then
				known[$n]=$pid
			elif [[ -n "${known[$n]:-}" && ! -e "$RUN/stopping" ]]; then
				echo "node $n (pid ${known[$n]}) exited; the others carry on." \
					"Start it again with: $0 restart $n"
				unset "known[$n]"
			fi
		done
		sleep 1
	done
	trap - INT TERM
	echo "stopped from elsewhere; cleaning up"
	stop_all
}

cmd_start() {
	local n l
	build
	for n in "${ALL_NODES[@]}"; do
		if node_pid "$n" >/dev/null; then
			echo "kvfs is already running ($(node_name "$n")); stop it with: $0 stop" >&2
			return 1
		fi
	done
	rm -f "$RUN/stopping"
	mkdir -p "$RUN"
	printf '%s\n' "$KVFS" >"$RUN/kvfs-bin" # for `restart N` from another terminal
	make_secret
	zk_start || return 1
	for n in "${CLUSTER_NODES[@]}"; do
		if ! start_node "$n"; then
			stop_all
			return 1
		fi
	done
	for _ in $(seq 50); do
		l=$(leader) && break
		sleep 0.2
	done
	if [[ -z "$l" ]]; then
		echo "(no leader yet: see $0 status and the logs in run/N/data/kvfs.log)"
		l=1
	fi
	local f=$((l % 3 + 1))
	cat <<EOF

kvfs is running: ZooKeeper on 127.0.0.1:$(zk_port) and three nodes of the cluster "$CLUSTER".
Node $l leads. Try, in another terminal:

  cat mnt/1/.status                 # role, leader, epoch, zk, ...
  grep -H '^role' mnt/*/.status     # who leads
  $0 status

  # Write on any node's mount; every node reads it (followers forward writes to the leader):
  echo hello > mnt/$f/greeting && cat mnt/1/greeting mnt/2/greeting mnt/3/greeting
  grep -E '^(commit_index|applied_index|lag)|^peer' mnt/$f/.status

  # Watch the roles and the epoch while you stop or crash the leader:
  watch -n 0.5 "grep -H '^role\\|^epoch' mnt/*/.status"
  kill \$(cat run/$l/kvfs.pid)        # SIGTERM: it hands over, another leads within a second
  kill -9 \$(cat run/$l/kvfs.pid)     # crash: its port refuses, another leads within a second
  $0 restart $l                      # it comes back as a follower and catches up

  # Health, metrics and a consistent backup of the whole store:
  build/fs/kvfs health mnt/$f && echo "node $f can take writes now"
  grep '^kvfs_writes_total\|^kvfs_role' mnt/$f/.metrics
  cp mnt/$f/.kvfs-backup.tar backup.tar && tar -tvf backup.tar

Press Ctrl-C here (or run: $0 stop) to stop the nodes and ZooKeeper.
EOF
	wait_foreground cluster
}

cmd_standalone() {
	build
	if node_pid standalone >/dev/null || zk_pid >/dev/null; then
		echo "kvfs is already running; stop it with: $0 stop" >&2
		return 1
	fi
	start_node standalone || return 1
	cat <<EOF

kvfs is running (standalone: one node, no ZooKeeper). Try, in another terminal:

  echo hello > mnt/1/greeting
  cat mnt/1/greeting
  ls -la mnt/1
  mkdir mnt/1/dir && mv mnt/1/greeting mnt/1/dir/
  cat mnt/1/.status

Press Ctrl-C here (or run: $0 stop) to unmount and stop.
EOF
	wait_foreground standalone
}

cmd_restart() {
	local n=${1:-}
	if [[ ! "$n" =~ ^[123]$ ]]; then
		echo "usage: $0 restart 1|2|3" >&2
		return 2
	fi
	if ! zk_pid >/dev/null; then
		echo "ZooKeeper is not running: start everything with $0" >&2
		return 1
	fi
	if [[ -z "${KVFS_BIN:-}" && -f "$RUN/kvfs-bin" ]]; then
		KVFS=$(cat "$RUN/kvfs-bin") # the binary the running cluster was started with
	fi
	stop_node "$n" >/dev/null
	start_node "$n"
}

cmd_status() {
	local n pid port
	if pid=$(zk_pid); then
		port=$(zk_port)
		echo "--- ZooKeeper: pid $pid, 127.0.0.1:$port, $(zk_4lw "$port" srvr | grep '^Mode:' || echo 'not serving')"
	fi
	for n in "${ALL_NODES[@]}"; do
		if pid=$(node_pid "$n"); then
			echo "--- $(node_name "$n") (pid $pid, ${MNT}/${n/standalone/1})"
			timeout 2 cat "$(node_mnt "$n")/.status" 2>/dev/null || echo "(/.status does not answer)"
		elif [[ "$n" != standalone ]] && zk_pid >/dev/null; then
			echo "--- $(node_name "$n"): not running (start it with: $0 restart $n)"
		fi
	done
	if ! zk_pid >/dev/null && ! node_pid standalone >/dev/null; then
		echo "kvfs is not running (start it with: $0)"
	fi
	if l=$(leader); then
		echo "--- node $l leads"
	fi
}

case "${1:-start}" in
start) cmd_start ;;
standalone) cmd_standalone ;;
stop) stop_all ;;
status) cmd_status ;;
restart) cmd_restart "${2:-}" ;;
-h | --help | help)
	sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
	;;
*)
	echo "usage: $0 [start|standalone|stop|status|restart N]" >&2
	exit 2
	;;
esac

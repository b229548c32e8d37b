#!/usr/bin/env bash
# Side-by-side benchmark (issue 14): kvfs beside what bounds it and beside its peers, measured in
# one run on this machine with every data directory on the same disk, printed as one markdown
# table (| workload | figure | target | ratio |) with the issue's targets as ratios. In order:
# the disk's one-at-a-time 128-byte append+fdatasync rate and one loopback TCP round trip; the
# thinnest FUSE filesystem (tests/bench/bench_nullfs.c: in memory, multi-threaded loop); three
# ZooKeeper servers (Debian's package, C client, async setData at 1, 16 and 256 outstanding);
# three etcd members (Debian's etcd-server, 64 HTTP/1.1 keep-alive clients of the v3 gateway);
# kvfs, three nodes (scripts/start.sh): puts with 1, 16 and 48 writers spread over the three
# mounts, one writer on the leader's and on a follower's mount, gets with 1 and 16 threads on the
# leader's mount, and `ls -l` of 10,000 entries on a follower's mount and on tmpfs. Values are
# 100 bytes; a put is open(O_CREAT|O_TRUNC) + write + close. Each system runs alone: started,
# measured, stopped. Progress goes to stderr, the table to stdout. Stops and removes everything it
# started (by PID), also when interrupted. Needs root (FUSE and tmpfs mounts, apt-get of
# etcd-server when it is missing). About 3 to 4 minutes at the default 5 s per run.
#
# Usage: scripts/bench_compare.sh [--scale] [SECONDS-PER-RUN (default 5)]
#   --scale                 also the rows of scripts/bench_scale.sh (minutes), verbatim
#   KVFS_BUILD=DIR          the kvfs measured is DIR/fs/kvfs (default ./build, built here)
#   KVFS_BUILD_BEFORE=DIR   also measure DIR/fs/kvfs: kvfs rows and ratios "before" and "after"
#   KVFS_BENCH_DIR=DIR      where the data directories go (default ./run)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

SECONDS_PER_RUN=5
SCALE=0
LS_ENTRIES=10000
BIN="$ROOT/build/tests/bench"
ZK_JAR=/usr/share/java/zookeeper.jar
ZK_PORT=18310   # ZooKeeper server i: client 18310+i, quorum 18320+i, election 18330+i
ETCD_PORT=18410 # etcd member i: client 18410+i, peer 18420+i
KVFS_PORT=18200 # kvfs node i: 18200+i (scripts/start.sh's own ZooKeeper: 2181 or the next free)
W=
PIDS=()      # ZooKeeper servers, etcd members, bench_nullfs: stopped by PID
START_PID=   # a running scripts/start.sh
KVFS_DIR=    # its run and mount directories
declare -A ROWS # table rows by section (SECTIONS), one a line: measured in another order
SECTIONS=(anchors nullfs zk etcd kvfs ratios scale)
SECTION=anchors # the section that row() adds to
declare -A F  # figures by name, for the ratios

say() { echo "bench_compare: $*" >&2; }

is_mounted() {
	awk -v p="$1" '$2 == p { found = 1 } END { exit !found }' /proc/mounts
}

# listening PORT: true when something accepts connections on 127.0.0.1:PORT.
# shellcheck disable=SC2016 # $1 is the inner shell's
listening() {
	timeout 1 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1"' _ "$1" 2>/dev/null
}

# wait_serving WHAT LOG CHECK ARGS...: waits until CHECK ARGS succeeds, 60 s at most; then ends
# the run with the end of LOG.
wait_serving() {
	local what=$1 log=$2 deadline=$((SECONDS + 60))
	shift 2
	until "$@"; do
		if ((SECONDS >= deadline)); then
			say "$what is not serving after 60 s; the end of its log:"
			tail -n 20 "$log" >&2
			exit 1
		fi
		sleep 0.2
	done
}

# ask PORT TEXT: sends TEXT to 127.0.0.1:PORT and prints the answer (2 s at most).
# shellcheck disable=SC2016 # $1 and $2 are the inner shell's
ask() {
	timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" && printf "%b" "$2" >&3 && cat <&3' _ \
		"$1" "$2" 2>/dev/null || true
}

# stop_pid PID: SIGTERM, SIGKILL after 10 s, and reaps it.
stop_pid() {
	local i
	kill "$1" 2>/dev/null || return 0
	for ((i = 0; i < 100; i++)); do
		kill -0 "$1" 2>/dev/null || break
		sleep 0.1
	done
	kill -9 "$1" 2>/dev/null || true
	wait "$1" 2>/dev/null || true
}

stop_pids() {
	local p
	for p in "${PIDS[@]}"; do
		stop_pid "$p"
	done
	PIDS=()
}

kvfs_stop() {
	[[ -n "$START_PID" ]] || return 0
	KVFS_RUN_DIR="$KVFS_DIR/run" KVFS_MNT_DIR="$KVFS_DIR/mnt" scripts/start.sh stop >/dev/null 2>&1 ||
		true
	wait "$START_PID" 2>/dev/null || true
	START_PID=
}

cleanup() {
	set +e
	[[ -n "$W" ]] || return 0
	kvfs_stop
	is_mounted "$W/nullfs" && fusermount3 -u "$W/nullfs"
	stop_pids
	is_mounted "$W/nullfs" && fusermount3 -uz "$W/nullfs"
	is_mounted "$W/tmpfs" && umount "$W/tmpfs"
	rm -rf --one-file-system "$W"
}

# field NAME LINE: the value of NAME=... in a benchmark program's output line
field() { sed -n "s/.*\\b$1=\\([0-9.]*\\).*/\\1/p" <<<"$2"; }

# commas N: N rounded, with thousands separators
commas() {
	local n r=
	n=$(printf '%.0f' "$1")
	while ((${#n} > 3)); do
		r=",${n: -3}$r"
		n=${n:0:${#n}-3}
	done
	printf '%s\n' "$n$r"
}

# ms MICROSECONDS: in milliseconds, two decimals
ms() { awk -v u="$1" 'BEGIN { printf "%.2f ms", u / 1000 }'; }

row() { ROWS[$SECTION]+="| $1 | $2 | $3 | $4 |"$'\n'; }

# ratio_row WORKLOAD NUM DEN OP TARGET: a ratio NUM/DEN against "OP TARGET" (OP is >= or <=).
ratio_row() {
	local r verdict op="≥"
	[[ "$4" == "<=" ]] && op="≤"
	if [[ -z "$2" || -z "$3" ]]; then
		row "$1" "not measured" "$op $5" -
		return
	fi
	r=$(awk -v a="$2" -v b="$3" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')
	verdict=$(awk -v r="$r" -v t="$5" -v op="$4" \
		'BEGIN { print ((op == ">=" ? r >= t : r <= t) ? "met" : "missed") }')
	row "$1" "$2 / $3" "$op $5" "$r ($verdict)"
}

# smallfile ARGS...: one bench_smallfile run, bounded in time.
smallfile() { timeout $((4 * SECONDS_PER_RUN + 120)) "$BIN/bench_smallfile" "$@"; }

# make_entries DIR N: N files of 100 bytes in DIR, by 16 threads.
make_entries() {
	python3 - "$1" "$2" <<'PY'
import sys, threading
d, n, t = sys.argv[1], int(sys.argv[2]), 16
def put(k):
    for i in range(k, n, t):
        with open("%s/e%05d" % (d, i), "wb") as f:
            f.write(b"v" * 100)
ths = [threading.Thread(target=put, args=(k,)) for k in range(t)]
for th in ths: th.start()
for th in ths: th.join()
PY
}

# time_ls DIR: the wall time of `ls -l DIR >/dev/null`, in µs.
time_ls() {
	local t0 t1
	t0=$EPOCHREALTIME
	ls -l "$1" >/dev/null
	t1=$EPOCHREALTIME
	awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.0f\n", (b - a) * 1e6 }'
}

# --- the anchors ---------------------------------------------------------------------------------

bench_anchors() {
	local line
	say "disk and loopback"
	SECTION=anchors
	line=$("$BIN/bench_smallfile" --append-fsync "$W/fsync-probe" --seconds "$SECONDS_PER_RUN")
	rm -f "$W/fsync-probe"
	F[fsync]=$(field append_fsync_per_s "$line")
	F[fsync_us]=$(field fsync_p50_us "$line")
	row "disk, one 128-byte append+fdatasync at a time" \
		"$(commas "${F[fsync]}")/s (p50 ${F[fsync_us]} µs)" - -
	line=$("$BIN/bench_rtt")
	F[rtt_us]=$(field rtt_p50_us "$line")
	row "loopback TCP round trip, 128 bytes (median)" "${F[rtt_us]} µs" - -
}

# --- the thinnest FUSE filesystem ----------------------------------------------------------------

bench_nullfs() {
	local line i t
	say "thinnest FUSE filesystem"
	SECTION=nullfs
	mkdir -p "$W/nullfs"
	"$BIN/bench_nullfs" "$W/nullfs" 2>"$W/nullfs.log" &
	PIDS+=($!)
	for ((i = 0; i < 100; i++)); do
		is_mounted "$W/nullfs" && break
		sleep 0.1
	done
	is_mounted "$W/nullfs" || { cat "$W/nullfs.log" >&2; exit 1; }
	for t in 16 1; do
		line=$(smallfile "$W/nullfs" --threads "$t" --seconds "$SECONDS_PER_RUN" --names 200)
		F[null_puts$t]=$(field puts_per_s "$line")
		F[null_gets$t]=$(field gets_per_s "$line")
	done
	fusermount3 -u "$W/nullfs"
	stop_pids
	row "thinnest FUSE (in memory, multi-threaded loop), puts, 16 threads" \
		"$(commas "${F[null_puts16]}")/s" - -
	row "thinnest FUSE, gets, 1 thread" "$(commas "${F[null_gets1]}")/s" - -
	row "thinnest FUSE, gets, 16 threads" "$(commas "${F[null_gets16]}")/s" - -
}

# --- ZooKeeper -----------------------------------------------------------------------------------

# zk_start: three servers from Debian's package on loopback, data in $W/zk/N (fsync on, as
# shipped), full JIT (unlike the tests' quick-start flags); waits until all three serve.
zk_start() {
	local i j d cp=$ZK_JAR
	for j in /usr/share/java/slf4j-log4j12.jar /usr/share/java/log4j-1.2.jar; do
		[[ -f "$j" ]] && cp+=":$j"
	done
	for i in 1 2 3; do
		d="$W/zk/$i"
		mkdir -p "$d/data"
		echo "$i" >"$d/data/myid"
		cat >"$d/zoo.cfg" <<EOF
tickTime=2000
initLimit=10
syncLimit=5
dataDir=$d/data
clientPort=$((ZK_PORT + i))
clientPortAddress=127.0.0.1
maxClientCnxns=0
admin.enableServer=false
4lw.commands.whitelist=*
EOF
		for j in 1 2 3; do
			echo "server.$j=127.0.0.1:$((ZK_PORT + 10 + j)):$((ZK_PORT + 20 + j))" >>"$d/zoo.cfg"
		done
		printf '%s\n' "log4j.rootLogger=WARN, CONSOLE" \
			"log4j.appender.CONSOLE=org.apache.log4j.ConsoleAppender" \
			"log4j.appender.CONSOLE.layout=org.apache.log4j.PatternLayout" \
			"log4j.appender.CONSOLE.layout.ConversionPattern=%d{ISO8601} %-5p %m%n" \
			>"$d/log4j.properties"
		java -Xmx512m -Djava.net.preferIPv4Stack=true -Dzookeeper.admin.enableServer=false \
			-Dzookeeper.log.dir="$d" -Dlog4j.configuration="file:$d/log4j.properties" \
			-cp "$cp" org.apache.zookeeper.server.quorum.QuorumPeerMain "$d/zoo.cfg" \
			>"$d/server.log" 2>&1 </dev/null &
		PIDS+=($!)
	done
	for i in 1 2 3; do
		wait_serving "ZooKeeper server $i" "$W/zk/$i/server.log" zk_serving $((ZK_PORT + i))
	done
}

zk_serving() { ask "$1" srvr | grep -q '^Mode:'; }

bench_zk() {
	local line n hosts
	say "ZooKeeper, 3 servers"
	SECTION=zk
	zk_start
	hosts="127.0.0.1:$((ZK_PORT + 1)),127.0.0.1:$((ZK_PORT + 2)),127.0.0.1:$((ZK_PORT + 3))"
	# The first run warms the servers' JIT up for longer.
	for n in 256 1 16 256; do
		line=$(timeout $((SECONDS_PER_RUN + 120)) "$BIN/bench_zk" "$hosts" --outstanding "$n" \
			--seconds "$SECONDS_PER_RUN" --warmup 2)
		F[zk$n]=$(field sets_per_s "$line")
		F[zk${n}_p50]=$(field p50_us "$line")
	done
	stop_pids
	for n in 1 16 256; do
		row "ZooKeeper 3 servers, setData 100 B, $n outstanding (C client)" \
			"$(commas "${F[zk$n]}")/s (p50 $(ms "${F[zk${n}_p50]}"))" - -
	done
}

# --- etcd ----------------------------------------------------------------------------------------

etcd_start() {
	local i cluster=''
	for i in 1 2 3; do
		cluster+="${cluster:+,}m$i=http://127.0.0.1:$((ETCD_PORT + 10 + i))"
	done
	for i in 1 2 3; do
		mkdir -p "$W/etcd/$i"
		etcd --name "m$i" --data-dir "$W/etcd/$i/data" \
			--listen-client-urls "http://127.0.0.1:$((ETCD_PORT + i))" \
			--advertise-client-urls "http://127.0.0.1:$((ETCD_PORT + i))" \
			--listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10 + i))" \
			--initial-advertise-peer-urls "http://127.0.0.1:$((ETCD_PORT + 10 + i))" \
			--initial-cluster "$cluster" --initial-cluster-state new \
			--initial-cluster-token bench-compare --logger zap --log-level warn \
			>"$W/etcd/$i/etcd.log" 2>&1 </dev/null &
		PIDS+=($!)
	done
	for i in 1 2 3; do
		wait_serving "etcd member $i" "$W/etcd/$i/etcd.log" etcd_healthy $((ETCD_PORT + i))
	done
}

etcd_healthy() { ask "$1" 'GET /health HTTP/1.0\r\n\r\n' | grep -q '"health":"true"'; }

bench_etcd() {
	local line
	say "etcd, 3 members"
	SECTION=etcd
	etcd_start
	line=$(timeout $((SECONDS_PER_RUN + 120)) "$BIN/bench_etcd" "127.0.0.1:$((ETCD_PORT + 1))" \
		"127.0.0.1:$((ETCD_PORT + 2))" "127.0.0.1:$((ETCD_PORT + 3))" --clients 64 \
		--seconds "$SECONDS_PER_RUN" --warmup 2)
	F[etcd64]=$(field puts_per_s "$line")
	stop_pids
	row "etcd 3 members, put 100 B, 64 clients over 3 members (v3 HTTP gateway, keep-alive)" \
		"$(commas "${F[etcd64]}")/s (p50 $(ms "$(field p50_us "$line")"))" - -
}

# --- kvfs ----------------------------------------------------------------------------------------

# kvfs_start BIN: ZooKeeper and three nodes of BIN (scripts/start.sh in $KVFS_DIR); sets leader
# and follower.
kvfs_start() {
	local i
	mkdir -p "$KVFS_DIR"
	KVFS_BIN=$1 KVFS_RUN_DIR="$KVFS_DIR/run" KVFS_MNT_DIR="$KVFS_DIR/mnt" \
		KVFS_PORT_BASE=$KVFS_PORT setsid scripts/start.sh >"$KVFS_DIR/start.log" 2>&1 \
		</dev/null &
	START_PID=$!
	for ((i = 0; i < 600; i++)); do
		grep -q "^Press Ctrl-C" "$KVFS_DIR/start.log" 2>/dev/null && break
		kill -0 "$START_PID" 2>/dev/null || { cat "$KVFS_DIR/start.log" >&2; exit 1; }
		sleep 0.1
	done
	for ((i = 0; i < 100; i++)); do
		leader=$(sed -n 's/^leader: //p' "$KVFS_DIR/mnt/1/.status" 2>/dev/null || true)
		grep -q '^role: leader' "$KVFS_DIR/mnt/$leader/.status" 2>/dev/null && break
		sleep 0.1
	done
	follower=$((leader % 3 + 1))
}

# bench_kvfs LABEL BIN: the kvfs rows of BIN; LABEL ("", "before" or "after") names them.
bench_kvfs() {
	local label=$1 k="kvfs${1:+ $1}" m line t n cold warm
	say "$k: 3 nodes ($2)"
	SECTION=kvfs
	KVFS_DIR="$W/kvfs${label:+-$label}"
	kvfs_start "$2"
	m="$KVFS_DIR/mnt"
	for t in 1 16 48; do
		line=$(smallfile "$m/1" "$m/2" "$m/3" --threads "$t" --seconds "$SECONDS_PER_RUN" \
			--names 200)
		F[$label.puts$t]=$(field puts_per_s "$line")
		row "$k, puts, $t writer(s) over 3 mounts" "$(commas "${F[$label.puts$t]}")/s (p50 $(ms \
			"$(field put_p50_us "$line")"), p99 $(ms "$(field put_p99_us "$line")"))" - -
	done
	for t in leader follower; do
		n=${!t}
		line=$(smallfile "$m/$n" --threads 1 --seconds "$SECONDS_PER_RUN" --names 200)
		F[$label.p50_$t]=$(field put_p50_us "$line")
		row "$k, single-writer put latency on the $t's mount (node $n)" \
			"p50 $(ms "${F[$label.p50_$t]}"), p99 $(ms "$(field put_p99_us "$line")")" - -
		[[ $t == leader ]] && F[$label.gets1]=$(field gets_per_s "$line")
	done
	line=$(smallfile "$m/$leader" --threads 16 --seconds "$SECONDS_PER_RUN" --names 200)
	F[$label.gets16]=$(field gets_per_s "$line")
	row "$k, gets, 1 thread (leader's mount)" "$(commas "${F[$label.gets1]}")/s" - -
	row "$k, gets, 16 threads (leader's mount)" "$(commas "${F[$label.gets16]}")/s" - -
	mkdir "$m/$follower/ls"
	make_entries "$m/$follower/ls" "$LS_ENTRIES"
	cold=$(time_ls "$m/$follower/ls")
	warm=$(time_ls "$m/$follower/ls")
	F[$label.ls_cold]=$cold
	F[$label.ls_warm]=$warm
	row "$k, \`ls -l\` of $(commas $LS_ENTRIES) entries (follower's mount)" \
		"cold $(ms "$cold"), warm $(ms "$warm")" - -
	kvfs_stop
}

bench_tmpfs_ls() {
	say "tmpfs ls -l"
	SECTION=kvfs
	mkdir -p "$W/tmpfs"
	mount -t tmpfs -o size=256m tmpfs "$W/tmpfs"
	make_entries "$W/tmpfs" "$LS_ENTRIES"
	F[tmpfs_ls_cold]=$(time_ls "$W/tmpfs")
	F[tmpfs_ls_warm]=$(time_ls "$W/tmpfs")
	umount "$W/tmpfs"
	row "tmpfs, \`ls -l\` of $(commas $LS_ENTRIES) entries" \
		"cold $(ms "${F[tmpfs_ls_cold]}"), warm $(ms "${F[tmpfs_ls_warm]}")" - -
}

# ratios LABEL: the issue's targets for the kvfs figures of LABEL.
ratios() {
	local l=$1 k="kvfs${1:+ $1}" anchor
	SECTION=ratios
	anchor=$(awk -v f="${F[fsync_us]}" -v r="${F[rtt_us]}" 'BEGIN { printf "%.0f", f + r }')
	ratio_row "$k puts 16 writers / thinnest-FUSE puts 16 threads" "${F[$l.puts16]}" \
		"${F[null_puts16]}" ">=" 0.5
	ratio_row "$k puts 16 writers / ZooKeeper 256 outstanding" "${F[$l.puts16]}" "${F[zk256]}" \
		">=" 3
	ratio_row "$k gets 1 thread / thinnest-FUSE gets 1 thread" "${F[$l.gets1]}" \
		"${F[null_gets1]}" ">=" 0.9
	ratio_row "$k gets 16 threads / thinnest-FUSE gets 16 threads" "${F[$l.gets16]}" \
		"${F[null_gets16]}" ">=" 1.0
	ratio_row "$k \`ls -l\` cold / tmpfs cold (µs)" "${F[$l.ls_cold]}" "${F[tmpfs_ls_cold]}" "<=" 2
	ratio_row "$k \`ls -l\` warm / tmpfs warm (µs)" "${F[$l.ls_warm]}" "${F[tmpfs_ls_warm]}" "<=" 2
	ratio_row "$k single-writer put p50 on the leader / (fdatasync p50 + loopback RTT p50) (µs)" \
		"${F[$l.p50_leader]}" "$anchor" "<=" 1.3
	row "$k puts 16 writers / etcd 64 clients (for information)" \
		"${F[$l.puts16]} / ${F[etcd64]}" - \
		"$(awk -v a="${F[$l.puts16]}" -v b="${F[etcd64]}" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }')"
}

# bench_scale: the rows of scripts/bench_scale.sh (another part of issue 14), verbatim, less
# its own header.
bench_scale() {
	local out line
	SECTION=scale
	if [[ ! -x scripts/bench_scale.sh ]]; then
		row "scale (scripts/bench_scale.sh)" "not run: the script is not there" - -
		return
	fi
	say "scripts/bench_scale.sh"
	if ! out=$(KVFS_BUILD=$KVFS_BUILD scripts/bench_scale.sh); then
		row "scale (scripts/bench_scale.sh)" "failed (see its messages above)" - -
		return
	fi
	while IFS= read -r line; do
		[[ "$line" == "|"* && "$line" != "| workload |"* && "$line" != "| ---"* ]] &&
			ROWS[scale]+="$line"$'\n'
	done <<<"$out"
}

main() {
	local b cpu
	while (($# > 0)); do
		case "$1" in
		--scale) SCALE=1 ;;
		[0-9]*) SECONDS_PER_RUN=$1 ;;
		-h | --help)
			sed -n '17,21p' "$0" | sed 's/^# \{0,1\}//'
			exit 0
			;;
		*)
			sed -n '17,21p' "$0" | sed 's/^# \{0,1\}//' >&2
			exit 2
			;;
		esac
		shift
	done
	KVFS_BUILD=$(realpath "${KVFS_BUILD:-$ROOT/build}")
	./scripts/install-deps.sh >/dev/null
	# etcd is the benchmark's alone: not among the project's dependencies.
	if ! command -v etcd >/dev/null; then
		say "installing etcd-server (Debian's package)"
		DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			etcd-server >/dev/null ||
			{ apt-get update -q >/dev/null &&
				DEBIAN_FRONTEND=noninteractive apt-get install -y -q \
					--no-install-recommends etcd-server >/dev/null; }
	fi
	[[ -f build/build.ninja ]] || meson setup build --buildtype=debugoptimized >/dev/null
	ninja -C build >/dev/null
	for b in "$KVFS_BUILD" ${KVFS_BUILD_BEFORE:+"$KVFS_BUILD_BEFORE"}; do
		[[ -x "$b/fs/kvfs" ]] || { say "no kvfs binary at $b/fs/kvfs"; exit 1; }
	done
	for b in $((ZK_PORT + 1)) $((ZK_PORT + 23)) $((ETCD_PORT + 1)) $((ETCD_PORT + 13)) \
		$((KVFS_PORT + 1)) $((KVFS_PORT + 3)); do
		if listening "$b"; then
			say "port $b is taken (another bench_compare running?)"
			exit 1
		fi
	done

	mkdir -p "${KVFS_BENCH_DIR:-$ROOT/run}"
	W=$(mktemp -d "${KVFS_BENCH_DIR:-$ROOT/run}/bench-compare.XXXXXX")
	trap cleanup EXIT
	trap 'exit 1' INT TERM

	bench_nullfs
	bench_zk
	bench_etcd
	# The disk's speed drifts: its anchor is taken next to the kvfs runs it anchors.
	bench_anchors
	if [[ -n "${KVFS_BUILD_BEFORE:-}" ]]; then
		bench_kvfs before "$(realpath "$KVFS_BUILD_BEFORE")/fs/kvfs"
		bench_kvfs after "$KVFS_BUILD/fs/kvfs"
	else
		bench_kvfs "" "$KVFS_BUILD/fs/kvfs"
	fi
	bench_tmpfs_ls
	if [[ -n "${KVFS_BUILD_BEFORE:-}" ]]; then
		ratios before
		ratios after
	else
		ratios ""
	fi
	((SCALE)) && bench_scale

	cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
	echo "bench_compare: $(nproc) cores (${cpu:-unknown CPU}), Linux $(uname -r), ${SECONDS_PER_RUN} s per run, 100-byte values"
	echo "data directories on $(df --output=source,fstype "$W" | tail -1 | awk '{print $1" ("$2")"}'); kvfs: $KVFS_BUILD${KVFS_BUILD_BEFORE:+ (after), $KVFS_BUILD_BEFORE (before)}"
	echo
	echo "| workload | figure | target | ratio |"
	echo "| --- | --- | --- | --- |"
	for b in "${SECTIONS[@]}"; do
		printf '%s' "${ROWS[$b]:-}"
	done
}

main "$@"

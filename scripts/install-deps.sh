#!/usr/bin/env bash
# Installs every package that building and testing kvfs needs on Debian 12 (bookworm).
# Idempotent: when dpkg already lists every package as installed, apt is not touched at all,
# so re-runs take well under a second. Needs root (or sudo) only when something is missing.
#   --build-only  only what a build without tests (-Dtests=false) needs (docker/Dockerfile)
#   --list        print the chosen packages, one a line, and install nothing
set -euo pipefail

# A release build with -Dtests=false: the compiler, meson and the libraries' headers.
BUILD_PACKAGES=(
	build-essential pkg-config meson ninja-build
	libfuse3-dev libuv1-dev libzookeeper-mt-dev libsodium-dev
)
PACKAGES=(
	"${BUILD_PACKAGES[@]}"
	# the unit tests
	libcmocka-dev
	# run: fusermount3; the cluster tests' and start.sh's ZooKeeper server (and the Java it runs
	# on), and the cluster tests' client: kazoo, for Debian's /usr/bin/python3
	fuse3 zookeeper default-jre-headless python3 python3-kazoo
	# the filesystem tests' tools
	rsync tar attr psmisc util-linux procps coreutils diffutils findutils sed
	# the change feed test: which inotify events remote changes give (inotifywait)
	inotify-tools
	# pjdfstest (tests/fs/pjdfstest): prove is perl's; its .t files make names with openssl md5
	perl openssl
	# the partition tests: network namespaces, veths, a bridge (ip) and the drop rules (nft)
	iproute2 nftables
	# the deployment tests: compose files checked with `docker-compose config` (no engine runs
	# here), /.metrics parsed by the Prometheus client's own parser, the man page linted by groff
	# and rendered by man, the systemd unit checked by systemd-analyze (from systemd)
	docker-compose python3-prometheus-client groff-base man-db systemd
)

missing_packages() {
	local p status
	for p in "${PACKAGES[@]}"; do
		status=$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)
		if [[ "$status" != "installed" ]]; then
			printf '%s\n' "$p"
		fi
	done
}

main() {
	local -a missing
	local list=0
	while (($# > 0)); do
		case "$1" in
		--build-only) PACKAGES=("${BUILD_PACKAGES[@]}") ;;
		--list) list=1 ;;
		*)
			echo "install-deps: unknown argument '$1' (accepted: --build-only, --list)" >&2
			return 2
			;;
		esac
		shift
	done
	if ((list)); then
		printf '%s\n' "${PACKAGES[@]}"
		return 0
	fi
	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} == 0)); then
		echo "install-deps: all ${#PACKAGES[@]} packages present"
		return 0
	fi
	echo "install-deps: installing ${missing[*]}"

	local -a sudo=()
	if ((EUID != 0)); then
		if ! command -v sudo >/dev/null; then
			echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
			return 1
		fi
		sudo=(sudo)
	fi
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get update -q
	"${sudo[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}"

	mapfile -t missing < <(missing_packages)
	if ((${#missing[@]} != 0)); then
		echo "install-deps: still missing after apt-get: ${missing[*]}" >&2
		return 1
	fi
}

main "$@"

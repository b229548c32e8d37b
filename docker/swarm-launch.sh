#!/bin/sh
# The kvfs node launcher of docker/stack.yaml: Swarm cannot give a service's containers
# /dev/fuse (no `devices`, so the device cgroup refuses to open it), nor take it out of AppArmor's
# docker-default profile (which denies mount(2)); a plain container can have both. So the Swarm
# service kvfsN runs this script (in a docker CLI image, with the host's Docker socket), and it
# runs node N as a plain container on the same host:
#   kvfs-launch N -- KVFS-ARGUMENTS...
# - the container, kvfs-node-N, is on the stack's attachable overlay network under the name
#   kvfsN, has /dev/fuse, CAP_SYS_ADMIN and apparmor:unconfined, keeps its data in the host's
#   volume kvfsN-data and mounts kvfs under KVFS_SHARE/N (rshared) for the application containers;
# - the Swarm secrets this service holds (/run/secrets/kvfs_secret, kvfs_zk_auth, mode 0400) are
#   copied into the container (docker cp: owned by root, mode kept) before it starts;
# - SIGTERM (docker stack rm, a service update, a drained node) stops the container with the same
#   grace as kvfs needs, and the script exits with the node's exit status, so that Swarm's
#   restart policy applies to the node.
# Environment: KVFS_IMAGE (the kvfs image, on every host or in a registry), KVFS_NETWORK (the
# overlay network's name), KVFS_SHARE (default /srv/kvfs), KVFS_STOP_TIMEOUT (seconds, default 30),
# KVFS_SECRETS_DIR (default /run/secrets).
set -eu

log() { echo "kvfs-launch: $*" >&2; }

if [ "$#" -lt 3 ] || [ "$2" != "--" ]; then
	log "usage: kvfs-launch N -- KVFS-ARGUMENTS... (N: the node id, 1..255)"
	exit 2
fi
id=$1
shift 2
case "$id" in
'' | *[!0-9]*)
	log "node id '$id' is not a number (accepted: 1..255)"
	exit 2
	;;
esac
: "${KVFS_IMAGE:?KVFS_IMAGE: the kvfs image to run}"
: "${KVFS_NETWORK:?KVFS_NETWORK: the attachable overlay network of the stack}"
share=${KVFS_SHARE:-/srv/kvfs}
grace=${KVFS_STOP_TIMEOUT:-30}
secrets=${KVFS_SECRETS_DIR:-/run/secrets} # where Swarm put this service's secrets
name=kvfs-node-$id

# A node container an earlier launcher left (it was killed, or the host restarted): stop it the
# way kvfs expects (SIGTERM, then the grace) before it is replaced.
if docker container inspect "$name" >/dev/null 2>&1; then
	log "stopping and removing the $name an earlier launcher left"
	docker stop -t "$grace" "$name" >/dev/null || true
	docker rm -f "$name" >/dev/null
fi

docker create --name "$name" --hostname "kvfs$id" \
	--network "$KVFS_NETWORK" --network-alias "kvfs$id" \
	--device /dev/fuse --cap-add SYS_ADMIN --security-opt apparmor:unconfined \
	--stop-timeout "$grace" --label org.kvfs.launcher="$(hostname)" \
	-v "kvfs$id-data:/data" -v "$share/$id:/mnt:rshared" \
	"$KVFS_IMAGE" "$@" >/dev/null
for s in kvfs_secret kvfs_zk_auth; do
	if [ -f "$secrets/$s" ]; then
		docker cp "$secrets/$s" "$name:/run/secrets/$s"
	fi
done

# shellcheck disable=SC2317 # called by the trap
stop_node() {
	log "stopping $name"
	docker stop -t "$grace" "$name" >/dev/null || true
}
trap stop_node TERM INT

log "starting $name from $KVFS_IMAGE"
docker start --attach "$name" &
attached=$!
# A signal interrupts `wait`; the trap stops the node, then the attached client ends.
while ! wait "$attached"; do
	if ! kill -0 "$attached" 2>/dev/null; then
		break
	fi
done
rc=$(docker container inspect --format '{{.State.ExitCode}}' "$name" 2>/dev/null || echo 1)
docker rm -f "$name" >/dev/null 2>&1 || true
log "$name exited with status $rc"
exit "$rc"

#!/bin/sh
# Makes the two secret files docker/compose.yaml and docker/stack.yaml give every kvfs node, once:
#   DIR/kvfs_secret   the peers' shared secret: 32 random bytes, base64 (--secret-file)
#   DIR/kvfs_zk_auth  the nodes' ZooKeeper digest credentials, kvfs:<random> (--zk-auth-file)
# DIR is docker/secrets by default (git and the image's build context ignore it). A file that
# exists is kept: run it again at will. Never commit these files.
#
# Compose bind-mounts a secret file as it is on the host, so its mode and owner are what kvfs
# checks (mode 0600 or 0400; owned by the user kvfs runs as, root in the image, or by root): this
# script makes them mode 0400, and should run as root for a Docker engine that runs as root
# (`sudo docker/make-secrets.sh`). Swarm copies the contents into its own secrets, whose mode and
# owner stack.yaml sets.
set -eu

dir=${1:-"$(dirname "$0")/secrets"}
umask 077
mkdir -p "$dir"
chmod 700 "$dir"

make_one() { # NAME WHAT COMMAND...: writes DIR/NAME from COMMAND's output unless it exists
	name=$1 what=$2
	shift 2
	if [ -s "$dir/$name" ]; then
		echo "make-secrets: keeping $dir/$name"
		return 0
	fi
	"$@" >"$dir/$name.tmp"
	chmod 400 "$dir/$name.tmp"
	mv "$dir/$name.tmp" "$dir/$name"
	echo "make-secrets: made $what: $dir/$name (mode 0400)"
}

peer_secret() { head -c 32 /dev/urandom | base64; }
zk_auth() { printf 'kvfs:%s\n' "$(head -c 18 /dev/urandom | base64 | tr '+/' '-_')"; }

make_one kvfs_secret "the peers' shared secret" peer_secret
make_one kvfs_zk_auth "the nodes' ZooKeeper credentials" zk_auth

if [ "$(id -u)" -ne 0 ]; then
	echo "make-secrets: the files belong to uid $(id -u); kvfs runs as root in its container and" \
		"accepts them only from root, so for a Docker engine that runs as root:" \
		"sudo chown 0:0 $dir/kvfs_secret $dir/kvfs_zk_auth (rootless Docker: leave them)" >&2
fi

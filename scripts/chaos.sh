#!/usr/bin/env bash
# Chaos run: a local three-server ZooKeeper ensemble and a three-node kvfs cluster, each process in
# its own network namespace, clients on every mount, randomized faults from a seed (kill -9,
# SIGSTOP, partitions, ZooKeeper server loss), then the history checker's verdict and a table of
# unavailability per fault kind. A seed replays the same fault schedule.
#
# Usage: scripts/chaos.sh [--minutes N] [--seed S] [--read local|linearizable] [--kvfs PATH]
# Needs root (FUSE, namespaces, nftables) and scripts/install-deps.sh. Builds ./build if --kvfs is
# not given. Everything it starts is stopped and removed on exit, error or Ctrl-C
# (tests/cluster/harness.py). The execution log is also saved in $KVFS_CLUSTER_LOG_DIR (default
# /tmp/kvfs-cluster-logs)/chaos.log. Exit status 0 when the verdict is OK.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
exec /usr/bin/python3 "$ROOT/tests/cluster/chaos.py" "$@"

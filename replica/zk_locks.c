/*
 * Dead lock holders (issue 13): while this node leads, the election thread lists the members'
 * ephemeral znodes (/members/<id>) with a watch, every round and whenever one comes or goes, and
 * publishes the ids present (and counts the listings, so that the loop knows a new one from one
 * it has seen). The loop compares them with the lock table (fs/fuse_lock.c) and
 * proposes RELEASE_NODE for a node that holds locks and whose znode is gone: its ZooKeeper
 * session expired (a crash, a partition from ZooKeeper) or it stopped or was removed. And, on
 * every node, whether its own session is connected: new lock requests wait for it (ENOLCK).
 */
#include "zk_internal.h"

#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/logging.h"

/* The id a /members child names, or 0 if it names none ("7" -> 7; "07", "x", "300" -> 0). */
static uint32_t member_id(const char *name)
{
	char *end;
	unsigned long v;

	if (name[0] < '1' || name[0] > '9')
		return 0;
	v = strtoul(name, &end, 10);
	return *end == '\0' && v < MAX_IDS ? (uint32_t)v : 0;
}

void zk_locks_round(struct kvfs_zk *z, bool leading)
{
	struct String_vector kids = {0, NULL};
	uint8_t live[MAX_IDS / 8] = {0};
	char path[256];
	bool changed;
	int rc;

	if (!leading) {
		pthread_mutex_lock(&z->lock);
		z->live_known = false;
		pthread_mutex_unlock(&z->lock);
		return;
	}
	path_of(z, path, sizeof(path), "members");
	rc = zoo_wget_children(z->zh, path, zk_session_watcher, z, &kids);
	if (rc != ZOK) {
		log_warn("cannot list %s to find lock holders that are gone: %s; trying again",
		         path, zerror(rc));
		pthread_mutex_lock(&z->lock);
		z->live_known = false;
		pthread_mutex_unlock(&z->lock);
		return;
	}
	for (int32_t i = 0; i < kids.count; i++) {
		uint32_t id = member_id(kids.data[i]);

		if (id)
			live[id / 8] |= (uint8_t)(1u << (id % 8));
	}
	deallocate_String_vector(&kids);
	pthread_mutex_lock(&z->lock);
	changed = !z->live_known || memcmp(z->live, live, sizeof(live)) != 0;
	memcpy(z->live, live, sizeof(live));
	z->live_known = true;
	z->live_seq++;
	pthread_mutex_unlock(&z->lock);
	if (changed)
		zk_session_wake(z);
}

bool zk_election_live_members(struct kvfs_zk *z, uint8_t *bits, size_t len, uint64_t *seq)
{
	bool known;

	pthread_mutex_lock(&z->lock);
	known = z->live_known && z->leading;
	*seq = z->live_seq;
	memset(bits, 0, len);
	memcpy(bits, z->live, len < sizeof(z->live) ? len : sizeof(z->live));
	pthread_mutex_unlock(&z->lock);
	return known;
}

bool zk_election_session_connected(struct kvfs_zk *z)
{
	bool connected;

	pthread_mutex_lock(&z->lock);
	connected = z->state == ZOO_CONNECTED_STATE && !z->expired;
	pthread_mutex_unlock(&z->lock);
	return connected;
}

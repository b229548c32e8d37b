/*
 * The election's requests to ZooKeeper, made by the election thread in its rounds (zk_election.c
 * decides; this file reads and writes the znodes): /members/<id>, the lock on this node's id;
 * this node's candidate znode and the listing of all candidates; /leader, read and watched, and
 * taken with /epoch in one multi; the check that confirms the session through ZooKeeper's
 * leader. Znodes that an earlier session of this node left behind are removed here; those of
 * another live process with this node's id stop this one (zk_election_set_fatal()).
 */
#include "zk_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/election.h"
#include "kvfs/hostport.h"
#include "kvfs/logging.h"

/*
 * Checks the address a znode announces (anyone with access to ZooKeeper may have written it)
 * before it reaches the transport, a log line or /.status; an unusable one is cleared ("unknown":
 * the node's candidacy still counts) with a warning at most every BAD_ADDR_WARN_EVERY_MS.
 */
static void check_znode_addr(struct kvfs_zk *z, const char *path, char *addr)
{
	struct kvfs_hostport hp;
	char shown[KVFS_ADDR_MAX];
	const char *why;
	uint64_t now;

	if (addr[0] == '\0' || hostport_parse(addr, 0, &hp, &why) == 0)
		return;
	hostport_printable(addr, shown, sizeof(shown));
	addr[0] = '\0';
	now = now_ms();
	if (z->bad_addr_warned_ms != 0 && now - z->bad_addr_warned_ms < BAD_ADDR_WARN_EVERY_MS) {
		z->bad_addrs++;
		return;
	}
	if (z->bad_addrs)
		log_warn("ignoring the address \"%s\" in %s: %s (expected %s); and %u such "
		         "addresses in the last %u s",
		         shown, path, why, KVFS_HOSTPORT_ACCEPTED, z->bad_addrs,
		         BAD_ADDR_WARN_EVERY_MS / 1000);
	else
		log_warn("ignoring the address \"%s\" in %s: %s (expected %s)", shown, path, why,
		         KVFS_HOSTPORT_ACCEPTED);
	z->bad_addr_warned_ms = now;
	z->bad_addrs = 0;
}

/*
 * A znode (at path, owned by session owner) that names this node's id but is not this attempt's.
 * Left by an earlier session of this node (restarted before that session timed out), it is
 * removed so it does not hold up the election: true. Owned by a session this node never had, it
 * belongs to another process with the same --id, which zk_znodes_register_member() turned away: it
 * is left alone (no fighting) and false returned.
 */
static bool remove_leftover(struct kvfs_zk *z, int64_t owner, const char *path)
{
	if (owner != z->prev_session && owner != z->session_id)
		return false;
	log_info("removing %s, left by an earlier session of this node", path);
	zoo_delete(z->zh, path, -1);
	return true;
}

/*
 * Registers /members/<id> (ephemeral): the lock on this node's id. Held by an earlier session of
 * this node, it is removed and taken next round; held by a session this node never had, another
 * live process runs with this --id, and this one must stop rather than compete
 * (zk_election_fatal). Returns true once registered.
 */
bool zk_znodes_register_member(struct kvfs_zk *z)
{
	char path[256], data[ZDATA_MAX], rel[32];
	int rc;

	snprintf(rel, sizeof(rel), "members/%u", z->cfg.id);
	path_of(z, path, sizeof(path), rel);
	snprintf(data, sizeof(data), "addr=%s priority=%u role=%s", z->addr, z->cfg.priority,
	         z->cfg.role == KVFS_ROLE_OBSERVER ? "observer" : "voter");
	rc = zoo_create(z->zh, path, data, (int)strlen(data), acl_of(z, false), ZOO_EPHEMERAL, NULL,
	                0);
	if (rc == ZOK) {
		z->member_registered = true;
	} else if (rc == ZNODEEXISTS) {
		struct Stat st;
		char msg[600];

		if (zoo_exists(z->zh, path, 0, &st) != ZOK ||
		    remove_leftover(z, st.ephemeralOwner, path))
			return false; /* gone or removed: taken next round */
		snprintf(
		    msg, sizeof(msg),
		    "another kvfs runs as node %u of cluster '%s' (ZooKeeper session 0x%llx holds "
		    "%s); each node needs its own --id: stopping",
		    z->cfg.id, z->cluster, (unsigned long long)st.ephemeralOwner, path);
		zk_election_set_fatal(z, msg);
	}
	return z->member_registered;
}

bool zk_znodes_mark_node(struct kvfs_zk *z)
{
	char path[256], rel[32];
	int rc;

	snprintf(rel, sizeof(rel), "nodes/%u", z->cfg.id);
	path_of(z, path, sizeof(path), rel);
	rc = zoo_create(z->zh, path, NULL, -1, acl_of(z, false), 0, NULL, 0);
	z->node_marked = rc == ZOK || rc == ZNODEEXISTS;
	if (!z->node_marked)
		log_warn("cannot create %s in ZooKeeper: %s; trying again", path, zerror(rc));
	return z->node_marked;
}

/* Creates this node's candidate znode election/<guid>-n_ (ephemeral, sequential). */
int zk_znodes_create_candidate(struct kvfs_zk *z, int64_t session)
{
	char path[256], rel[64], made[256];
	int rc;

	snprintf(rel, sizeof(rel), "election/%s-n_", z->guid);
	path_of(z, path, sizeof(path), rel);
	rc = zoo_create(z->zh, path, z->cand_data, (int)strlen(z->cand_data), acl_of(z, false),
	                ZOO_EPHEMERAL_SEQUENTIAL, made, sizeof(made));
	if (rc != ZOK) {
		/* On a connection loss the create may have happened: the next listing finds it by
		 * its guid. */
		log_warn("joining the election: %s", zerror(rc));
		return zk_session_errno(rc);
	}
	snprintf(z->my_name, sizeof(z->my_name), "%s", strrchr(made, '/') + 1);
	z->have_znode = true;
	log_info("candidate %s (session 0x%" PRIx64 ")", z->my_name, (uint64_t)session);
	return 0;
}

/*
 * Reads the live candidates (with their data and owners) into c. This attempt's own znode is
 * recognised by its guid (a twin from a create retried after a lost reply is removed); others
 * that name this node's id go through remove_leftover(). Sets *mine to this node's index or -1.
 */
int zk_znodes_read_candidates(struct kvfs_zk *z, bool watch, struct kvfs_candidate *c, size_t *n,
                              int *mine)
{
	struct String_vector kids = {0};
	struct Stat dst; /* the client writes it even when it is not wanted */
	char path[512], dir[256], data[ZDATA_MAX];
	int rc;

	*n = 0;
	*mine = -1;
	path_of(z, dir, sizeof(dir), "election");
	rc = watch ? zoo_wget_children2(z->zh, dir, zk_session_watcher, z, &kids, &dst)
	           : zoo_get_children2(z->zh, dir, 0, &kids, &dst);
	if (rc != ZOK)
		return zk_session_errno(rc);
	for (int i = 0; i < kids.count && *n < MAX_CANDIDATES; i++) {
		struct kvfs_candidate *k = &c[*n];
		int len = sizeof(data) - 1;
		struct Stat st;

		memset(k, 0, sizeof(*k));
		if (election_parse_name(kids.data[i], k) < 0)
			continue; /* not a candidate: ignored */
		snprintf(path, sizeof(path), "%s/%s", dir, kids.data[i]);
		rc = zoo_get(z->zh, path, 0, data, &len, &st);
		if (rc == ZNONODE)
			continue;
		if (rc != ZOK) {
			deallocate_String_vector(&kids);
			return zk_session_errno(rc);
		}
		k->owner = st.ephemeralOwner;
		if (strcmp(k->guid, z->guid) == 0) {
			/* Ours, recognised by the guid of this attempt whatever its data says (a
			 * create whose reply was lost comes back this way). A twin from a retried
			 * create is removed. */
			if (!z->have_znode) {
				snprintf(z->my_name, sizeof(z->my_name), "%s", k->name);
				z->have_znode = true;
			}
			if (strcmp(k->name, z->my_name) != 0) {
				zoo_delete(z->zh, path, -1);
				continue;
			}
			k->id = z->cfg.id;
			k->priority = z->cfg.priority;
			snprintf(k->addr, sizeof(k->addr), "%s", z->addr);
			/* The facts as this node publishes them: what the others rank it by. */
			k->f = z->pub.f;
			*mine = (int)*n;
			(*n)++;
			continue;
		}
		if (election_parse_candidate(data, (size_t)(len > 0 ? len : 0), k) < 0)
			continue;
		check_znode_addr(z, path, k->addr);
		if (k->id == z->cfg.id) {
			remove_leftover(z, k->owner, path);
			continue; /* not a candidate we count */
		}
		(*n)++;
	}
	deallocate_String_vector(&kids);
	return 0;
}

/* Reads /leader and watches it. A /leader naming this node but not owned by this session goes
 * through remove_leftover(). */
int zk_znodes_read_leader(struct kvfs_zk *z, int64_t session, struct leader_info *l)
{
	char path[256], data[ZDATA_MAX];
	int len = sizeof(data) - 1, rc;
	struct Stat st;

	memset(l, 0, sizeof(*l));
	path_of(z, path, sizeof(path), "leader");
	rc = zoo_wget(z->zh, path, zk_session_watcher, z, data, &len, &st);
	if (rc == ZNONODE) {
		/* Watch for its creation, so followers learn the next leader. */
		rc = zoo_wexists(z->zh, path, zk_session_watcher, z, &st);
		if (rc == ZNONODE)
			return 0;
		if (rc != ZOK)
			return zk_session_errno(rc);
		return -EAGAIN; /* created between the two calls: read again next round */
	}
	if (rc != ZOK)
		return zk_session_errno(rc);
	l->exists = true;
	l->mine = st.ephemeralOwner == session;
	l->version = st.version;
	if (election_parse_leader(data, (size_t)(len > 0 ? len : 0), &l->id, l->addr, &l->epoch) <
	    0)
		log_warn("%s holds unreadable data", path);
	check_znode_addr(z, path, l->addr);
	if (!l->mine && l->id == z->cfg.id && remove_leftover(z, st.ephemeralOwner, path))
		l->exists = false;
	return 0;
}

/*
 * Takes leadership in one multi: this node's candidate znode still exists, /leader is created
 * (replacing our own, at leader_version, with `retake`), /epoch goes up by one with the version
 * just read. Returns the new epoch, or 0 if another step must come first.
 */
uint64_t zk_znodes_take_leadership(struct kvfs_zk *z, bool retake, int leader_version)
{
	char epoch_path[256], leader_path[256], mine[256], data[ZDATA_MAX], ebuf[32];
	zoo_op_t ops[4];
	zoo_op_result_t res[4];
	struct Stat st;
	int len = sizeof(ebuf) - 1, rc, n = 0;
	uint64_t epoch;

	path_of(z, epoch_path, sizeof(epoch_path), "epoch");
	path_of(z, leader_path, sizeof(leader_path), "leader");
	snprintf(mine, sizeof(mine), "%s/election/%s", z->base, z->my_name);
	rc = zoo_get(z->zh, epoch_path, 0, ebuf, &len, &st);
	if (rc != ZOK) {
		log_warn("cannot read %s to take leadership: %s; trying again", epoch_path,
		         zerror(rc));
		return 0;
	}
	ebuf[len > 0 ? len : 0] = '\0';
	if (election_parse_epoch(ebuf, (size_t)(len > 0 ? len : 0), &epoch) < 0 ||
	    epoch == KVFS_EPOCH_MAX) {
		log_warn("%s holds '%.32s', not an epoch kvfs wrote: no leader can take over until "
		         "it is repaired", epoch_path, ebuf);
		return 0;
	}
	epoch++;
	snprintf(data, sizeof(data), "id=%u addr=%s epoch=%llu", z->cfg.id, z->addr,
	         (unsigned long long)epoch);
	snprintf(ebuf, sizeof(ebuf), "%llu", (unsigned long long)epoch);
	zoo_check_op_init(&ops[n++], mine, -1);
	if (retake)
		zoo_delete_op_init(&ops[n++], leader_path, leader_version);
	zoo_create_op_init(&ops[n++], leader_path, data, (int)strlen(data), acl_of(z, false),
	                   ZOO_EPHEMERAL, NULL, 0);
	zoo_set_op_init(&ops[n++], epoch_path, ebuf, (int)strlen(ebuf), st.version, NULL);
	rc = zoo_multi(z->zh, n, ops, res);
	if (rc != ZOK) {
		log_info("taking leadership at epoch %llu failed: %s; trying again", (unsigned long long)epoch,
		         zerror(rc));
		return 0;
	}
	return epoch;
}

/*
 * Confirms that this session is alive, with a request the ZooKeeper leader itself must order (a
 * one-op multi checking our candidate znode). A read would not do: a ZooKeeper follower cut off
 * from its quorum still answers reads from its stale copy, after the leader expired us.
 */
bool zk_znodes_confirm_session(struct kvfs_zk *z)
{
	char mine[256];
	zoo_op_t op;
	zoo_op_result_t res;

	snprintf(mine, sizeof(mine), "%s/election/%s", z->base, z->my_name);
	zoo_check_op_init(&op, mine, -1);
	return zoo_multi(z->zh, 1, &op, &res) == ZOK;
}

#define MEMBER_ADDRS_EVERY_MS 5000

/* /members/<id>'s "addr=" word into z->addrs[id]; nothing if absent or too long (the transport
 * checks the address itself). */
static void read_member_addr(struct kvfs_zk *z, uint32_t id)
{
	char path[256], rel[32], data[ZDATA_MAX];
	int len = sizeof(data) - 1;
	const char *a;
	struct Stat st;
	size_t l;

	snprintf(rel, sizeof(rel), "members/%u", id);
	path_of(z, path, sizeof(path), rel);
	if (zoo_get(z->zh, path, 0, data, &len, &st) != ZOK || len <= 0)
		return;
	data[len] = '\0';
	for (a = strstr(data, "addr="); a && a != data && a[-1] != ' '; a = strstr(a + 1, "addr="))
		;
	if (!a)
		return;
	a += 5;
	l = strcspn(a, " \t\n");
	if (l == 0 || l >= KVFS_ADDR_MAX)
		return;
	pthread_mutex_lock(&z->lock);
	memcpy(z->addrs[id], a, l);
	z->addrs[id][l] = '\0';
	pthread_mutex_unlock(&z->lock);
}

void zk_znodes_read_member_addrs(struct kvfs_zk *z, const struct kvfs_candidate *c, size_t n,
                                 uint64_t now)
{
	bool all = now - z->member_addrs_ms >= MEMBER_ADDRS_EVERY_MS, have;
	struct kvfs_config cfg;

	pthread_mutex_lock(&z->lock);
	have = z->have_config;
	cfg = z->config;
	pthread_mutex_unlock(&z->lock);
	if (!have)
		return;
	if (all)
		z->member_addrs_ms = now;
	for (uint32_t i = 0; i < cfg.n; i++) {
		uint32_t id = cfg.m[i].id;
		bool cand = false;

		for (size_t k = 0; k < n && !cand; k++)
			cand = c[k].id == id;
		/* z->addrs is written by this thread only: read without the lock. */
		if (id == z->cfg.id || id >= MAX_IDS || cand || (!all && z->addrs[id][0]))
			continue;
		read_member_addr(z, id);
	}
}

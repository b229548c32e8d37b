/*
 * The cluster's znodes at open (see zk_internal.h for the access rules): /kvfs and
 * /kvfs/<cluster> with its election, members, epoch, requests and config made if missing, with acl_of();
 * /config read, or written by the first node to start (the cluster id and size), and checked
 * against this node's --cluster-size. With credentials, znodes left open by starts without them
 * are tightened, unless a member without credentials still runs. Every failure becomes a message
 * that says what to do (NOAUTH, a missing chroot, an ACL refused, another cluster size).
 */
#include "zk_internal.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/election.h"
#include "kvfs/logging.h"

/*
 * The message and errno for ZooKeeper code rc from an operation on path during set-up: NOAUTH and
 * a missing chroot say what to do.
 */
static int setup_error(const struct kvfs_zk *z, const char *path, int rc, bool reading, char *err,
                       size_t errlen)
{
	if (rc == ZNOAUTH && z->auth) {
		snprintf(
		    err, errlen,
		    "NOAUTH: %s is protected by ZooKeeper ACLs for other credentials than those "
		    "of --zk-auth-file (user '%.*s'): start with the cluster's credentials",
		    path, z->user_len, z->auth);
		return -EACCES;
	}
	if (rc == ZNOAUTH) {
		snprintf(err, errlen,
		         "NOAUTH: %s is protected by ZooKeeper ACLs: start with --zk-auth-file "
		         "holding the cluster's credentials",
		         path);
		return -EACCES;
	}
	if (rc == ZNONODE && !reading && z->chroot && strcmp(path, "/kvfs") == 0) {
		snprintf(err, errlen,
		         "the chroot %s in --zk does not exist in ZooKeeper: create it first (or "
		         "drop it from --zk)",
		         z->chroot);
		return -ENOENT;
	}
	if (rc == ZINVALIDACL) {
		snprintf(
		    err, errlen,
		    "ZooKeeper refused the ACL of %s: the credentials of --zk-auth-file are not "
		    "in place on this session",
		    path);
		return -EACCES;
	}
	snprintf(err, errlen, "cannot %s %s in ZooKeeper: %s", reading ? "read" : "create", path,
	         zerror(rc));
	return zk_session_errno(rc);
}

/*
 * Creates a persistent znode with data and acl if it is missing. It looks first: ZooKeeper checks
 * the parent's CREATE permission before it sees that the znode exists, and a restart must not
 * depend on what the parent (the shared /kvfs) allows. Returns a ZooKeeper code (ZOK if it
 * exists).
 */
static int ensure(zhandle_t *zh, const char *path, const char *data, const struct ACL_vector *acl)
{
	struct Stat st;
	int rc = zoo_exists(zh, path, 0, &st);

	if (rc == ZNONODE)
		rc = zoo_create(zh, path, data, data ? (int)strlen(data) : -1, acl, 0, NULL, 0);
	return rc == ZNODEEXISTS ? ZOK : rc;
}

/* The rights a znode's ACL gives world:anyone. */
static int32_t world_perms(const struct ACL_vector *acl)
{
	int32_t perms = 0;

	for (int i = 0; i < acl->count; i++)
		if (strcmp(acl->data[i].id.scheme, "world") == 0 &&
		    strcmp(acl->data[i].id.id, "anyone") == 0)
			perms |= acl->data[i].perms;
	return perms;
}

/*
 * With credentials: a znode of ours that an earlier start without them left open (world:anyone
 * holds more than `allowed`) gets acl_of() now, so an upgrade to credentials protects an existing
 * cluster. A ZNOAUTH on the shared /kvfs means another cluster protects it: fine. Returns a
 * ZooKeeper code.
 */
static int tighten(struct kvfs_zk *z, const char *path, bool root)
{
	struct ACL_vector acl = {0};
	struct Stat st;
	int32_t world, allowed = root ? ZOO_PERM_READ | ZOO_PERM_CREATE : 0;
	int rc = zoo_get_acl(z->zh, path, &acl, &st);

	if (rc == ZNOAUTH && root)
		return ZOK;
	if (rc != ZOK)
		return rc;
	world = world_perms(&acl);
	deallocate_ACL_vector(&acl);
	if ((world & ~allowed) == 0)
		return ZOK;
	rc = zoo_set_acl(z->zh, path, st.aversion, acl_of(z, root));
	if (rc == ZBADVERSION)
		return ZOK; /* another node of the cluster tightened it first */
	if (rc == ZOK)
		log_info(
		    "%s was open to anyone (world:anyone had rights 0x%x): now only ZooKeeper "
		    "user '%.*s'%s may use it",
		    path, (unsigned)world, z->user_len, z->auth,
		    root ? " may change it (anyone may still list it and create a cluster in it)"
		         : "");
	return rc;
}

/*
 * With credentials: the other live members that run without credentials (their /members/<id>
 * is open to anyone), listed in list (len bytes), e.g. "1, 2"; none: list is "". Tightening the
 * cluster's znodes would lock them out of the election (they could no longer list or read it), and
 * the cluster would have no leader until every one of them was restarted. Returns a ZooKeeper code.
 */
static int open_members(struct kvfs_zk *z, char *list, size_t len)
{
	struct String_vector kids = {0};
	char dir[256], path[512], own[16];
	size_t n = 0;
	int rc;

	list[0] = '\0';
	snprintf(own, sizeof(own), "%u", z->cfg.id);
	path_of(z, dir, sizeof(dir), "members");
	rc = zoo_get_children(z->zh, dir, 0, &kids);
	if (rc != ZOK)
		return rc;
	for (int i = 0; i < kids.count; i++) {
		struct ACL_vector acl = {0};
		struct Stat st;

		if (strcmp(kids.data[i], own) == 0)
			continue; /* ours, from an earlier session: see zk_znodes_register_member()
			           */
		snprintf(path, sizeof(path), "%s/%s", dir, kids.data[i]);
		if (zoo_get_acl(z->zh, path, &acl, &st) != ZOK)
			continue; /* gone, or protected: not an open one */
		if (world_perms(&acl) != 0 && n < len)
			n += (size_t)snprintf(list + n, len - n, "%s%s", n ? ", " : "",
			                      kids.data[i]);
		deallocate_ACL_vector(&acl);
	}
	deallocate_String_vector(&kids);
	return ZOK;
}

/*
 * Makes the cluster's tree exist and reads (or creates) /config. With credentials, the cluster's
 * persistent znodes that are open to anyone are tightened (tighten()), after /config was read
 * (other credentials than the cluster's are told so there, by setup_error()), unless other
 * members run without credentials: then this node refuses to start (-EACCES) rather than cut
 * them off the election.
 */
static int setup_cluster(struct kvfs_zk *z, char *cluster_id, char *err, size_t errlen)
{
	char path[256], data[ZDATA_MAX], id[2 * KVFS_GUID_LEN + 1];
	static const char *const rels[] = {"election", "members", "epoch", "requests", "config"};
	struct Stat st;
	uint32_t size;
	int len = sizeof(data) - 1, rc;

	rc = ensure(z->zh, "/kvfs", NULL, acl_of(z, true));
	if (rc != ZOK)
		return setup_error(z, "/kvfs", rc, false, err, errlen);
	rc = ensure(z->zh, z->base, NULL, acl_of(z, false));
	if (rc != ZOK)
		return setup_error(z, z->base, rc, false, err, errlen);
	for (size_t i = 0; i < 4; i++) { /* all but config, made below */
		path_of(z, path, sizeof(path), rels[i]);
		rc = ensure(z->zh, path, strcmp(rels[i], "epoch") == 0 ? "0" : NULL,
		            acl_of(z, false));
		if (rc != ZOK)
			return setup_error(z, path, rc, false, err, errlen);
	}
	/* The first node to start names the cluster; a racing one finds its /config. */
	zk_election_new_guid(id);
	snprintf(data, sizeof(data), "cluster_id=%s size=%u", id, z->cfg.cluster_size);
	path_of(z, path, sizeof(path), "config");
	rc = ensure(z->zh, path, data, acl_of(z, false));
	if (rc != ZOK)
		return setup_error(z, path, rc, false, err, errlen);
	rc = zoo_get(z->zh, path, 0, data, &len, &st);
	if (rc != ZOK)
		return setup_error(z, path, rc, true, err, errlen);
	if (z->auth) {
		char open[128], members[256];

		rc = open_members(z, open, sizeof(open));
		path_of(z, members, sizeof(members), "members");
		if (rc != ZOK)
			return setup_error(z, members, rc, true, err, errlen);
		if (open[0]) {
			snprintf(
			    err, errlen,
			    "node(s) %s of cluster '%s' run without --zk-auth-file (their "
			    "%s/members znodes are open to anyone); this node, with credentials, "
			    "would protect the cluster's znodes and lock them out of the "
			    "election: stop them, then start every node with --zk-auth-file",
			    open, z->cfg.cluster, z->base);
			return -EACCES;
		}
		rc = tighten(z, "/kvfs", true);
		if (rc != ZOK)
			return setup_error(z, "/kvfs", rc, true, err, errlen);
		rc = tighten(z, z->base, false);
		if (rc != ZOK)
			return setup_error(z, z->base, rc, true, err, errlen);
		for (size_t i = 0; i < sizeof(rels) / sizeof(rels[0]); i++) {
			char p[256];

			path_of(z, p, sizeof(p), rels[i]);
			rc = tighten(z, p, false);
			if (rc != ZOK)
				return setup_error(z, p, rc, true, err, errlen);
		}
	}
	data[len > 0 ? len : 0] = '\0';
	if (election_parse_config(data, (size_t)(len > 0 ? len : 0), cluster_id, &size) < 0) {
		snprintf(err, errlen, "%s holds '%s', not a kvfs cluster configuration", path,
		         data);
		return -EXDEV;
	}
	if (size != z->cfg.cluster_size && !z->cfg.cluster_size_given) {
		z->cfg.cluster_size = size; /* not given: the cluster's own */
	} else if (size != z->cfg.cluster_size) {
		snprintf(
		    err, errlen,
		    "cluster '%s' was created with %u voting replicas but this node was started "
		    "with --cluster-size %u; use --cluster-size %u (or another --cluster)",
		    z->cfg.cluster, size, z->cfg.cluster_size, size);
		return -EXDEV;
	}
	return 0;
}

/*
 * With credentials: /nodes and every /nodes/<id> become the cluster's alone, like the other
 * persistent znodes (setup_cluster). Anyone who could delete a /nodes/<id> could make a node that
 * lost its disk vote with an empty log; anyone who could create them could keep a new cluster's
 * nodes from ever voting. Returns a ZooKeeper code.
 */
static int tighten_nodes(struct kvfs_zk *z, const char *dir)
{
	struct String_vector kids = {0};
	char path[512];
	int rc = tighten(z, dir, false);

	if (rc == ZOK)
		rc = zoo_get_children(z->zh, dir, 0, &kids);
	for (int32_t i = 0; rc == ZOK && i < kids.count; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, kids.data[i]);
		rc = tighten(z, path, false);
		if (rc == ZNONODE)
			rc = ZOK;
	}
	deallocate_String_vector(&kids);
	return rc;
}

/*
 * Reads /epoch into z->open_epoch and whether /nodes/<id> exists into z->id_held_data. /nodes is
 * made here if it is missing; in a cluster that has had a leader already (/epoch > 0) but has no
 * /nodes/<id> at all (made before /nodes existed), every id 1..N gets its znode at once: any of
 * them may hold data. Returns 0 or a negative errno with a message in err.
 */
static int setup_nodes(struct kvfs_zk *z, char *err, size_t errlen)
{
	char path[256], rel[32], data[32];
	uint64_t epoch = 0;
	struct Stat st;
	int len = sizeof(data) - 1, rc;

	path_of(z, path, sizeof(path), "epoch");
	rc = zoo_get(z->zh, path, 0, data, &len, &st);
	if (rc != ZOK)
		return setup_error(z, path, rc, true, err, errlen);
	data[len > 0 ? len : 0] = '\0';
	if (election_parse_epoch(data, (size_t)(len > 0 ? len : 0), &epoch) < 0) {
		snprintf(err, errlen, "%s holds '%s', not an epoch number", path, data);
		return -EXDEV;
	}
	z->open_epoch = epoch;
	path_of(z, path, sizeof(path), "nodes");
	rc = ensure(z->zh, path, NULL, acl_of(z, false));
	if (rc == ZOK && z->auth)
		rc = tighten_nodes(z, path);
	if (rc == ZOK && epoch > 0) {
		struct String_vector kids = {0};

		/* Each node makes its /nodes/<id> before it can stand for election, so none at all
		 * once /epoch moved means a cluster from before /nodes (or another node making
		 * them right now). */
		rc = zoo_get_children(z->zh, path, 0, &kids);
		for (uint32_t id = 1; rc == ZOK && kids.count == 0 && id <= z->cfg.cluster_size;
		     id++) {
			snprintf(rel, sizeof(rel), "nodes/%u", id);
			path_of(z, path, sizeof(path), rel);
			rc = ensure(z->zh, path, NULL, acl_of(z, false));
		}
		deallocate_String_vector(&kids);
	}
	if (rc != ZOK)
		return setup_error(z, path, rc, false, err, errlen);
	snprintf(rel, sizeof(rel), "nodes/%u", z->cfg.id);
	path_of(z, path, sizeof(path), rel);
	rc = zoo_exists(z->zh, path, 0, &st);
	if (rc != ZOK && rc != ZNONODE)
		return setup_error(z, path, rc, true, err, errlen);
	z->id_held_data = rc == ZOK;
	return 0;
}

/*
 * setup_cluster() until it succeeds, fails for good, or the deadline passes. Returns its result;
 * its message is in err.
 */
int zk_setup_open(struct kvfs_zk *z, uint64_t deadline, char *cluster_id, char *err, size_t errlen)
{
	bool connected;
	int rv;

	/* A connection lost or a request timed out while the ensemble elects its own leader (or
	 * a server stalls) is tried again, on the next connection, until the deadline. */
	for (;;) {
		rv = setup_cluster(z, cluster_id, err, errlen);
		if (rv == 0)
			rv = setup_nodes(z, err, errlen);
		if (rv != -ETIMEDOUT || now_ms() >= deadline)
			break;
		pthread_mutex_lock(&z->lock);
		connected = zk_session_wait(z, deadline);
		pthread_mutex_unlock(&z->lock);
		if (!connected)
			break;
	}
	return rv;
}

uint32_t zk_election_cluster_size(const struct kvfs_zk *z)
{
	return z->cfg.cluster_size;
}

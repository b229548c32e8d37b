/*
 * Leader election bound to the ZooKeeper C client (see zk_election.h for the threads and the
 * lease). The election thread runs rounds: make sure this node has a candidate znode, read the
 * candidates and /leader, ask election_decide() what to do, do it, set the watches the decision
 * names, then sleep until a watch or session event (or a tick) wakes it. Every rule lives in
 * election.c; this file only moves facts between ZooKeeper and that function.
 *
 * ZooKeeper return codes are turned into messages here and go no further.
 *
 * Access (DESIGN §3): with credentials, each handle authenticates before its first request (the
 * election thread runs no round until ZooKeeper has accepted them) and every znode this file
 * creates carries acl_of(): the creator's digest identity alone, all rights. The shared /kvfs
 * also lets anyone READ and CREATE, so that a cluster with other credentials can still make its
 * own /kvfs/<name> next to ours; nobody but its creator may delete a cluster's znode from it,
 * change its ACL or write its data. Without credentials everything is open, as before. A node with
 * credentials that finds the cluster's znodes open (made by starts without) tightens them, once no
 * member without credentials is left running (setup_cluster()).
 */
#include "kvfs/zk_election.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/logging.h"

#define MAX_CANDIDATES    64
#define MAX_IDS           256 /* ids 1..255 */
#define ADDR_RETRY_MS     300
#define ZDATA_MAX         512
#define IDLE_TICK_MS      1000
#define HOLD_DOWN_TICK_MS 200
#define AUTH_PENDING      1 /* auth_rc while zoo_add_auth has not completed (Z* codes are <= 0) */

static FILE *zk_log; /* where the ZooKeeper client's own log goes: nowhere */

struct kvfs_zk {
	struct kvfs_zk_config cfg;
	char *hosts, *cluster, *addr, *session_file; /* owned copies of cfg's strings */
	char *auth;                                  /* "user:password" or NULL; wiped at free */
	int user_len;                                /* length of the user part of auth */
	const char *chroot;                          /* in hosts: "/a/b" or NULL */
	struct ACL root_acl_entries[2];              /* for /kvfs (see the top of this file) */
	struct ACL_vector root_acl;
	char base[128];            /* /kvfs/<cluster> */
	char cand_data[ZDATA_MAX]; /* this node's candidate data */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
	void (*notify)(void *arg); /* protected by lock */
	void *notify_arg;          /* protected by lock */
	int64_t prev_session;      /* our session before this process (from session_file) */

	/* protected by lock; written only by the election thread (and open/close), which may
	 * therefore read it without the lock */
	zhandle_t *zh;
	int state;                /* last session state from the watcher */
	int auth_rc;              /* the handle's zoo_add_auth: ZOK, AUTH_PENDING or a Z* error */
	bool expired;             /* the session expired: the handle must be replaced */
	uint64_t disconnected_at; /* when the connection was lost; 0 while connected */
	bool reconnected_late;    /* it came back after more than a session timeout */
	bool changed;             /* a watch fired or the session changed: run a round */
	bool stop;
	bool leading;
	uint64_t lease_until_ms; /* CLOCK_BOOTTIME */
	uint64_t session_ms;     /* the session timeout ZooKeeper granted (it may clamp ours) */
	int64_t session_id;      /* the current session; 0 before the first connection */
	int fatal;               /* a reason to stop (another process uses our id): -EXDEV */
	char fatal_msg[640];
	uint64_t epoch;
	uint32_t leader;
	char leader_addr[KVFS_ADDR_MAX];
	char addrs[MAX_IDS][KVFS_ADDR_MAX]; /* members' replication addresses, "" if unknown */
	bool ready[MAX_IDS];                /* caught up enough to be handed the lead */
	bool resign;                        /* the replication core gave the lead up */
	uint32_t evict_id;                  /* a dead leader to remove (fast failover) ... */
	uint64_t evict_epoch;               /* ... at this epoch */
	uint64_t addr_asked_ms;             /* the last round asked for by member_addr */

	/* election thread only */
	uint64_t rejoin_after_ms; /* after resigning, stand again only from then */
	char guid[KVFS_GUID_LEN + 1];
	bool have_znode;
	char my_name[KVFS_GUID_LEN + 32];
	bool member_registered;
	uint64_t better_since_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	/* BOOTTIME goes on during a suspend, as ZooKeeper's clock does: a lease must not. */
	clock_gettime(CLOCK_BOOTTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* A negative errno for a ZooKeeper return code. */
static int zk_errno(int rc)
{
	switch (rc) {
	case ZOK:
		return 0;
	case ZNONODE:
		return -ENOENT;
	case ZNODEEXISTS:
		return -EEXIST;
	case ZBADVERSION:
		return -ESTALE;
	case ZCONNECTIONLOSS:
	case ZOPERATIONTIMEOUT:
		return -ETIMEDOUT;
	case ZSESSIONEXPIRED:
		return -ECONNRESET;
	case ZNOAUTH:
		return -EACCES;
	default:
		return -EIO;
	}
}

static void new_guid(char *out)
{
	unsigned char raw[KVFS_GUID_LEN / 2];
	int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	ssize_t got = fd >= 0 ? read(fd, raw, sizeof(raw)) : -1;

	if (fd >= 0)
		close(fd);
	if (got != (ssize_t)sizeof(raw)) {
		/* No urandom: time and pid still make a guid no other attempt shares. */
		uint64_t t = now_ms() ^ ((uint64_t)getpid() << 32);

		for (size_t i = 0; i < sizeof(raw); i++)
			raw[i] = (unsigned char)(t >> (8 * (i % 8))) ^ (unsigned char)i;
	}
	for (size_t i = 0; i < sizeof(raw); i++)
		snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

static void wake(struct kvfs_zk *z);

/* The session id recorded in path by an earlier run of this node, or 0. */
static int64_t read_session_file(const char *path)
{
	unsigned long long id = 0;
	FILE *f = path ? fopen(path, "re") : NULL;

	if (!f)
		return 0;
	if (fscanf(f, "%llx", &id) != 1)
		id = 0;
	fclose(f);
	return (int64_t)id;
}

/* Records the current session id (best effort: without it a restart waits for the old session
 * to time out instead of removing its znodes). */
static void write_session_file(const char *path, int64_t id)
{
	char tmp[4096];
	FILE *f;
	int fd;

	if (!path || snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return;
	/* 0600, as every file in the data directory. */
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	f = fdopen(fd, "w");
	if (!f) {
		close(fd);
		return;
	}
	fprintf(f, "%llx\n", (unsigned long long)id);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static void set_fatal(struct kvfs_zk *z, const char *msg)
{
	pthread_mutex_lock(&z->lock);
	if (!z->fatal) {
		z->fatal = -EXDEV;
		snprintf(z->fatal_msg, sizeof(z->fatal_msg), "%s", msg);
	}
	pthread_mutex_unlock(&z->lock);
	log_error("%s", msg);
	wake(z);
}

static void wake(struct kvfs_zk *z)
{
	void (*fn)(void *);
	void *arg;

	pthread_mutex_lock(&z->lock);
	fn = z->notify;
	arg = z->notify_arg;
	pthread_mutex_unlock(&z->lock);
	if (fn)
		fn(arg);
}

/* One log line per session state change (the client's own log, which repeats every failed
 * connection attempt, goes nowhere). Called with z->lock held. */
static void log_session_change(const struct kvfs_zk *z, int from, int to)
{
	if (to == ZOO_CONNECTED_STATE)
		log_info("ZooKeeper: connected to %s", z->hosts);
	else if (to == ZOO_EXPIRED_SESSION_STATE)
		log_warn("ZooKeeper: session expired");
	else if (from == ZOO_CONNECTED_STATE)
		log_warn("ZooKeeper: connection lost; %s until it is back",
		         z->leading ? "not leading" : "following the last known leader");
}

/*
 * The one watcher, for session events and every watch set. It runs on the client's thread: it
 * records and wakes, nothing more.
 */
static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct kvfs_zk *z = ctx;

	pthread_mutex_lock(&z->lock);
	if (type == ZOO_SESSION_EVENT) {
		uint64_t now = now_ms();

		if (state != z->state)
			log_session_change(z, z->state, state);
		if (state == ZOO_CONNECTED_STATE) {
			int granted = zoo_recv_timeout(zh);

			if (granted > 0 && (uint64_t)granted != z->session_ms) {
				log_warn(
				    "ZooKeeper granted a session timeout of %d ms, not the %llu "
				    "ms asked for (the server clamps it to 2..20 ticks)",
				    granted, (unsigned long long)z->cfg.session_timeout_ms);
				z->session_ms = (uint64_t)granted;
			}
		}
		if (state == ZOO_CONNECTED_STATE && z->disconnected_at) {
			if (now - z->disconnected_at > z->session_ms)
				z->reconnected_late = true;
			z->disconnected_at = 0;
		} else if (state != ZOO_CONNECTED_STATE && z->state == ZOO_CONNECTED_STATE) {
			z->disconnected_at = now;
		}
		z->state = state;
		if (state != ZOO_CONNECTED_STATE && z->leading) {
			/* DESIGN §3: disconnected, stop acting as leader at once. */
			z->leading = false;
			z->lease_until_ms = 0;
			z->leader = 0; /* we no longer know who leads */
		}
		if (state == ZOO_EXPIRED_SESSION_STATE)
			z->expired = true;
	}
	z->changed = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	wake(z);
}

/* True (lock held) once the handle may be used: connected, and its credentials (if any)
 * accepted. */
static bool ready(const struct kvfs_zk *z)
{
	return z->state == ZOO_CONNECTED_STATE && z->auth_rc == ZOK;
}

/* True (lock held) when ZooKeeper refused the credentials: this handle will never be ready. */
static bool auth_refused(const struct kvfs_zk *z)
{
	return (z->auth_rc != ZOK && z->auth_rc != AUTH_PENDING) ||
	       z->state == ZOO_AUTH_FAILED_STATE;
}

/* Waits (lock held) until the session is connected and authenticated (ready()), or refused, or
 * until deadline; true if ready. */
static bool wait_connected(struct kvfs_zk *z, uint64_t deadline)
{
	while (!ready(z) && !auth_refused(z) && !z->stop && !z->expired) {
		struct timespec ts;
		uint64_t now = now_ms();

		if (now >= deadline)
			return false;
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += (time_t)((deadline - now) / 1000);
		ts.tv_nsec += (long)((deadline - now) % 1000) * 1000000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&z->cond, &z->lock, &ts);
	}
	return ready(z);
}

/* zoo_add_auth's completion, on the client's thread: records the outcome and wakes the waiter. */
static void on_auth(int rc, const void *data)
{
	struct kvfs_zk *z = (struct kvfs_zk *)data;

	pthread_mutex_lock(&z->lock);
	z->auth_rc = rc;
	z->changed = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	if (rc == ZOK)
		log_info("ZooKeeper: authenticated as digest user '%.*s'", z->user_len, z->auth);
	else
		log_error("ZooKeeper refused the credentials of --zk-auth-file (user '%.*s'): %s",
		          z->user_len, z->auth, zerror(rc));
}

/*
 * A new handle (called with z->lock held). With credentials it is given them at once: the client
 * sends them first thing on every connection, ahead of any queued request, and the server
 * applies them before what follows; auth_rc stays AUTH_PENDING until ZooKeeper has answered,
 * and nothing is asked of the handle before (ready()). NULL when the client cannot make one.
 */
static zhandle_t *connect_handle(struct kvfs_zk *z)
{
	zhandle_t *zh =
	    zookeeper_init(z->hosts, watcher, (int)z->cfg.session_timeout_ms, NULL, z, 0);
	int rc;

	z->auth_rc = z->auth ? AUTH_PENDING : ZOK;
	if (!zh || !z->auth)
		return zh;
	rc = zoo_add_auth(zh, "digest", z->auth, (int)strlen(z->auth), on_auth, z);
	if (rc != ZOK)
		z->auth_rc = rc; /* the completion will not run */
	return zh;
}

/* The ACL for a znode this node creates: /kvfs is shared (root), the rest is the cluster's. */
static const struct ACL_vector *acl_of(const struct kvfs_zk *z, bool root)
{
	if (!z->auth)
		return &ZOO_OPEN_ACL_UNSAFE;
	return root ? &z->root_acl : &ZOO_CREATOR_ALL_ACL;
}

static void path_of(const struct kvfs_zk *z, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", z->base, rel);
}

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
	return zk_errno(rc);
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
			continue; /* ours, from an earlier session: see register_member() */
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
	static const char *const rels[] = {"election", "members", "epoch", "config"};
	struct Stat st;
	uint32_t size;
	int len = sizeof(data) - 1, rc;

	rc = ensure(z->zh, "/kvfs", NULL, acl_of(z, true));
	if (rc != ZOK)
		return setup_error(z, "/kvfs", rc, false, err, errlen);
	rc = ensure(z->zh, z->base, NULL, acl_of(z, false));
	if (rc != ZOK)
		return setup_error(z, z->base, rc, false, err, errlen);
	for (size_t i = 0; i < 3; i++) {
		path_of(z, path, sizeof(path), rels[i]);
		rc = ensure(z->zh, path, strcmp(rels[i], "epoch") == 0 ? "0" : NULL,
		            acl_of(z, false));
		if (rc != ZOK)
			return setup_error(z, path, rc, false, err, errlen);
	}
	/* The first node to start names the cluster; a racing one finds its /config. */
	new_guid(id);
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
	if (size != z->cfg.cluster_size) {
		snprintf(
		    err, errlen,
		    "cluster '%s' was created with %u voting replicas but this node was started "
		    "with --cluster-size %u; use --cluster-size %u (or another --cluster)",
		    z->cfg.cluster, size, z->cfg.cluster_size, size);
		return -EXDEV;
	}
	return 0;
}

static void free_zk(struct kvfs_zk *z)
{
	pthread_cond_destroy(&z->cond);
	pthread_mutex_destroy(&z->lock);
	free(z->hosts);
	free(z->cluster);
	free(z->addr);
	free(z->session_file);
	if (z->auth) {
		explicit_bzero(z->auth, strlen(z->auth));
		free(z->auth);
	}
	free(z);
}

int zk_election_open(struct kvfs_zk **out, const struct kvfs_zk_config *cfg, char *cluster_id,
                     char *err, size_t errlen)
{
	struct kvfs_zk *z = calloc(1, sizeof(*z));
	uint64_t deadline;
	bool connected, reached;
	int rv, refused;

	if (!z)
		return -ENOMEM;
	z->cfg = *cfg;
	z->hosts = strdup(cfg->hosts);
	z->cluster = strdup(cfg->cluster);
	z->addr = strdup(cfg->addr);
	z->session_file = cfg->session_file ? strdup(cfg->session_file) : NULL;
	z->auth = cfg->auth ? strdup(cfg->auth) : NULL;
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->cond, NULL);
	if (!z->hosts || !z->cluster || !z->addr || (cfg->session_file && !z->session_file) ||
	    (cfg->auth && !z->auth)) {
		free_zk(z);
		return -ENOMEM;
	}
	z->cfg.auth = NULL; /* z->auth is the copy; cfg's may be wiped by the caller */
	if (z->auth) {
		const char *colon = strchr(z->auth, ':');

		z->user_len = colon ? (int)(colon - z->auth) : (int)strlen(z->auth);
		z->root_acl_entries[0] = (struct ACL){.perms = ZOO_PERM_ALL, .id = ZOO_AUTH_IDS};
		z->root_acl_entries[1] = (struct ACL){.perms = ZOO_PERM_READ | ZOO_PERM_CREATE,
		                                      .id = ZOO_ANYONE_ID_UNSAFE};
		z->root_acl = (struct ACL_vector){.count = 2, .data = z->root_acl_entries};
	}
	/* The client takes everything from the first '/' of the connect string as a chroot. */
	z->chroot = strchr(z->hosts, '/');
	if (z->chroot && strcmp(z->chroot, "/") == 0)
		z->chroot = NULL;
	z->cfg.hosts = z->hosts;
	z->cfg.cluster = z->cluster;
	z->cfg.addr = z->addr;
	z->cfg.session_file = z->session_file;
	snprintf(z->base, sizeof(z->base), "/kvfs/%s", z->cluster);
	z->session_ms = cfg->session_timeout_ms;
	z->prev_session = read_session_file(cfg->session_file);
	snprintf(z->cand_data, sizeof(z->cand_data), "id=%u addr=%s priority=%u", cfg->id,
	         cfg->addr, cfg->priority);
	/* The client logs every failed connection attempt, hundreds of lines per outage; the
	 * watcher says what matters instead. */
	zk_log = fopen("/dev/null", "w");
	if (zk_log)
		zoo_set_log_stream(zk_log);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);

	deadline = now_ms() + cfg->connect_timeout_ms;
	pthread_mutex_lock(&z->lock);
	z->zh = connect_handle(z);
	connected = z->zh && wait_connected(z, deadline);
	refused = auth_refused(z) ? (z->auth_rc != ZOK ? z->auth_rc : ZAUTHFAILED) : ZOK;
	reached = z->state == ZOO_CONNECTED_STATE;
	pthread_mutex_unlock(&z->lock);
	if (!connected && refused != ZOK) {
		snprintf(err, errlen,
		         "ZooKeeper at %s refused the credentials of --zk-auth-file (user '%.*s'): "
		         "%s",
		         cfg->hosts, z->user_len, z->auth, zerror(refused));
		rv = -EACCES;
		goto err_close;
	}
	if (!connected) {
		snprintf(err, errlen, "cannot reach ZooKeeper at %s after %.1f s; is it running?%s",
		         cfg->hosts, (double)cfg->connect_timeout_ms / 1000,
		         reached ? " (connected, but it did not answer the credentials of "
		                   "--zk-auth-file)"
		                 : "");
		rv = -ETIMEDOUT;
		goto err_close;
	}
	/* A connection lost or a request timed out while the ensemble elects its own leader (or
	 * a server stalls) is tried again, on the next connection, until the deadline. */
	for (;;) {
		rv = setup_cluster(z, cluster_id, err, errlen);
		if (rv != -ETIMEDOUT || now_ms() >= deadline)
			break;
		pthread_mutex_lock(&z->lock);
		connected = wait_connected(z, deadline);
		pthread_mutex_unlock(&z->lock);
		if (!connected)
			break;
	}
	if (rv < 0)
		goto err_close;
	*out = z;
	return 0;

err_close:
	if (z->zh)
		zookeeper_close(z->zh);
	free_zk(z);
	return rv;
}

/* Publishes what the loop may see. */
static void publish(struct kvfs_zk *z, bool leading, uint64_t lease_from, uint64_t epoch,
                    uint32_t leader, const char *leader_addr)
{
	pthread_mutex_lock(&z->lock);
	/* A session event between the round trip and now wins: it already dropped leadership. */
	if (leading && z->state != ZOO_CONNECTED_STATE)
		leading = false;
	z->leading = leading;
	if (leading)
		z->lease_until_ms = lease_from + z->session_ms * 2 / 3;
	z->epoch = epoch;
	z->leader = leader;
	snprintf(z->leader_addr, sizeof(z->leader_addr), "%s", leader_addr ? leader_addr : "");
	pthread_mutex_unlock(&z->lock);
	wake(z);
}

/*
 * A znode (at path, owned by session owner) that names this node's id but is not this attempt's.
 * Left by an earlier session of this node (restarted before that session timed out), it is
 * removed so it does not hold up the election: true. Owned by a session this node never had, it
 * belongs to another process with the same --id, which register_member() turned away: it is left
 * alone (no fighting) and false returned.
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
static bool register_member(struct kvfs_zk *z)
{
	char path[256], data[ZDATA_MAX], rel[32];
	int rc;

	snprintf(rel, sizeof(rel), "members/%u", z->cfg.id);
	path_of(z, path, sizeof(path), rel);
	snprintf(data, sizeof(data), "addr=%s priority=%u", z->addr, z->cfg.priority);
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
		set_fatal(z, msg);
	}
	return z->member_registered;
}

/* Creates this node's candidate znode election/<guid>-n_ (ephemeral, sequential). */
static int create_candidate(struct kvfs_zk *z, int64_t session)
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
		return zk_errno(rc);
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
static int read_candidates(struct kvfs_zk *z, bool watch, struct kvfs_candidate *c, size_t *n,
                           int *mine)
{
	struct String_vector kids = {0};
	struct Stat dst; /* the client writes it even when it is not wanted */
	char path[512], dir[256], data[ZDATA_MAX];
	int rc;

	*n = 0;
	*mine = -1;
	path_of(z, dir, sizeof(dir), "election");
	rc = watch ? zoo_wget_children2(z->zh, dir, watcher, z, &kids, &dst)
	           : zoo_get_children2(z->zh, dir, 0, &kids, &dst);
	if (rc != ZOK)
		return zk_errno(rc);
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
			return zk_errno(rc);
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
			*mine = (int)*n;
			(*n)++;
			continue;
		}
		if (election_parse_candidate(data, (size_t)(len > 0 ? len : 0), k) < 0)
			continue;
		if (k->id == z->cfg.id) {
			remove_leftover(z, k->owner, path);
			continue; /* not a candidate we count */
		}
		(*n)++;
	}
	deallocate_String_vector(&kids);
	return 0;
}

struct leader_info {
	bool exists;
	bool mine;
	uint32_t id;
	char addr[KVFS_ADDR_MAX];
	uint64_t epoch;
	int version;
};

/* Reads /leader and watches it. A /leader naming this node but not owned by this session goes
 * through remove_leftover(). */
static int read_leader(struct kvfs_zk *z, int64_t session, struct leader_info *l)
{
	char path[256], data[ZDATA_MAX];
	int len = sizeof(data) - 1, rc;
	struct Stat st;

	memset(l, 0, sizeof(*l));
	path_of(z, path, sizeof(path), "leader");
	rc = zoo_wget(z->zh, path, watcher, z, data, &len, &st);
	if (rc == ZNONODE) {
		/* Watch for its creation, so followers learn the next leader. */
		rc = zoo_wexists(z->zh, path, watcher, z, &st);
		if (rc == ZNONODE)
			return 0;
		if (rc != ZOK)
			return zk_errno(rc);
		return -EAGAIN; /* created between the two calls: read again next round */
	}
	if (rc != ZOK)
		return zk_errno(rc);
	l->exists = true;
	l->mine = st.ephemeralOwner == session;
	l->version = st.version;
	if (election_parse_leader(data, (size_t)(len > 0 ? len : 0), &l->id, l->addr, &l->epoch) <
	    0)
		log_warn("%s holds unreadable data", path);
	if (!l->mine && l->id == z->cfg.id && remove_leftover(z, st.ephemeralOwner, path))
		l->exists = false;
	return 0;
}

/*
 * Takes leadership in one multi: this node's candidate znode still exists, /leader is created
 * (replacing our own, at leader_version, with `retake`), /epoch goes up by one with the version
 * just read. Returns the new epoch, or 0 if another step must come first.
 */
static uint64_t take_leadership(struct kvfs_zk *z, bool retake, int leader_version)
{
	char epoch_path[256], leader_path[256], mine[256], data[ZDATA_MAX], ebuf[32];
	zoo_op_t ops[4];
	zoo_op_result_t res[4];
	struct Stat st;
	int len = sizeof(ebuf) - 1, rc, n = 0;
	unsigned long long epoch;

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
	epoch = strtoull(ebuf, NULL, 10) + 1;
	snprintf(data, sizeof(data), "id=%u addr=%s epoch=%llu", z->cfg.id, z->addr, epoch);
	snprintf(ebuf, sizeof(ebuf), "%llu", epoch);
	zoo_check_op_init(&ops[n++], mine, -1);
	if (retake)
		zoo_delete_op_init(&ops[n++], leader_path, leader_version);
	zoo_create_op_init(&ops[n++], leader_path, data, (int)strlen(data), acl_of(z, false),
	                   ZOO_EPHEMERAL, NULL, 0);
	zoo_set_op_init(&ops[n++], epoch_path, ebuf, (int)strlen(ebuf), st.version, NULL);
	rc = zoo_multi(z->zh, n, ops, res);
	if (rc != ZOK) {
		log_info("taking leadership at epoch %llu failed: %s; trying again", epoch,
		         zerror(rc));
		return 0;
	}
	return epoch;
}

static void clear_late(struct kvfs_zk *z)
{
	pthread_mutex_lock(&z->lock);
	z->reconnected_late = false;
	pthread_mutex_unlock(&z->lock);
}

/*
 * Confirms that this session is alive, with a request the ZooKeeper leader itself must order (a
 * one-op multi checking our candidate znode). A read would not do: a ZooKeeper follower cut off
 * from its quorum still answers reads from its stale copy, after the leader expired us.
 */
static bool confirm_session(struct kvfs_zk *z)
{
	char mine[256];
	zoo_op_t op;
	zoo_op_result_t res;

	snprintf(mine, sizeof(mine), "%s/election/%s", z->base, z->my_name);
	zoo_check_op_init(&op, mine, -1);
	return zoo_multi(z->zh, 1, &op, &res) == ZOK;
}

/* Records the replication addresses the candidates and /leader announce. */
static void publish_addrs(struct kvfs_zk *z, const struct kvfs_candidate *c, size_t n,
                          const struct leader_info *l)
{
	pthread_mutex_lock(&z->lock);
	for (size_t i = 0; i < n; i++)
		if (c[i].id > 0 && c[i].id < MAX_IDS && c[i].addr[0])
			snprintf(z->addrs[c[i].id], KVFS_ADDR_MAX, "%s", c[i].addr);
	if (l->exists && l->id > 0 && l->id < MAX_IDS && l->addr[0])
		snprintf(z->addrs[l->id], KVFS_ADDR_MAX, "%s", l->addr);
	pthread_mutex_unlock(&z->lock);
}

/*
 * Carries out what the loop asked for. Resigning: the replication core could not hold a
 * majority, so this node deletes /leader and its candidacy and stands again (at the back) only
 * after a hold-down, letting another try. Evicting: a peer saw the leader's replication port
 * refuse connections (the process is gone), so the dead leader's /leader and candidacy go now
 * rather than after its session times out; the epoch fences it if it was not dead after all.
 * Returns true if it changed anything (the caller runs a new round).
 */
static bool do_resign_evict(struct kvfs_zk *z, const struct kvfs_candidate *c, size_t n,
                            const struct leader_info *l)
{
	char path[512];
	uint32_t evict_id;
	uint64_t evict_epoch;
	bool resign, acted = false;

	pthread_mutex_lock(&z->lock);
	resign = z->resign;
	evict_id = z->evict_id;
	evict_epoch = z->evict_epoch;
	z->resign = false;
	z->evict_id = 0;
	if (resign)
		z->leading = false;
	pthread_mutex_unlock(&z->lock);
	if (resign) {
		if (l->exists && l->mine) {
			path_of(z, path, sizeof(path), "leader");
			zoo_delete(z->zh, path, l->version);
		}
		if (z->have_znode) {
			snprintf(path, sizeof(path), "%s/election/%s", z->base, z->my_name);
			zoo_delete(z->zh, path, -1);
			z->have_znode = false;
		}
		z->rejoin_after_ms = now_ms() + (z->cfg.hold_down_ms ? z->cfg.hold_down_ms : 1000);
		log_warn("gave up the lead (no majority of replicas answered); standing again in "
		         "%" PRIu64 " ms",
		         z->cfg.hold_down_ms ? z->cfg.hold_down_ms : 1000);
		acted = true;
	}
	if (evict_id && evict_id != z->cfg.id && l->exists && !l->mine && l->id == evict_id &&
	    l->epoch == evict_epoch) {
		path_of(z, path, sizeof(path), "leader");
		zoo_delete(z->zh, path, l->version);
		for (size_t i = 0; i < n; i++) {
			if (c[i].id != evict_id)
				continue;
			snprintf(path, sizeof(path), "%s/election/%.*s", z->base,
			         (int)sizeof(c[i].name), c[i].name);
			zoo_delete(z->zh, path, -1);
		}
		log_warn("leader %u (epoch %" PRIu64 ") refuses replication connections: removed "
		         "its /leader and candidacy (fast failover)",
		         evict_id, evict_epoch);
		acted = true;
	}
	if (acted)
		publish(z, false, 0, 0, 0, NULL);
	return acted;
}

/* One round: see the election, decide, act, watch. Returns the next tick in ms. */
static uint64_t run_round(struct kvfs_zk *z)
{
	struct kvfs_candidate c[MAX_CANDIDATES];
	struct kvfs_election_decision d;
	struct kvfs_election_view v;
	struct leader_info l;
	size_t n;
	int mine, rv;
	int64_t session = zoo_client_id(z->zh)->client_id;
	uint64_t start = now_ms(), epoch;
	uint64_t session_ms;
	bool leading, late;

	if (session != z->session_id) {
		/* A new session: remember it, so that a restart knows its leftovers. */
		if (z->session_id)
			z->prev_session = z->session_id;
		z->session_id = session;
		write_session_file(z->cfg.session_file, session);
	}
	/* The id is ours only once /members/<id> is: no candidacy before. */
	if (!z->member_registered && !register_member(z))
		return HOLD_DOWN_TICK_MS;
	if (!z->have_znode && start < z->rejoin_after_ms) {
		struct leader_info held;

		/* Out of the election for the hold-down but still a replica: show who leads
		 * meanwhile (and watch /leader), since the core answers a new leader's
		 * NEW_EPOCH only once this view names it. */
		if (read_leader(z, session, &held) == 0 && held.exists && !held.mine)
			publish(z, false, 0, held.epoch, held.id, held.addr);
		else
			publish(z, false, 0, 0, 0, NULL);
		return z->rejoin_after_ms - start;
	}
	if (!z->have_znode && create_candidate(z, session) < 0)
		return IDLE_TICK_MS;
	rv = read_candidates(z, z->cfg.mode == KVFS_ELECTION_PRIORITY, c, &n, &mine);
	if (rv == 0)
		rv = read_leader(z, session, &l);
	if (rv < 0)
		return rv == -EAGAIN ? 0 : IDLE_TICK_MS;
	if (mine < 0)
		z->have_znode = false;
	publish_addrs(z, c, n, &l);
	if (do_resign_evict(z, c, n, &l))
		return 0;

	pthread_mutex_lock(&z->lock);
	leading = z->leading;
	late = z->reconnected_late;
	session_ms = z->session_ms;
	pthread_mutex_unlock(&z->lock);
	v = (struct kvfs_election_view){
	    .mode = z->cfg.mode,
	    .cands = c,
	    .n = n,
	    .mine = mine,
	    .leader_exists = l.exists,
	    .leader_mine = l.mine,
	    .leading = leading && l.mine,
	    .reconnected_late = late,
	    .successor_ready = false, /* set below, for the candidate that would lead */
	    .hold_down_ms = z->cfg.hold_down_ms,
	};
	if (v.leading && mine >= 0 && election_rank(v.mode, c, n) != mine) {
		if (!z->better_since_ms)
			z->better_since_ms = start;
		v.better_waited_ms = start - z->better_since_ms;
	} else {
		z->better_since_ms = 0;
	}
	if (n > 0) {
		int top = election_rank(v.mode, c, n);

		pthread_mutex_lock(&z->lock);
		v.successor_ready = top >= 0 && c[top].id < MAX_IDS && z->ready[c[top].id];
		pthread_mutex_unlock(&z->lock);
	}
	election_decide(&v, &d);

	switch (d.action) {
	case KVFS_ELECT_TAKE:
	case KVFS_ELECT_RETAKE:
		epoch = take_leadership(z, d.action == KVFS_ELECT_RETAKE, l.version);
		if (!epoch)
			return HOLD_DOWN_TICK_MS;
		log_info("leading at epoch %" PRIu64 "%s", epoch,
		         d.action == KVFS_ELECT_RETAKE ? " (a new term after a long outage)" : "");
		clear_late(z);
		publish(z, true, start, epoch, z->cfg.id, z->addr);
		return session_ms / 4;
	case KVFS_ELECT_RESUME:
		if (!confirm_session(z))
			return HOLD_DOWN_TICK_MS;
		log_info("reconnected with the same session; leading again at epoch %" PRIu64,
		         l.epoch);
		clear_late(z);
		publish(z, true, start, l.epoch, z->cfg.id, z->addr);
		return session_ms / 4;
	case KVFS_ELECT_HAND_OVER: {
		char path[256];

		/* Stop taking writes first, then let the better candidate take over. */
		publish(z, false, 0, l.epoch, 0, NULL);
		path_of(z, path, sizeof(path), "leader");
		rv = zk_errno(zoo_delete(z->zh, path, l.version));
		log_info("handing over leadership (epoch %" PRIu64 ") to node %u: %s", l.epoch,
		         d.top >= 0 ? c[d.top].id : 0, rv < 0 ? strerror(-rv) : "done");
		z->better_since_ms = 0;
		return 0;
	}
	case KVFS_ELECT_REJOIN:
		return 0;
	case KVFS_ELECT_WAIT:
	case KVFS_ELECT_NONE:
		break;
	}
	if (d.watch >= 0) {
		char path[256];
		struct Stat st;

		snprintf(path, sizeof(path), "%s/election/%s", z->base, c[d.watch].name);
		if (zoo_wexists(z->zh, path, watcher, z, &st) == ZNONODE)
			return 0; /* gone already: look again now */
	}
	if (v.leading) {
		/* Renew the lease, counted from before the confirming round trip. */
		if (confirm_session(z))
			publish(z, true, start, l.epoch, z->cfg.id, z->addr);
		return z->better_since_ms ? HOLD_DOWN_TICK_MS : session_ms / 4;
	}
	publish(z, false, 0, l.exists ? l.epoch : 0, l.exists ? l.id : 0, l.exists ? l.addr : NULL);
	return IDLE_TICK_MS;
}

static void *election_main(void *arg)
{
	struct kvfs_zk *z = arg;
	uint64_t tick = 0;

	pthread_mutex_lock(&z->lock);
	while (!z->stop) {
		if (z->expired) {
			zhandle_t *old = z->zh;

			/* DESIGN §3: expired, step down, close the handle here (never in a
			 * callback), make a new one and join again with a new guid. */
			z->zh = NULL;
			z->expired = false;
			z->state = 0;
			z->leading = false;
			z->leader = 0;
			z->reconnected_late =
			    false; /* a new session starts a new candidacy anyway */
			z->disconnected_at = 0;
			/* A give-up the core asked for while the old session was cut off (it led a
			 * minority) was about that session's candidacy, which expired with it.
			 * Carried over, it would delete the new candidacy at once and keep this
			 * node out of the election, knowing no leader, for the hold-down: seconds
			 * of recovery lost after a partition heals. */
			z->resign = false;
			pthread_mutex_unlock(&z->lock);
			log_warn("ZooKeeper session expired; joining the election again");
			wake(z);
			if (old)
				zookeeper_close(old);
			z->have_znode = false;
			z->member_registered = false;
			new_guid(z->guid);
			pthread_mutex_lock(&z->lock);
			z->zh = connect_handle(z);
			if (!z->zh)
				z->expired = true; /* try again after a tick */
		}
		if (z->zh && auth_refused(z) && !z->fatal) {
			char msg[300];

			/* Only a new handle after an expiry gets here: open() checked the first. */
			snprintf(
			    msg, sizeof(msg),
			    "ZooKeeper refused the credentials of --zk-auth-file (user '%.*s') "
			    "on the new session after an expiry: stopping",
			    z->user_len, z->auth);
			pthread_mutex_unlock(&z->lock);
			set_fatal(z, msg);
			pthread_mutex_lock(&z->lock);
		}
		if (ready(z) && z->zh && !z->fatal) {
			z->changed = false;
			pthread_mutex_unlock(&z->lock);
			tick = run_round(z);
			pthread_mutex_lock(&z->lock);
		} else {
			/* Not connected: nothing to do but wait for the next session event. */
			z->changed = false;
			tick = IDLE_TICK_MS;
		}
		if (!z->changed && !z->stop && !z->expired && tick > 0) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)(tick / 1000);
			ts.tv_nsec += (long)(tick % 1000) * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			pthread_cond_timedwait(&z->cond, &z->lock, &ts);
		}
	}
	pthread_mutex_unlock(&z->lock);
	return NULL;
}

int zk_election_start(struct kvfs_zk *z, void (*notify)(void *arg), void *arg)
{
	int rv;

	new_guid(z->guid);
	pthread_mutex_lock(&z->lock);
	z->notify = notify;
	z->notify_arg = arg;
	z->changed = true;
	pthread_mutex_unlock(&z->lock);
	rv = pthread_create(&z->thread, NULL, election_main, z);
	if (rv != 0)
		return -rv;
	z->started = true;
	return 0;
}

int zk_election_fatal(struct kvfs_zk *z, char *msg, size_t len)
{
	int rv;

	pthread_mutex_lock(&z->lock);
	rv = z->fatal;
	if (rv)
		snprintf(msg, len, "%s", z->fatal_msg);
	pthread_mutex_unlock(&z->lock);
	return rv;
}

void zk_election_view(struct kvfs_zk *z, struct kvfs_zk_view *v)
{
	pthread_mutex_lock(&z->lock);
	v->zk = z->state == ZOO_CONNECTED_STATE                         ? "connected"
	        : (z->expired || z->state == ZOO_EXPIRED_SESSION_STATE) ? "expired"
	                                                                : "connecting";
	v->leading = z->leading && z->state == ZOO_CONNECTED_STATE && now_ms() < z->lease_until_ms;
	v->epoch = z->epoch;
	v->leader = v->leading ? z->cfg.id : (z->leading ? 0 : z->leader);
	snprintf(v->leader_addr, sizeof(v->leader_addr), "%s", v->leader ? z->leader_addr : "");
	pthread_mutex_unlock(&z->lock);
}

void zk_election_close(struct kvfs_zk *z)
{
	bool leading;
	zhandle_t *zh;

	pthread_mutex_lock(&z->lock);
	z->stop = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	if (z->started)
		pthread_join(z->thread, NULL);
	pthread_mutex_lock(&z->lock);
	leading = z->leading;
	z->leading = false;
	zh = z->zh;
	z->zh = NULL;
	pthread_mutex_unlock(&z->lock);
	if (zh) {
		if (leading && zoo_state(zh) == ZOO_CONNECTED_STATE) {
			char path[256];

			path_of(z, path, sizeof(path), "leader");
			zoo_delete(zh, path, -1);
			log_info("stepped down: deleted %s", path);
		}
		/* Closing the session deletes our ephemeral znodes at once: no one waits for a
		 * session timeout to elect the next leader. */
		zookeeper_close(zh);
	}
	free_zk(z);
}

void zk_election_member_addr(struct kvfs_zk *z, uint32_t id, char *buf, size_t len)
{
	uint64_t now = now_ms();

	pthread_mutex_lock(&z->lock);
	snprintf(buf, len, "%s", id < MAX_IDS ? z->addrs[id] : "");
	/* Not known yet (it joined after our last round): look again soon, not at the next
	 * idle tick. */
	if (!buf[0] && now - z->addr_asked_ms >= ADDR_RETRY_MS) {
		z->addr_asked_ms = now;
		z->changed = true;
		pthread_cond_broadcast(&z->cond);
	}
	pthread_mutex_unlock(&z->lock);
}

void zk_election_set_ready(struct kvfs_zk *z, uint32_t id, bool ready)
{
	if (id >= MAX_IDS)
		return;
	pthread_mutex_lock(&z->lock);
	z->ready[id] = ready;
	pthread_mutex_unlock(&z->lock);
}

void zk_election_resign(struct kvfs_zk *z)
{
	pthread_mutex_lock(&z->lock);
	z->resign = true;
	z->leading = false;
	z->changed = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	wake(z);
}

void zk_election_evict(struct kvfs_zk *z, uint32_t id, uint64_t epoch)
{
	pthread_mutex_lock(&z->lock);
	z->evict_id = id;
	z->evict_epoch = epoch;
	z->changed = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
}

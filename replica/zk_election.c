/*
 * Leader election bound to the ZooKeeper C client (see zk_election.h for the threads and the
 * lease). The election thread runs rounds: make sure this node has a candidate znode, read the
 * candidates and /leader, ask election_decide() what to do, do it, set the watches the decision
 * names, then sleep until a watch or session event (or a tick) wakes it. Every rule lives in
 * election.c; this file only moves facts between ZooKeeper and that function.
 *
 * ZooKeeper return codes are turned into messages here and go no further.
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
#define ZDATA_MAX         512
#define IDLE_TICK_MS      1000
#define HOLD_DOWN_TICK_MS 200

static FILE *zk_log; /* where the ZooKeeper client's own log goes: nowhere */

struct kvfs_zk {
	struct kvfs_zk_config cfg;
	char *hosts, *cluster, *addr; /* owned copies of cfg's strings */
	char base[128];               /* /kvfs/<cluster> */
	char cand_data[ZDATA_MAX];    /* this node's candidate data */

	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started;
	void (*notify)(void *arg);
	void *notify_arg;

	/* protected by lock */
	zhandle_t *zh;
	int state;                /* last session state from the watcher */
	bool expired;             /* the session expired: the handle must be replaced */
	uint64_t disconnected_at; /* when the connection was lost; 0 while connected */
	bool reconnected_late;    /* it came back after more than a session timeout */
	bool changed;             /* a watch fired or the session changed: run a round */
	bool stop;
	bool leading;
	uint64_t lease_until_ms; /* CLOCK_MONOTONIC */
	uint64_t epoch;
	uint32_t leader;
	char leader_addr[KVFS_ADDR_MAX];

	/* election thread only */
	char guid[KVFS_GUID_LEN + 1];
	bool have_znode;
	char my_name[KVFS_GUID_LEN + 32];
	bool member_registered;
	uint64_t better_since_ms;
};

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
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

static void wake(struct kvfs_zk *z)
{
	if (z->notify)
		z->notify(z->notify_arg);
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
		if (state == ZOO_CONNECTED_STATE && z->disconnected_at) {
			if (now - z->disconnected_at > z->cfg.session_timeout_ms)
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

/* Waits (lock held) until the session is connected, or until deadline; true if connected. */
static bool wait_connected(struct kvfs_zk *z, uint64_t deadline)
{
	while (z->state != ZOO_CONNECTED_STATE && !z->stop && !z->expired) {
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
	return z->state == ZOO_CONNECTED_STATE;
}

static zhandle_t *connect_handle(struct kvfs_zk *z)
{
	return zookeeper_init(z->hosts, watcher, (int)z->cfg.session_timeout_ms, NULL, z, 0);
}

static void path_of(const struct kvfs_zk *z, char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", z->base, rel);
}

/* Creates a persistent znode with data if it is missing. 0 or a negative errno. */
static int ensure(zhandle_t *zh, const char *path, const char *data)
{
	int rc = zoo_create(zh, path, data, data ? (int)strlen(data) : -1, &ZOO_OPEN_ACL_UNSAFE, 0,
	                    NULL, 0);

	return rc == ZNODEEXISTS ? 0 : zk_errno(rc);
}

/* Makes the cluster's tree exist and reads (or creates) /config. */
static int setup_cluster(struct kvfs_zk *z, char *cluster_id, char *err, size_t errlen)
{
	char path[256], data[ZDATA_MAX], id[2 * KVFS_GUID_LEN + 1];
	static const char *const dirs[] = {"election", "members"};
	struct Stat st;
	uint32_t size;
	int len = sizeof(data) - 1, rc, rv;

	rv = ensure(z->zh, "/kvfs", NULL);
	if (rv == 0)
		rv = ensure(z->zh, z->base, NULL);
	for (size_t i = 0; rv == 0 && i < 2; i++) {
		path_of(z, path, sizeof(path), dirs[i]);
		rv = ensure(z->zh, path, NULL);
	}
	if (rv == 0) {
		path_of(z, path, sizeof(path), "epoch");
		rv = ensure(z->zh, path, "0");
	}
	if (rv < 0) {
		snprintf(err, errlen,
		         "cannot create the cluster's znodes under %s in ZooKeeper: %s", z->base,
		         strerror(-rv));
		return rv;
	}
	/* The first node to start names the cluster; a racing one finds its /config. */
	new_guid(id);
	snprintf(data, sizeof(data), "cluster_id=%s size=%u", id, z->cfg.cluster_size);
	path_of(z, path, sizeof(path), "config");
	rv = ensure(z->zh, path, data);
	if (rv == 0) {
		rc = zoo_get(z->zh, path, 0, data, &len, &st);
		rv = zk_errno(rc);
	}
	if (rv < 0) {
		snprintf(err, errlen, "cannot read %s from ZooKeeper: %s", path, strerror(-rv));
		return rv;
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
	free(z);
}

int zk_election_open(struct kvfs_zk **out, const struct kvfs_zk_config *cfg, char *cluster_id,
                     char *err, size_t errlen)
{
	struct kvfs_zk *z = calloc(1, sizeof(*z));
	bool connected;
	int rv;

	if (!z)
		return -ENOMEM;
	z->cfg = *cfg;
	z->hosts = strdup(cfg->hosts);
	z->cluster = strdup(cfg->cluster);
	z->addr = strdup(cfg->addr);
	pthread_mutex_init(&z->lock, NULL);
	pthread_cond_init(&z->cond, NULL);
	if (!z->hosts || !z->cluster || !z->addr) {
		free_zk(z);
		return -ENOMEM;
	}
	z->cfg.hosts = z->hosts;
	z->cfg.cluster = z->cluster;
	z->cfg.addr = z->addr;
	snprintf(z->base, sizeof(z->base), "/kvfs/%s", z->cluster);
	snprintf(z->cand_data, sizeof(z->cand_data), "id=%u addr=%s priority=%u", cfg->id,
	         cfg->addr, cfg->priority);
	/* The client logs every failed connection attempt, hundreds of lines per outage; the
	 * watcher says what matters instead. */
	zk_log = fopen("/dev/null", "w");
	if (zk_log)
		zoo_set_log_stream(zk_log);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);

	pthread_mutex_lock(&z->lock);
	z->zh = connect_handle(z);
	connected = z->zh && wait_connected(z, now_ms() + cfg->connect_timeout_ms);
	pthread_mutex_unlock(&z->lock);
	if (!connected) {
		snprintf(err, errlen, "cannot reach ZooKeeper at %s after %.1f s; is it running?",
		         cfg->hosts, (double)cfg->connect_timeout_ms / 1000);
		rv = -ETIMEDOUT;
		goto err_close;
	}
	rv = setup_cluster(z, cluster_id, err, errlen);
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
		z->lease_until_ms = lease_from + z->cfg.session_timeout_ms * 2 / 3;
	z->epoch = epoch;
	z->leader = leader;
	snprintf(z->leader_addr, sizeof(z->leader_addr), "%s", leader_addr ? leader_addr : "");
	pthread_mutex_unlock(&z->lock);
	wake(z);
}

/* Registers /members/<id> (ephemeral). Informational: failure is retried next round. */
static void register_member(struct kvfs_zk *z)
{
	char path[256], data[ZDATA_MAX], rel[32];
	int rc;

	snprintf(rel, sizeof(rel), "members/%u", z->cfg.id);
	path_of(z, path, sizeof(path), rel);
	snprintf(data, sizeof(data), "addr=%s priority=%u", z->addr, z->cfg.priority);
	rc = zoo_create(z->zh, path, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE, ZOO_EPHEMERAL,
	                NULL, 0);
	if (rc == ZOK)
		z->member_registered = true;
	else if (rc == ZNODEEXISTS)
		log_debug("%s still held by an earlier session of node %u; retrying", path,
		          z->cfg.id);
}

/* Creates this node's candidate znode election/<guid>-n_ (ephemeral, sequential). */
static int create_candidate(struct kvfs_zk *z, int64_t session)
{
	char path[256], rel[64], made[256];
	int rc;

	snprintf(rel, sizeof(rel), "election/%s-n_", z->guid);
	path_of(z, path, sizeof(path), rel);
	rc = zoo_create(z->zh, path, z->cand_data, (int)strlen(z->cand_data), &ZOO_OPEN_ACL_UNSAFE,
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
 * Reads the live candidates (with their data and owners) into c. Deletes leftovers that
 * belong to this node but not to this attempt: a twin made by a create retried after a lost
 * reply, or a znode of an earlier session of this node (it was restarted before that session
 * expired), so they do not hold up the election. Sets *mine to this node's index or -1.
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
		if (election_parse_candidate(data, (size_t)(len > 0 ? len : 0), k) < 0)
			continue;
		k->owner = st.ephemeralOwner;
		if (strcmp(k->guid, z->guid) == 0 && !z->have_znode) {
			/* Our create went through although its reply was lost. */
			snprintf(z->my_name, sizeof(z->my_name), "%s", k->name);
			z->have_znode = true;
		}
		if (k->id == z->cfg.id && (!z->have_znode || strcmp(k->name, z->my_name) != 0)) {
			log_info("removing %s, left by an earlier attempt of this node", k->name);
			zoo_delete(z->zh, path, -1);
			continue;
		}
		if (z->have_znode && strcmp(k->name, z->my_name) == 0)
			*mine = (int)*n;
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

/* Reads /leader and watches it. A /leader naming this node but owned by an earlier session of
 * it (restarted quickly) is deleted. */
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
	if (!l->mine && l->id == z->cfg.id) {
		log_info("removing %s left by an earlier session of this node (epoch %" PRIu64 ")",
		         path, l->epoch);
		zoo_delete(z->zh, path, st.version);
		l->exists = false;
	}
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
	if (rc != ZOK)
		return 0;
	ebuf[len > 0 ? len : 0] = '\0';
	epoch = strtoull(ebuf, NULL, 10) + 1;
	snprintf(data, sizeof(data), "id=%u addr=%s epoch=%llu", z->cfg.id, z->addr, epoch);
	snprintf(ebuf, sizeof(ebuf), "%llu", epoch);
	zoo_check_op_init(&ops[n++], mine, -1);
	if (retake)
		zoo_delete_op_init(&ops[n++], leader_path, leader_version);
	zoo_create_op_init(&ops[n++], leader_path, data, (int)strlen(data), &ZOO_OPEN_ACL_UNSAFE,
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
	bool leading, late;

	if (!z->member_registered)
		register_member(z);
	if (!z->have_znode && create_candidate(z, session) < 0)
		return IDLE_TICK_MS;
	rv = read_candidates(z, z->cfg.mode == KVFS_ELECTION_PRIORITY, c, &n, &mine);
	if (rv == 0)
		rv = read_leader(z, session, &l);
	if (rv < 0)
		return rv == -EAGAIN ? 0 : IDLE_TICK_MS;
	if (mine < 0)
		z->have_znode = false;

	pthread_mutex_lock(&z->lock);
	leading = z->leading;
	late = z->reconnected_late;
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
	    .successor_ready = true, /* no replication yet: nothing to catch up on */
	    .hold_down_ms = z->cfg.hold_down_ms,
	};
	if (v.leading && mine >= 0 && election_rank(v.mode, c, n) != mine) {
		if (!z->better_since_ms)
			z->better_since_ms = start;
		v.better_waited_ms = start - z->better_since_ms;
	} else {
		z->better_since_ms = 0;
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
		return z->cfg.session_timeout_ms / 4;
	case KVFS_ELECT_RESUME:
		log_info("reconnected with the same session; leading again at epoch %" PRIu64,
		         l.epoch);
		clear_late(z);
		publish(z, true, start, l.epoch, z->cfg.id, z->addr);
		return z->cfg.session_timeout_ms / 4;
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
		/* The round trips of this round confirmed the session: renew the lease. */
		publish(z, true, start, l.epoch, z->cfg.id, z->addr);
		return z->better_since_ms ? HOLD_DOWN_TICK_MS : z->cfg.session_timeout_ms / 4;
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
		if (z->state == ZOO_CONNECTED_STATE && z->zh) {
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

	z->notify = notify;
	z->notify_arg = arg;
	new_guid(z->guid);
	pthread_mutex_lock(&z->lock);
	z->changed = true;
	pthread_mutex_unlock(&z->lock);
	rv = pthread_create(&z->thread, NULL, election_main, z);
	if (rv != 0)
		return -rv;
	z->started = true;
	return 0;
}

bool zk_election_leading(struct kvfs_zk *z, uint64_t *epoch)
{
	bool leading;

	pthread_mutex_lock(&z->lock);
	leading = z->leading && z->state == ZOO_CONNECTED_STATE && now_ms() < z->lease_until_ms;
	*epoch = z->epoch;
	pthread_mutex_unlock(&z->lock);
	return leading;
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

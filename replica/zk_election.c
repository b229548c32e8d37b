/*
 * Leader election bound to the ZooKeeper C client (see zk_election.h for the threads and the
 * lease, zk_internal.h for the state and the access rules). The election thread runs rounds: make
 * sure this node has a candidate znode, read the candidates and /leader, ask election_decide()
 * what to do, do it, set the watches the decision names, then sleep until a watch or session
 * event (or a tick) wakes it. Every rule lives in election.c; this file only moves facts between
 * ZooKeeper (zk_znodes.c makes the requests) and that function, publishes the outcome to the loop,
 * carries out a resign or an evict, and replaces the session after an expiry. It also holds the
 * interface of zk_election.h: open (zk_session.c connects, zk_setup.c makes the cluster's
 * znodes), start, the view, close.
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
#include "zk_internal.h"

#define ADDR_RETRY_MS     300
#define IDLE_TICK_MS      1000
#define HOLD_DOWN_TICK_MS 200
#define SCORE_TICK_MS     500

void zk_election_new_guid(char *out)
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

/* Records a reason this node must stop (the first one wins), logs it and wakes the loop. */
void zk_election_set_fatal(struct kvfs_zk *z, const char *msg)
{
	pthread_mutex_lock(&z->lock);
	if (!z->fatal) {
		z->fatal = -EXDEV;
		snprintf(z->fatal_msg, sizeof(z->fatal_msg), "%s", msg);
	}
	pthread_mutex_unlock(&z->lock);
	log_error("%s", msg);
	zk_session_wake(z);
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
	int rv;

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
	z->prev_session = zk_session_file_read(cfg->session_file);
	zk_score_init(z);
	deadline = now_ms() + cfg->connect_timeout_ms;
	rv = zk_session_open(z, deadline, err, errlen);
	if (rv == 0)
		rv = zk_setup_open(z, deadline, cluster_id, err, errlen);
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
	if (!leading)
		z->live_known = false; /* a later term lists /members again first (zk_locks.c) */
	if (leading)
		z->lease_until_ms = lease_from + z->session_ms * 2 / 3;
	z->epoch = epoch;
	z->leader = leader;
	snprintf(z->leader_addr, sizeof(z->leader_addr), "%s", leader_addr ? leader_addr : "");
	pthread_mutex_unlock(&z->lock);
	zk_session_wake(z);
}

static void clear_late(struct kvfs_zk *z)
{
	pthread_mutex_lock(&z->lock);
	z->reconnected_late = false;
	pthread_mutex_unlock(&z->lock);
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
		log_warn("gave up the lead (no majority of replicas answered, or a membership "
		         "change removes or demotes this node); standing again in %" PRIu64 " ms",
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

/* Membership: whether this node may stand (config.h: an observer or a non-member of the
 * configuration in force never does; before the node says, as before). */
static bool may_stand(struct kvfs_zk *z)
{
	bool stand;

	pthread_mutex_lock(&z->lock);
	stand = !z->have_config || config_is_voter(&z->config, z->cfg.id);
	pthread_mutex_unlock(&z->lock);
	if (stand && z->standing_off)
		log_info("node %u votes in cluster %s now: standing for leader", z->cfg.id,
		         z->cfg.cluster);
	if (stand)
		z->standing_off = false;
	return stand;
}

/* Not a voter: no candidacy (its own is withdrawn), but still a replica that follows /leader
 * (as in the hold-down of run_round), since the core answers a leader's NEW_EPOCH only once
 * this view names it. Returns the next tick in ms. */
static uint64_t follow_only(struct kvfs_zk *z, int64_t session)
{
	struct leader_info held = {0};
	char path[512];

	if (!z->standing_off) {
		log_info("node %u is not a voter of cluster %s: it follows the leader and never "
		         "stands",
		         z->cfg.id, z->cfg.cluster);
		z->standing_off = true;
	}
	if (z->have_znode) {
		snprintf(path, sizeof(path), "%s/election/%s", z->base, z->my_name);
		if (zoo_delete(z->zh, path, -1) == ZOK)
			z->have_znode = false;
	}
	if (zk_znodes_read_leader(z, session, &held) < 0)
		held.exists = false;
	if (held.exists && held.mine) {
		/* Handed the lead in a race with a demotion: give it up (repl.h rule 4). */
		path_of(z, path, sizeof(path), "leader");
		zoo_delete(z->zh, path, held.version);
		pthread_mutex_lock(&z->lock);
		z->leading = false;
		pthread_mutex_unlock(&z->lock);
		held.exists = false;
	}
	publish_addrs(z, NULL, 0, &held);
	zk_znodes_read_member_addrs(z, NULL, 0, now_ms());
	if (held.exists)
		publish(z, false, 0, held.epoch, held.id, held.addr);
	else
		publish(z, false, 0, 0, 0, NULL);
	return IDLE_TICK_MS;
}

/* One round: see the election, decide, act, watch. Returns the next tick in ms. */
static uint64_t run_round(struct kvfs_zk *z)
{
	struct kvfs_candidate c[MAX_CANDIDATES];
	struct kvfs_election_decision d;
	struct kvfs_election_view v;
	struct leader_info l;
	size_t n;
	int mine, rv, top;
	int64_t session = zoo_client_id(z->zh)->client_id;
	uint64_t start = now_ms(), epoch;
	uint64_t session_ms;
	bool leading, late;

	if (session != z->session_id) {
		/* A new session: remember it, so that a restart knows its leftovers. */
		if (z->session_id)
			z->prev_session = z->session_id;
		z->session_id = session;
		zk_session_file_write(z->cfg.session_file, session);
	}
	/* The id is ours only once /members/<id> is: no candidacy before. */
	if (!z->member_registered && !zk_znodes_register_member(z))
		return HOLD_DOWN_TICK_MS;
	if (!z->node_marked && !zk_znodes_mark_node(z))
		return HOLD_DOWN_TICK_MS;
	if (!may_stand(z)) {
		zk_requests_round(z, false);
		return follow_only(z, session);
	}
	if (!z->have_znode && start < z->rejoin_after_ms) {
		struct leader_info held;

		/* Out of the election for the hold-down but still a replica: show who leads
		 * meanwhile (and watch /leader), since the core answers a new leader's
		 * NEW_EPOCH only once this view names it. */
		if (zk_znodes_read_leader(z, session, &held) == 0 && held.exists && !held.mine)
			publish(z, false, 0, held.epoch, held.id, held.addr);
		else
			publish(z, false, 0, 0, 0, NULL);
		return z->rejoin_after_ms - start;
	}
	zk_score_publish(z, start);
	if (!z->have_znode) {
		if (zk_znodes_create_candidate(z, session) < 0)
			return IDLE_TICK_MS;
		zk_score_created(z);
	}
	rv = zk_znodes_read_candidates(z, z->cfg.mode == KVFS_ELECTION_PRIORITY, c, &n, &mine);
	if (rv == 0)
		rv = zk_znodes_read_leader(z, session, &l);
	if (rv < 0)
		return rv == -EAGAIN ? 0 : IDLE_TICK_MS;
	if (mine < 0)
		z->have_znode = false;
	publish_addrs(z, c, n, &l);
	zk_znodes_read_member_addrs(z, c, n, start);
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
	    .min_tenure_ms = z->cfg.min_tenure_ms,
	    .rtt_margin_pct = z->cfg.rtt_margin_pct,
	};
	if (!l.exists || !l.mine)
		z->led_since_ms = 0;
	v.led_ms = v.leading && z->led_since_ms ? start - z->led_since_ms : 0;
	top = n > 0 ? election_rank(v.mode, c, n) : -1;
	if (v.mode == KVFS_ELECTION_PRIORITY) {
		zk_score_challenge(z, &v, top, start);
	} else if (v.leading && mine >= 0 && top != mine) {
		/* Sequential mode: as before (the count only shortens the next tick). */
		if (!z->better_since_ms)
			z->better_since_ms = start;
		v.better_waited_ms = start - z->better_since_ms;
	} else {
		z->better_since_ms = 0;
	}
	if (top >= 0) {
		pthread_mutex_lock(&z->lock);
		v.successor_ready = c[top].id < MAX_IDS && z->ready[c[top].id];
		pthread_mutex_unlock(&z->lock);
	}
	zk_score_keep(z, &v, top, &l);
	election_decide(&v, &d);
	zk_requests_round(z, v.leading);

	switch (d.action) {
	case KVFS_ELECT_TAKE:
	case KVFS_ELECT_RETAKE:
		epoch = zk_znodes_take_leadership(z, d.action == KVFS_ELECT_RETAKE, l.version);
		if (!epoch)
			return HOLD_DOWN_TICK_MS;
		log_info("leading at epoch %" PRIu64 "%s", epoch,
		         d.action == KVFS_ELECT_RETAKE ? " (a new term after a long outage)" : "");
		z->led_since_ms = start;
		clear_late(z);
		publish(z, true, start, epoch, z->cfg.id, z->addr);
		return session_ms / 4;
	case KVFS_ELECT_RESUME:
		if (!zk_znodes_confirm_session(z))
			return HOLD_DOWN_TICK_MS;
		log_info("reconnected with the same session; leading again at epoch %" PRIu64,
		         l.epoch);
		if (!z->led_since_ms)
			z->led_since_ms = start; /* the same term, but its start is not known here */
		clear_late(z);
		publish(z, true, start, l.epoch, z->cfg.id, z->addr);
		return session_ms / 4;
	case KVFS_ELECT_HAND_OVER: {
		char path[256];

		/* Stop taking writes first, then let the better candidate take over. */
		publish(z, false, 0, l.epoch, 0, NULL);
		path_of(z, path, sizeof(path), "leader");
		rv = zk_session_errno(zoo_delete(z->zh, path, l.version));
		zk_score_log_handover(z, &v, &d, l.epoch, start, rv);
		z->led_since_ms = 0;
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
		if (zoo_wexists(z->zh, path, zk_session_watcher, z, &st) == ZNONODE)
			return 0; /* gone already: look again now */
	}
	zk_locks_round(z, v.leading);
	if (v.leading) {
		/* Renew the lease, counted from before the confirming round trip. */
		if (zk_znodes_confirm_session(z))
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
			zk_session_wake(z);
			if (old)
				zookeeper_close(old);
			z->have_znode = false;
			z->member_registered = false;
			zk_election_new_guid(z->guid);
			pthread_mutex_lock(&z->lock);
			z->zh = zk_session_connect(z);
			if (!z->zh)
				z->expired = true; /* try again after a tick */
		}
		if (z->zh && zk_session_auth_refused(z) && !z->fatal) {
			char msg[300];

			/* Only a new handle after an expiry gets here: open() checked the first. */
			snprintf(
			    msg, sizeof(msg),
			    "ZooKeeper refused the credentials of --zk-auth-file (user '%.*s') "
			    "on the new session after an expiry: stopping",
			    z->user_len, z->auth);
			pthread_mutex_unlock(&z->lock);
			zk_election_set_fatal(z, msg);
			pthread_mutex_lock(&z->lock);
		}
		if (zk_session_ready(z) && z->zh && !z->fatal) {
			z->changed = false;
			pthread_mutex_unlock(&z->lock);
			tick = run_round(z);
			/* Priority mode: the facts are published, and the others' read, this
			 * often at least. */
			if (z->cfg.mode == KVFS_ELECTION_PRIORITY && tick > SCORE_TICK_MS)
				tick = SCORE_TICK_MS;
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

void zk_election_history(const struct kvfs_zk *z, uint64_t *epoch, bool *held_data)
{
	*epoch = z->open_epoch;
	*held_data = z->id_held_data;
}

int zk_election_start(struct kvfs_zk *z, void (*notify)(void *arg), void *arg)
{
	int rv;

	zk_election_new_guid(z->guid);
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

void zk_election_set_config(struct kvfs_zk *z, const struct kvfs_config *cfg, uint64_t index,
                            bool committed)
{
	pthread_mutex_lock(&z->lock);
	z->config = *cfg;
	z->config_index = index;
	z->config_committed = committed;
	z->have_config = true;
	z->changed = true; /* a promotion or demotion: the next round stands or withdraws */
	pthread_cond_broadcast(&z->cond);
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
	zk_session_wake(z);
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

/*
 * The ZooKeeper session (see zk_internal.h for the state it shares): the handle and its one
 * watcher, which runs on the client's thread, records session events under the lock and wakes the
 * election thread and the loop; waiting for a connection; the digest credentials every new handle
 * is given before its first request (zoo_add_auth); the first connection at open with its
 * messages; the session file, through which a restarted node knows its own leftover znodes; and
 * the one conversion of ZooKeeper return codes to negative errnos.
 */
#include "zk_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/logging.h"

static FILE *zk_log; /* where the ZooKeeper client's own log goes: nowhere */

/* A negative errno for a ZooKeeper return code. */
int zk_session_errno(int rc)
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

/* The session id recorded in path by an earlier run of this node, or 0. */
int64_t zk_session_file_read(const char *path)
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
void zk_session_file_write(const char *path, int64_t id)
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

/* Calls the loop's notify hook (zk_election_start), if it is set: the view may have changed. */
void zk_session_wake(struct kvfs_zk *z)
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
void zk_session_watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
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
	zk_session_wake(z);
}

/* True (lock held) once the handle may be used: connected, and its credentials (if any)
 * accepted. */
bool zk_session_ready(const struct kvfs_zk *z)
{
	return z->state == ZOO_CONNECTED_STATE && z->auth_rc == ZOK;
}

/* True (lock held) when ZooKeeper refused the credentials: this handle will never be ready. */
bool zk_session_auth_refused(const struct kvfs_zk *z)
{
	return (z->auth_rc != ZOK && z->auth_rc != AUTH_PENDING) ||
	       z->state == ZOO_AUTH_FAILED_STATE;
}

/* Waits (lock held) until the session is connected and authenticated (zk_session_ready()), or
 * refused, or until deadline; true if ready. */
bool zk_session_wait(struct kvfs_zk *z, uint64_t deadline)
{
	while (!zk_session_ready(z) && !zk_session_auth_refused(z) && !z->stop && !z->expired) {
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
	return zk_session_ready(z);
}

/*
 * zoo_add_auth's completion, on the client's thread: records the outcome and wakes the waiter.
 * A connection lost before ZooKeeper answered is no refusal: the client keeps the credentials
 * and sends them again first thing on its next connection, but calls no completion then; a
 * refusal from then on shows as ZOO_AUTH_FAILED_STATE (zk_session_auth_refused()). So the
 * credentials count as given once the connection is back. An expired or closing handle is
 * replaced or gone: its answer does not matter.
 */
static void on_auth(int rc, const void *data)
{
	struct kvfs_zk *z = (struct kvfs_zk *)data;
	bool lost = rc == ZCONNECTIONLOSS || rc == ZOPERATIONTIMEOUT;
	bool moot = rc == ZSESSIONEXPIRED || rc == ZCLOSING || rc == ZINVALIDSTATE;

	pthread_mutex_lock(&z->lock);
	if (!moot)
		z->auth_rc = lost ? ZOK : rc;
	z->changed = true;
	pthread_cond_broadcast(&z->cond);
	pthread_mutex_unlock(&z->lock);
	if (rc == ZOK)
		log_info("ZooKeeper: authenticated as digest user '%.*s'", z->user_len, z->auth);
	else if (lost || moot)
		log_debug("ZooKeeper: the connection went before the credentials were answered "
		          "(%s); the client gives them again on its next connection",
		          zerror(rc));
	else
		log_error("ZooKeeper refused the credentials of --zk-auth-file (user '%.*s'): %s",
		          z->user_len, z->auth, zerror(rc));
}

/*
 * A new handle (called with z->lock held). With credentials it is given them at once: the client
 * sends them first thing on every connection, ahead of any queued request, and the server
 * applies them before what follows; auth_rc stays AUTH_PENDING until ZooKeeper has answered,
 * and nothing is asked of the handle before (zk_session_ready()). NULL when the client cannot
 * make one.
 */
zhandle_t *zk_session_connect(struct kvfs_zk *z)
{
	zhandle_t *zh = zookeeper_init(z->hosts, zk_session_watcher, (int)z->cfg.session_timeout_ms,
	                               NULL, z, 0);
	int rc;

	z->auth_rc = z->auth ? AUTH_PENDING : ZOK;
	if (!zh || !z->auth)
		return zh;
	rc = zoo_add_auth(zh, "digest", z->auth, (int)strlen(z->auth), on_auth, z);
	if (rc != ZOK)
		z->auth_rc = rc; /* the completion will not run */
	return zh;
}

/*
 * The first connection, at open: silences the client's own log, makes z->zh and waits until
 * deadline for it to be ready. Returns 0; or -EACCES (the credentials were refused) or
 * -ETIMEDOUT, with a message in err. On error z->zh may be set: the caller closes it.
 */
int zk_session_open(struct kvfs_zk *z, uint64_t deadline, char *err, size_t errlen)
{
	bool connected, reached;
	int refused;

	/* The client logs every failed connection attempt, hundreds of lines per outage; the
	 * watcher says what matters instead. */
	zk_log = fopen("/dev/null", "w");
	if (zk_log)
		zoo_set_log_stream(zk_log);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);

	pthread_mutex_lock(&z->lock);
	z->zh = zk_session_connect(z);
	connected = z->zh && zk_session_wait(z, deadline);
	refused = zk_session_auth_refused(z) ? (z->auth_rc != ZOK ? z->auth_rc : ZAUTHFAILED) : ZOK;
	reached = z->state == ZOO_CONNECTED_STATE;
	pthread_mutex_unlock(&z->lock);
	if (!connected && refused != ZOK) {
		snprintf(err, errlen,
		         "ZooKeeper at %s refused the credentials of --zk-auth-file (user '%.*s'): "
		         "%s",
		         z->hosts, z->user_len, z->auth, zerror(refused));
		return -EACCES;
	}
	if (!connected) {
		snprintf(err, errlen, "cannot reach ZooKeeper at %s after %.1f s; is it running?%s",
		         z->hosts, (double)z->cfg.connect_timeout_ms / 1000,
		         reached ? " (connected, but it did not answer the credentials of "
		                   "--zk-auth-file)"
		                 : "");
		return -ETIMEDOUT;
	}
	return 0;
}

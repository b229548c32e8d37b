/*
 * `kvfs member` (member.h): a short-lived ZooKeeper client. A change becomes a persistent
 * sequential znode /kvfs/<cluster>/requests/req-N holding the request (member_req.h); the
 * established leader carries it out and writes the outcome into it; this polls the znode every
 * 100 ms, prints the outcome (and each new reason it waits), deletes the znode and exits. On a
 * timeout it deletes the znode too, which withdraws the request (the leader only works on
 * requests whose znode exists).
 */
#include "member.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "kvfs/config.h"
#include "kvfs/election.h"
#include "kvfs/member_req.h"
#include "kvfs/secret_file.h"

#define CONNECT_MS 10000u
#define POLL_MS    100u
#define ZDATA      1024

struct zconn {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int state;   /* session state from the watcher */
	int auth_rc; /* 1 while pending */
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct zconn *c = ctx;

	(void)zh, (void)path;
	if (type != ZOO_SESSION_EVENT)
		return;
	pthread_mutex_lock(&c->lock);
	c->state = state;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

static void on_auth(int rc, const void *data)
{
	struct zconn *c = (struct zconn *)data;

	pthread_mutex_lock(&c->lock);
	c->auth_rc = rc;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

/* Waits until pred(c) or the deadline (ms, monotonic); true if pred held. */
static bool wait_for(struct zconn *c, bool (*pred)(const struct zconn *), uint64_t deadline)
{
	bool ok;

	pthread_mutex_lock(&c->lock);
	while (!(ok = pred(c)) && mono_ms() < deadline) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 50 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&c->cond, &c->lock, &ts);
	}
	pthread_mutex_unlock(&c->lock);
	return ok;
}

static bool connected(const struct zconn *c)
{
	return c->state == ZOO_CONNECTED_STATE || c->state == ZOO_AUTH_FAILED_STATE;
}

static bool authed(const struct zconn *c)
{
	return c->auth_rc != 1;
}

/* Reads the --zk-auth-file into cred (NUL-terminated). 0, or -1 after printing why. */
static int read_auth(const char *path, char *cred, size_t size)
{
	uint8_t buf[KVFS_SECRET_FILE_MAX + 1];
	char err[512];
	size_t len;
	int rv;

	rv = secret_file_read("--zk-auth-file", path, 3, buf, sizeof(buf), &len, err, sizeof(err));
	if (rv == 0)
		rv = secret_file_check_digest("--zk-auth-file", path, buf, len, err, sizeof(err));
	if (rv == 0 && len >= size) {
		snprintf(err, sizeof(err), "--zk-auth-file %s: too long", path);
		rv = -EINVAL;
	}
	if (rv == 0) {
		memcpy(cred, buf, len);
		cred[len] = '\0';
	}
	memset(buf, 0, sizeof(buf));
	if (rv < 0)
		fprintf(stderr, "kvfs member: %s\n", err);
	return rv < 0 ? -1 : 0;
}

/* Connects (and authenticates). NULL after printing why. */
static zhandle_t *connect_zk(const struct member_args *a, struct zconn *c, const char *cred)
{
	uint64_t deadline = mono_ms() + CONNECT_MS;
	zhandle_t *zh;
	FILE *devnull = fopen("/dev/null", "w");

	if (devnull)
		zoo_set_log_stream(devnull);
	zoo_set_debug_level(ZOO_LOG_LEVEL_ERROR);
	zh = zookeeper_init(a->zk, watcher, 10000, NULL, c, 0);
	if (!zh || !wait_for(c, connected, deadline)) {
		fprintf(stderr,
		        "kvfs member: cannot reach ZooKeeper at %s after %u s; is it running?\n",
		        a->zk, CONNECT_MS / 1000);
		if (zh)
			zookeeper_close(zh);
		return NULL;
	}
	if (cred) {
		int rc;

		c->auth_rc = 1;
		rc = zoo_add_auth(zh, "digest", cred, (int)strlen(cred), on_auth, c);
		if (rc != ZOK || !wait_for(c, authed, deadline) || c->auth_rc != ZOK) {
			fprintf(stderr,
			        "kvfs member: ZooKeeper at %s refused the credentials of "
			        "--zk-auth-file %s\n",
			        a->zk, a->auth_file);
			zookeeper_close(zh);
			return NULL;
		}
	}
	return zh;
}

/* Reads path into buf (NUL-terminated). The ZooKeeper code. */
static int get(zhandle_t *zh, const char *path, char *buf, size_t size)
{
	struct Stat st;
	int len = (int)size - 1, rc = zoo_get(zh, path, 0, buf, &len, &st);

	buf[rc == ZOK && len > 0 ? len : 0] = '\0';
	return rc;
}

static void zk_problem(const struct member_args *a, const char *path, int rc)
{
	if (rc == ZNOAUTH)
		fprintf(stderr,
		        "kvfs member: NOAUTH: %s is protected by ACLs%s; give --zk-auth-file with "
		        "the cluster's credentials\n",
		        path, a->auth_file ? " for other credentials" : "");
	else if (rc == ZNONODE)
		fprintf(stderr, "kvfs member: no cluster '%s' in ZooKeeper at %s (%s is missing)\n",
		        a->cluster, a->zk, path);
	else
		fprintf(stderr, "kvfs member: ZooKeeper at %s: %s: %s\n", a->zk, path, zerror(rc));
}

/* "1,2,3" of the ids of cfg in role, or "none". */
static void ids_of(const struct kvfs_config *cfg, uint8_t role, char *buf, size_t size)
{
	size_t n = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < cfg->n && n + 5 < size; i++)
		if (cfg->m[i].role == role)
			n +=
			    (size_t)snprintf(buf + n, size - n, "%s%u", n ? "," : "", cfg->m[i].id);
	if (!n)
		snprintf(buf, size, "none");
}

/* The configuration /config shows: 0 and cfg (*index 0: the bootstrap one), or -EINVAL. */
static int config_of(const char *data, struct kvfs_config *cfg, uint32_t *size, uint64_t *index)
{
	char id[2 * KVFS_GUID_LEN + 1], voters[KVFS_CONFIG_TEXT_MAX], obs[KVFS_CONFIG_TEXT_MAX];
	char text[2 * KVFS_CONFIG_TEXT_MAX + 32], num[24];
	size_t len = strlen(data);

	*index = 0;
	if (election_parse_config(data, len, id, size) < 0)
		return -EINVAL;
	if (election_kv(data, len, "voters", voters, sizeof(voters)) < 0)
		return config_bootstrap(cfg, *size);
	if (election_kv(data, len, "observers", obs, sizeof(obs)) == 0)
		snprintf(text, sizeof(text), "voters=%s observers=%s", voters, obs);
	else
		snprintf(text, sizeof(text), "voters=%s", voters);
	if (election_kv(data, len, "index", num, sizeof(num)) == 0)
		*index = strtoull(num, NULL, 10);
	return config_parse(text, cfg, NULL, 0);
}

static int list(zhandle_t *zh, const struct member_args *a, const char *base)
{
	char path[512], data[ZDATA], v[KVFS_CONFIG_TEXT_MAX], o[KVFS_CONFIG_TEXT_MAX];
	struct String_vector kids = {0};
	struct kvfs_config cfg;
	uint64_t index;
	uint32_t size;
	int rc;

	snprintf(path, sizeof(path), "%s/config", base);
	rc = get(zh, path, data, sizeof(data));
	if (rc != ZOK) {
		zk_problem(a, path, rc);
		return KVFS_MEMBER_EXIT_ZK;
	}
	if (config_of(data, &cfg, &size, &index) < 0) {
		fprintf(stderr, "kvfs member: %s holds '%s', not a kvfs cluster configuration\n",
		        path, data);
		return KVFS_MEMBER_EXIT_ZK;
	}
	ids_of(&cfg, KVFS_ROLE_VOTER, v, sizeof(v));
	ids_of(&cfg, KVFS_ROLE_OBSERVER, o, sizeof(o));
	if (!index)
		printf("configuration: bootstrap: voters 1..%u (created with %u, never changed)\n",
		       size, size);
	else
		printf("configuration: voters %s, observers %s (index %" PRIu64 ")\n", v, o, index);
	snprintf(path, sizeof(path), "%s/members", base);
	rc = zoo_get_children(zh, path, 0, &kids);
	if (rc != ZOK) {
		zk_problem(a, path, rc);
		return KVFS_MEMBER_EXIT_ZK;
	}
	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++) {
		char name[16], rel[600];
		bool up = false;

		snprintf(name, sizeof(name), "%u", id);
		for (int32_t i = 0; i < kids.count; i++)
			up |= strcmp(kids.data[i], name) == 0;
		if (!up && !config_is_member(&cfg, id))
			continue;
		data[0] = '\0';
		snprintf(rel, sizeof(rel), "%s/%u", path, id);
		if (up)
			get(zh, rel, data, sizeof(data));
		printf("node %u: %s, %s%s\n", id,
		       config_is_voter(&cfg, id)    ? "voter"
		       : config_is_member(&cfg, id) ? "observer"
		                                    : "not a member",
		       up ? "running: " : "not running", data);
	}
	deallocate_String_vector(&kids);
	snprintf(path, sizeof(path), "%s/election", base);
	if (zoo_get_children(zh, path, 0, &kids) == ZOK) {
		for (int32_t i = 0; i < kids.count; i++) {
			char rel[600];

			snprintf(rel, sizeof(rel), "%s/%s", path, kids.data[i]);
			if (get(zh, rel, data, sizeof(data)) == ZOK && data[0])
				printf("candidate %s: %s\n", kids.data[i], data);
		}
		deallocate_String_vector(&kids);
	}
	return KVFS_MEMBER_EXIT_DONE;
}

/* The one line of a request carried out. */
static void print_done(const struct member_args *a, const struct kvfs_member_result *res)
{
	char v[KVFS_CONFIG_TEXT_MAX], o[KVFS_CONFIG_TEXT_MAX];
	const char *what =
	    a->op == KVFS_MEMBER_ADD
	        ? (a->role == KVFS_ROLE_OBSERVER ? "added as an observer" : "added as a voter")
	    : a->op == KVFS_MEMBER_REMOVE  ? "removed"
	    : a->op == KVFS_MEMBER_PROMOTE ? "promoted to a voter"
	                                   : "demoted to an observer";

	ids_of(&res->cfg, KVFS_ROLE_VOTER, v, sizeof(v));
	ids_of(&res->cfg, KVFS_ROLE_OBSERVER, o, sizeof(o));
	printf("node %u %s: index %" PRIu64 ", voters %s, observers %s\n", a->id, what, res->index,
	       v, o);
}

/* Makes base/requests if the cluster has none yet (its nodes predate requests). */
static int ensure_requests(zhandle_t *zh, const char *base, const struct ACL_vector *acl)
{
	char path[512];
	int rc;

	snprintf(path, sizeof(path), "%s/requests", base);
	rc = zoo_create(zh, path, NULL, -1, acl, 0, NULL, 0);
	return rc == ZNODEEXISTS ? ZOK : rc;
}

/* Polls the request znode until done, refused, or the deadline. */
static int await(zhandle_t *zh, const struct member_args *a, const char *path, uint64_t deadline)
{
	char data[ZDATA], said[KVFS_MEMBER_WHY_MAX] = "";
	struct kvfs_member_result res;
	int rc;

	for (;;) {
		rc = get(zh, path, data, sizeof(data));
		if (rc == ZNONODE) {
			fprintf(stderr, "kvfs member: the request %s was deleted by someone else\n",
			        path);
			return KVFS_MEMBER_EXIT_ZK;
		}
		if (rc == ZOK && member_result_parse(data, strlen(data), &res) == 0) {
			if (res.state == KVFS_MEMBER_DONE) {
				print_done(a, &res);
				return KVFS_MEMBER_EXIT_DONE;
			}
			if (res.state == KVFS_MEMBER_REFUSED) {
				printf("refused: %s\n", res.why[0] ? res.why : "(no reason given)");
				return KVFS_MEMBER_EXIT_REFUSED;
			}
			if (res.state == KVFS_MEMBER_WAITING && strcmp(res.why, said) != 0) {
				snprintf(said, sizeof(said), "%s", res.why);
				fprintf(stderr, "waiting: %s\n", res.why);
			}
		}
		if (mono_ms() >= deadline) {
			printf("timed out after %" PRIu64 " ms: %s; the request is withdrawn\n",
			       a->timeout_ms,
			       said[0] ? said
			               : "no leader took the request (is a leader elected?)");
			return KVFS_MEMBER_EXIT_TIMEOUT;
		}
		usleep(POLL_MS * 1000);
	}
}

static int change(zhandle_t *zh, const struct member_args *a, const char *base, bool authed_)
{
	const struct ACL_vector *acl = authed_ ? &ZOO_CREATOR_ALL_ACL : &ZOO_OPEN_ACL_UNSAFE;
	struct kvfs_member_req req = {
	    .op = (enum kvfs_member_op)a->op, .id = a->id, .role = a->role, .force = a->force};
	char path[512], made[600], data[256];
	uint64_t deadline = mono_ms() + a->timeout_ms;
	int rc, code;

	snprintf(path, sizeof(path), "%s/config", base);
	rc = get(zh, path, data, sizeof(data));
	if (rc == ZOK)
		rc = ensure_requests(zh, base, acl);
	if (rc != ZOK) {
		zk_problem(a, path, rc);
		return KVFS_MEMBER_EXIT_ZK;
	}
	member_req_format(&req, data, sizeof(data));
	snprintf(path, sizeof(path), "%s/requests/req-", base);
	rc = zoo_create(zh, path, data, (int)strlen(data), acl, ZOO_SEQUENCE, made, sizeof(made));
	if (rc != ZOK) {
		zk_problem(a, path, rc);
		return KVFS_MEMBER_EXIT_ZK;
	}
	fprintf(stderr, "request %s: %s\n", strrchr(made, '/') + 1, data);
	code = await(zh, a, made, deadline);
	zoo_delete(zh, made, -1);
	return code;
}

int member_main(int argc, char **argv)
{
	struct member_args a;
	struct zconn c = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};
	char err[512], cred[KVFS_SECRET_FILE_MAX + 1], base[128];
	zhandle_t *zh;
	int rv = member_args_parse(argc, argv, &a, err, sizeof(err));

	if (rv == 1) {
		member_usage(stdout);
		return KVFS_MEMBER_EXIT_DONE;
	}
	if (rv < 0) {
		fprintf(stderr, "kvfs member: %s\n", err);
		member_usage(stderr);
		return KVFS_MEMBER_EXIT_USAGE;
	}
	if (a.auth_file && read_auth(a.auth_file, cred, sizeof(cred)) < 0)
		return KVFS_MEMBER_EXIT_USAGE;
	zh = connect_zk(&a, &c, a.auth_file ? cred : NULL);
	memset(cred, 0, sizeof(cred));
	if (!zh)
		return KVFS_MEMBER_EXIT_ZK;
	snprintf(base, sizeof(base), "/kvfs/%s", a.cluster);
	rv = a.list ? list(zh, &a, base) : change(zh, &a, base, a.auth_file != NULL);
	zookeeper_close(zh);
	return rv;
}

/*
 * Membership requests in the election thread (member_req.h). On the leader, each round lists
 * /requests (and watches it), keeps the oldest request that is pending or waiting for the loop
 * (zk_election_next_request), or, when there is none, a request it makes up itself for a node
 * registered with role=observer in /members that is not in the configuration (auto-join:
 * observers change no majority, so any number may join without anyone asking); writes the
 * results the loop reports (zk_election_request_result) into the request znodes; and, after a
 * committed change, rewrites /config with the configuration (version-conditional, and only a
 * higher index replaces what is there). On every node, it says once when this node is not a
 * member and how to make it one.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kvfs/logging.h"
#include "kvfs/member_req.h"
#include "zk_internal.h"

#define REQ_PREFIX      "req-"
#define REQ_DIGITS      10
#define READS_PER_ROUND 32     /* request znodes read at most per round */
#define STALE_MS        600000 /* a finished request is deleted this long after its answer */
#define AUTO_PREFIX     "auto-"

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* "req-" and 10 digits: what ZooKeeper's sequential create makes of the CLI's "req-". */
static bool request_name(const char *s)
{
	if (strncmp(s, REQ_PREFIX, strlen(REQ_PREFIX)) != 0 ||
	    strlen(s) != strlen(REQ_PREFIX) + REQ_DIGITS)
		return false;
	for (s += strlen(REQ_PREFIX); *s; s++)
		if (*s < '0' || *s > '9')
			return false;
	return true;
}

/* Queues data for znode `name` (lock held); a newer result for the same name replaces it. */
static void queue_result(struct kvfs_zk *z, const char *name, const char *data)
{
	unsigned i = 0;

	while (i < z->req_nres && strcmp(z->req_res[i].name, name) != 0)
		i++;
	if (i == z->req_nres) {
		if (z->req_nres == ZK_REQ_RESULTS) { /* full: the oldest goes */
			memmove(&z->req_res[0], &z->req_res[1],
			        (ZK_REQ_RESULTS - 1) * sizeof(z->req_res[0]));
			i = ZK_REQ_RESULTS - 1;
		} else {
			z->req_nres++;
		}
	}
	snprintf(z->req_res[i].name, sizeof(z->req_res[i].name), "%s", name);
	snprintf(z->req_res[i].data, sizeof(z->req_res[i].data), "%s", data);
}

/* Writes the queued results; one for a znode that is gone (the CLI gave up) is dropped. */
static void write_results(struct kvfs_zk *z)
{
	for (;;) {
		char name[KVFS_CONFIG_REQ_MAX], data[ZDATA_MAX], path[400];
		int rc;

		pthread_mutex_lock(&z->lock);
		if (z->req_nres == 0) {
			pthread_mutex_unlock(&z->lock);
			return;
		}
		memcpy(name, z->req_res[0].name, sizeof(name));
		memcpy(data, z->req_res[0].data, sizeof(data));
		memmove(&z->req_res[0], &z->req_res[1], (z->req_nres - 1) * sizeof(z->req_res[0]));
		z->req_nres--;
		pthread_mutex_unlock(&z->lock);
		snprintf(path, sizeof(path), "%s/requests/%s", z->base, name);
		rc = zoo_set(z->zh, path, data, (int)strlen(data), -1);
		if (rc != ZOK && rc != ZNONODE)
			log_warn("cannot write the result of membership request %s: %s", name,
			         zerror(rc));
	}
}

/* Data of one child of dir into buf (NUL-terminated); its length, or -1. *mtime (if not NULL):
 * when it was last written, ms since the epoch. */
static int get_data(struct kvfs_zk *z, const char *dir, const char *name, char *buf, size_t size,
                    int64_t *mtime)
{
	char path[400];
	struct Stat st;
	int len = (int)size - 1;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (zoo_get(z->zh, path, 0, buf, &len, &st) != ZOK)
		return -1;
	if (len < 0)
		len = 0;
	buf[len] = '\0';
	if (mtime)
		*mtime = st.mtime;
	return len;
}

/* A finished request whose command is long gone (it deletes its znode as soon as it has the
 * answer; killed, it cannot): deleted after STALE_MS, so finished requests do not pile up. */
static void forget_stale(struct kvfs_zk *z, const char *dir, const char *name, int64_t mtime)
{
	char path[400];

	if ((int64_t)time(NULL) * 1000 - mtime < STALE_MS)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if (zoo_delete(z->zh, path, -1) == ZOK)
		log_info("deleted the finished membership request %s, left by a command that did "
		         "not wait for its answer",
		         name);
}

/*
 * The oldest request under /requests that is pending or waiting, into *req (name set). A request
 * that cannot be parsed is refused in its znode at once. Returns true if one was found.
 */
static bool oldest_request(struct kvfs_zk *z, struct kvfs_member_req *req)
{
	struct String_vector kids = {0};
	char dir[256], data[ZDATA_MAX];
	bool found = false;
	int reads = 0;

	path_of(z, dir, sizeof(dir), "requests");
	if (zoo_wget_children(z->zh, dir, zk_session_watcher, z, &kids) != ZOK)
		return false;
	qsort(kids.data, (size_t)kids.count, sizeof(kids.data[0]), by_name);
	for (int32_t i = 0; i < kids.count && !found && reads < READS_PER_ROUND; i++) {
		struct kvfs_member_result res;
		int64_t mtime;
		int len;

		if (!request_name(kids.data[i]))
			continue;
		reads++;
		len = get_data(z, dir, kids.data[i], data, sizeof(data), &mtime);
		if (len < 0)
			continue;
		if (member_result_parse(data, (size_t)len, &res) == 0 &&
		    (res.state == KVFS_MEMBER_DONE || res.state == KVFS_MEMBER_REFUSED)) {
			forget_stale(z, dir, kids.data[i], mtime);
			continue;
		}
		if (member_req_parse(data, (size_t)len, req) < 0) {
			char path[400];
			static const char refused[] = "state=refused why=not a membership request: "
			                              "want op=add|remove|promote|demote "
			                              "id=1..255 [role=voter|observer] [force=1]";

			log_warn("membership request %s is malformed ('%.80s'): refused",
			         kids.data[i], data);
			snprintf(path, sizeof(path), "%s/%s", dir, kids.data[i]);
			zoo_set(z->zh, path, refused, (int)sizeof(refused) - 1, -1);
			continue;
		}
		snprintf(req->name, sizeof(req->name), "%s", kids.data[i]);
		found = true;
	}
	deallocate_String_vector(&kids);
	return found;
}

/* Auto-join: a node registered in /members with role=observer that is not a member. */
static bool auto_join(struct kvfs_zk *z, const struct kvfs_config *cfg, struct kvfs_member_req *req)
{
	struct String_vector kids = {0};
	char dir[256], data[ZDATA_MAX], role[16];
	bool found = false;

	path_of(z, dir, sizeof(dir), "members");
	if (zoo_wget_children(z->zh, dir, zk_session_watcher, z, &kids) != ZOK)
		return false;
	for (int32_t i = 0; i < kids.count && !found; i++) {
		char *end;
		unsigned long id = strtoul(kids.data[i], &end, 10);
		int len;

		if (*end || id == 0 || id > KVFS_CONFIG_ID_MAX ||
		    config_is_member(cfg, (uint32_t)id))
			continue;
		len = get_data(z, dir, kids.data[i], data, sizeof(data), NULL);
		if (len < 0 || election_kv(data, (size_t)len, "role", role, sizeof(role)) < 0 ||
		    strcmp(role, "observer") != 0)
			continue;
		*req = (struct kvfs_member_req){
		    .op = KVFS_MEMBER_ADD, .id = (uint32_t)id, .role = KVFS_ROLE_OBSERVER};
		snprintf(req->name, sizeof(req->name), AUTO_PREFIX "%lu", id);
		found = true;
	}
	deallocate_String_vector(&kids);
	return found;
}

/* The index= key of /config's data, 0 if it has none. */
static uint64_t config_data_index(const char *data, size_t len)
{
	char v[24], *end;
	unsigned long long idx;

	if (election_kv(data, len, "index", v, sizeof(v)) < 0 || v[0] < '0' || v[0] > '9')
		return 0;
	errno = 0;
	idx = strtoull(v, &end, 10);
	return *end || errno ? 0 : idx;
}

/*
 * After a committed change (index above what was written): /config gets
 * "cluster_id=<hex> size=N voters=... [observers=...] index=I". It keeps its first form
 * ("cluster_id=<hex> size=N") until the first change; size stays the size the cluster was
 * created with (the bootstrap configuration, DESIGN §3).
 */
static void rewrite_config(struct kvfs_zk *z)
{
	char path[256], data[ZDATA_MAX], id[2 * KVFS_GUID_LEN + 1], text[KVFS_CONFIG_TEXT_MAX];
	struct kvfs_config cfg;
	struct Stat st;
	uint64_t idx;
	uint32_t size;
	bool ok;
	int len = sizeof(data) - 1, rc;

	pthread_mutex_lock(&z->lock);
	ok = z->have_config && z->config_committed && z->config_index > z->config_written;
	cfg = z->config;
	idx = z->config_index;
	pthread_mutex_unlock(&z->lock);
	if (!ok || config_format(&cfg, text, sizeof(text)) < 0)
		return;
	path_of(z, path, sizeof(path), "config");
	if (zoo_get(z->zh, path, 0, data, &len, &st) != ZOK)
		return;
	data[len > 0 ? len : 0] = '\0';
	len = len > 0 ? len : 0;
	if (election_parse_config(data, (size_t)len, id, &size) < 0)
		return; /* not ours to fix: zk_setup refuses such a cluster at start */
	if (config_data_index(data, (size_t)len) >= idx) {
		z->config_written = idx;
		return;
	}
	snprintf(data, sizeof(data), "cluster_id=%s size=%u %s index=%" PRIu64, id, size, text,
	         idx);
	rc = zoo_set(z->zh, path, data, (int)strlen(data), st.version);
	if (rc == ZOK) {
		z->config_written = idx;
		log_info("%s now holds %s index=%" PRIu64, path, text, idx);
	} else if (rc != ZBADVERSION) {
		log_warn("cannot rewrite %s: %s; trying again", path, zerror(rc));
	}
}

/* On a node that is not a member (and never was, in this run): say once what it waits for. */
static void say_not_member(struct kvfs_zk *z)
{
	struct kvfs_config cfg;
	bool have;

	pthread_mutex_lock(&z->lock);
	have = z->have_config;
	cfg = z->config;
	pthread_mutex_unlock(&z->lock);
	if (!have)
		return;
	if (config_is_member(&cfg, z->cfg.id)) {
		z->was_member = true;
		return;
	}
	if (z->not_member_said || z->was_member)
		return; /* said, or removed: the node says that itself */
	z->not_member_said = true;
	if (z->cfg.role == KVFS_ROLE_OBSERVER)
		log_info(
		    "node %u is not a member of cluster %s yet; the leader adds it as an observer",
		    z->cfg.id, z->cfg.cluster);
	else
		log_warn("node %u is not a member of cluster %s; add it with: kvfs member add %u",
		         z->cfg.id, z->cfg.cluster, z->cfg.id);
}

void zk_requests_round(struct kvfs_zk *z, bool leading)
{
	struct kvfs_member_req req;
	struct kvfs_config cfg;
	bool found = false, have;

	say_not_member(z);
	write_results(z);
	if (leading) {
		pthread_mutex_lock(&z->lock);
		have = z->have_config;
		cfg = z->config;
		pthread_mutex_unlock(&z->lock);
		found = oldest_request(z, &req) || (have && auto_join(z, &cfg, &req));
		rewrite_config(z);
	}
	pthread_mutex_lock(&z->lock);
	z->have_request = found;
	if (found)
		z->request = req;
	pthread_mutex_unlock(&z->lock);
}

int zk_election_next_request(struct kvfs_zk *z, struct kvfs_member_req *req)
{
	int rv = -ENOENT;

	pthread_mutex_lock(&z->lock);
	if (z->have_request) {
		*req = z->request;
		rv = 0;
	}
	pthread_mutex_unlock(&z->lock);
	return rv;
}

void zk_election_request_result(struct kvfs_zk *z, const struct kvfs_member_req *req,
                                const struct kvfs_member_result *res)
{
	char data[ZDATA_MAX];
	bool final = res->state == KVFS_MEMBER_DONE || res->state == KVFS_MEMBER_REFUSED;

	if (strncmp(req->name, AUTO_PREFIX, strlen(AUTO_PREFIX)) == 0) {
		/* made up by this leader: no znode to write, the log says it */
		if (res->state == KVFS_MEMBER_DONE)
			log_info("node %u joined as an observer (index %" PRIu64 ")", req->id,
			         res->index);
		else if (res->state == KVFS_MEMBER_REFUSED)
			log_warn("node %u cannot join as an observer: %s", req->id, res->why);
	} else {
		member_result_format(req, res, data, sizeof(data));
	}
	pthread_mutex_lock(&z->lock);
	if (strncmp(req->name, AUTO_PREFIX, strlen(AUTO_PREFIX)) != 0)
		queue_result(z, req->name, data);
	/* a finished request is not handed out again before the next round looks */
	if (final && z->have_request && strcmp(z->request.name, req->name) == 0)
		z->have_request = false;
	z->changed = true;
	pthread_cond_signal(&z->cond);
	pthread_mutex_unlock(&z->lock);
}

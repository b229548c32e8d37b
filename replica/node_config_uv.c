/*
 * The configuration in force (config.h, repl.h "Membership") on the node's loop: the replication
 * core says when its latest configuration changes (io config_changed), and this file passes it
 * on: to the read-index rounds (whose voters' majority confirms a read), to the transport (which
 * members to dial), to the election (node.h set_config: observers never stand; the leader
 * rewrites ZooKeeper's /config once a change commits), and to the membership requests
 * (node_member_uv.c). Every tick it notices the commit index passing the latest configuration's
 * entry (then set_config again, committed), and a committed configuration that no longer holds
 * this node, which then stops (node.h node_set_removed). Also: the configuration a loaded store
 * starts the core with (ncl_store_config), and which peers the transport dials.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <uv.h>

#include "kvfs/config.h"
#include "kvfs/logging.h"
#include "kvfs/peer.h"
#include "kvfs/peer_msg.h"
#include "kvfs/readidx.h"
#include "kvfs/repl.h"
#include "kvfs/status.h"
#include "kvfs/store.h"
#include "node_internal.h"

const struct kvfs_config *ncl_config(const struct node_cluster *c)
{
	return repl_config(c->repl, NULL);
}

int ncl_store_config(const struct kvfs_node *n, struct kvfs_config *out, uint64_t *index)
{
	const struct kvfs_config *cfg = store_config(n->store, index);

	if (!n->cfg.cluster_size) {
		/* Standalone: a configuration of one, this node, whatever its --id. */
		*index = 0;
		*out =
		    (struct kvfs_config){.n = 1, .m = {{.id = n->cfg.id, .role = KVFS_ROLE_VOTER}}};
		return config_check(out);
	}
	if (!cfg)
		return config_bootstrap(out, ncl_size(n));
	*out = *cfg;
	return 0;
}

/* Whether the transport should dial `id`: a member of the latest configuration, or the leader
 * (a node not added yet still follows it). */
static bool want_addr(struct node_cluster *c, uint32_t id, uint32_t leader)
{
	return id != c->n->cfg.id && (id == leader || config_is_member(ncl_config(c), id));
}

void ncl_update_addrs(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	char addr[KVFS_ADDR_MAX];
	struct kvfs_node_view v;

	if (!n->cluster || !c->peers)
		return;
	ncl_view(c, &v);
	for (uint32_t id = 1; id <= KVFS_CONFIG_ID_MAX; id++) {
		if (!want_addr(c, id, v.leader)) {
			if (c->addrs[id][0])
				peer_set_addr(c->peers, id, NULL); /* removed: no more dials */
			c->addrs[id][0] = '\0';
			continue;
		}
		n->cluster->member_addr(n->cluster->arg, id, addr, sizeof(addr));
		if (!addr[0] || strcmp(addr, c->addrs[id]) == 0)
			continue;
		snprintf(c->addrs[id], KVFS_ADDR_MAX, "%s", addr);
		peer_set_addr(c->peers, id, addr);
	}
}

/* "voters 1,2,3 observers 6": config_format()'s text without its '='. */
static void describe(const struct kvfs_config *cfg, char *buf, size_t len)
{
	if (config_format(cfg, buf, len) < 0) {
		snprintf(buf, len, "(%u members)", cfg->n);
		return;
	}
	for (char *p = buf; *p; p++)
		if (*p == '=')
			*p = ' ';
}

/* Tells the election (set_config) and the log what is in force, if that changed. */
static void publish(struct node_cluster *c, const struct kvfs_config *cfg, uint64_t index)
{
	struct kvfs_node *n = c->n;
	bool committed = index <= repl_commit_index(c->repl);
	char text[KVFS_CONFIG_TEXT_MAX];

	if (!n->cfg.cluster_size ||
	    (c->cfg_published && index == c->cfg_index && committed == c->cfg_committed))
		return; /* standalone: a configuration of one, always */
	c->cfg_published = true;
	c->cfg_index = index;
	c->cfg_committed = committed;
	describe(cfg, text, sizeof(text));
	log_info("configuration at index %" PRIu64 ": %s (%s)", index, text,
	         committed ? "committed" : "appended");
	if (n->cluster && n->cluster->set_config)
		n->cluster->set_config(n->cluster->arg, cfg, index, committed);
}

/* Stops this node, removed from the cluster (once: node_set_removed's hook ends the process
 * cleanly). */
static void removed(struct node_cluster *c, const char *how, uint64_t index)
{
	struct kvfs_node *n = c->n;

	c->removed = true;
	log_info("node %" PRIu32 " was removed from cluster %s %s %" PRIu64 "; stopping", n->cfg.id,
	         n->cfg.cluster_id ? n->cfg.cluster_id : "?", how, index);
	if (n->removed_fn)
		n->removed_fn(n->cb_arg);
}

/* A committed configuration without this node, which was a member: it was removed. */
static void check_removed(struct node_cluster *c)
{
	struct kvfs_node *n = c->n;
	uint64_t index;
	const struct kvfs_config *cfg = repl_committed_config(c->repl, &index);

	if (!cfg || !n->cfg.cluster_size || c->removed)
		return;
	if (config_is_member(cfg, n->cfg.id)) {
		/* Only once it holds committed entries: a node started empty (a new one, or one
		 * coming back to be added again) starts from the bootstrap configuration, which
		 * may list it, while the cluster's has long left it out. */
		if (repl_commit_index(c->repl) > 0)
			c->was_member = true;
		return;
	}
	if (c->was_member) /* else not added yet (a new node waiting to be added) */
		removed(c, "at index", index);
}

/* The leader replicates to the members of its latest configuration only, so a removed node may
 * never see the entry that removed it; its leader's PEER_STATUS, which goes to non-members only
 * once the configuration is committed, tells it. */
void nconfig_leader_view(struct node_cluster *c, uint32_t leader, const struct kvfs_peer_status *m)
{
	struct kvfs_node *n = c->n;

	(void)leader;
	if (!n->cfg.cluster_size || !c->was_member || c->removed || m->count == 0)
		return;
	for (uint32_t i = 0; i < m->count; i++)
		if (m->peers[i].id == n->cfg.id)
			return;
	removed(c, "by its leader's committed configuration at commit index", m->commit_index);
}

void ncl_config_changed(void *arg, const struct kvfs_config *cfg, uint64_t index)
{
	struct node_cluster *c = arg;

	if (!c->started)
		return; /* repl_init: nconfig_start says it all at once */
	if (c->reads && readidx_set_config(c->reads, cfg) < 0)
		log_warn("configuration at index %" PRIu64 " refused by the read rounds", index);
	ncl_update_addrs(c);
	publish(c, cfg, index);
	nmember_config_changed(c, cfg, index);
	/* check_removed waits for the tick: not from inside a call into the core. */
}

void nconfig_start(struct node_cluster *c)
{
	uint64_t index;
	const struct kvfs_config *cfg = repl_config(c->repl, &index);

	c->started = true;
	ncl_config_changed(c, cfg, index);
}

void nconfig_tick(struct node_cluster *c)
{
	uint64_t index;
	const struct kvfs_config *cfg = repl_config(c->repl, &index);

	publish(c, cfg, index);
	check_removed(c);
}

/* The ids of cfg's members in `role`, "1,2,3" ("" for none). */
static void ids_of(const struct kvfs_config *cfg, uint8_t role, char *buf, size_t len)
{
	size_t used = 0;

	buf[0] = '\0';
	for (uint32_t i = 0; i < cfg->n && used < len; i++)
		if (cfg->m[i].role == role)
			used += (size_t)snprintf(buf + used, len - used, "%s%" PRIu32,
			                         used ? "," : "", cfg->m[i].id);
}

void nconfig_status(const struct node_cluster *c, struct kvfs_status *st)
{
	const struct kvfs_node *n = c->n;
	uint64_t index;
	const struct kvfs_config *cfg = repl_config(c->repl, &index);
	enum kvfs_config_role role = config_role(cfg, n->cfg.id);

	if (!n->cfg.cluster_size)
		return; /* standalone: no membership */
	/* An observer never stands: it follows, whatever the election would call it. */
	if (role == KVFS_ROLE_OBSERVER &&
	    (strcmp(st->role, "follower") == 0 || strcmp(st->role, "candidate") == 0))
		st->role = "observer";
	st->member_role = role == KVFS_ROLE_VOTER      ? "voter"
	                  : role == KVFS_ROLE_OBSERVER ? "observer"
	                                               : "none";
	st->config_index = index;
	ids_of(cfg, KVFS_ROLE_VOTER, st->voters, sizeof(st->voters));
	ids_of(cfg, KVFS_ROLE_OBSERVER, st->observers, sizeof(st->observers));
}

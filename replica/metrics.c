/*
 * Metrics rendering for /.metrics and --metrics-listen (see metrics.h): the facts of /.status
 * as gauges (states as one labelled gauge per possible value, 1 for the current one, so a query
 * can select on them), the counters and histograms the loop thread keeps, every family with its
 * HELP and TYPE lines, units in the names (_seconds, _bytes, _total). A number this node cannot
 * know (its lag while it has not heard its leader) is NaN, never a made-up 0.
 */
#include "kvfs/metrics.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/status.h"
#include "kvfs/textout.h"

const uint64_t kvfs_hist_bounds_us[KVFS_HIST_BOUNDS] = {
    100,   250,    500,    1000,   2500,    5000,    10000,   25000,
    50000, 100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

void metrics_observe(struct kvfs_hist *h, uint64_t us)
{
	size_t i = 0;

	while (i < KVFS_HIST_BOUNDS && us > kvfs_hist_bounds_us[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum_us += us;
}

static void family(struct kvfs_out *o, const char *name, const char *type, const char *help)
{
	kvfs_out_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value: backslash, double quote and newline escaped, as the format asks. */
static void out_label(struct kvfs_out *o, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			kvfs_out_printf(o, "\\%c", *v);
		else if (*v == '\n')
			kvfs_out_printf(o, "\\n");
		else
			kvfs_out_printf(o, "%c", *v);
	}
}

static void gauge_u64(struct kvfs_out *o, const char *name, const char *help, uint64_t v)
{
	family(o, name, "gauge", help);
	kvfs_out_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

static void counter(struct kvfs_out *o, const char *name, const char *help, uint64_t v)
{
	family(o, name, "counter", help);
	kvfs_out_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* name{label="value"} 1 for the current state, 0 for each other one of states[]. */
static void gauge_state(struct kvfs_out *o, const char *name, const char *help, const char *label,
                        const char *const *states, const char *cur)
{
	bool known = false;

	family(o, name, "gauge", help);
	for (size_t i = 0; states[i]; i++) {
		bool on = cur && strcmp(states[i], cur) == 0;

		known |= on;
		kvfs_out_printf(o, "%s{%s=\"%s\"} %d\n", name, label, states[i], on);
	}
	if (cur && !known) {
		kvfs_out_printf(o, "%s{%s=\"", name, label);
		out_label(o, cur);
		kvfs_out_printf(o, "\"} 1\n");
	}
}

static void histogram(struct kvfs_out *o, const char *name, const char *help, const struct kvfs_hist *h)
{
	static const struct kvfs_hist empty;
	uint64_t cum = 0;

	if (!h)
		h = &empty;
	family(o, name, "histogram", help);
	for (size_t i = 0; i < KVFS_HIST_BOUNDS; i++) {
		cum += h->buckets[i];
		kvfs_out_printf(o, "%s_bucket{le=\"%g\"} %llu\n", name,
		           (double)kvfs_hist_bounds_us[i] / 1e6, (unsigned long long)cum);
	}
	kvfs_out_printf(o, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
	kvfs_out_printf(o, "%s_sum %llu.%06llu\n", name, (unsigned long long)(h->sum_us / 1000000),
	           (unsigned long long)(h->sum_us % 1000000));
	kvfs_out_printf(o, "%s_count %llu\n", name, (unsigned long long)h->count);
}

/* Milliseconds as seconds, with three decimals. */
static void out_ms(struct kvfs_out *o, uint64_t ms)
{
	kvfs_out_printf(o, "%llu.%03llu", (unsigned long long)(ms / 1000),
	           (unsigned long long)(ms % 1000));
}

static void render_state(struct kvfs_out *o, const struct kvfs_status *st)
{
	static const char *const roles[] = {"leader",     "follower", "candidate",
	                                    "standalone", "observer", NULL};
	static const char *const zks[] = {"connected", "connecting", "expired", "none", NULL};
	static const char *const secs[] = {"encrypted", "insecure", "none", NULL};
	bool lag_unknown = st->catching_up || st->lag_unknown;

	gauge_u64(o, "kvfs_node_id", "This node's id.", st->node);
	gauge_state(o, "kvfs_role", "This node's role (1 for the current one).", "role", roles,
	            st->role);
	gauge_u64(o, "kvfs_leader_id", "The leader's id as this node knows it; 0 for none.",
	          st->leader);
	gauge_u64(o, "kvfs_epoch", "The leader's epoch (the fencing token).", st->epoch);
	gauge_state(o, "kvfs_zk_state", "The ZooKeeper session's state (1 for the current one).",
	            "state", zks, st->zk);
	gauge_state(o, "kvfs_peer_security",
	            "How peers are protected (1 for the current one; none: standalone).", "mode",
	            secs, st->peer_security);
	gauge_u64(o, "kvfs_priority", "This node's --priority.", st->priority);
	gauge_u64(o, "kvfs_commit_index", "The highest log index this node knows committed.",
	          st->commit_index);
	gauge_u64(o, "kvfs_applied_index", "The highest log index applied to this node's store.",
	          st->applied_index);
	family(o, "kvfs_lag_entries", "gauge",
	       "Leader's commit index minus this node's applied index; NaN while unknown.");
	if (lag_unknown)
		kvfs_out_printf(o, "kvfs_lag_entries NaN\n");
	else
		kvfs_out_printf(o, "kvfs_lag_entries %llu\n", (unsigned long long)st->lag_entries);
	family(o, "kvfs_lag_seconds", "gauge",
	       "Age of the oldest committed entry not yet applied here; NaN while unknown.");
	if (lag_unknown) {
		kvfs_out_printf(o, "kvfs_lag_seconds NaN\n");
	} else {
		kvfs_out_printf(o, "kvfs_lag_seconds ");
		out_ms(o, st->lag_ms);
		kvfs_out_printf(o, "\n");
	}
	gauge_u64(o, "kvfs_catching_up",
	          "1 while this node has not yet caught up with its leader since its start.",
	          st->catching_up);
	gauge_u64(o, "kvfs_writable",
	          "1 when this node can serve writes now (see writable_reason "
	          "in /.status when 0).",
	          st->writable);
}

static void render_peers(struct kvfs_out *o, const struct kvfs_status *st)
{
	static const struct {
		const char *name, *help;
	} fam[] = {
	    {"kvfs_peer_up", "1 when the peer is connected to this node (or is this node)."},
	    {"kvfs_peer_match_index", "The peer's durable log index as the leader sees it."},
	    {"kvfs_peer_lag_entries", "Commit index minus the peer's match index; NaN if unknown."},
	    {"kvfs_peer_lag_seconds", "How long the peer has been behind; NaN if unknown."},
	};

	for (size_t f = 0; f < sizeof(fam) / sizeof(fam[0]); f++) {
		family(o, fam[f].name, "gauge", fam[f].help);
		for (unsigned i = 0; i < st->npeers && i < KVFS_STATUS_MAX_PEERS; i++) {
			const struct kvfs_status_peer *p = &st->peers[i];

			kvfs_out_printf(o, "%s{peer=\"%u\"} ", fam[f].name, p->id);
			if (f == 0)
				kvfs_out_printf(o, "%d\n", !p->role || strcmp(p->role, "down") != 0);
			else if (f == 1)
				kvfs_out_printf(o, "%llu\n", (unsigned long long)p->match);
			else if (p->lag_unknown)
				kvfs_out_printf(o, "NaN\n");
			else if (f == 2)
				kvfs_out_printf(o, "%llu\n", (unsigned long long)p->lag_entries);
			else {
				out_ms(o, p->lag_ms);
				kvfs_out_printf(o, "\n");
			}
		}
	}
}

static void render_data(struct kvfs_out *o, const struct kvfs_metrics *m)
{
	const struct kvfs_status *st = m->st;

	gauge_u64(o, "kvfs_keys", "Files, directories and links in the store.", st->keys);
	gauge_u64(o, "kvfs_value_bytes", "Bytes of all file values.", st->value_bytes);
	gauge_u64(o, "kvfs_log_bytes", "Bytes of the write-ahead log on disk.", st->log_bytes);
	gauge_u64(o, "kvfs_snapshot_bytes", "Bytes of the newest snapshot on disk; 0 if none.",
	          m->node ? m->node->snapshot_bytes : 0);
	gauge_u64(o, "kvfs_snapshot_index", "The log index the newest snapshot ends at.",
	          st->snapshot_index);
}

static void render_counters(struct kvfs_out *o, const struct kvfs_metrics *m)
{
	const struct kvfs_fs_counters *fs = m->fs;
	const struct kvfs_node_counters *nc = m->node;

	counter(o, "kvfs_writes_total",
	        "Changes answered to callers of this mount (create, mkdir, unlink, rename, "
	        "setattr, and flush or fsync that committed a file).",
	        fs ? fs->writes : 0);
	histogram(o, "kvfs_write_duration_seconds",
	          "Time from a change's request to its reply (committed by a majority and "
	          "applied here, or failed).",
	          fs ? &fs->write : NULL);
	counter(o, "kvfs_reads_total", "read() requests on files of this mount.",
	        fs ? fs->reads : 0);
	histogram(o, "kvfs_read_duration_seconds", "Time from a read() request to its reply.",
	          fs ? &fs->read : NULL);
	histogram(o, "kvfs_read_wait_duration_seconds",
	          "Time requests waited until this node could answer reads (--read linearizable "
	          "barrier, catching up after a start).",
	          fs ? &fs->read_wait : NULL);
	counter(o, "kvfs_eio_total",
	        "Requests answered EIO (nothing committed or confirmed within --write-timeout).",
	        fs ? fs->eio : 0);
	histogram(o, "kvfs_fsync_duration_seconds",
	          "Time to write and fdatasync one group-commit batch of the log.",
	          nc ? &nc->fsync : NULL);
	counter(o, "kvfs_fsync_bytes_total", "Bytes written to the log by those batches.",
	        nc ? nc->fsync_bytes : 0);
}

size_t metrics_render(const struct kvfs_metrics *m, char *buf, size_t size)
{
	struct kvfs_out o = {.buf = buf, .size = size};

	if (size)
		buf[0] = '\0';
	render_state(&o, m->st);
	render_peers(&o, m->st);
	render_data(&o, m);
	render_counters(&o, m);
	return o.len;
}

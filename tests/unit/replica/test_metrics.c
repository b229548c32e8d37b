/* Unit tests for metrics rendering: the Prometheus text format's rules (HELP and TYPE before
 * every family's samples, cumulative buckets ending in +Inf = count), the facts of /.status as
 * gauges, NaN for what the node cannot know, histogram bucketing, truncation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kvfs/metrics.h"
#include "kvfs/status.h"

static struct kvfs_status sample(void)
{
	struct kvfs_status st = {
	    .node = 2,
	    .role = "follower",
	    .leader = 1,
	    .epoch = 7,
	    .zk = "connected",
	    .election = "sequential",
	    .peer_security = "encrypted",
	    .priority = 1,
	    .commit_index = 10423,
	    .applied_index = 10420,
	    .lag_entries = 3,
	    .lag_ms = 1500,
	    .keys = 12,
	    .value_bytes = 3456,
	    .log_bytes = 7890,
	    .snapshot_index = 10000,
	    .writable = true,
	    .npeers = 2,
	};
	st.peers[0] = (struct kvfs_status_peer){.id = 1, .role = "leader", .match = 10423};
	st.peers[1] = (struct kvfs_status_peer){
	    .id = 3, .role = "down", .match = 10419, .lag_entries = 4, .lag_unknown = true};
	return st;
}

static char *render(const struct kvfs_metrics *m)
{
	size_t need = metrics_render(m, NULL, 0);
	char *buf = malloc(need + 1);

	assert_non_null(buf);
	assert_int_equal(metrics_render(m, buf, need + 1), need);
	assert_int_equal(strlen(buf), need);
	return buf;
}

/* The value of the sample line that starts with `series` followed by a space; NULL if none. */
static const char *value_of(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return p + n + 1;
	return NULL;
}

static void assert_value(const char *text, const char *series, const char *want)
{
	const char *v = value_of(text, series);

	if (!v)
		fail_msg("no sample %s", series);
	if (strncmp(v, want, strlen(want)) != 0 || v[strlen(want)] != '\n')
		fail_msg("%s is %.20s, not %s", series, v, want);
}

/* Every sample's family was announced by HELP then TYPE just before its samples began, and
 * each family is announced once. */
static void test_format_rules(void **state)
{
	struct kvfs_status st = sample();
	struct kvfs_metrics m = {.st = &st};
	char *text = render(&m), *save = NULL, fam[128] = "", type[32] = "";
	unsigned families = 0;

	for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strncmp(line, "# HELP ", 7) == 0) {
			char name[128];

			assert_int_equal(sscanf(line + 7, "%127s", name), 1);
			assert_string_not_equal(name, fam); /* once */
			snprintf(fam, sizeof(fam), "%s", name);
			type[0] = '\0';
			families++;
			continue;
		}
		if (strncmp(line, "# TYPE ", 7) == 0) {
			char name[128];

			assert_int_equal(sscanf(line + 7, "%127s %31s", name, type), 2);
			assert_string_equal(name, fam);
			continue;
		}
		assert_true(type[0]); /* a sample after its TYPE line */
		assert_int_equal(strncmp(line, "kvfs_", 5), 0);
		assert_int_equal(strncmp(line, fam, strlen(fam)), 0);
		if (strcmp(type, "counter") == 0)
			assert_non_null(strstr(fam, "_total"));
	}
	assert_true(families > 25);
	free(text);
}

static void test_status_facts(void **state)
{
	struct kvfs_status st = sample();
	struct kvfs_metrics m = {.st = &st};
	char *text = render(&m);

	assert_value(text, "kvfs_node_id", "2");
	assert_value(text, "kvfs_role{role=\"follower\"}", "1");
	assert_value(text, "kvfs_role{role=\"leader\"}", "0");
	assert_value(text, "kvfs_leader_id", "1");
	assert_value(text, "kvfs_epoch", "7");
	assert_value(text, "kvfs_zk_state{state=\"connected\"}", "1");
	assert_value(text, "kvfs_zk_state{state=\"expired\"}", "0");
	assert_value(text, "kvfs_peer_security{mode=\"encrypted\"}", "1");
	assert_value(text, "kvfs_commit_index", "10423");
	assert_value(text, "kvfs_applied_index", "10420");
	assert_value(text, "kvfs_lag_entries", "3");
	assert_value(text, "kvfs_lag_seconds", "1.500");
	assert_value(text, "kvfs_writable", "1");
	assert_value(text, "kvfs_keys", "12");
	assert_value(text, "kvfs_value_bytes", "3456");
	assert_value(text, "kvfs_log_bytes", "7890");
	assert_value(text, "kvfs_snapshot_index", "10000");
	assert_value(text, "kvfs_snapshot_bytes", "0");
	assert_value(text, "kvfs_peer_up{peer=\"1\"}", "1");
	assert_value(text, "kvfs_peer_up{peer=\"3\"}", "0");
	assert_value(text, "kvfs_peer_match_index{peer=\"3\"}", "10419");
	assert_value(text, "kvfs_peer_lag_entries{peer=\"1\"}", "0");
	assert_value(text, "kvfs_peer_lag_entries{peer=\"3\"}", "NaN");
	assert_value(text, "kvfs_peer_lag_seconds{peer=\"3\"}", "NaN");
	assert_value(text, "kvfs_writes_total", "0");
	assert_value(text, "kvfs_write_duration_seconds_count", "0");
	free(text);
}

/* A node that cannot know its lag says NaN, not 0; an unexpected state still shows. */
static void test_unknown_lag_and_odd_state(void **state)
{
	struct kvfs_status st = sample();
	struct kvfs_metrics m = {.st = &st};
	char *text;

	st.catching_up = true;
	st.lag_entries = 0;
	st.writable = false;
	st.zk = "we\"ird\\";
	text = render(&m);
	assert_value(text, "kvfs_lag_entries", "NaN");
	assert_value(text, "kvfs_lag_seconds", "NaN");
	assert_value(text, "kvfs_catching_up", "1");
	assert_value(text, "kvfs_writable", "0");
	assert_value(text, "kvfs_zk_state{state=\"we\\\"ird\\\\\"}", "1");
	assert_value(text, "kvfs_zk_state{state=\"connected\"}", "0");
	free(text);
}

static void test_histogram(void **state)
{
	struct kvfs_status st = sample();
	struct kvfs_fs_counters fs = {.writes = 4, .reads = 1, .eio = 1};
	struct kvfs_node_counters nc = {.snapshot_bytes = 999, .fsync_bytes = 4096};
	struct kvfs_metrics m = {.st = &st, .fs = &fs, .node = &nc};
	char *text;

	metrics_observe(&fs.write, 50);       /* <= 0.0001 */
	metrics_observe(&fs.write, 100);      /* <= 0.0001: bounds are inclusive */
	metrics_observe(&fs.write, 3000);     /* <= 0.005 */
	metrics_observe(&fs.write, 60000000); /* above 10 s */
	metrics_observe(&nc.fsync, 1234);
	metrics_observe(&fs.read, 7);
	text = render(&m);
	assert_value(text, "kvfs_writes_total", "4");
	assert_value(text, "kvfs_write_duration_seconds_bucket{le=\"0.0001\"}", "2");
	assert_value(text, "kvfs_write_duration_seconds_bucket{le=\"0.0025\"}", "2");
	assert_value(text, "kvfs_write_duration_seconds_bucket{le=\"0.005\"}", "3");
	assert_value(text, "kvfs_write_duration_seconds_bucket{le=\"10\"}", "3");
	assert_value(text, "kvfs_write_duration_seconds_bucket{le=\"+Inf\"}", "4");
	assert_value(text, "kvfs_write_duration_seconds_count", "4");
	assert_value(text, "kvfs_write_duration_seconds_sum", "60.003150");
	assert_value(text, "kvfs_fsync_duration_seconds_bucket{le=\"0.001\"}", "0");
	assert_value(text, "kvfs_fsync_duration_seconds_bucket{le=\"0.0025\"}", "1");
	assert_value(text, "kvfs_fsync_duration_seconds_count", "1");
	assert_value(text, "kvfs_fsync_bytes_total", "4096");
	assert_value(text, "kvfs_reads_total", "1");
	assert_value(text, "kvfs_read_duration_seconds_count", "1");
	assert_value(text, "kvfs_read_wait_duration_seconds_count", "0");
	assert_value(text, "kvfs_eio_total", "1");
	assert_value(text, "kvfs_snapshot_bytes", "999");
	free(text);
}

static void test_truncation_reports_full_length(void **state)
{
	struct kvfs_status st = sample();
	struct kvfs_metrics m = {.st = &st};
	size_t full = metrics_render(&m, NULL, 0);
	char small[64];

	assert_int_equal(metrics_render(&m, small, sizeof(small)), full);
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_format_rules),
	    cmocka_unit_test(test_status_facts),
	    cmocka_unit_test(test_unknown_lag_and_odd_state),
	    cmocka_unit_test(test_histogram),
	    cmocka_unit_test(test_truncation_reports_full_length),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}

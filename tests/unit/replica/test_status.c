/* Unit tests for status rendering: contract order of keys, "none" leader, JSON shape, truncation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "kvfs/status.h"

static struct kvfs_status sample(void)
{
	struct kvfs_status st = {
	    .node = 2,
	    .role = "follower",
	    .leader = 1,
	    .leader_addr = "127.0.0.1:7001",
	    .epoch = 7,
	    .zk = "connected",
	    .election = "sequential",
	    .priority = 1,
	    .commit_index = 10423,
	    .applied_index = 10420,
	    .lag_entries = 3,
	    .lag_ms = 12,
	    .npeers = 2,
	};
	st.peers[0] = (struct kvfs_status_peer){
	    .id = 1, .addr = "127.0.0.1:7001", .role = "leader", .match = 10423};
	st.peers[1] = (struct kvfs_status_peer){.id = 3,
	                                        .addr = "127.0.0.1:7003",
	                                        .role = "follower",
	                                        .match = 10419,
	                                        .lag_entries = 4,
	                                        .lag_ms = 15};
	return st;
}

static void test_text_contract_order(void **state)
{
	static const char *const keys[] = {
	    "node",     "role",     "leader",       "leader_addr",   "epoch",       "zk",
	    "election", "priority", "commit_index", "applied_index", "lag_entries", "lag_ms"};
	struct kvfs_status st = sample();
	char buf[4096];
	size_t len = status_render_text(&st, buf, sizeof(buf));
	const char *p = buf;

	assert_true(len < sizeof(buf));
	assert_int_equal(strlen(buf), len);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t kl = strlen(keys[i]);

		assert_memory_equal(p, keys[i], kl);
		assert_int_equal(p[kl], ':');
		p = strchr(p, '\n') + 1;
	}
	assert_non_null(strstr(buf, "role: follower\n"));
	assert_non_null(strstr(buf, "leader: 1\nleader_addr: 127.0.0.1:7001\nepoch: 7\n"));
	assert_non_null(
	    strstr(buf, "peer: 1 127.0.0.1:7001 leader match=10423 lag_entries=0 lag_ms=0\n"));
	assert_non_null(
	    strstr(buf, "peer: 3 127.0.0.1:7003 follower match=10419 lag_entries=4 lag_ms=15\n"));
}

static void test_text_no_leader(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];

	st.leader = 0;
	st.leader_addr[0] = '\0';
	st.npeers = 0;
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "leader: none\nleader_addr: none\n"));
	assert_null(strstr(buf, "peer:"));
}

static void test_json(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];

	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "{\"node\": 2, \"role\": \"follower\", \"leader\": 1, "));
	assert_non_null(strstr(buf, "\"peers\": [{\"id\": 1, \"addr\": \"127.0.0.1:7001\", "
	                            "\"role\": \"leader\", \"match\": 10423, \"lag_entries\": 0, "
	                            "\"lag_ms\": 0}, {\"id\": 3, "));
	assert_int_equal(buf[strlen(buf) - 2], '}');
	st.leader = 0;
	st.role = "a\"b\\c\n";
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"leader\": null"));
	assert_non_null(strstr(buf, "\"role\": \"a\\\"b\\\\c\\u000a\""));
}

/* A node that has not heard its leader since its start shows its lag as unknown (-1). */
static void test_catching_up(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];

	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nlag_entries: 3\nlag_ms: 12\ncatching_up: no\n"));
	st.catching_up = true;
	st.peers[1].lag_unknown = true;
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nlag_entries: -1\nlag_ms: -1\ncatching_up: yes\n"));
	assert_non_null(strstr(buf, "peer: 3 127.0.0.1:7003 follower match=10419 lag_entries=-1 "
	                            "lag_ms=-1\n"));
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"lag_entries\": -1, \"lag_ms\": -1, \"catching_up\": \"yes\""));
	assert_non_null(strstr(buf, "\"match\": 10419, \"lag_entries\": -1, \"lag_ms\": -1}"));
	/* Cut off from its leader: it does not know its lag either, but serves reads. */
	st = sample();
	st.lag_unknown = true;
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nlag_entries: -1\nlag_ms: -1\ncatching_up: no\n"));
}

/* How peers and ZooKeeper sessions are protected, right after the lag. */
static void test_security_facts(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];

	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\ncatching_up: no\npeer_security: none\nzk_auth: none\n"));
	st.peer_security = "encrypted";
	st.zk_auth = "digest";
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\npeer_security: encrypted\nzk_auth: digest\nkeys: "));
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"peer_security\": \"encrypted\", \"zk_auth\": \"digest\""));
}

/* writable and its reason come after every other fact (rejoining included) (the documented order stays), before
 * the peer lines. */
static void test_writable_facts(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];

	st.writable_reason = "no majority";
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nrejoining: no\nwritable: no\nwritable_reason: no "
	                            "majority\npeer: 1 "));
	st.writable = true;
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nwritable: yes\nwritable_reason: none\npeer: 1 "));
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"writable\": \"yes\", \"writable_reason\": \"none\", "
	                            "\"peers\": ["));
}

/* The leader score: sample() with this node's quorum RTT, its RTT to members 1 and 3, and the
 * two candidates' scores. */
static struct kvfs_status with_score(void)
{
	struct kvfs_status st = sample();

	st.has_quorum_rtt = true;
	st.quorum_rtt_us = 412;
	st.nmembers = 2;
	st.members[0] = (struct kvfs_status_member){
	    .id = 1, .measured = true, .srtt_us = 41250, .rttvar_us = 50, .heard_ms_ago = 30};
	st.members[1] = (struct kvfs_status_member){.id = 3, .heard_ms_ago = UINT64_MAX};
	st.nscores = 2;
	st.scores[0] = (struct kvfs_status_score){.id = 1,
	                                          .rank = 1,
	                                          .eligible = true,
	                                          .priority = 1,
	                                          .quorum_rtt_us = 400,
	                                          .zone = "a",
	                                          .leader = true};
	st.scores[1] = (struct kvfs_status_score){.id = 3,
	                                          .rank = 2,
	                                          .why = "no contact with a majority",
	                                          .priority = 1,
	                                          .quorum_rtt_us = UINT64_MAX,
	                                          .rtt_b = UINT32_MAX,
	                                          .lag_b = 2,
	                                          .beats_leader_ms = 0};
	return st;
}

/* quorum_rtt_ms after writable_reason; member and score lines after the peer lines, which stay
 * byte for byte what they were. */
static void test_score_text(void **state)
{
	struct kvfs_status plain = sample(), st = with_score();
	char before[4096], buf[4096], *peers;

	status_render_text(&plain, before, sizeof(before));
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nwritable_reason: none\nquorum_rtt_ms: 0.41\npeer: 1 "));
	peers = strstr(before, "peer: 1 ");
	assert_non_null(peers);
	assert_non_null(strstr(buf, peers)); /* every peer line, unchanged and together */
	assert_non_null(strstr(buf, "lag_ms=15\n"
	                            "member: 1 rtt_ms=41.25 rttvar_ms=0.05 heard_ms=30\n"
	                            "member: 3 rtt_ms=-1 rttvar_ms=-1 heard_ms=-1\n"
	                            "score: 1 rank=1 eligible=yes priority=1 quorum_rtt_ms=0.40 "
	                            "rtt_b=0 lag_b=0 zone=a leader=yes beats_leader_ms=0 why=-\n"
	                            "score: 3 rank=2 eligible=no priority=1 quorum_rtt_ms=-1 "
	                            "rtt_b=-1 lag_b=2 zone=- leader=no beats_leader_ms=0 "
	                            "why=no contact with a majority\n"));
	assert_int_equal(buf[strlen(buf) - 1], '\n');
	st.quorum_rtt_us = UINT64_MAX;
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nquorum_rtt_ms: -1\npeer: 1 "));
	/* Without the score (a standalone node): none of its lines. */
	assert_null(strstr(before, "quorum_rtt_ms"));
	assert_null(strstr(before, "member:"));
	assert_null(strstr(before, "score:"));
}

static void test_score_json(void **state)
{
	struct kvfs_status plain = sample(), st = with_score();
	char buf[4096];

	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"writable_reason\": \"none\", \"quorum_rtt_ms\": 0.41, "
	                            "\"peers\": ["));
	assert_non_null(strstr(buf, "\"members\": [{\"id\": 1, \"rtt_ms\": 41.25, "
	                            "\"rttvar_ms\": 0.05, \"heard_ms\": 30}, {\"id\": 3, "
	                            "\"rtt_ms\": null, \"rttvar_ms\": null, \"heard_ms\": null}]"));
	assert_non_null(strstr(buf, "\"scores\": [{\"id\": 1, \"rank\": 1, \"eligible\": "
	                            "\"yes\", \"priority\": 1, \"quorum_rtt_ms\": 0.40, "
	                            "\"rtt_b\": 0, \"lag_b\": 0, \"zone\": \"a\", \"leader\": "
	                            "\"yes\", \"beats_leader_ms\": 0, \"why\": null}, "));
	assert_non_null(strstr(buf, "\"quorum_rtt_ms\": null, \"rtt_b\": null, \"lag_b\": 2, "
	                            "\"zone\": null, \"leader\": \"no\", \"beats_leader_ms\": 0, "
	                            "\"why\": \"no contact with a majority\"}]}\n"));
	st.quorum_rtt_us = UINT64_MAX;
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"quorum_rtt_ms\": null, \"peers\""));
	status_render_json(&plain, buf, sizeof(buf));
	assert_null(strstr(buf, "quorum_rtt_ms"));
	assert_null(strstr(buf, "\"members\""));
	assert_null(strstr(buf, "\"scores\""));
}

/* An observer: role observer, its peer line's role too (six fields as ever), and the membership
 * facts after the other extras, in text and JSON. */
static void test_membership(void **state)
{
	struct kvfs_status plain = sample(), st = sample();
	char buf[4096];

	st.role = "observer";
	st.node = 6;
	st.peers[1] = (struct kvfs_status_peer){.id = 6,
	                                        .addr = "127.0.0.1:7006",
	                                        .role = "observer",
	                                        .match = 10419,
	                                        .lag_entries = 4,
	                                        .lag_ms = 15};
	st.member_role = "observer";
	st.config_index = 5120;
	snprintf(st.voters, sizeof(st.voters), "1,2,3,4");
	snprintf(st.observers, sizeof(st.observers), "6");
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "node: 6\nrole: observer\nleader: 1\n"));
	assert_non_null(strstr(buf, "\nwritable_reason: none\nmember_role: observer\n"
	                            "config_index: 5120\nvoters: 1,2,3,4\nobservers: 6\npeer: 1 "));
	assert_non_null(
	    strstr(buf, "peer: 6 127.0.0.1:7006 observer match=10419 lag_entries=4 lag_ms=15\n"));
	status_render_json(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"role\": \"observer\", \"leader\": 1, "));
	assert_non_null(strstr(buf, "\"member_role\": \"observer\", \"config_index\": 5120, "
	                            "\"voters\": \"1,2,3,4\", \"observers\": \"6\", \"peers\""));
	assert_non_null(strstr(buf, "{\"id\": 6, \"addr\": \"127.0.0.1:7006\", \"role\": "
	                            "\"observer\", "));
	/* A voter with no observer; standalone (no member_role): no membership lines. */
	st.member_role = "voter";
	st.observers[0] = '\0';
	status_render_text(&st, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\nmember_role: voter\nconfig_index: 5120\nvoters: 1,2,3,4\n"
	                            "observers: none\n"));
	status_render_text(&plain, buf, sizeof(buf));
	assert_null(strstr(buf, "member_role"));
	assert_null(strstr(buf, "voters:"));
}

/* The change feed's range comes last, after the peer and score lines (append only). */
static void test_changes_range(void **state)
{
	struct kvfs_status st = sample();
	char buf[4096];
	size_t len;

	status_render_text(&st, buf, sizeof(buf));
	assert_null(strstr(buf, "changes_"));
	st.has_changes = true;
	st.changes_first = 17;
	st.changes_last = 10420;
	len = status_render_text(&st, buf, sizeof(buf));
	assert_true(len > 40);
	assert_string_equal(buf + len - strlen("changes_first: 17\nchanges_last: 10420\n"),
	                    "changes_first: 17\nchanges_last: 10420\n");
	assert_non_null(strstr(buf, "lag_ms=15\nchanges_first"));
	len = status_render_json(&st, buf, sizeof(buf));
	assert_string_equal(buf + len - strlen(", \"changes_first\": 17, \"changes_last\": 10420}\n"),
	                    ", \"changes_first\": 17, \"changes_last\": 10420}\n");
}

static void test_truncation_reports_full_length(void **state)
{
	struct kvfs_status st = sample();
	char full[4096], small[40];
	size_t len = status_render_text(&st, full, sizeof(full));

	assert_int_equal(status_render_text(&st, small, sizeof(small)), len);
	assert_int_equal(strlen(small), sizeof(small) - 1);
	assert_memory_equal(small, full, sizeof(small) - 1);
	assert_int_equal(status_render_json(&st, NULL, 0),
	                 status_render_json(&st, full, sizeof(full)));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_text_contract_order),
	    cmocka_unit_test(test_text_no_leader),
	    cmocka_unit_test(test_json),
	    cmocka_unit_test(test_catching_up),
	    cmocka_unit_test(test_security_facts),
	    cmocka_unit_test(test_writable_facts),
	    cmocka_unit_test(test_truncation_reports_full_length),
	    cmocka_unit_test(test_score_text),
	    cmocka_unit_test(test_score_json),
	    cmocka_unit_test(test_membership),
	    cmocka_unit_test(test_changes_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

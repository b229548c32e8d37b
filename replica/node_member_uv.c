/*
 * Membership on the node's loop: on the established leader, take `kvfs member` requests from the
 * election (node.h next_request), propose the configuration changes (repl_propose_config), wait
 * for catch-up before a promotion, and report results (request_result). STUB: helper i12-cli
 * fills it.
 */
#include "node_internal.h"

void nmember_tick(struct node_cluster *c)
{
	(void)c;
}

void nmember_config_changed(struct node_cluster *c, const struct kvfs_config *cfg,
                            uint64_t index)
{
	(void)c, (void)cfg, (void)index;
}

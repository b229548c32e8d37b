/*
 * Membership requests in the election thread (member_req.h): on the established leader, watch
 * /requests, hand the oldest pending request to the loop, write results into request znodes;
 * and rewrite /config after a committed configuration change. STUB: helper i12-cli fills it.
 */
#include <errno.h>

#include "kvfs/member_req.h"
#include "zk_internal.h"

int zk_election_next_request(struct kvfs_zk *z, struct kvfs_member_req *req)
{
	(void)z, (void)req;
	return -ENOENT;
}

void zk_election_request_result(struct kvfs_zk *z, const struct kvfs_member_req *req,
                                const struct kvfs_member_result *res)
{
	(void)z, (void)req, (void)res;
}

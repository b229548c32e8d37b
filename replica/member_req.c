/*
 * Membership requests, the pure part (member_req.h). STUB: helper i12-cli fills it.
 */
#include "kvfs/member_req.h"

#include <errno.h>
#include <stdio.h>

int member_req_parse(const char *data, size_t len, struct kvfs_member_req *r)
{
	(void)data, (void)len, (void)r;
	return -EINVAL;
}

size_t member_req_format(const struct kvfs_member_req *r, char *buf, size_t size)
{
	(void)r;
	return (size_t)snprintf(buf, size, "%s", "");
}

int member_result_parse(const char *data, size_t len, struct kvfs_member_result *res)
{
	(void)data, (void)len, (void)res;
	return -EINVAL;
}

size_t member_result_format(const struct kvfs_member_req *r, const struct kvfs_member_result *res,
                            char *buf, size_t size)
{
	(void)r, (void)res;
	return (size_t)snprintf(buf, size, "%s", "");
}

int member_req_next(const struct kvfs_config *cur, const struct kvfs_member_req *r,
                    uint32_t leader_id, bool caught_up, struct kvfs_config *next, char *why,
                    size_t len)
{
	(void)cur, (void)r, (void)leader_id, (void)caught_up, (void)next;
	snprintf(why, len, "not implemented");
	return -EINVAL;
}

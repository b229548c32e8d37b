/*
 * `kvfs member add ID [--role voter|observer] | remove ID | promote ID | demote ID | list`
 * with `--zk HOSTS [--cluster NAME] [--zk-auth-file FILE] [--timeout MS] [--force]`: changes the
 * cluster's members through ZooKeeper (member_req.h). A change is a persistent sequential znode
 * /kvfs/<cluster>/requests/req-N that the established leader carries out through the log and
 * answers in the same znode; the command waits for the answer, prints one line, deletes the
 * znode. `list` prints the configuration (/config), the registered members (/members) and the
 * election's candidates.
 *
 * Exit status: 0 done, 1 refused by the leader, 2 bad usage, 3 no answer within --timeout (the
 * request is withdrawn), 5 ZooKeeper unreachable or refusing, or no such cluster.
 */
#ifndef KVFS_FS_MEMBER_H
#define KVFS_FS_MEMBER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define KVFS_MEMBER_EXIT_DONE    0
#define KVFS_MEMBER_EXIT_REFUSED 1
#define KVFS_MEMBER_EXIT_USAGE   2
#define KVFS_MEMBER_EXIT_TIMEOUT 3
#define KVFS_MEMBER_EXIT_ZK      5
#define KVFS_MEMBER_TIMEOUT_MS   60000u

struct member_args {
	bool list; /* `list`; else req holds the change */
	int op;    /* enum kvfs_member_op (member_req.h) */
	uint32_t id;
	uint8_t role; /* add: KVFS_ROLE_VOTER (default) or KVFS_ROLE_OBSERVER */
	bool force;
	const char *zk; /* points into argv */
	const char *cluster;
	const char *auth_file;
	uint64_t timeout_ms;
};

/*
 * Parses argv (argv[0] is "member"; options may come before or after the words, as "--opt V" or
 * "--opt=V"). Returns 0, 1 for --help (usage printed by the caller), or -EINVAL with a one-line
 * message in err. Pure: no I/O.
 */
int member_args_parse(int argc, char **argv, struct member_args *a, char *err, size_t errlen);

/* The usage text (for --help, and after a usage error). */
void member_usage(FILE *out);

/* argv[0] is "member". Returns the exit status. */
int member_main(int argc, char **argv);

#endif /* KVFS_FS_MEMBER_H */

/*
 * `kvfs member`'s command line (member.h): the words (add ID | remove ID | promote ID |
 * demote ID | list) and the options, each checked with a one-line message that says what is
 * accepted. Pure: no I/O but the usage text.
 */
#include "member.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "kvfs/config.h"
#include "kvfs/member_req.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void member_usage(FILE *out)
{
	fprintf(out,
	        "usage: kvfs member add ID [--role voter|observer] | remove ID | promote ID |\n"
	        "                   demote ID | list\n"
	        "                   --zk HOSTS [--cluster NAME] [--zk-auth-file FILE]\n"
	        "                   [--timeout MS] [--force]\n"
	        "Changes the cluster's members through ZooKeeper; the leader carries the change\n"
	        "out through the log, one change at a time.\n"
	        "  add ID            add node ID: as a voter (default: it joins as an observer,\n"
	        "                    catches up, then is promoted), or --role observer\n"
	        "  remove ID         remove node ID (the leader hands the lead over first)\n"
	        "  promote ID        make observer ID a voter (once it has caught up)\n"
	        "  demote ID         make voter ID an observer\n"
	        "  list              the configuration, the registered members, the candidates\n"
	        "  --zk HOSTS        ZooKeeper connect string (required)\n"
	        "  --cluster NAME    cluster name (default \"default\")\n"
	        "  --zk-auth-file F  ZooKeeper digest credentials user:password, as the nodes'\n"
	        "  --timeout MS      give up (and withdraw the request) after MS ms (default %u)\n"
	        "  --force           carry the request to the leader even where it would warn\n"
	        "Exit status: 0 done, 1 refused, 2 bad usage, 3 timed out, 5 ZooKeeper\n"
	        "unreachable or refusing, or no such cluster.\n",
	        KVFS_MEMBER_TIMEOUT_MS);
}

/* A decimal number in lo..hi, no sign, no excess. */
static int number(const char *name, const char *s, uint64_t lo, uint64_t hi, uint64_t *out,
                  char *err, size_t errlen)
{
	uint64_t v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 19 || (n > 1 && s[0] == '0'))
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			goto bad;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v < lo || v > hi)
		goto bad;
	*out = v;
	return 0;
bad:
	return fail(err, errlen, "%s: '%s' is not a number in %llu..%llu", name, s,
	            (unsigned long long)lo, (unsigned long long)hi);
}

static const struct {
	const char *word;
	int op;
} words[] = {
    {"add", KVFS_MEMBER_ADD},
    {"remove", KVFS_MEMBER_REMOVE},
    {"promote", KVFS_MEMBER_PROMOTE},
    {"demote", KVFS_MEMBER_DEMOTE},
};

/* One option (name without "--", its value or NULL) into a; *used: the value was consumed. */
static int option(struct member_args *a, const char *name, const char *val, bool *used,
                  bool *role_given, char *err, size_t errlen)
{
	static const char *const with_value[] = {"zk", "cluster", "zk-auth-file", "timeout",
	                                         "role"};
	bool needs = false;

	*used = false;
	for (size_t i = 0; i < sizeof(with_value) / sizeof(with_value[0]); i++)
		needs |= strcmp(name, with_value[i]) == 0;
	if (needs && !val)
		return fail(err, errlen, "--%s needs a value", name);
	if (!needs && strcmp(name, "force") != 0)
		return fail(err, errlen, "unknown option --%s (see kvfs member --help)", name);
	*used = needs;
	if (strcmp(name, "force") == 0) {
		a->force = true;
	} else if (strcmp(name, "zk") == 0) {
		if (!*val || strchr(val, ' '))
			return fail(err, errlen,
			            "--zk: '%s' is not a connect string (host:port,...)", val);
		a->zk = val;
	} else if (strcmp(name, "cluster") == 0) {
		if (!*val || strchr(val, '/') || strlen(val) > 64)
			return fail(err, errlen,
			            "--cluster: '%s' must be 1..64 characters without '/'", val);
		a->cluster = val;
	} else if (strcmp(name, "zk-auth-file") == 0) {
		if (!*val)
			return fail(err, errlen, "--zk-auth-file: empty path");
		a->auth_file = val;
	} else if (strcmp(name, "timeout") == 0) {
		return number("--timeout", val, 1, 86400000, &a->timeout_ms, err, errlen);
	} else {
		if (strcmp(val, "voter") == 0)
			a->role = KVFS_ROLE_VOTER;
		else if (strcmp(val, "observer") == 0)
			a->role = KVFS_ROLE_OBSERVER;
		else
			return fail(err, errlen, "--role: '%s' must be voter or observer", val);
		*role_given = true;
	}
	return 0;
}

/* The words after "member": the operation, then its ID. */
static int word(struct member_args *a, const char *w, int *nwords, char *err, size_t errlen)
{
	uint64_t id;

	if (*nwords == 0) {
		(*nwords)++;
		if (strcmp(w, "list") == 0) {
			a->list = true;
			return 0;
		}
		for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
			if (strcmp(w, words[i].word) == 0) {
				a->op = words[i].op;
				return 0;
			}
		return fail(err, errlen,
		            "unknown command '%s': want add, remove, promote, demote or list", w);
	}
	if (*nwords == 1 && !a->list) {
		(*nwords)++;
		if (number("ID", w, 1, KVFS_CONFIG_ID_MAX, &id, err, errlen) < 0)
			return -EINVAL;
		a->id = (uint32_t)id;
		return 0;
	}
	return fail(err, errlen, "unexpected argument '%s'", w);
}

int member_args_parse(int argc, char **argv, struct member_args *a, char *err, size_t errlen)
{
	bool role_given = false;
	int nwords = 0;

	*a = (struct member_args){
	    .role = KVFS_ROLE_VOTER, .cluster = "default", .timeout_ms = KVFS_MEMBER_TIMEOUT_MS};
	for (int i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0)
			return 1;
		if (strncmp(arg, "--", 2) == 0 && arg[2]) {
			char name[32];
			const char *eq = strchr(arg, '='), *val;
			size_t n = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
			bool used;

			if (n >= sizeof(name))
				return fail(err, errlen,
				            "unknown option %s (see kvfs member --help)", arg);
			memcpy(name, arg + 2, n);
			name[n] = '\0';
			val = eq ? eq + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
			if (option(a, name, val, &used, &role_given, err, errlen) < 0)
				return -EINVAL;
			if (eq && !used)
				return fail(err, errlen, "--%s takes no value", name);
			if (used && !eq)
				i++;
			continue;
		}
		if (arg[0] == '-' && arg[1])
			return fail(err, errlen, "unknown option %s (see kvfs member --help)", arg);
		if (word(a, arg, &nwords, err, errlen) < 0)
			return -EINVAL;
	}
	if (nwords == 0)
		return fail(err, errlen, "missing command: add, remove, promote, demote or list");
	if (!a->list && nwords < 2)
		return fail(err, errlen, "%s: missing the node ID (1..%u)", words[a->op - 1].word,
		            KVFS_CONFIG_ID_MAX);
	if (role_given && a->op != KVFS_MEMBER_ADD)
		return fail(err, errlen, "--role goes with add only");
	if (!a->zk)
		return fail(err, errlen, "--zk HOSTS is required (the cluster's ZooKeeper)");
	return 0;
}

/*
 * The -o option list (see fuse_mount_opts.h). The split is libfuse's own fuse_opt_parse, so
 * escapes and empty items behave exactly as in every other FUSE filesystem; what is mount(8)'s
 * follows what util-linux and /sbin/mount.fuse3 leave in the list they hand to a helper.
 */
#include "fuse_mount_opts.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <fuse_opt.h>

#include "options.h" /* options_has_fuse_opt */

struct split {
	kvfs_mount_opt_fn own;
	void *arg;
	int rv;
};

bool fuse_mount_opts_mount_only(const char *opt)
{
	static const char *const words[] = {
	    "",       "_netdev", "_rnetdev", "nofail", "noauto",   "auto", "user",
	    "nouser", "users",   "owner",    "group",  "defaults", NULL,
	};

	for (int i = 0; words[i]; i++)
		if (strcmp(opt, words[i]) == 0)
			return true;
	return strncmp(opt, "x-", 2) == 0 || strncmp(opt, "comment=", 8) == 0;
}

static int split_one(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct split *s = data;
	int rv;

	if (key != FUSE_OPT_KEY_OPT)
		return 1;
	rv = s->own(s->arg, arg);
	if (rv < 0) {
		s->rv = rv;
		return -1;
	}
	if (rv > 0 || fuse_mount_opts_mount_only(arg))
		return 0;
	return 1;
}

int fuse_mount_opts_split(const char *list, kvfs_mount_opt_fn own, void *arg, char **kept)
{
	char *argv[] = {"kvfs", "-o", (char *)list, NULL};
	struct fuse_args args = FUSE_ARGS_INIT(3, argv);
	struct split s = {.own = own, .arg = arg};
	const char *out = NULL;
	char *joined;
	int rv = 0;

	if (fuse_opt_parse(&args, &s, NULL, split_one) != 0) {
		fuse_opt_free_args(&args);
		return s.rv ? s.rv : -ENOMEM;
	}
	/* What fuse_opt kept comes back as "-o" "a,b" (or as one "-oa,b"). */
	for (int i = 1; i < args.argc; i++) {
		if (strcmp(args.argv[i], "-o") == 0 && i + 1 < args.argc)
			out = args.argv[++i];
		else if (strncmp(args.argv[i], "-o", 2) == 0)
			out = args.argv[i] + 2;
	}
	if (out && *out) {
		if (!*kept)
			joined = strdup(out);
		else if (asprintf(&joined, "%s,%s", *kept, out) < 0)
			joined = NULL;
		if (!joined)
			rv = -ENOMEM;
		else {
			free(*kept);
			*kept = joined;
		}
	}
	fuse_opt_free_args(&args);
	return rv;
}

int fuse_mount_opts_imply_permissions(char **opts, bool opt_out)
{
	char *joined;

	if (opt_out || !options_has_fuse_opt(*opts, "allow_other") ||
	    options_has_fuse_opt(*opts, "default_permissions"))
		return 0;
	if (asprintf(&joined, "%s,default_permissions", *opts) < 0)
		return -ENOMEM;
	free(*opts);
	*opts = joined;
	return 1;
}

bool fuse_mount_opts_user_allow_other(const char *fuse_conf)
{
	char line[256];
	bool found = false;
	FILE *f = fopen(fuse_conf, "re");

	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f)) {
		char *s = line, *end;

		while (*s == ' ' || *s == '\t')
			s++;
		end = s + strlen(s);
		while (end > s && (end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		found = strcmp(s, "user_allow_other") == 0;
	}
	fclose(f);
	return found;
}

void fuse_mount_opts_hint(const char *dev_fuse, char *buf, size_t len)
{
	struct stat st = {0};

	if (stat(dev_fuse, &st) < 0 && errno == ENOENT)
		snprintf(buf, len,
		         "%s is missing: load the fuse module (modprobe fuse), or give a container "
		         "the device (--device /dev/fuse)",
		         dev_fuse);
	else if (access(dev_fuse, R_OK | W_OK) < 0)
		snprintf(buf, len,
		         "%s (mode %04o) cannot be opened by uid %u: %s; run kvfs as root, or make "
		         "the device usable by everyone (mode 0666, as distributions ship it)",
		         dev_fuse, (unsigned)(st.st_mode & 07777), (unsigned)getuid(),
		         strerror(errno));
	else
		snprintf(buf, len, "the line above, from libfuse or fusermount3, says why");
}

/*
 * Command line of the kvfs daemon (DESIGN §6): parsing and validation into struct kvfs_options,
 * and the usage text. Pure: prints nothing itself except through options_usage().
 */
#ifndef KVFS_FS_OPTIONS_H
#define KVFS_FS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum kvfs_read_mode { KVFS_READ_LOCAL, KVFS_READ_LINEARIZABLE };

struct kvfs_options {
	uint32_t id;
	char *data_dir; /* absolute */
	char *zk;       /* NULL: standalone */
	char *cluster;
	uint32_t cluster_size;
	char *listen;    /* HOST:PORT */
	char *advertise; /* HOST:PORT */
	char *election;  /* "sequential" | "priority" */
	uint32_t priority;
	enum kvfs_read_mode read_mode;
	uint64_t write_timeout_ms;
	uint64_t session_timeout_ms;
	uint64_t hold_down_ms; /* priority mode: a better newcomer waits this long */
	uint64_t max_value;
	uint64_t snapshot_bytes;
	uint64_t segment_bytes;
	bool foreground;
	bool debug;       /* -d: FUSE debug output, implies -f */
	bool verbose;     /* -v: debug-level log lines */
	char *fuse_opts;  /* -o options, comma-joined; NULL if none */
	char *secret_files[2]; /* --secret-file, given once or twice (rotation); absolute */
	unsigned n_secret_files;
	bool insecure;      /* --insecure: peers without authentication or encryption */
	char *zk_auth_file; /* --zk-auth-file; absolute; NULL if none */
	char *metrics_listen; /* --metrics-listen HOST:PORT; NULL: no HTTP metrics */
	char *mountpoint; /* absolute */
};

/* Outcomes of options_parse besides errors. */
#define KVFS_OPTIONS_RUN     0
#define KVFS_OPTIONS_HELP    1
#define KVFS_OPTIONS_VERSION 2

/*
 * Parses argv into o (zeroed by the caller). Returns KVFS_OPTIONS_RUN, _HELP or _VERSION, or
 * -EINVAL with a one-line message in err ("--priority: 2000 is out of range 0..1000"). Relative
 * paths are made absolute against the current directory, since the daemon leaves it. Call
 * options_free() in every case.
 */
int options_parse(struct kvfs_options *o, int argc, char **argv, char *err, size_t errlen);

void options_free(struct kvfs_options *o);

/* Writes the usage text to f. */
void options_usage(FILE *f, const char *prog);

/* True if the comma-separated FUSE option list opts contains the option name exactly. */
bool options_has_fuse_opt(const char *opts, const char *name);

#endif /* KVFS_FS_OPTIONS_H */

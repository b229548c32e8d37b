/*
 * Command line of the kvfs daemon (DESIGN §6): parsing and validation into struct kvfs_options,
 * and the usage text. Pure: prints nothing itself except through options_usage().
 */
#ifndef KVFS_FS_OPTIONS_H
#define KVFS_FS_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "kvfs/logging.h"

/* Where `kvfs SOURCE MOUNTPOINT` (the mount helper's form) looks for SOURCE.conf. */
#define KVFS_CONFIG_DIR "/etc/kvfs"

enum kvfs_read_mode { KVFS_READ_LOCAL, KVFS_READ_LINEARIZABLE };

struct kvfs_options {
	uint32_t id;
	char *data_dir; /* absolute */
	char *zk;       /* NULL: standalone */
	char *cluster;
	uint32_t cluster_size;
	bool cluster_size_given; /* else the default, and an existing cluster's /config says */
	char *listen;    /* HOST:PORT */
	char *advertise; /* HOST:PORT */
	char *election;  /* "sequential" | "priority" */
	uint32_t priority;
	enum kvfs_read_mode read_mode;
	uint64_t write_timeout_ms;
	uint64_t session_timeout_ms;
	uint64_t hold_down_ms; /* priority mode: a better newcomer waits this long */
	uint64_t min_tenure_ms;  /* priority mode: a leader is not asked to give way sooner */
	bool min_tenure_given;   /* --min-tenure was set (else it follows --hold-down) */
	uint32_t rtt_margin_pct; /* priority mode: an RTT challenger must be this much better */
	bool role_observer;      /* --role observer (default voter): joins as an observer */
	char *zone;              /* --zone NAME; NULL if none */
	char *prefer_zones;      /* --prefer-zone Z[,Z...]; NULL if none */
	char *avoid_zones;       /* --avoid-zone Z[,Z...]; NULL if none */
	int zpref;               /* +1 this node's zone is preferred, -1 avoided, 0 neither */
	uint64_t max_value;
	uint64_t snapshot_bytes;
	uint32_t changes_history; /* --changes-history: records the change feed keeps */
	uint64_t segment_bytes;
	bool foreground;
	bool debug;       /* -d: FUSE debug output, implies -f */
	enum kvfs_log_level log_level; /* --log-level; -v: debug */
	char *log_file;   /* --log-file; absolute; NULL: stderr (-f) or DATA/kvfs.log */
	char *config;     /* the configuration file read; absolute; NULL if none */
	char *source;     /* SOURCE of `kvfs SOURCE MOUNTPOINT`; NULL if not given */
	char *fuse_opts;  /* -o options, comma-joined; NULL if none */
	char *secret_files[2]; /* --secret-file, given once or twice (rotation); absolute */
	unsigned n_secret_files;
	bool insecure;      /* --insecure: peers without authentication or encryption */
	char *zk_auth_file; /* --zk-auth-file; absolute; NULL if none */
	char *metrics_listen; /* --metrics-listen HOST:PORT; NULL: no HTTP metrics */
	char *test_peer_delay; /* --test-peer-delay FILE (KVFS_TEST_HOOKS=1 only); absolute */
	bool no_default_permissions;      /* allow_other does not imply default_permissions */
	bool default_permissions_implied; /* default_permissions was added for allow_other */
	char *mountpoint; /* absolute */
};

/* Outcomes of options_parse besides errors. */
#define KVFS_OPTIONS_RUN     0
#define KVFS_OPTIONS_HELP    1
#define KVFS_OPTIONS_VERSION 2

/*
 * Parses argv into o (zeroed by the caller). Returns KVFS_OPTIONS_RUN, _HELP or _VERSION, or
 * -EINVAL with a one-line message in err ("--priority: 2000 is out of range 0..1000", or
 * "/etc/kvfs/a.conf:7: unknown key 'zk_hosts'"). Reads the configuration file (--config FILE,
 * -o config=FILE, or KVFS_CONFIG_DIR/SOURCE.conf): what the command line sets wins over it.
 * Relative paths are made absolute against the current directory (the file's directory for those
 * in the file), since the daemon leaves it. Call options_free() in every case.
 */
int options_parse(struct kvfs_options *o, int argc, char **argv, char *err, size_t errlen);

void options_free(struct kvfs_options *o);

/* Writes the usage text to f. */
void options_usage(FILE *f, const char *prog);

/*
 * The default data directory for cluster and id: /var/lib/kvfs/CLUSTER/ID for root, else
 * $XDG_DATA_HOME/kvfs/CLUSTER/ID (xdg_data_home absolute) or $HOME/.local/share/kvfs/CLUSTER/ID.
 * Returns 0, or -EINVAL with a message in err when a non-root user has neither.
 */
int options_default_data_dir(bool root, const char *xdg_data_home, const char *home,
                             const char *cluster, uint32_t id, char *buf, size_t len, char *err,
                             size_t errlen);

/* True if the comma-separated FUSE option list opts contains the option name exactly. */
bool options_has_fuse_opt(const char *opts, const char *name);

#endif /* KVFS_FS_OPTIONS_H */

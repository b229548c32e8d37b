/*
 * A text output cursor that counts what it would have written, like snprintf: render once with a
 * NULL buffer to learn the size, then again into a buffer of that size. Used by the renderers of
 * /.status, /.status.json and /.metrics.
 */
#ifndef KVFS_TEXTOUT_H
#define KVFS_TEXTOUT_H

#include <stddef.h>

struct kvfs_out {
	char *buf;   /* NULL with size 0: only count */
	size_t size; /* room in buf, including the terminating NUL */
	size_t len;  /* what has been (or would have been) written so far */
};

/* Appends the formatted text; what does not fit is counted in len but not written. */
void kvfs_out_printf(struct kvfs_out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif /* KVFS_TEXTOUT_H */

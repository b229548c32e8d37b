/* The counting text cursor (see textout.h). */
#include "kvfs/textout.h"

#include <stdarg.h>
#include <stdio.h>

void kvfs_out_printf(struct kvfs_out *o, const char *fmt, ...)
{
	va_list ap;
	size_t room = o->len < o->size ? o->size - o->len : 0;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(room ? o->buf + o->len : NULL, room, fmt, ap);
	va_end(ap);
	if (n > 0)
		o->len += (size_t)n;
}

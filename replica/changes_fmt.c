/*
 * The change feed's line formats (see changes.h): text lines that stay one line whatever bytes a
 * name holds, JSON lines, and the path prefix filter.
 */
#include "kvfs/changes.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kvfs/op.h"
#include "kvfs/textout.h"

static void out_char(struct kvfs_out *o, char ch)
{
	if (o->len + 1 < o->size) {
		o->buf[o->len] = ch;
		o->buf[o->len + 1] = '\0';
	}
	o->len++;
}

/* A path in the text format: printable ASCII but '\\' as itself, every other byte as \ooo. */
static void out_escaped(struct kvfs_out *o, const char *p, size_t len)
{
	if (!len) {
		out_char(o, '-');
		return;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)p[i];

		if (b > 0x20 && b < 0x7f && b != '\\')
			out_char(o, (char)b);
		else
			kvfs_out_printf(o, "\\%03o", b);
	}
}

static const char *op_name(const struct kvfs_change *ch)
{
	return ch->exchange ? "exchange" : op_type_name(ch->type);
}

static const char *newpath(const struct kvfs_change *ch)
{
	return ch->paths + ch->path_len + 1;
}

size_t changes_fmt_text(const struct kvfs_change *ch, char *buf, size_t len)
{
	struct kvfs_out o = {.buf = buf, .size = len};
	int64_t t = ch->time_ns;
	int64_t sec = t / 1000000000, nsec = t % 1000000000;

	if (nsec < 0) {
		sec--;
		nsec += 1000000000;
	}
	if (buf && len)
		buf[0] = '\0';
	kvfs_out_printf(&o, "%" PRIu64 " %" PRIu64 " %" PRId64 ".%09" PRId64 " %s %" PRIu32 " ",
	                ch->index, ch->epoch, sec, nsec, op_name(ch), ch->origin);
	if (ch->size < 0)
		kvfs_out_printf(&o, "- ");
	else
		kvfs_out_printf(&o, "%" PRId64 " ", ch->size);
	out_escaped(&o, ch->paths, ch->path_len);
	if (ch->newpath_len) {
		out_char(&o, ' ');
		out_escaped(&o, newpath(ch), ch->newpath_len);
	}
	out_char(&o, '\n');
	return o.len;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), 0 if none (RFC 3629: no overlong
 * forms, no surrogates, nothing past U+10FFFF). */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
	size_t len;
	uint32_t cp;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		len = 2, cp = p[0] & 0x1f;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		len = 3, cp = p[0] & 0x0f;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		len = 4, cp = p[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
	    (len == 4 && (cp < 0x10000 || cp > 0x10ffff)))
		return 0;
	return len;
}

static bool valid_utf8(const char *p, size_t len)
{
	const unsigned char *u = (const unsigned char *)p;

	for (size_t i = 0, k; i < len; i += k) {
		k = utf8_seq(u + i, len - i);
		if (!k)
			return false;
	}
	return true;
}

/* A JSON string of a path; sets *escaped when it had to use the text format's escapes. */
static void out_json_path(struct kvfs_out *o, const char *p, size_t len, bool *escaped)
{
	out_char(o, '"');
	if (!valid_utf8(p, len)) {
		/* The escaped form is printable ASCII; its backslashes are JSON-escaped in turn. */
		*escaped = true;
		for (size_t i = 0; i < len; i++) {
			unsigned char b = (unsigned char)p[i];

			if (b > 0x20 && b < 0x7f && b != '\\' && b != '"')
				out_char(o, (char)b);
			else if (b == '"')
				kvfs_out_printf(o, "\\\"");
			else
				kvfs_out_printf(o, "\\\\%03o", b);
		}
	} else {
		for (size_t i = 0; i < len; i++) {
			unsigned char b = (unsigned char)p[i];

			if (b == '"' || b == '\\')
				kvfs_out_printf(o, "\\%c", b);
			else if (b < 0x20 || b == 0x7f)
				kvfs_out_printf(o, "\\u%04x", b);
			else
				out_char(o, (char)b);
		}
	}
	out_char(o, '"');
}

size_t changes_fmt_json(const struct kvfs_change *ch, char *buf, size_t len)
{
	struct kvfs_out o = {.buf = buf, .size = len};
	bool escaped = false;

	if (buf && len)
		buf[0] = '\0';
	kvfs_out_printf(&o,
	                "{\"index\":%" PRIu64 ",\"epoch\":%" PRIu64 ",\"time_ns\":%" PRId64
	                ",\"op\":\"%s\",\"origin\":%" PRIu32 ",\"size\":",
	                ch->index, ch->epoch, ch->time_ns, op_name(ch), ch->origin);
	if (ch->size < 0)
		kvfs_out_printf(&o, "null");
	else
		kvfs_out_printf(&o, "%" PRId64, ch->size);
	kvfs_out_printf(&o, ",\"path\":");
	if (ch->path_len)
		out_json_path(&o, ch->paths, ch->path_len, &escaped);
	else
		kvfs_out_printf(&o, "null");
	if (ch->newpath_len) {
		kvfs_out_printf(&o, ",\"newpath\":");
		out_json_path(&o, newpath(ch), ch->newpath_len, &escaped);
	}
	if (escaped)
		kvfs_out_printf(&o, ",\"path_escaped\":true");
	kvfs_out_printf(&o, "}\n");
	return o.len;
}

static bool under(const char *path, size_t len, const char *prefix, size_t plen)
{
	if (len < plen || memcmp(path, prefix, plen) != 0)
		return false;
	return len == plen || path[plen] == '/';
}

bool changes_match(const struct kvfs_change *ch, const char *prefix, size_t plen)
{
	while (plen > 1 && prefix[plen - 1] == '/')
		plen--; /* "/a/" is "/a" */
	if (plen == 0 || (plen == 1 && prefix[0] == '/'))
		return true;
	return under(ch->paths, ch->path_len, prefix, plen) ||
	       (ch->newpath_len && under(newpath(ch), ch->newpath_len, prefix, plen));
}

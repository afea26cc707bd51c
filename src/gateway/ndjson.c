/* Splitting NDJSON into lines, with a ceiling on each line. */
#include <string.h>

#include "gateway/ndjson.h"

void
ndjson_init(struct ndjson *nd, size_t max_line,
    int (*on_line)(void *, const char *, size_t), void *arg)
{
	buf_init(&nd->line, max_line);
	nd->skipping = 0;
	nd->on_line = on_line;
	nd->arg = arg;
}

void
ndjson_release(struct ndjson *nd)
{
	buf_release(&nd->line);
}

/* Hands over the buffered line (if any content) and empties it. */
static int
emit(struct ndjson *nd)
{
	size_t len = nd->line.len;
	int rv;

	if (len > 0 && nd->line.data[len - 1] == '\r')
		len--;
	rv = len > 0 ? nd->on_line(nd->arg, nd->line.data, len) : 0;
	buf_reset(&nd->line);
	return rv;
}

int
ndjson_feed(struct ndjson *nd, const char *p, size_t n)
{
	const char *nl;
	size_t take;

	while (n > 0) {
		nl = memchr(p, '\n', n);
		take = nl ? (size_t)(nl - p) : n;
		if (!nd->skipping && buf_append(&nd->line, p, take) == -1) {
			nd->skipping = 1;
			buf_reset(&nd->line);
			if (nd->on_line(nd->arg, NULL, 0) == -1)
				return -1;
		}
		if (nl) {
			if (!nd->skipping && emit(nd) == -1)
				return -1;
			nd->skipping = 0;
			buf_reset(&nd->line);
			take++;
		}
		p += take;
		n -= take;
	}
	return 0;
}

int
ndjson_finish(struct ndjson *nd)
{
	if (nd->skipping) {
		nd->skipping = 0;
		buf_reset(&nd->line);
		return 0;
	}
	return emit(nd);
}

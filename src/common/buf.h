#ifndef IRIS_BUF_H
#define IRIS_BUF_H

#include <stddef.h>

/*
 * A growable byte buffer born with a ceiling: appends that would pass max
 * fail and leave the buffer as it was.  data is always NUL-terminated
 * (the NUL is not counted in len and does not count against max).
 */
struct buf {
	char	*data;
	size_t	 len;
	size_t	 cap;
	size_t	 max;
};

void	buf_init(struct buf *b, size_t max);
void	buf_release(struct buf *b);
void	buf_reset(struct buf *b);

/* Returns 0, or -1 if the ceiling would be passed or memory ran out. */
int	buf_append(struct buf *b, const void *p, size_t n);
int	buf_puts(struct buf *b, const char *s);
int	buf_printf(struct buf *b, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

#endif

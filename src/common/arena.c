/* Per-request arenas: bump allocation in blocks, plus cleanups. */
#include <stdalign.h>
#include <stdlib.h>
#include <string.h>

#include "common/arena.h"

#define ARENA_BLOCK	8192

struct block {
	struct block	*next;
	size_t		 size;
	size_t		 used;
	alignas(max_align_t) unsigned char data[];
};

struct cleanup {
	struct cleanup	*next;
	void		(*fn)(void *);
	void		*p;
};

struct arena {
	struct block	*blocks;	/* newest first; the last is kept */
	struct cleanup	*cleanups;	/* newest first */
	size_t		 total;		/* bytes handed out since reset */
	size_t		 max;
};

static struct block *
block_new(size_t size)
{
	struct block *b;

	if ((b = malloc(sizeof(*b) + size)) == NULL)
		return NULL;
	b->next = NULL;
	b->size = size;
	b->used = 0;
	return b;
}

struct arena *
arena_new(size_t max)
{
	struct arena *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	if ((a->blocks = block_new(ARENA_BLOCK)) == NULL) {
		free(a);
		return NULL;
	}
	a->max = max;
	return a;
}

void
arena_reset(struct arena *a)
{
	struct cleanup *c;
	struct block *b;

	while ((c = a->cleanups) != NULL) {
		a->cleanups = c->next;	/* c lives in a block: read it first */
		c->fn(c->p);
	}
	while (a->blocks->next != NULL) {
		b = a->blocks;
		a->blocks = b->next;
		free(b);
	}
	a->blocks->used = 0;
	a->total = 0;
}

void
arena_free(struct arena *a)
{
	if (a == NULL)
		return;
	arena_reset(a);
	free(a->blocks);
	free(a);
}

void *
arena_alloc(struct arena *a, size_t n)
{
	const size_t align = alignof(max_align_t);
	struct block *b = a->blocks;
	size_t need;
	void *p;

	if (n > a->max || a->total > a->max - n)
		return NULL;
	need = (n + align - 1) & ~(align - 1);
	if (b->size - b->used < need) {
		/* Start a new block; big requests get one of their size. */
		if ((b = block_new(need > ARENA_BLOCK ? need : ARENA_BLOCK)) ==
		    NULL)
			return NULL;
		b->next = a->blocks;
		a->blocks = b;
	}
	p = b->data + b->used;
	b->used += need;
	a->total += n;
	return p;
}

char *
arena_strndup(struct arena *a, const char *s, size_t n)
{
	char *p;

	if (n == (size_t)-1 || (p = arena_alloc(a, n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

int
arena_cleanup(struct arena *a, void (*fn)(void *), void *p)
{
	struct cleanup *c;

	if ((c = arena_alloc(a, sizeof(*c))) == NULL) {
		fn(p);
		return -1;
	}
	c->fn = fn;
	c->p = p;
	c->next = a->cleanups;
	a->cleanups = c;
	return 0;
}

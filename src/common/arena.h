#ifndef IRIS_ARENA_H
#define IRIS_ARENA_H

#include <stddef.h>

/*
 * A per-request memory arena, in the manner of nginx's pools: allocations
 * are freed all at once by arena_reset, which first runs the registered
 * cleanups (newest first), so non-memory resources (json-c trees, SQLite
 * statement resets, curl handles) end with the request too.
 */
struct arena;

/* Returns a new arena that will hand out at most max bytes, or NULL. */
struct arena	*arena_new(size_t max);

/* Runs the cleanups and frees everything.  arena may be NULL. */
void		 arena_free(struct arena *arena);

/* Runs the cleanups and frees all allocations; the arena stays usable. */
void		 arena_reset(struct arena *arena);

/* Returns n bytes aligned for any type, or NULL past the ceiling. */
void		*arena_alloc(struct arena *arena, size_t n);

/* Returns a NUL-terminated copy of s[0..n), or NULL. */
char		*arena_strndup(struct arena *arena, const char *s, size_t n);

/*
 * Registers fn(p) to run at the next reset.  If it cannot be registered,
 * runs fn(p) at once and returns -1; else returns 0.
 */
int		 arena_cleanup(struct arena *arena, void (*fn)(void *), void *p);

#endif

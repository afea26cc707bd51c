/* The fair, bounded queue of calls waiting for room in their project. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timestamp.h"
#include "gateway/admission.h"

struct admission {
	pthread_mutex_t		 lock;
	pthread_cond_t		 cv;
	struct admission_ticket	*head, **tail;
	long			 waiting, max;
};

struct admission *
admission_new(long max_waiters)
{
	struct admission *a;

	if ((a = calloc(1, sizeof(*a))) == NULL)
		return NULL;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->cv, NULL);
	a->tail = &a->head;
	a->max = max_waiters;
	return a;
}

void
admission_free(struct admission *a)
{
	if (a == NULL)
		return;
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->cv);
	free(a);
}

int
admission_enter(struct admission *a, struct admission_ticket *t,
    const char *project_id)
{
	int rv = -1;

	t->next = NULL;
	t->project_id = project_id;
	t->kicked = 0;
	pthread_mutex_lock(&a->lock);
	if (a->waiting < a->max) {
		*a->tail = t;
		a->tail = &t->next;
		a->waiting++;
		rv = 0;
	}
	pthread_mutex_unlock(&a->lock);
	return rv;
}

/* 1 if no ticket of t's project is ahead of it; a->lock held. */
static int
first_of_project(const struct admission *a, const struct admission_ticket *t)
{
	const struct admission_ticket *p;

	for (p = a->head; p != t; p = p->next)
		if (strcmp(p->project_id, t->project_id) == 0)
			return 0;
	return 1;
}

/* Waits on the condition until deadline_ms; 0, or ETIMEDOUT. */
static int
wait_until(struct admission *a, int64_t deadline_ms)
{
	int64_t ms = deadline_ms - ts_mono_ms();
	struct timespec until;

	if (ms <= 0)
		return ETIMEDOUT;
	ts_realtime_in(ms, &until);
	return pthread_cond_timedwait(&a->cv, &a->lock, &until);
}

int
admission_wait(struct admission *a, struct admission_ticket *t,
    int64_t deadline_ms, int first_try)
{
	int64_t poll_end = ts_mono_ms() + ADMISSION_POLL_MS;
	int rv = 0;

	pthread_mutex_lock(&a->lock);
	while (rv == 0 && !first_of_project(a, t))
		if (wait_until(a, deadline_ms) == ETIMEDOUT)
			rv = -1;
	/* Our turn: after a refusal, for room to come back in this
	 * project (a kick), or for a poll's worth of others' releases. */
	if (poll_end > deadline_ms)
		poll_end = deadline_ms;
	while (rv == 0 && !first_try && !t->kicked && ts_mono_ms() < poll_end)
		wait_until(a, poll_end);
	t->kicked = 0;
	if (ts_mono_ms() >= deadline_ms)
		rv = -1;
	pthread_mutex_unlock(&a->lock);
	return rv;
}

void
admission_leave(struct admission *a, struct admission_ticket *t)
{
	struct admission_ticket **pp;

	pthread_mutex_lock(&a->lock);
	for (pp = &a->head; *pp; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			if (a->tail == &t->next)
				a->tail = pp;
			a->waiting--;
			break;
		}
	pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->lock);
}

void
admission_signal(struct admission *a, const char *project_id)
{
	struct admission_ticket *t;
	int any = 0;

	pthread_mutex_lock(&a->lock);
	for (t = a->head; t; t = t->next)
		if (strcmp(t->project_id, project_id) == 0)
			any = t->kicked = 1;
	if (any)
		pthread_cond_broadcast(&a->cv);
	pthread_mutex_unlock(&a->lock);
}

int
admission_queued(struct admission *a, const char *project_id)
{
	const struct admission_ticket *p;
	int n = 0;

	pthread_mutex_lock(&a->lock);
	for (p = a->head; p && !n; p = p->next)
		n = strcmp(p->project_id, project_id) == 0;
	pthread_mutex_unlock(&a->lock);
	return n;
}

long
admission_waiting(struct admission *a)
{
	long n;

	pthread_mutex_lock(&a->lock);
	n = a->waiting;
	pthread_mutex_unlock(&a->lock);
	return n;
}

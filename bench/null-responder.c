/*
 * null-responder: the benchmark's baseline.  A FastCGI responder with the
 * gateway's threading shape -- N worker threads, each with its own
 * FCGX_Request on one non-blocking unix listening socket, waiting on its own
 * epoll set (the socket with EPOLLEXCLUSIVE) and then accepting -- that
 * does no work at all: every request gets the answer the
 * gateway gives to GET /api/iris/sandbox for a project without sandboxes.
 *
 * usage: null-responder [SOCKET [WORKERS]]
 * SOCKET defaults to $IRIS_SOCKET, WORKERS to $IRIS_WORKERS, else 32 (the
 * gateway's default).  Runs in the foreground; SIGTERM or SIGINT stops it.
 *
 * Built by bench/gateway-rps, not by make.
 */
#include <errno.h>
#include <fcgiapp.h>
#include <fcntl.h>
#include <sys/epoll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define WORKERS_DEFAULT	32
#define WORKERS_MAX	1024
#define BODY		"{\"success\":true,\"sandboxes\":[]}"

static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };	/* readable once we are stopping */
static char answer[256];		/* headers and body, built once */
static int answer_len;

static void
die(const char *what)
{
	fprintf(stderr, "null-responder: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void
diex(const char *what)
{
	fprintf(stderr, "null-responder: %s\n", what);
	exit(1);
}

/* The gateway's way: one waker per connection, every worker on stop. */
static int
watch_new(void)
{
	struct epoll_event ev;
	int ep;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		diex("epoll_create1");
	ev = (struct epoll_event){ .events = EPOLLIN | EPOLLEXCLUSIVE,
	    .data.fd = listen_fd };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, listen_fd, &ev) == -1)
		diex("epoll_ctl");
	ev = (struct epoll_event){ .events = EPOLLIN, .data.fd = stop_pipe[0] };
	if (epoll_ctl(ep, EPOLL_CTL_ADD, stop_pipe[0], &ev) == -1)
		diex("epoll_ctl");
	return ep;
}

/* Blocks until a connection may be waiting.  Returns 0, or -1 to stop. */
static int
wait_for_connection(int ep)
{
	struct epoll_event ev[2];
	int i, n;

	for (;;) {
		if ((n = epoll_wait(ep, ev, 2, -1)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		for (i = 0; i < n; i++)
			if (ev[i].data.fd == stop_pipe[0])
				return -1;
		if (n > 0)
			return 0;
	}
}

static void *
worker(void *arg)
{
	FCGX_Request fr;
	int ep = watch_new();

	(void)arg;
	if (FCGX_InitRequest(&fr, listen_fd, FCGI_FAIL_ACCEPT_ON_INTR) != 0)
		diex("FCGX_InitRequest failed");
	/* As in the gateway: another worker may win the accept (EAGAIN). */
	while (wait_for_connection(ep) == 0) {
		if (FCGX_Accept_r(&fr) < 0)
			continue;
		FCGX_PutStr(answer, answer_len, fr.out);
		FCGX_Finish_r(&fr);
	}
	FCGX_Free(&fr, 1);
	return NULL;
}

static int
open_socket(const char *path)
{
	struct sockaddr_un sun;
	size_t len = strlen(path);
	int fd, fl;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (len == 0 || len >= sizeof(sun.sun_path))
		diex("the socket path is empty or too long");
	memcpy(sun.sun_path, path, len + 1);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		die("socket");
	if (unlink(path) == -1 && errno != ENOENT)
		die(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die(path);
	if (chmod(path, 0600) == -1 || listen(fd, 1024) == -1)
		die(path);
	if ((fl = fcntl(fd, F_GETFL)) == -1 ||
	    fcntl(fd, F_SETFL, fl | O_NONBLOCK) == -1)
		die("fcntl");
	return fd;
}

static long
parse_workers(const char *s)
{
	char *end;
	long v;

	if (s == NULL || *s == '\0')
		return WORKERS_DEFAULT;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end != '\0' || v < 1 || v > WORKERS_MAX)
		diex("WORKERS must be an integer from 1 to 1024");
	return v;
}

int
main(int argc, char *argv[])
{
	const char *path = argc > 1 ? argv[1] : getenv("IRIS_SOCKET");
	long i, workers;
	pthread_attr_t attr;
	pthread_t tid;
	sigset_t sigs;
	int sig;

	if (argc > 3 || path == NULL) {
		fprintf(stderr, "usage: null-responder [SOCKET [WORKERS]]\n");
		return 2;
	}
	workers = parse_workers(argc > 2 ? argv[2] : getenv("IRIS_WORKERS"));
	answer_len = snprintf(answer, sizeof(answer), "Status: 200 OK\r\n"
	    "Content-Type: application/json; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n\r\n%s", strlen(BODY), BODY);
	if (answer_len < 0 || (size_t)answer_len >= sizeof(answer))
		diex("the answer does not fit");

	sigemptyset(&sigs);
	sigaddset(&sigs, SIGTERM);
	sigaddset(&sigs, SIGINT);
	pthread_sigmask(SIG_BLOCK, &sigs, NULL);
	signal(SIGPIPE, SIG_IGN);

	if (FCGX_Init() != 0)
		diex("FCGX_Init failed");
	listen_fd = open_socket(path);
	if (pipe2(stop_pipe, O_CLOEXEC) == -1)
		die("pipe");

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, (size_t)512 << 10);
	for (i = 0; i < workers; i++)
		if (pthread_create(&tid, &attr, worker, NULL) != 0)
			diex("cannot start a worker");
	pthread_attr_destroy(&attr);
	fprintf(stderr, "null-responder: serving on %s with %ld workers\n",
	    path, workers);

	if (sigwait(&sigs, &sig) != 0)
		diex("sigwait");
	if (write(stop_pipe[1], "x", 1) != 1)
		die("stop pipe");
	unlink(path);
	return 0;
}

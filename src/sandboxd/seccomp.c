/* The sandboxes' seccomp filter, as a classic BPF program for bwrap. */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "sandboxd/seccomp.h"

#if defined(__x86_64__)
#define NATIVE_ARCH	AUDIT_ARCH_X86_64
#define X32_BIT		0x40000000U	/* x32 calls share the arch */
#elif defined(__aarch64__)
#define NATIVE_ARCH	AUDIT_ARCH_AARCH64
#define X32_BIT		0U
#else
#error "the seccomp filter knows x86_64 and aarch64 only"
#endif

#define LOAD(field)	BPF_STMT(BPF_LD | BPF_W | BPF_ABS, \
			    offsetof(struct seccomp_data, field))
#define RET(action)	BPF_STMT(BPF_RET | BPF_K, (action))
/* To the "refuse" return (the last one) if equal, else on. */
#define REFUSE_IF(nr, left)	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (nr), \
			    (left), 0)

static const struct sock_filter program[] = {
	LOAD(arch),
	BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_ARCH, 1, 0),
	RET(SECCOMP_RET_ERRNO | ENOSYS),		/* another ABI */
	LOAD(nr),
	BPF_JUMP(BPF_JMP | BPF_JGE | BPF_K, X32_BIT ? X32_BIT : ~0U, 4, 0),
	REFUSE_IF(SYS_add_key, 3),
	REFUSE_IF(SYS_request_key, 2),
	REFUSE_IF(SYS_keyctl, 1),
	RET(SECCOMP_RET_ALLOW),
	RET(SECCOMP_RET_ERRNO | ENOSYS),
};

int
seccomp_program_fd(void)
{
	const char *p = (const char *)program;
	size_t left = sizeof(program);
	ssize_t n;
	int fd;

	if ((fd = memfd_create("iris-seccomp", MFD_CLOEXEC)) == -1) {
		log_warn("memfd_create");
		return -1;
	}
	while (left > 0) {
		if ((n = write(fd, p, left)) == -1 && errno == EINTR)
			continue;
		if (n <= 0) {
			log_warn("seccomp program");
			close(fd);
			return -1;
		}
		p += n;
		left -= (size_t)n;
	}
	if (lseek(fd, 0, SEEK_SET) == -1) {
		log_warn("lseek");
		close(fd);
		return -1;
	}
	return fd;
}

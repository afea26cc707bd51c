#ifndef IRIS_FUZZ_H
#define IRIS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * libFuzzer's entry point: each fuzz_*.c defines it for one parser of
 * untrusted input.  Built with -fsanitize=fuzzer it is driven by
 * libFuzzer; linked with replay.c it replays a corpus in make check.
 * Returns 0 (libFuzzer's convention); a broken invariant aborts.
 */
int	LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * An invariant of ours that the input broke.  abort() is what both
 * drivers treat as a crash: libFuzzer saves the input, replay reports
 * "not ok".  Only test code aborts; the code under test never may.
 */
#define FUZZ_CHECK(cond) do {						\
	if (!(cond))							\
		fuzz_fail(__FILE__, __LINE__, #cond);			\
} while (0)

_Noreturn static inline void
fuzz_fail(const char *file, int line, const char *what)
{
	fprintf(stderr, "%s:%d: invariant broken: %s\n", file, line, what);
	abort();
}

#endif

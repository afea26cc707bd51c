#ifndef IRIS_CRYPTO_H
#define IRIS_CRYPTO_H

#include <stddef.h>

#define CRYPTO_SHA256_LEN	32

/* Fills buf with n bytes from the OS's CSPRNG.  Returns 0, or -1. */
int	crypto_random(void *buf, size_t n);

/* out = SHA-256(data[0..len)). */
void	crypto_sha256(const void *data, size_t len,
	    unsigned char out[CRYPTO_SHA256_LEN]);

/* Compares n bytes in time independent of their contents; 1 if equal. */
int	crypto_equal(const void *a, const void *b, size_t n);

/* Overwrites n bytes in a way the compiler cannot elide. */
void	crypto_wipe(void *p, size_t n);

/* Writes 2n lowercase hex digits and a NUL to out (2n + 1 bytes). */
void	crypto_hex(const unsigned char *in, size_t n, char *out);

#endif

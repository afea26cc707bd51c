#ifndef IRIS_APIKEY_H
#define IRIS_APIKEY_H

#include <stddef.h>

#include "common/crypto.h"

/*
 * An API key is "iris_" + key id (16 hex digits, public: it finds the row
 * and is shown in listings) + "_" + secret (48 hex digits, 192 bits).
 * Only SHA-256 of the whole key is stored.
 */
#define APIKEY_LEN		(5 + 16 + 1 + 48)
#define APIKEY_ID_LEN		16
#define APIKEY_PREFIX_LEN	(5 + APIKEY_ID_LEN)

/*
 * Makes a new key.  OUT: key (APIKEY_LEN + 1 bytes), key_id
 * (APIKEY_ID_LEN + 1 bytes), hash.  The caller wipes key after showing it.
 * Returns 0, or -1 if the OS gave no randomness.
 */
int	apikey_generate(char *key, char *key_id,
	    unsigned char hash[CRYPTO_SHA256_LEN]);

/*
 * Checks that key[0..len) has the shape of a key.  OUT: key_id
 * (APIKEY_ID_LEN + 1 bytes).  Returns 0, or -1 if it cannot be a key.
 */
int	apikey_parse(const char *key, size_t len, char *key_id);

/* hash = SHA-256 of key[0..len). */
void	apikey_hash(const char *key, size_t len,
	    unsigned char hash[CRYPTO_SHA256_LEN]);

#endif

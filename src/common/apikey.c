/* API keys: their shape, generation and hashing. */
#include <string.h>

#include "common/apikey.h"
#include "common/crypto.h"

static int
all_hex(const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int
apikey_generate(char *key, char *key_id, unsigned char hash[CRYPTO_SHA256_LEN])
{
	unsigned char rnd[APIKEY_ID_LEN / 2 + 24];

	if (crypto_random(rnd, sizeof(rnd)) == -1)
		return -1;
	memcpy(key, "iris_", 5);
	crypto_hex(rnd, APIKEY_ID_LEN / 2, key + 5);
	key[5 + APIKEY_ID_LEN] = '_';
	/* crypto_hex ends the key with its NUL. */
	crypto_hex(rnd + APIKEY_ID_LEN / 2, 24, key + 5 + APIKEY_ID_LEN + 1);
	crypto_wipe(rnd, sizeof(rnd));
	memcpy(key_id, key + 5, APIKEY_ID_LEN);
	key_id[APIKEY_ID_LEN] = '\0';
	apikey_hash(key, APIKEY_LEN, hash);
	return 0;
}

int
apikey_parse(const char *key, size_t len, char *key_id)
{
	if (len != APIKEY_LEN || memcmp(key, "iris_", 5) != 0 ||
	    key[5 + APIKEY_ID_LEN] != '_' || !all_hex(key + 5, APIKEY_ID_LEN) ||
	    !all_hex(key + 6 + APIKEY_ID_LEN, APIKEY_LEN - 6 - APIKEY_ID_LEN))
		return -1;
	memcpy(key_id, key + 5, APIKEY_ID_LEN);
	key_id[APIKEY_ID_LEN] = '\0';
	return 0;
}

void
apikey_hash(const char *key, size_t len, unsigned char hash[CRYPTO_SHA256_LEN])
{
	crypto_sha256(key, len, hash);
}

/*
 * test/fuzz/kafka_properties.c
 *		libFuzzer target of the mnist_ml.kafka_properties parser (src/kafka_props.c): the string
 *		a user (or a caller's defaults) sets, parsed in every backend that talks to Kafka.
 *
 * Properties checked on every input (read as a NUL-terminated string):
 *	- the parser stays inside the caller's buffers (AddressSanitizer) and always advances;
 *	- every pair has a non-empty key without '=' or separators, and key and value fit;
 *	- quoting each pair's value and parsing "key=<quoted>" gives back the same key and value
 *	  (what SHOW prints reads back as what was set);
 *	- what an error would show of any pair after a secret key's unquoted value
 *	  (mnist_kafka_props_where) holds no three bytes in a row of the text from that value on
 *	  (a secret meant to hold a separator but not quoted runs on into the pairs after it).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_props.h"

/*
 * Aborts if shown holds three bytes in a row of secret[0..len) other than the words that
 * mnist_kafka_props_where writes itself ("at pair N").
 */
static void
check_not_shown(const char *shown, const char *secret, size_t len)
{
	for (size_t i = 0; shown[i] && shown[i + 1] && shown[i + 2]; i++)
	{
		bool		own = true;

		for (int j = 0; j < 3; j++)
			own &= strchr("atpir 0123456789", shown[i + j]) != NULL;
		if (own)
			continue;
		for (size_t k = 0; k + 3 <= len; k++)
			if (memcmp(shown + i, secret + k, 3) == 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char	   *key = malloc(size + 1);
	char	   *value = malloc(size + 1);
	char	   *quoted = malloc(2 * size + 3);
	char	   *line = malloc(3 * size + 4);
	char	   *key2 = malloc(3 * size + 4);
	char	   *value2 = malloc(3 * size + 4);
	char		shown[256];
	MnistPropsReader reader,
				again;
	const char *secret = NULL;	/* where the first unquoted secret value starts */
	MnistPropsResult rc;

	memcpy(text, data, size);
	text[size] = '\0';
	mnist_kafka_props_begin(&reader, text);
	for (;;)
	{
		const char *start = reader.p;
		size_t		klen;

		rc = mnist_kafka_props_next(&reader, key, value);
		if (rc == MNIST_PROPS_END)
			break;
		mnist_kafka_props_where(&reader, key, shown, sizeof(shown));
		if (secret)
			check_not_shown(shown, secret, strlen(secret));
		if (rc != MNIST_PROPS_PAIR)
			break;
		if (reader.p <= start)
			abort();
		klen = strlen(key);
		/* an unquoted secret value may run on to the end of the text */
		if (secret == NULL && mnist_kafka_property_is_secret(key) && strchr(start, '=')[1] != '"')
			secret = strchr(start, '=') + 1;

		if (klen == 0 || strpbrk(key, "=,") != NULL || strlen(value) > size)
			abort();
		for (const char *k = key; *k; k++)
			if (isspace((unsigned char) *k))
				abort();
		mnist_kafka_props_quote(value, quoted);
		strcpy(line, key);
		line[klen] = '=';
		strcpy(line + klen + 1, quoted);
		mnist_kafka_props_begin(&again, line);
		if (mnist_kafka_props_next(&again, key2, value2) != MNIST_PROPS_PAIR ||
			strcmp(key, key2) != 0 || strcmp(value, value2) != 0 || *again.p != '\0')
			abort();
		(void) mnist_kafka_property_is_secret(key);
		(void) mnist_kafka_property_is_security(key);
	}
	if (rc == MNIST_PROPS_TOO_LONG)
		abort();

	free(text);
	free(key);
	free(value);
	free(quoted);
	free(line);
	free(key2);
	free(value2);
	return 0;
}

/*
 * test/fuzz/kafka_properties.c
 *		libFuzzer target of the mnist_ml.kafka_properties parser (src/kafka_props.c): the string
 *		a user (or a caller's defaults) sets, parsed in every backend that talks to Kafka.
 *
 * Properties checked on every input (read as a NUL-terminated string):
 *	- the parser stays inside the caller's buffers (AddressSanitizer) and always advances;
 *	- every pair has a non-empty key without '=' or separators, and key and value fit;
 *	- quoting each pair's value and parsing "key=<quoted>" gives back the same key and value
 *	  (what SHOW prints reads back as what was set).
 */
#include <ctype.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_props.h"

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
	const char *p;
	MnistPropsResult rc;

	memcpy(text, data, size);
	text[size] = '\0';
	p = text;
	while ((rc = mnist_kafka_props_next(&p, key, value)) == MNIST_PROPS_PAIR)
	{
		const char *q;
		size_t		klen = strlen(key);

		if (klen == 0 || strpbrk(key, "=,") != NULL || strlen(value) > size)
			abort();
		for (const char *k = key; *k; k++)
			if (isspace((unsigned char) *k))
				abort();
		mnist_kafka_props_quote(value, quoted);
		strcpy(line, key);
		line[klen] = '=';
		strcpy(line + klen + 1, quoted);
		q = line;
		if (mnist_kafka_props_next(&q, key2, value2) != MNIST_PROPS_PAIR ||
			strcmp(key, key2) != 0 || strcmp(value, value2) != 0 || *q != '\0')
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

/*
 * test/fuzz/kafka_properties_file.c
 *		libFuzzer target of the mnist_ml.kafka_properties_file reader (src/kafka_props.c),
 *		read through a FILE as the server reads the file.
 *
 * Properties checked on every input:
 *	- the reader stays inside its line buffer (AddressSanitizer; the buffer is small, 64
 *	  bytes, so that long lines are common);
 *	- every pair has a non-empty key and value without white space at either end, the key
 *	  without '=', and line numbers only grow;
 *	- reading stops at the first malformed or too long line, as the server does.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_props.h"

#define LINE_SIZE	64

/* True when s starts or ends with white space. */
static int
untrimmed(const char *s)
{
	size_t		len = strlen(s);

	return len > 0 && (isspace((unsigned char) s[0]) || isspace((unsigned char) s[len - 1]));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FILE	   *file;
	char		line[LINE_SIZE];
	int			lineno = 0,
				last = 0;
	char	   *key,
			   *value;
	MnistPropsResult rc;

	if (size == 0)
		return 0;
	file = fmemopen((void *) data, size, "r");
	if (file == NULL)
		abort();
	while ((rc = mnist_kafka_props_file_next(file, line, sizeof(line), &lineno,
											 &key, &value)) == MNIST_PROPS_PAIR)
	{
		if (key[0] == '\0' || strchr(key, '=') != NULL || untrimmed(key) || untrimmed(value) ||
			key < line || value < line || value + strlen(value) >= line + sizeof(line) ||
			lineno <= last)
			abort();
		last = lineno;
		(void) mnist_kafka_property_is_secret(key);
	}
	if (rc != MNIST_PROPS_END && lineno <= last)
		abort();
	fclose(file);
	return 0;
}

/*
 * kafka_props.h
 *		Parsing of Kafka properties as users write them: the mnist_ml.kafka_properties string
 *		and the lines of mnist_ml.kafka_properties_file, and the classification of keys.
 *
 * Plain C with no PostgreSQL calls (the fuzz targets in test/fuzz call it directly); the
 * caller provides every buffer, so nothing is left to free when it raises an error.
 */
#ifndef MNIST_KAFKA_PROPS_H
#define MNIST_KAFKA_PROPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* What mnist_kafka_props_next and mnist_kafka_props_file_next found. */
typedef enum MnistPropsResult
{
	MNIST_PROPS_END = 0,		/* no more pairs */
	MNIST_PROPS_PAIR,			/* a key=value pair */
	MNIST_PROPS_MALFORMED,		/* not key=value (string: key holds what was read) */
	MNIST_PROPS_TOO_LONG		/* file only: a line longer than the caller's buffer */
} MnistPropsResult;

/*
 * Reads the next pair of a properties string: key=value pairs separated by commas or white
 * space, a value double-quoted to contain either (\" and \\ escape inside quotes).  key and
 * value each have room for strlen(*pp) + 1 bytes.  Advances *pp past a pair.
 */
extern MnistPropsResult mnist_kafka_props_next(const char **pp, char *key, char *value);

/*
 * Writes value into out so that mnist_kafka_props_next reads it back: as is, or double-quoted
 * with escapes when it is empty or contains a separator, a quote or a backslash.  out has
 * room for 2 * strlen(value) + 3 bytes.  Returns the length written (out is NUL-terminated).
 */
extern size_t mnist_kafka_props_quote(const char *value, char *out);

/*
 * Reads the next pair of a properties file: one key=value per line, white space around key
 * and value ignored, blank lines and lines starting with # skipped.  line (size bytes) holds
 * the current line; *key and *value point into it.  *lineno counts the lines read.
 */
extern MnistPropsResult mnist_kafka_props_file_next(FILE *file, char *line, size_t size,
													int *lineno, char **key, char **value);

/* True when a property's value must never be shown or logged. */
extern bool mnist_kafka_property_is_secret(const char *key);

/* True for the properties that carry or select credentials (security.protocol, sasl.*, ssl.*). */
extern bool mnist_kafka_property_is_security(const char *key);

#endif							/* MNIST_KAFKA_PROPS_H */

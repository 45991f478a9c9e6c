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

/* A reader of a properties string: where it is, and what it has read so far. */
typedef struct MnistPropsReader
{
	const char *p;				/* the next byte to read */
	int			pair;			/* the number of the pair read last (1 for the first) */
	bool		after_secret;	/* a pair before the last one had a secret key and no quotes */
	bool		last_secret;	/* the pair read last has a secret key and no quotes */
} MnistPropsReader;

/* Starts reading the properties string props. */
extern void mnist_kafka_props_begin(MnistPropsReader *r, const char *props);

/*
 * Reads the next pair of a properties string: key=value pairs separated by commas or white
 * space, a value double-quoted to contain either (\" and \\ escape inside quotes).  key and
 * value each have room for strlen(r->p) + 1 bytes.  Advances r->p past a pair.
 */
extern MnistPropsResult mnist_kafka_props_next(MnistPropsReader *r, char *key, char *value);

/*
 * Names the pair read last (key: what was read of it) in words safe to show and log:
 * "\"key\"" when no pair before it had a secret key with an unquoted value, else "at pair N".
 * A secret's value meant to hold a separator but written without quotes ("sasl.password=p w")
 * runs on into the pairs after it, so no text after such a pair is ever shown.  Writes at most size bytes to out.
 */
extern void mnist_kafka_props_where(const MnistPropsReader *r, const char *key, char *out,
									size_t size);

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

/*
 * Why key=value is refused whatever the client, or NULL when it is not: isolation.level
 * other than read_committed (a reader would see the rows of aborted Kafka transactions).
 */
extern const char *mnist_kafka_property_refused(const char *key, const char *value);

#endif							/* MNIST_KAFKA_PROPS_H */

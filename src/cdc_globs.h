/*
 * cdc_globs.h
 *		The output plugin's table patterns: a comma-separated list of schema.table globs, '*'
 *		matching any run of characters.  A pattern's schema part (up to its first dot) is matched
 *		against the schema's name and the rest against the table's name, apart.
 *
 * Plain C with no PostgreSQL calls (the fuzz target test/fuzz/cdc_globs.c calls it directly).
 */
#ifndef MNIST_CDC_GLOBS_H
#define MNIST_CDC_GLOBS_H

#include <stdbool.h>
#include <stddef.h>

/* What mnist_cdc_globs_next found. */
typedef enum MnistGlobsResult
{
	MNIST_GLOBS_END = 0,		/* no more patterns */
	MNIST_GLOBS_PATTERN,		/* a pattern */
	MNIST_GLOBS_NO_SCHEMA		/* a pattern without a dot (no schema) */
} MnistGlobsResult;

/*
 * Finds the next pattern of a list: separated by commas, white space around each ignored.
 * Sets *start and *len to the pattern (inside the list) and advances *pp past it.
 */
extern MnistGlobsResult mnist_cdc_globs_next(const char **pp, const char **start, size_t *len);

/* True when str matches the glob pat, where '*' matches any run of characters. */
extern bool mnist_cdc_glob_match(const char *pat, const char *str);

/*
 * True when the table schema.table matches the pattern pat (schema glob, a dot, table glob):
 * the schema glob matches the schema's name and the table glob the table's, so a star never
 * reaches across the dot ("public.mnist_*" does not match the schema "public.mnist_x").
 */
extern bool mnist_cdc_table_match(const char *pat, const char *schema, const char *table);

#endif							/* MNIST_CDC_GLOBS_H */

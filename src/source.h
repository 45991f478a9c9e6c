/*
 * source.h
 *		Reading labelled images (pixels bytea, label integer) from a relation, as the caller.
 */
#ifndef MNIST_SOURCE_H
#define MNIST_SOURCE_H

#include "mnist_ml.h"

/* Called for every row, pixels being MNIST_PIXELS bytes and label in 0..MNIST_CLASSES-1. */
typedef void (*SourceRowFn) (void *arg, const uint8 *pixels, int label);

/* Quoted schema-qualified name of a relation (ERROR if it no longer exists). */
extern char *mnist_source_relation_name(Oid relid);

/*
 * Reads every row of relid through SPI (privileges, row-level security, views and partitions
 * apply as in the caller's SELECT), validating each, and calls fn for it.  Returns the number
 * of rows.
 */
extern int64 mnist_source_scan(Oid relid, const char *pixels_column, const char *label_column,
						 SourceRowFn fn, void *arg);

/* The planner's estimate of a relation's rows (pg_class.reltuples; 0 when unknown). */
extern int64 mnist_source_estimated_rows(Oid relid);

/* The standard error for pixels of the wrong length. */
extern void mnist_source_bad_pixels_length(size_t len);

#endif							/* MNIST_SOURCE_H */

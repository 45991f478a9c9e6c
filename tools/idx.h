/*
 * idx.h
 *		Reading an MNIST data set from a pair of IDX files (images + labels), raw or gzip.
 *
 * Frontend code (plain C and zlib), shared by mnist2sql and the fuzz target test/fuzz/idx.c:
 * nothing here exits or prints; a failure comes back as a message naming the file.
 */
#ifndef MNIST_IDX_H
#define MNIST_IDX_H

#include <stdbool.h>
#include <stdint.h>

#include "../src/image.h"			/* MNIST_SIDE, MNIST_PIXELS, MNIST_CLASSES */

#define IMAGE_MAGIC		2051		/* IDX: unsigned bytes, 3 dimensions */
#define LABEL_MAGIC		2049		/* IDX: unsigned bytes, 1 dimension */
#define IMAGE_SIDE		MNIST_SIDE
#define IMAGE_BYTES		MNIST_PIXELS
#define MAX_LABEL		(MNIST_CLASSES - 1)

/* One data set in memory: count images of IMAGE_BYTES bytes and their labels. */
typedef struct Dataset
{
	uint32_t	count;
	unsigned char *labels;
	unsigned char *pixels;
} Dataset;

/* Why reading failed: the file at fault and what is wrong with it. */
typedef struct IdxError
{
	const char *path;
	char		message[512];
} IdxError;

/*
 * Reads and validates an image file and its label file into ds (malloc'd; free with
 * mnist_idx_free).  Returns true, or false with err filled in and nothing left allocated or
 * open.
 */
extern bool mnist_idx_load(const char *images, const char *labels, Dataset *ds, IdxError *err);

extern void mnist_idx_free(Dataset *ds);

#endif							/* MNIST_IDX_H */

/*
 * trainset.h
 *		A training set: labelled images kept compact (pixels as uint8, as read).  A bounded
 *		set holds at most max_rows rows in memory (mnist_ml.train_memory); a larger source
 *		is spilled, every row, to a temporary file (fd.c's OpenTemporaryFile: removed at
 *		transaction end and on error), from which training reads it back in blocks.
 */
#ifndef MNIST_TRAINSET_H
#define MNIST_TRAINSET_H

#include "mnist_ml.h"

#include "storage/fd.h"

typedef struct TrainSet
{
	uint8	   *images;			/* capacity x MNIST_PIXELS: the rows, or a window of them */
	uint8	   *labels;			/* capacity */
	int64		n;				/* rows in the set */
	int64		capacity;		/* rows the arrays hold */
	int64		max_rows;		/* bound on capacity, 0 for none */
	File		spill;			/* 0, or the file holding all n rows (label, then pixels) */
	uint8	   *io;				/* the spill file's I/O buffer (785 kB, beyond max_rows), once spilled */
	int			io_rows;		/* rows added to it and not yet written */
	off_t		spill_bytes;	/* bytes written to the file */
	MemoryContext mcxt;			/* where the set lives (rows may be added in another) */
} TrainSet;

/* Bytes a row takes in memory and in the spill file. */
#define MNIST_ROW_BYTES		(MNIST_PIXELS + 1)

/* An empty set with room for expected_rows and an eighth more (it grows beyond if needed): never spills. */
extern void mnist_trainset_init(TrainSet *set, int64 expected_rows);

/*
 * An empty set whose arrays hold at most the rows mnist_ml.train_memory holds (-1:
 * maintenance_work_mem): a larger set spills to a temporary file, and then images/labels are
 * a window of that many rows for mnist_trainset_read().
 */
extern void mnist_trainset_init_bounded(TrainSet *set, int64 expected_rows);

extern void mnist_trainset_add(TrainSet *set, const uint8 *pixels, int label);

/* Reads count rows of a spilled set, from row first, into its arrays at row dst. */
extern void mnist_trainset_read(TrainSet *set, int64 first, int64 count, int64 dst);

/*
 * Frees the rows and removes the spill file, if any (it also goes at transaction end or on
 * error); the set keeps its row count.
 */
extern void mnist_trainset_close(TrainSet *set);

#endif							/* MNIST_TRAINSET_H */

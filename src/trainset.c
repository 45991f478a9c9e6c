/*
 * trainset.c
 *		The training set (trainset.h): rows appended as read, in memory up to a bound, then
 *		spilled to a temporary file and read back in blocks of rows.  A row in the file is its
 *		label byte and its MNIST_PIXELS pixel bytes, rows in the order they were added.  The
 *		file is written and read through an I/O buffer of SPILL_IO_ROWS rows, one system call
 *		per buffer (BufFile would make one per 8 kB, and two calls per row).
 */
#include "postgres.h"

#include <sys/mman.h>

#include "miscadmin.h"
#include "utils/wait_event.h"
#include "utils/memutils.h"

#include "trainset.h"

#define MAX_ROWS			((int64) PG_INT32_MAX)

/* Rows of one read or write of the spill file (785 kB). */
#define SPILL_IO_ROWS		1024

/* The size of a transparent huge page on x86-64 and arm64 with 4 kB pages. */
#define HUGE_PAGE_BYTES		((uintptr_t) 2 * 1024 * 1024)

/*
 * Asks the kernel to back the whole 2 MB pages of a large fresh array with huge pages
 * (Linux's madvise(MADV_HUGEPAGE), where transparent huge pages are "madvise" or "always";
 * elsewhere, or when refused, nothing changes).  A 1 GB array of 4 kB pages costs a page
 * fault per 4 kB as rows are appended, and a TLB miss for nearly every row a shuffled batch
 * gathers; with 2 MB pages, 512 times fewer of both.  Done before the array is touched.
 * The advice splits the array's mapping, so growing it later copies it (realloc cannot
 * remap it): a set is allocated with room to spare.
 */
static void
advise_huge_pages(void *p, Size bytes)
{
#ifdef MADV_HUGEPAGE
	uintptr_t	start = TYPEALIGN(HUGE_PAGE_BYTES, (uintptr_t) p);
	uintptr_t	end = TYPEALIGN_DOWN(HUGE_PAGE_BYTES, (uintptr_t) p + bytes);

	if (end > start)
		(void) madvise((void *) start, end - start, MADV_HUGEPAGE);
#endif
}

static void
trainset_alloc(TrainSet *set, int64 expected_rows, int64 max_rows)
{
	set->n = 0;
	set->max_rows = max_rows;
	set->spill = 0;
	set->io = NULL;
	set->io_rows = 0;
	set->spill_bytes = 0;
	set->mcxt = CurrentMemoryContext;
	/*
	 * an eighth more than expected: an estimate (ANALYZE's) may fall short, and growing
	 * copies the rows; pages never touched cost no memory
	 */
	set->capacity = Min(Max(expected_rows + expected_rows / 8, 1024), MAX_ROWS);
	if (max_rows > 0)
		set->capacity = Min(set->capacity, max_rows);
	set->images = MemoryContextAllocHuge(CurrentMemoryContext, set->capacity * MNIST_PIXELS);
	advise_huge_pages(set->images, set->capacity * MNIST_PIXELS);
	set->labels = MemoryContextAllocHuge(CurrentMemoryContext, set->capacity);
}

void
mnist_trainset_init(TrainSet *set, int64 expected_rows)
{
	trainset_alloc(set, expected_rows, 0);
}

void
mnist_trainset_init_bounded(TrainSet *set, int64 expected_rows)
{
	int64		kb = mnist_train_memory >= 0 ? mnist_train_memory : maintenance_work_mem;

	trainset_alloc(set, expected_rows, Max(kb * 1024 / MNIST_ROW_BYTES, 1));
}

/* Writes the rows of the I/O buffer at the end of the spill file. */
static void
spill_flush(TrainSet *set)
{
	int			bytes = set->io_rows * MNIST_ROW_BYTES;

	if (FileWrite(set->spill, (char *) set->io, bytes, set->spill_bytes,
				  WAIT_EVENT_BUFFILE_WRITE) != bytes)
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not write to the training set's temporary file: %m")));
	set->spill_bytes += bytes;
	set->io_rows = 0;
}

static void
spill_row(TrainSet *set, const uint8 *pixels, uint8 label)
{
	uint8	   *row = set->io + set->io_rows * MNIST_ROW_BYTES;

	row[0] = label;
	memcpy(row + 1, pixels, MNIST_PIXELS);
	if (++set->io_rows == SPILL_IO_ROWS)
		spill_flush(set);
}

void
mnist_trainset_add(TrainSet *set, const uint8 *pixels, int label)
{
	if (label < 0 || label >= MNIST_CLASSES)
		elog(ERROR, "label %d is out of range", label);
	if (set->n >= MAX_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many training rows (at most " INT64_FORMAT ")", MAX_ROWS)));
	if (set->spill)
	{
		spill_row(set, pixels, (uint8) label);
		set->n++;
		return;
	}
	if (set->n == set->capacity)
	{
		if (set->max_rows > 0 && set->capacity == set->max_rows)
		{
			/* the bound is reached: every row goes to the file from now on */
			set->spill = OpenTemporaryFile(false);
			set->io = MemoryContextAlloc(set->mcxt, SPILL_IO_ROWS * MNIST_ROW_BYTES);
			for (int64 i = 0; i < set->n; i++)
				spill_row(set, set->images + i * MNIST_PIXELS, set->labels[i]);
			spill_row(set, pixels, (uint8) label);
			set->n++;
			return;
		}
		set->capacity = Min(set->capacity * 2, MAX_ROWS);
		if (set->max_rows > 0)
			set->capacity = Min(set->capacity, set->max_rows);
		set->images = repalloc_huge(set->images, set->capacity * MNIST_PIXELS);
		advise_huge_pages(set->images, set->capacity * MNIST_PIXELS);
		set->labels = repalloc_huge(set->labels, set->capacity);
	}
	memcpy(set->images + set->n * MNIST_PIXELS, pixels, MNIST_PIXELS);
	set->labels[set->n++] = (uint8) label;
}

void
mnist_trainset_read(TrainSet *set, int64 first, int64 count, int64 dst)
{
	Assert(set->spill && first + count <= set->n && dst + count <= set->capacity);
	/* the last rows added may still be in the buffer */
	if (set->io_rows > 0)
		spill_flush(set);
	for (int64 done = 0; done < count;)
	{
		int			rows = (int) Min(count - done, SPILL_IO_ROWS);
		int			bytes = rows * MNIST_ROW_BYTES;
		int			got = FileRead(set->spill, (char *) set->io, bytes,
								   (off_t) (first + done) * MNIST_ROW_BYTES, WAIT_EVENT_BUFFILE_READ);

		if (got < 0)
			ereport(ERROR,
					(errcode_for_file_access(),
					 errmsg("could not read the training set's temporary file: %m")));
		if (got != bytes)
			ereport(ERROR,
					(errcode(ERRCODE_DATA_CORRUPTED),
					 errmsg("could not read rows " INT64_FORMAT " to " INT64_FORMAT
							" of the training set's temporary file: read only %d of %d bytes",
							first + done, first + done + rows - 1, got, bytes)));
		for (int i = 0; i < rows; i++)
		{
			const uint8 *row = set->io + i * MNIST_ROW_BYTES;

			set->labels[dst + done + i] = row[0];
			memcpy(set->images + (dst + done + i) * MNIST_PIXELS, row + 1, MNIST_PIXELS);
		}
		done += rows;
	}
}

void
mnist_trainset_close(TrainSet *set)
{
	if (set->spill)
		FileClose(set->spill);
	set->spill = 0;
	if (set->io)
		pfree(set->io);
	pfree(set->images);
	pfree(set->labels);
	set->io = NULL;
	set->images = set->labels = NULL;
}

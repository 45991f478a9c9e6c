/*
 * cdc_worker.h
 *		The change data capture worker: its logical slot and its state in shared memory, which
 *		mnist_cdc_status() shows.
 */
#ifndef MNIST_CDC_WORKER_H
#define MNIST_CDC_WORKER_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "storage/spin.h"

/* name of the worker's logical slot */
#define CDC_SLOT_NAME "mnist_ml_cdc"

/* State of the CDC worker in shared memory, shown by mnist_cdc_status(). */
typedef struct CdcShared
{
	slock_t		mutex;
	int			pid;			/* worker process, 0 when none */
	char		state[32];		/* off, blocked, connecting, initial snapshot, streaming... */
	uint64		produced;		/* messages enqueued to librdkafka */
	uint64		acknowledged;	/* messages the broker acknowledged */
	uint64		failed;			/* messages that failed delivery (sent again later) */
	uint64		skipped;		/* captured rows that could not be sent (WARNING each) */
	bool		broker_reachable;
	XLogRecPtr	confirmed_lsn;	/* what the worker last confirmed to its slot */
	char		last_error[256];	/* cleared when what it says is over */
	TimestampTz last_error_at;
	char		waiting_table[2 * NAMEDATALEN + 2];	/* whose topic the stream waits for */
	char		waiting_reason[256];
	TimestampTz waiting_since;
	uint64		snapshot_skipped;	/* rows mnist_cdc_snapshot() calls skipped */
	struct Latch *wal_latch;	/* set by every commit while the worker streams, else NULL */
} CdcShared;

extern CdcShared *mnist_cdc_state;	/* NULL unless preloaded */

/* Registers the worker and its shared memory; called from _PG_init when preloaded. */
extern void mnist_cdc_register(void);

#endif							/* MNIST_CDC_WORKER_H */

/*
 * cdc_txn.h
 *		Exactly-once delivery of change data capture: a transactional CdcProducer whose Kafka
 *		transactions carry, with a batch of rows, the slot position the batch reaches.
 *
 * Terms: a batch is the rows of one Kafka transaction; the position of a slot is the end LSN
 * of the last decoded transaction whose rows Kafka committed, kept in the compacted position
 * topic <prefix>.mnist_ml.positions under the slot's identity (system identifier, database,
 * slot name), which also names the producer's transactional.id so that a second producer for
 * the same slot fences the first.
 */
#ifndef MNIST_CDC_TXN_H
#define MNIST_CDC_TXN_H

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"

#include "cdc_producer.h"

typedef struct CdcTxn
{
	CdcProducer *p;
	char		identity[128];	/* the slot's identity: key of its position */
	char	   *topic;			/* the position topic, NULL for a producer without one */
	rd_kafka_topic_t *rkt;		/* its handle */
	bool		open;			/* a Kafka transaction is begun */
	TimestampTz opened_at;
	uint64		rows;			/* messages produced in the open transaction */
	uint64		committed;		/* Kafka transactions committed */
	uint64		aborted;		/* Kafka transactions aborted */
} CdcTxn;

/*
 * Sets on conf the transactional.id of name (a slot or another producer's name in this
 * database) and writes name's identity to identity (128 bytes).
 */
extern void mnist_cdc_txn_conf(rd_kafka_conf_t *conf, const char *name, char *identity);

/*
 * Makes p transactional (rd_kafka_init_transactions, which fences an earlier producer of the
 * same transactional.id and ends its open transaction); with_position: prepare the position
 * topic too.  Waits through p->wait while the broker cannot answer.
 */
extern void mnist_cdc_txn_start(CdcTxn *t, CdcProducer *p, const char *identity,
								bool with_position);

/* The position last committed for t's identity, read committed; Invalid when none. */
extern XLogRecPtr mnist_cdc_txn_read_position(CdcTxn *t);

/* Begins a Kafka transaction unless one is open. */
extern void mnist_cdc_txn_begin(CdcTxn *t);

/*
 * Commits the open transaction, with position (unless Invalid) written to the position
 * topic in it.  A transaction that cannot commit is aborted and an ERROR raised (the
 * caller sends the batch again after it); a fatal or fenced producer raises an ERROR.
 */
extern void mnist_cdc_txn_commit(CdcTxn *t, XLogRecPtr position);

/* Aborts the open transaction, if any (after an error: best effort, no ERROR). */
extern void mnist_cdc_txn_abort(CdcTxn *t);

#endif							/* MNIST_CDC_TXN_H */

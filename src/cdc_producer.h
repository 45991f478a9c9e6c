/*
 * cdc_producer.h
 *		The librdkafka producer of change data capture, shared by the CDC worker and
 *		mnist_cdc_snapshot(): topic handles (topic = prefix.schema.table), messages with their
 *		headers, and the rows of a table sent as of a snapshot.  Delivery accounting is the
 *		caller's: its delivery report callback counts what each message's opaque names.
 */
#ifndef MNIST_CDC_PRODUCER_H
#define MNIST_CDC_PRODUCER_H

#include <librdkafka/rdkafka.h>

#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "utils/hsearch.h"
#include "utils/rel.h"
#include "utils/snapshot.h"

#include "cdc_capture.h"

/* A librdkafka producer with its topic handles, used by the worker and snapshots. */
typedef struct CdcProducer
{
	rd_kafka_t *rk;
	const char *prefix;			/* topic = prefix.schema.table */
	HTAB	   *topics;			/* schema.table -> rd_kafka_topic_t */
	char		last_name[2 * NAMEDATALEN + 2];
	int			last_len;
	rd_kafka_topic_t *last_rkt;
	uint64		produced;
	void		(*wait) (struct CdcProducer *p);	/* queue full: poll, then retry */
} CdcProducer;

/* Header values of one message. */
typedef struct CdcHeaders
{
	const char *table;
	int			table_len;
	const char *lsn;
	const char *txid;
	const char *commit_time;	/* microseconds since the Unix epoch */
	const char *op;				/* c insert, u update, r snapshot read */
	const char *pk;
	int			pk_len;			/* 0: no primary key header */
} CdcHeaders;

/* Creates p's idempotent producer from conf (consumed), with librdkafka logs via log.queue. */
extern void mnist_cdc_producer_start(CdcProducer *p, rd_kafka_conf_t *conf, const char *prefix,
							   void (*wait) (CdcProducer *p));
extern rd_kafka_topic_t *mnist_cdc_topic(CdcProducer *p, const char *name, int len,
								   char **bad_topic);
extern void mnist_cdc_produce(CdcProducer *p, rd_kafka_topic_t *rkt, const char *key, size_t keylen,
						const char *value, size_t valuelen, const CdcHeaders *h, void *opaque);
extern uint64 mnist_cdc_send_table(CdcProducer *p, Relation rel, const CdcRelInfo *info,
							 Snapshot snap, CdcHeaders *h, void *opaque);
extern void mnist_cdc_lsn_text(XLogRecPtr lsn, char *buf);
extern void mnist_cdc_time_text(TimestampTz ts, char *buf);

#endif							/* MNIST_CDC_PRODUCER_H */

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

/* Whether a table's topic can take messages. */
typedef enum CdcTopicState
{
	CDC_TOPIC_READY,			/* it exists, or it was just created */
	CDC_TOPIC_REFUSED,			/* missing, and creating it is off or was refused */
	CDC_TOPIC_UNKNOWN			/* the broker did not say (an outage): messages are sent */
} CdcTopicState;

/* What a producer's user does with a table whose topic cannot take its rows. */
typedef struct CdcTopicCallbacks
{
	/* the topic name is illegal (said once per table); the caller skips or refuses its rows */
	void		(*bad_name) (const char *table, int len, const char *topic);
	/* the topic is missing and not created: wait and return (it is tried again), or ERROR */
	void		(*hold) (const char *table, const char *why);
	/* the topic of a table held before is ready now */
	void		(*ready) (const char *table);
} CdcTopicCallbacks;

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
	void		(*sent) (struct CdcProducer *p);	/* NULL, or called after each message */
	void	   *arg;			/* the caller's, for its callbacks */
	const CdcTopicCallbacks *cb;
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
	const char *trace;			/* NULL, or the mnist_trace header (cdc_trace_latency) */
} CdcHeaders;

/* Creates p's idempotent producer from conf (consumed), with librdkafka logs via log.queue. */
extern void mnist_cdc_producer_start(CdcProducer *p, rd_kafka_conf_t *conf, const char *prefix,
							   void (*wait) (CdcProducer *p), const CdcTopicCallbacks *cb);
/* Destroys p's topic handles and librdkafka handle (after a purge, when messages may be queued). */
extern void mnist_cdc_producer_close(CdcProducer *p);
/*
 * The topic handle of table name (schema.table), its topic made sure to exist (created with
 * mnist_ml.cdc_create_topics, or held through cb->hold until it exists).  NULL when the topic
 * name is illegal (cb->bad_name said so, the first time).
 */
extern rd_kafka_topic_t *mnist_cdc_topic(CdcProducer *p, const char *name, int len);
/*
 * Whether topic exists, creating it when it is missing and mnist_ml.cdc_create_topics is on,
 * with partitions (-1: mnist_ml.cdc_topic_partitions), compacted when compact.  why: the reason
 * when it is not ready.
 */
extern CdcTopicState mnist_cdc_topic_prepare(CdcProducer *p, const char *topic, int partitions,
											 bool compact, char *why, size_t whylen);
extern void mnist_cdc_produce(CdcProducer *p, rd_kafka_topic_t *rkt, const char *key, size_t keylen,
						const char *value, size_t valuelen, const CdcHeaders *h, void *opaque);
extern uint64 mnist_cdc_send_table(CdcProducer *p, Relation rel, const CdcRelInfo *info,
							 Snapshot snap, CdcHeaders *h, void *opaque, uint64 *skipped);
extern void mnist_cdc_lsn_text(XLogRecPtr lsn, char *buf);
extern void mnist_cdc_time_text(TimestampTz ts, char *buf);

#endif							/* MNIST_CDC_PRODUCER_H */

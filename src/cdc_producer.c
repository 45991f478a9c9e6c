/*
 * cdc_producer.c
 *		The librdkafka producer of change data capture (cdc_producer.h): an idempotent
 *		producer, topic handles per table, messages with their headers, and a table's rows as
 *		of a snapshot.  Used by the CDC worker and by mnist_cdc_snapshot() in ordinary backends.
 *
 * librdkafka's threads never call PostgreSQL: its logs come through log.queue and are served
 * by rd_kafka_poll in the calling thread; delivery reports are the caller's.
 */
#include "postgres.h"

#include "access/tableam.h"
#include "executor/executor.h"
#include "miscadmin.h"
#include "utils/memutils.h"

#include "cdc_capture.h"
#include "cdc_producer.h"
#include "kafka_conf.h"
#include "mnist_ml.h"
#include "pixels_csv.h"

/* librdkafka log lines, delivered through log.queue inside rd_kafka_poll in this thread. */
static void
producer_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	ereport(level <= 3 ? WARNING : LOG,
			(errmsg_internal("mnist_ml cdc: librdkafka %s: %s", fac, buf)));
}


/*
 * Creates p's librdkafka handle from conf (consumed): idempotent, logging through log.queue
 * (served by rd_kafka_poll in this thread).  The caller sets its callbacks and timeouts first.
 */
void
mnist_cdc_producer_start(CdcProducer *p, rd_kafka_conf_t *conf, const char *prefix,
				   void (*wait) (CdcProducer *p))
{
	char		errstr[512];

	/* forced: no message lost, duplicated or reordered by retries; logs are polled */
	mnist_kafka_conf_set(conf, "enable.idempotence", "true");
	mnist_kafka_conf_set(conf, "acks", "all");
	mnist_kafka_conf_set(conf, "log.queue", "true");
	rd_kafka_conf_set_log_cb(conf, producer_log_cb);

	memset(p, 0, sizeof(*p));
	p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (p->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create Kafka producer: %s", errstr)));
	}
	rd_kafka_set_log_queue(p->rk, NULL);
	p->prefix = prefix;
	p->wait = wait;
}


typedef struct TopicEntry
{
	char		name[2 * NAMEDATALEN + 2];	/* schema.table, hash key */
	rd_kafka_topic_t *rkt;		/* NULL when the topic name is illegal */
} TopicEntry;

/*
 * The topic handle of table name (schema.table), created on first use.  NULL when
 * <prefix>.<schema>.<table> is not a legal Kafka topic name (the broker would refuse every
 * message of it); the first time, *bad_topic names that topic for the caller's message, later
 * it is left alone.
 */
rd_kafka_topic_t *
mnist_cdc_topic(CdcProducer *p, const char *name, int len, char **bad_topic)
{
	char		key[2 * NAMEDATALEN + 2];
	TopicEntry *entry;
	bool		found;

	if (p->last_rkt && len == p->last_len && memcmp(name, p->last_name, len) == 0)
		return p->last_rkt;
	if (len >= sizeof(key))
		elog(ERROR, "table name too long: %.*s", len, name);
	if (p->topics == NULL)
	{
		HASHCTL		hctl;

		hctl.keysize = sizeof(key);
		hctl.entrysize = sizeof(TopicEntry);
		p->topics = hash_create("mnist_ml topics", 16, &hctl, HASH_ELEM | HASH_STRINGS);
	}
	memset(key, 0, sizeof(key));
	memcpy(key, name, len);
	entry = hash_search(p->topics, key, HASH_ENTER, &found);
	if (!found)
	{
		char	   *topic = psprintf("%s.%s", p->prefix, key);

		if (!mnist_kafka_topic_name_ok(topic))
		{
			entry->rkt = NULL;
			*bad_topic = topic;
			return NULL;
		}
		entry->rkt = rd_kafka_topic_new(p->rk, topic, NULL);
		if (entry->rkt == NULL)
		{
			hash_search(p->topics, key, HASH_REMOVE, NULL);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("invalid Kafka topic name \"%s\"", topic),
					 errdetail("%s", rd_kafka_err2str(rd_kafka_last_error()))));
		}
		pfree(topic);
	}
	if (entry->rkt == NULL)
		return NULL;
	memcpy(p->last_name, key, len);
	p->last_len = len;
	p->last_rkt = entry->rkt;
	return entry->rkt;
}

/*
 * Enqueues one message with its headers.  When librdkafka's bounded queue is full, waits
 * through p->wait (which polls for delivery reports) and retries.
 */
void
mnist_cdc_produce(CdcProducer *p, rd_kafka_topic_t *rkt, const char *key, size_t keylen,
			const char *value, size_t valuelen, const CdcHeaders *h, void *opaque)
{
	rd_kafka_headers_t *hdrs = rd_kafka_headers_new(6);
	rd_kafka_resp_err_t err;

	rd_kafka_header_add(hdrs, "table", 5, h->table, h->table_len);
	rd_kafka_header_add(hdrs, "lsn", 3, h->lsn, -1);
	rd_kafka_header_add(hdrs, "txid", 4, h->txid, -1);
	rd_kafka_header_add(hdrs, "commit_time", 11, h->commit_time, -1);
	rd_kafka_header_add(hdrs, "op", 2, h->op, 1);
	if (h->pk_len > 0)
		rd_kafka_header_add(hdrs, "pk", 2, h->pk, h->pk_len);

	for (;;)
	{
		err = rd_kafka_producev(p->rk,
								RD_KAFKA_V_RKT(rkt),
								RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
								RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
								RD_KAFKA_V_KEY(key, keylen),
								RD_KAFKA_V_VALUE((void *) value, valuelen),
								RD_KAFKA_V_HEADERS(hdrs),
								RD_KAFKA_V_OPAQUE(opaque),
								RD_KAFKA_V_END);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
			break;
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
		{
			rd_kafka_headers_destroy(hdrs);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not produce to Kafka topic \"%s\": %s",
							rd_kafka_topic_name(rkt), rd_kafka_err2str(err))));
		}
		/* the headers are librdkafka's memory: freed also when the wait is cancelled */
		PG_TRY();
		{
			p->wait(p);
		}
		PG_CATCH();
		{
			rd_kafka_headers_destroy(hdrs);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	p->produced++;
}

/* Header text of an LSN, a commit time (microseconds since the Unix epoch). */
void
mnist_cdc_lsn_text(XLogRecPtr lsn, char *buf)
{
	snprintf(buf, 32, "%X/%X", LSN_FORMAT_ARGS(lsn));
}

void
mnist_cdc_time_text(TimestampTz ts, char *buf)
{
	int64		unix_us = ts + (int64) (POSTGRES_EPOCH_JDATE - UNIX_EPOCH_JDATE) * USECS_PER_DAY;

	snprintf(buf, 32, INT64_FORMAT, unix_us);
}

/*
 * Sends every row of rel visible to snap as a snapshot read (operation "r").  Rows that
 * cannot be sent get a WARNING.  Returns the number of messages enqueued.
 */
uint64
mnist_cdc_send_table(CdcProducer *p, Relation rel, const CdcRelInfo *info, Snapshot snap,
			   CdcHeaders *h, void *opaque)
{
	TableScanDesc scan;
	TupleTableSlot *slot;
	char	   *bad_topic = NULL;
	rd_kafka_topic_t *rkt = mnist_cdc_topic(p, info->name, info->name_len, &bad_topic);
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "mnist_ml snapshot row",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	StringInfoData pk;
	char		value[PIXELS_CSV_MAX];
	uint64		sent = 0;

	if (rkt == NULL)
		mnist_kafka_topic_name_check(bad_topic);
	h->table = info->name;
	h->table_len = info->name_len;
	h->op = "r";
	initStringInfo(&pk);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snap, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		should_free;
		HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);
		const char *problem;
		int			label;
		const uint8 *pixels;
		char		key;

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(row_cxt);
		problem = mnist_cdc_row_get(info, tuple, NULL, desc, &label, &pixels);
		if (problem)
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("mnist_ml: skipped a row of %s in snapshot at %s: %s",
							info->name, h->lsn, problem)));
		else
		{
			size_t		len = mnist_pixels_csv_encode(pixels, value);

			key = '0' + label;
			resetStringInfo(&pk);
			mnist_cdc_row_pk(info, tuple, desc, &pk);
			h->pk = pk.data;
			h->pk_len = pk.len;
			mnist_cdc_produce(p, rkt, &key, 1, value, len, h, opaque);
			sent++;
		}
		MemoryContextSwitchTo(old);
		MemoryContextReset(row_cxt);
		if (should_free)
			heap_freetuple(tuple);
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	MemoryContextDelete(row_cxt);
	pfree(pk.data);
	return sent;
}

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
#include "cdc_record.h"
#include "kafka_conf.h"
#include "mnist_ml.h"

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
				   void (*wait) (CdcProducer *p), const CdcTopicCallbacks *cb)
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
	p->cb = cb;
}


typedef struct TopicEntry
{
	char		name[2 * NAMEDATALEN + 2];	/* schema.table, hash key */
	rd_kafka_topic_t *rkt;		/* NULL when the topic name is illegal */
	bool		ready;			/* the topic exists */
	bool		held;			/* cb->hold was called for it */
} TopicEntry;

void
mnist_cdc_producer_close(CdcProducer *p)
{
	if (p->topics != NULL)
	{
		HASH_SEQ_STATUS seq;
		TopicEntry *entry;

		hash_seq_init(&seq, p->topics);
		while ((entry = hash_seq_search(&seq)) != NULL)
			if (entry->rkt != NULL)
				rd_kafka_topic_destroy(entry->rkt);
		hash_destroy(p->topics);
		p->topics = NULL;
	}
	p->last_rkt = NULL;
	rd_kafka_destroy(p->rk);
	p->rk = NULL;
}

/*
 * The broker's answer to the metadata of every topic: does topic exist?  *missing: the
 * broker does not know it (state REFUSED).
 */
static CdcTopicState
topic_lookup(CdcProducer *p, const char *topic, int timeout_ms, char *why, size_t whylen,
			 bool *missing)
{
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;
	CdcTopicState state = CDC_TOPIC_REFUSED;

	*missing = false;
	/* all topics: asking for this one alone could have the broker auto-create it */
	err = rd_kafka_metadata(p->rk, 1, NULL, &md, timeout_ms);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		snprintf(why, whylen, "the broker's metadata could not be read: %s", rd_kafka_err2str(err));
		return CDC_TOPIC_UNKNOWN;
	}
	*missing = true;
	snprintf(why, whylen, "the topic does not exist");
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, topic) == 0)
		{
			*missing = false;
			err = md->topics[i].err;
			if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topics[i].partition_cnt > 0)
				state = CDC_TOPIC_READY;
			else if (err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
			{
				/* being created, or not visible to us: its state may change */
				snprintf(why, whylen, "the topic is not available: %s", rd_kafka_err2str(err));
				state = err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ?
					CDC_TOPIC_REFUSED : CDC_TOPIC_UNKNOWN;
			}
		}
	rd_kafka_metadata_destroy(md);
	return state;
}

/*
 * Creates topic with the Admin API: partitions (-1: mnist_ml.cdc_topic_partitions), the
 * replication factor of the settings, compacted or not.  Sets why when it is not created.
 */
static CdcTopicState
topic_create(CdcProducer *p, const char *topic, int partitions, bool compact, int timeout_ms,
			 char *why, size_t whylen)
{
	char		errstr[512];
	rd_kafka_NewTopic_t *nt;
	rd_kafka_AdminOptions_t *opts;
	rd_kafka_queue_t *queue;
	rd_kafka_event_t *ev;
	CdcTopicState state = CDC_TOPIC_UNKNOWN;

	if (partitions < 0)
		partitions = mnist_cdc_topic_partitions;
	nt = rd_kafka_NewTopic_new(topic, partitions,
							   mnist_cdc_topic_replication_factor, errstr, sizeof(errstr));
	if (nt == NULL)
	{
		snprintf(why, whylen, "the topic cannot be created: %s", errstr);
		return CDC_TOPIC_REFUSED;
	}
	if (compact)
		(void) rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
	opts = rd_kafka_AdminOptions_new(p->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	(void) rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errstr, sizeof(errstr));
	(void) rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errstr, sizeof(errstr));
	queue = rd_kafka_queue_new(p->rk);
	rd_kafka_CreateTopics(p->rk, &nt, 1, opts, queue);
	/* no PostgreSQL call in here: the queue and options are freed on every path */
	ev = rd_kafka_queue_poll(queue, timeout_ms + 1000);
	if (ev == NULL)
		snprintf(why, whylen, "creating the topic got no answer within %d ms", timeout_ms);
	else if (rd_kafka_event_error(ev))
		snprintf(why, whylen, "creating the topic failed: %s", rd_kafka_event_error_string(ev));
	else
	{
		size_t		n;
		const rd_kafka_topic_result_t **res =
			rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
		rd_kafka_resp_err_t err = n == 1 ? rd_kafka_topic_result_error(res[0]) :
			RD_KAFKA_RESP_ERR__FAIL;

		if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
			state = CDC_TOPIC_READY;
		else
		{
			const char *msg = n == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;

			snprintf(why, whylen, "the broker refused to create the topic: %s%s%s",
					 rd_kafka_err2name(err), msg ? ": " : "", msg ? msg : "");
			/* a broker that is moving its controller may answer later; the others will not */
			state = err == RD_KAFKA_RESP_ERR_NOT_CONTROLLER ||
				err == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT ? CDC_TOPIC_UNKNOWN : CDC_TOPIC_REFUSED;
		}
	}
	if (ev)
		rd_kafka_event_destroy(ev);
	rd_kafka_queue_destroy(queue);
	rd_kafka_AdminOptions_destroy(opts);
	rd_kafka_NewTopic_destroy(nt);
	return state;
}

CdcTopicState
mnist_cdc_topic_prepare(CdcProducer *p, const char *topic, int partitions, bool compact,
						char *why, size_t whylen)
{
	int			timeout_ms = Min(mnist_kafka_timeout_ms, 10000);
	bool		missing;
	CdcTopicState state = topic_lookup(p, topic, timeout_ms, why, whylen, &missing);

	if (!missing)
		return state;
	if (!mnist_cdc_create_topics)
	{
		snprintf(why, whylen, "the topic does not exist and mnist_ml.cdc_create_topics is off");
		return CDC_TOPIC_REFUSED;
	}
	state = topic_create(p, topic, partitions, compact, timeout_ms, why, whylen);
	/* until the broker's metadata has it: messages to a topic it does not know yet fail */
	for (int i = 0; state == CDC_TOPIC_READY && i < 50; i++)
	{
		char		ignored[256];

		if (topic_lookup(p, topic, timeout_ms, ignored, sizeof(ignored), &missing) == CDC_TOPIC_READY)
			break;
		pg_usleep(100 * 1000L);
	}
	if (state == CDC_TOPIC_READY)
		ereport(LOG,
				(errmsg("mnist_ml change data capture: created %stopic \"%s\" (partitions %d, replication factor %d; -1: the broker's default)",
						compact ? "compacted " : "", topic,
						partitions < 0 ? mnist_cdc_topic_partitions : partitions,
						mnist_cdc_topic_replication_factor)));
	return state;
}

rd_kafka_topic_t *
mnist_cdc_topic(CdcProducer *p, const char *name, int len)
{
	char		key[2 * NAMEDATALEN + 2];
	TopicEntry *entry;
	bool		found;
	char	   *topic;

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
		entry->rkt = NULL;
		entry->ready = false;
		entry->held = false;
		topic = psprintf("%s.%s", p->prefix, key);
		if (!mnist_kafka_topic_name_ok(topic))
		{
			p->cb->bad_name(key, len, topic);
			pfree(topic);
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

	/* no message to a topic that is not there: it would fail after a while */
	while (!entry->ready)
	{
		char		why[512];
		CdcTopicState state = mnist_cdc_topic_prepare(p, rd_kafka_topic_name(entry->rkt), -1,
													  false, why, sizeof(why));

		if (state == CDC_TOPIC_UNKNOWN)
		{
			/*
			 * The broker cannot say now (an outage): send, as before an outage.  Should the
			 * topic be missing, its messages fail once the broker is back (cdc_worker.c).
			 */
			ereport(LOG,
					(errmsg("mnist_ml change data capture: could not check topic \"%s\": %s",
							rd_kafka_topic_name(entry->rkt), why)));
			entry->ready = true;
		}
		else if (state == CDC_TOPIC_READY)
		{
			entry->ready = true;
			if (entry->held)
				p->cb->ready(key);
		}
		else
		{
			entry->held = true;
			p->cb->hold(key, why);
		}
	}
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
	if (h->trace != NULL)
		rd_kafka_header_add(hdrs, "mnist_trace", 11, h->trace, -1);

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
	if (p->sent)
		p->sent(p);
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
 * cannot be sent get a WARNING and are counted in *skipped, as are all rows of a table whose
 * topic name is illegal (when cb->bad_name returns).  Returns the number of messages enqueued.
 */
uint64
mnist_cdc_send_table(CdcProducer *p, Relation rel, const CdcRelInfo *info, Snapshot snap,
			   CdcHeaders *h, void *opaque, uint64 *skipped)
{
	TableScanDesc scan;
	TupleTableSlot *slot;
	rd_kafka_topic_t *rkt = mnist_cdc_topic(p, info->name, info->name_len);
	TupleDesc	desc = RelationGetDescr(rel);
	MemoryContext row_cxt = AllocSetContextCreate(CurrentMemoryContext, "mnist_ml snapshot row",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old;
	StringInfoData pk;
	char		buf[PIXELS_CSV_MAX];
	static const char op = MNIST_CDC_OP_READ;
	uint64		sent = 0;

	h->table = info->name;
	h->table_len = info->name_len;
	h->op = &op;
	initStringInfo(&pk);
	slot = table_slot_create(rel, NULL);
	scan = table_beginscan(rel, snap, 0, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		should_free;
		HeapTuple	tuple = ExecFetchSlotHeapTuple(slot, false, &should_free);
		const char *problem;
		MnistCdcRecord rec;
		char		key[1];

		CHECK_FOR_INTERRUPTS();
		old = MemoryContextSwitchTo(row_cxt);
		problem = rkt ? mnist_cdc_row_get(info, tuple, NULL, desc, &rec.label, &rec.pixels) : NULL;
		if (rkt == NULL)
			(*skipped)++;		/* said once, by cb->bad_name */
		else if (problem)
		{
			(*skipped)++;
			ereport(WARNING,
					(errcode(ERRCODE_DATA_EXCEPTION),
					 errmsg("mnist_ml: skipped a row of %s in snapshot at %s: %s",
							info->name, h->lsn, problem)));
		}
		else
		{
			const char *value;
			size_t		value_len;
			size_t		key_len;

			rec.value = NULL;
			key_len = mnist_cdc_record_message(&rec, key, buf, &value, &value_len);
			resetStringInfo(&pk);
			mnist_cdc_row_pk(info, tuple, desc, &pk);
			h->pk = pk.data;
			h->pk_len = pk.len;
			mnist_cdc_produce(p, rkt, key, key_len, value, value_len, h, opaque);
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

/*
 * cdc_txn.c
 *		Exactly-once delivery of change data capture (cdc_txn.h): librdkafka's transactional
 *		producer, and the position topic that stores, in the same Kafka transaction as a batch
 *		of rows, the slot position the batch reaches.
 *
 * A reader that reads committed (isolation.level=read_committed) sees a batch's rows exactly
 * when the position that covers them is committed too; a worker that starts again reads the
 * last committed position and decodes only what comes after it, so a crash between Kafka's
 * commit and the slot's confirmation sends nothing twice.  The position topic is compacted:
 * only the last position of each slot identity is kept.
 *
 * Every librdkafka call here returns within a bounded time; waits go through the producer's
 * wait callback, which serves delivery reports and interrupts.  librdkafka's threads never
 * call PostgreSQL.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "miscadmin.h"
#include "utils/timestamp.h"

#include "cdc_txn.h"
#include "kafka_handle.h"
#include "kafka_conf.h"
#include "mnist_ml.h"

/* how long one blocking transactional call waits before the wait callback is served */
#define TXN_CALL_MS 1000

void
mnist_cdc_txn_conf(rd_kafka_conf_t *conf, const char *name, char *identity)
{
	snprintf(identity, 128, UINT64_FORMAT ".%u.%s", GetSystemIdentifier(), MyDatabaseId, name);
	mnist_kafka_conf_set(conf, "transactional.id", psprintf("mnist_ml-%s", identity));
}

/* Raises the ERROR of a transactional call that failed (error destroyed first). */
static void
txn_error(rd_kafka_error_t *error, const char *what)
{
	char	   *msg = pstrdup(rd_kafka_error_string(error));
	bool		fatal = rd_kafka_error_is_fatal(error);
	bool		fenced = rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR__FENCED ||
		rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
		rd_kafka_error_code(error) == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;

	rd_kafka_error_destroy(error);
	ereport(ERROR,
			(errcode(ERRCODE_CONNECTION_FAILURE),
			 errmsg("the Kafka transactional producer could not %s: %s", what, msg),
			 fenced ? errdetail("Another producer with the same transactional.id took over, or the broker aborted a transaction older than transaction.timeout.ms.") :
			 fatal ? errdetail("The error is fatal for this producer.") : 0,
			 errhint("Change data capture starts again from the last committed position.")));
}

void
mnist_cdc_txn_start(CdcTxn *t, CdcProducer *p, const char *identity, bool with_position)
{
	rd_kafka_error_t *error;

	memset(t, 0, sizeof(*t));
	t->p = p;
	strlcpy(t->identity, identity, sizeof(t->identity));
	while ((error = rd_kafka_init_transactions(p->rk, TXN_CALL_MS)) != NULL)
	{
		if (!rd_kafka_error_is_retriable(error))
			txn_error(error, "start");
		rd_kafka_error_destroy(error);
		p->wait(p);
	}
	if (!with_position)
		return;

	t->topic = psprintf("%s.mnist_ml.positions", p->prefix);
	mnist_kafka_topic_name_check(t->topic);
	for (;;)
	{
		char		why[512];
		CdcTopicState state = mnist_cdc_topic_prepare(p, t->topic, 1, true, why, sizeof(why));

		if (state == CDC_TOPIC_READY)
			break;
		if (state == CDC_TOPIC_REFUSED)
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("exactly-once change data capture needs the position topic \"%s\": %s",
							t->topic, why),
					 errhint("Create it (one partition, cleanup.policy=compact), allow mnist_ml.cdc_create_topics, or set mnist_ml.cdc_delivery = at_least_once.")));
		p->wait(p);
	}
	t->rkt = rd_kafka_topic_new(p->rk, t->topic, NULL);
	if (t->rkt == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid Kafka topic name \"%s\"", t->topic),
				 errdetail("%s", rd_kafka_err2str(rd_kafka_last_error()))));
}

/* Reads the position topic to its end (read committed) with consumer rk; see below. */
static XLogRecPtr
read_positions(CdcTxn *t, rd_kafka_t *rk)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, t->topic, NULL);
	rd_kafka_topic_partition_list_t *parts;
	rd_kafka_resp_err_t err;
	XLogRecPtr	position = InvalidXLogRecPtr;
	int			npart = 0;
	int			at_end = 0;
	bool	   *ended;
	size_t		idlen = strlen(t->identity);

	while ((err = rd_kafka_metadata(rk, 0, rkt, &md, TXN_CALL_MS)) != RD_KAFKA_RESP_ERR_NO_ERROR)
		CHECK_FOR_INTERRUPTS();
	if (md->topic_cnt == 1)
		npart = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	rd_kafka_topic_destroy(rkt);
	if (npart <= 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("the position topic \"%s\" has no partition", t->topic)));

	parts = rd_kafka_topic_partition_list_new(npart);
	for (int i = 0; i < npart; i++)
		rd_kafka_topic_partition_list_add(parts, t->topic, i)->offset = RD_KAFKA_OFFSET_BEGINNING;
	err = rd_kafka_assign(rk, parts);
	rd_kafka_topic_partition_list_destroy(parts);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read the position topic \"%s\": %s", t->topic,
						rd_kafka_err2str(err))));

	ended = palloc0(npart * sizeof(bool));
	while (at_end < npart)
	{
		rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 100);

		CHECK_FOR_INTERRUPTS();
		if (m == NULL)
			continue;
		if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			if (m->partition >= 0 && m->partition < npart && !ended[m->partition])
			{
				ended[m->partition] = true;
				at_end++;
			}
		}
		else if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
				 m->err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED)
		{
			char	   *msg = pstrdup(rd_kafka_err2str(m->err));

			rd_kafka_message_destroy(m);
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("could not read the position topic \"%s\": %s", t->topic, msg),
					 errhint("Grant READ and DESCRIBE on the topic to the worker's principal.")));
		}
		else if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR && m->key_len == idlen &&
				 memcmp(m->key, t->identity, idlen) == 0 && m->len > 0 && m->len < 32)
		{
			char		text[32];
			unsigned int hi,
						lo;

			memcpy(text, m->payload, m->len);
			text[m->len] = '\0';
			/* the last one in the partition is the latest: a key has one partition */
			if (sscanf(text, "%X/%X", &hi, &lo) == 2)
				position = ((uint64) hi << 32) | lo;
		}
		rd_kafka_message_destroy(m);
	}
	pfree(ended);
	return position;
}

XLogRecPtr
mnist_cdc_txn_read_position(CdcTxn *t)
{
	MnistKafkaHandle *h = mnist_kafka_handle_create(NULL,
													"client.id=mnist_ml-cdc-position "
													"group.id=mnist_ml-cdc-position "
													"enable.auto.commit=false "
													"enable.partition.eof=true",
													NULL, NULL, NULL);
	volatile XLogRecPtr position = InvalidXLogRecPtr;

	rd_kafka_poll_set_consumer(h->rk);
	PG_TRY();
	{
		position = read_positions(t, h->rk);
	}
	PG_FINALLY();
	{
		/* assigned by hand, no group joined: nothing to leave */
		mnist_kafka_handle_destroy(h);
	}
	PG_END_TRY();

	/* a position past this server's WAL is not this server's (a restored backup) */
	if (position != InvalidXLogRecPtr && position > GetFlushRecPtr(NULL))
	{
		ereport(WARNING,
				(errmsg("mnist_ml change data capture: the committed position %X/%X of \"%s\" is past this server's WAL (%X/%X); it is not used",
						LSN_FORMAT_ARGS(position), t->identity,
						LSN_FORMAT_ARGS(GetFlushRecPtr(NULL))),
				 errdetail("The server was restored from a backup after Kafka received its later changes; those changes stay in Kafka.")));
		position = InvalidXLogRecPtr;
	}
	return position;
}

void
mnist_cdc_txn_begin(CdcTxn *t)
{
	rd_kafka_error_t *error;

	if (t->open)
		return;
	error = rd_kafka_begin_transaction(t->p->rk);
	if (error)
		txn_error(error, "begin a transaction");
	t->open = true;
	t->opened_at = GetCurrentTimestamp();
	t->rows = 0;
}

/* Produces position to the position topic in the open transaction. */
static void
produce_position(CdcTxn *t, XLogRecPtr position)
{
	char		text[32];
	rd_kafka_resp_err_t err;

	snprintf(text, sizeof(text), "%X/%X", LSN_FORMAT_ARGS(position));
	while ((err = rd_kafka_producev(t->p->rk,
									RD_KAFKA_V_RKT(t->rkt),
									RD_KAFKA_V_PARTITION(RD_KAFKA_PARTITION_UA),
									RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
									RD_KAFKA_V_KEY(t->identity, strlen(t->identity)),
									RD_KAFKA_V_VALUE(text, strlen(text)),
									RD_KAFKA_V_END)) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
		t->p->wait(t->p);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not produce to Kafka topic \"%s\": %s", t->topic,
						rd_kafka_err2str(err))));
}

void
mnist_cdc_txn_commit(CdcTxn *t, XLogRecPtr position)
{
	rd_kafka_error_t *error;

	if (!t->open)
		return;
	if (position != InvalidXLogRecPtr && t->rkt != NULL)
		produce_position(t, position);
	while ((error = rd_kafka_commit_transaction(t->p->rk, TXN_CALL_MS)) != NULL)
	{
		if (rd_kafka_error_txn_requires_abort(error))
		{
			char	   *msg = pstrdup(rd_kafka_error_string(error));

			rd_kafka_error_destroy(error);
			mnist_cdc_txn_abort(t);
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("a Kafka transaction of change data capture was aborted: %s", msg),
					 errdetail("Its rows are sent again in a new transaction; readers that read committed never see the aborted one.")));
		}
		if (!rd_kafka_error_is_retriable(error))
			txn_error(error, "commit a transaction");
		/* timed out: the commit goes on, serve and ask again */
		rd_kafka_error_destroy(error);
		t->p->wait(t->p);
	}
	t->open = false;
	t->committed++;
}

void
mnist_cdc_txn_abort(CdcTxn *t)
{
	rd_kafka_error_t *error;

	if (!t->open)
		return;
	t->open = false;
	t->aborted++;
	/* bounded: a producer that cannot abort is fenced by the next one's start */
	error = rd_kafka_abort_transaction(t->p->rk, Min(mnist_kafka_timeout_ms, 10000));
	if (error)
	{
		ereport(LOG,
				(errmsg("mnist_ml change data capture: could not abort a Kafka transaction: %s",
						rd_kafka_error_string(error))));
		rd_kafka_error_destroy(error);
	}
}

/*
 * topic.c
 *		Training, evaluation and prediction from Kafka topics: mnist_train_topic (every message
 *		present when the call starts, like tensorflow-io's from_kafka) and mnist_evaluate_topic /
 *		mnist_predict_topic (a consumer group streaming until it sees no new message for a while,
 *		like KafkaGroupIODataset).
 *
 * librdkafka's threads never call PostgreSQL: the callbacks (served by rd_kafka_poll and
 * rd_kafka_consumer_poll in this backend) only record into the TopicConsumer, and the loops
 * here report what they recorded after each poll.  Every wait polls with a short timeout and
 * calls CHECK_FOR_INTERRUPTS.  Handles belong to the resource owner current when they were
 * made; an error or a cancel destroys them when that owner is released.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "kafka_conf.h"
#include "mnist_ml.h"
#include "model.h"
#include "net.h"
#include "pixels_csv.h"
#include "train.h"

/* poll timeout of every wait loop: short, so a cancel is seen at once */
#define POLL_MS			100
/* how long an error or a cancel waits for the consumer to leave its group */
#define LEAVE_ON_ERROR_MS 1000
/* librdkafka log lines kept between two polls */
#define LOG_SLOTS		16

/* A consumer handle with what its callbacks recorded. */
typedef struct TopicConsumer
{
	rd_kafka_t *rk;
	rd_kafka_queue_t *queue;	/* private queue for commit and close, or NULL */
	rd_kafka_message_t *msg;	/* the message being handled, or NULL */
	ResourceOwner owner;		/* destroyed when this owner is released */
	struct TopicConsumer *next; /* list of open consumers */

	/* written by callbacks (in this thread, during polls), read after polls */
	int			assignments;	/* assignment events so far */
	int			revocations;	/* revocation events so far */
	bool		revoked;		/* revoked, and the next assignment has not come yet */
	int			assigned;		/* partitions in the current assignment */

	/*
	 * Streaming: the next offset of each partition this call has read, -1 where it read
	 * nothing.  A partition assigned again after a rebalance resumes there (the group has no
	 * committed offset for it yet), and the final commit commits exactly these.
	 */
	int64	   *positions;
	int			npositions;

	int			session_timeout_ms; /* the effective session.timeout.ms of the group */

	bool		fatal;
	char		auth_error[256];	/* why the broker refused our credentials, or "" */
	char		last_error[256];
	int			nlogs;
	int			dropped_logs;
	int			log_level[LOG_SLOTS];
	char		log_line[LOG_SLOTS][256];
} TopicConsumer;

/* What was wrong with the messages of one call. */
typedef struct BadMessages
{
	int64		count;
	int32		first_partition;
	int64		first_offset;
	const char *first_reason;	/* static text from pixels_csv.h */
} BadMessages;

static TopicConsumer *open_consumers = NULL;
static bool release_callback_registered = false;

PG_FUNCTION_INFO_V1(mnist_train_topic);
PG_FUNCTION_INFO_V1(mnist_evaluate_topic);
PG_FUNCTION_INFO_V1(mnist_predict_topic);


/* ---- callbacks: record only ---- */

static void
topic_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	TopicConsumer *tc = (TopicConsumer *) opaque;

	strlcpy(tc->last_error, reason, sizeof(tc->last_error));
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		tc->fatal = true;
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		strlcpy(tc->auth_error, reason, sizeof(tc->auth_error));
}

static void
topic_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	TopicConsumer *tc = (TopicConsumer *) rd_kafka_opaque(rk);

	if (tc->nlogs == LOG_SLOTS)
	{
		tc->dropped_logs++;
		return;
	}
	tc->log_level[tc->nlogs] = level;
	snprintf(tc->log_line[tc->nlogs], sizeof(tc->log_line[0]), "%s: %s", fac, buf);
	tc->nlogs++;
}

/* Follows the group's assignment (eager or cooperative) and counts it. */
static void
topic_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
				   rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	TopicConsumer *tc = (TopicConsumer *) opaque;
	bool		cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
	rd_kafka_error_t *error = NULL;

	if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS)
	{
		for (int i = 0; i < partitions->cnt; i++)
		{
			int32		p = partitions->elems[i].partition;

			if (p >= 0 && p < tc->npositions && tc->positions[p] >= 0)
				partitions->elems[i].offset = tc->positions[p];
		}
		if (cooperative)
			error = rd_kafka_incremental_assign(rk, partitions);
		else
			rd_kafka_assign(rk, partitions);
		tc->assigned = cooperative ? tc->assigned + partitions->cnt : partitions->cnt;
		tc->assignments++;
		tc->revoked = false;
	}
	else
	{
		tc->revocations++;
		tc->revoked = true;
		if (cooperative)
			error = rd_kafka_incremental_unassign(rk, partitions);
		else
			rd_kafka_assign(rk, NULL);
		tc->assigned = cooperative ? tc->assigned - partitions->cnt : 0;
	}
	if (error)
	{
		strlcpy(tc->last_error, rd_kafka_error_string(error), sizeof(tc->last_error));
		rd_kafka_error_destroy(error);
	}
}


/* ---- handle lifetime ---- */

static void consumer_leave(TopicConsumer *tc, int bound_ms, bool interruptible);

/* Destroys a consumer (after consumer_leave, or without leaving its group if that timed out). */
static void
consumer_destroy(TopicConsumer *tc)
{
	TopicConsumer **p;

	for (p = &open_consumers; *p; p = &(*p)->next)
		if (*p == tc)
		{
			*p = tc->next;
			break;
		}
	if (tc->msg)
		rd_kafka_message_destroy(tc->msg);
	if (tc->queue)
		rd_kafka_queue_destroy(tc->queue);
	if (tc->rk)
		rd_kafka_destroy_flags(tc->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	if (tc->positions)
		pfree(tc->positions);
	pfree(tc);
}

/*
 * Destroys the consumers of a resource owner being released (error, cancel).  Each leaves its
 * group first, within LEAVE_ON_ERROR_MS, so the next call of the same group is not held until
 * the broker expires this member's session; nothing is committed.
 */
static void
topic_release_cb(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	TopicConsumer *tc,
			   *next;

	if (phase != RESOURCE_RELEASE_BEFORE_LOCKS)
		return;
	for (tc = open_consumers; tc; tc = next)
	{
		next = tc->next;
		if (tc->owner == CurrentResourceOwner)
		{
			if (isCommit)
				elog(WARNING, "Kafka consumer leaked");
			consumer_leave(tc, LEAVE_ON_ERROR_MS, false);
			consumer_destroy(tc);
		}
	}
}

/* Sends librdkafka's recorded log lines to the server log (at DEBUG levels). */
static void
consumer_flush_logs(TopicConsumer *tc)
{
	for (int i = 0; i < tc->nlogs; i++)
		elog(tc->log_level[i] <= 4 ? DEBUG1 : DEBUG2, "librdkafka: %s", tc->log_line[i]);
	if (tc->dropped_logs)
		elog(DEBUG2, "librdkafka: %d log lines dropped", tc->dropped_logs);
	tc->nlogs = 0;
	tc->dropped_logs = 0;
}

/* Milliseconds elapsed since start. */
static int64
elapsed_ms(TimestampTz start)
{
	return (GetCurrentTimestamp() - start) / 1000;
}

/* Makes room for the positions of partitions 0 .. n - 1 (new ones: nothing read). */
static void
consumer_grow_positions(TopicConsumer *tc, int n)
{
	int			size = Max(n, 2 * tc->npositions);

	if (tc->positions == NULL)
		tc->positions = MemoryContextAlloc(TopMemoryContext, size * sizeof(int64));
	else
		tc->positions = repalloc(tc->positions, size * sizeof(int64));
	for (int p = tc->npositions; p < size; p++)
		tc->positions[p] = -1;
	tc->npositions = size;
}

/* An integer property of conf as librdkafka will use it (the user's value or its default). */
static int
conf_get_int(rd_kafka_conf_t *conf, const char *key)
{
	char		value[64];
	size_t		size = sizeof(value);

	if (rd_kafka_conf_get(conf, key, value, &size) != RD_KAFKA_CONF_OK)
		elog(ERROR, "librdkafka has no property \"%s\"", key);
	return atoi(value);
}

/*
 * A new consumer for servers (NULL: the setting).  group_id NULL: no group (partitions are
 * assigned by hand).  Owned by the current resource owner.
 */
static TopicConsumer *
consumer_create(const char *servers, const char *group_id)
{
	rd_kafka_conf_t *conf;
	TopicConsumer *tc;
	char		errstr[512];

	if (!release_callback_registered)
	{
		RegisterResourceReleaseCallback(topic_release_cb, NULL);
		release_callback_registered = true;
	}

	/*
	 * Defaults the user's properties may override: a new group reads a topic from its start,
	 * reading never creates a topic, and a topic created after the call started is found
	 * within a second.
	 */
	conf = mnist_kafka_conf(servers,
							"auto.offset.reset=earliest allow.auto.create.topics=false "
							"topic.metadata.refresh.interval.ms=500");
	/* forced: offsets are committed by the calls, exactly what they read; logs are polled */
	mnist_kafka_conf_set(conf, "enable.auto.commit", "false");
	mnist_kafka_conf_set(conf, "log.queue", "true");
	if (group_id)
		mnist_kafka_conf_set(conf, "group.id", group_id);
	else
	{
		/* partitions are assigned by hand; librdkafka wants a group all the same */
		mnist_kafka_conf_set(conf, "group.id", "mnist_ml_train_topic");
		mnist_kafka_conf_set(conf, "enable.partition.eof", "true");
	}

	tc = MemoryContextAllocZero(TopMemoryContext, sizeof(TopicConsumer));
	tc->session_timeout_ms = conf_get_int(conf, "session.timeout.ms");
	rd_kafka_conf_set_opaque(conf, tc);
	rd_kafka_conf_set_error_cb(conf, topic_error_cb);
	rd_kafka_conf_set_log_cb(conf, topic_log_cb);
	if (group_id)
		rd_kafka_conf_set_rebalance_cb(conf, topic_rebalance_cb);

	tc->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (tc->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		pfree(tc);
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not create Kafka consumer: %s", errstr)));
	}
	tc->owner = CurrentResourceOwner;
	tc->next = open_consumers;
	open_consumers = tc;

	rd_kafka_set_log_queue(tc->rk, NULL);	/* logs are served by our polls */
	return tc;
}

/* Reports what the callbacks recorded: logs, and a fatal or authentication error as an ERROR. */
static void
consumer_check(TopicConsumer *tc)
{
	consumer_flush_logs(tc);
	if (tc->auth_error[0] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("authentication to the Kafka broker failed"),
				 errdetail("%s", tc->auth_error),
				 errhint("Check the security.protocol, sasl.* and ssl.* properties of mnist_ml.kafka_properties_file.")));
	if (tc->fatal)
	{
		char		errstr[256];
		rd_kafka_resp_err_t err = rd_kafka_fatal_error(tc->rk, errstr, sizeof(errstr));

		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("Kafka consumer failed: %s", rd_kafka_err2str(err)),
				 errdetail("%s", errstr)));
	}
}

/*
 * The next message or event (NULL after POLL_MS without one), kept in tc->msg until the next
 * poll so that an error raised while handling it still frees it; recorded errors are raised.
 */
static rd_kafka_message_t *
consumer_poll(TopicConsumer *tc)
{
	CHECK_FOR_INTERRUPTS();
	if (tc->msg)
	{
		rd_kafka_message_destroy(tc->msg);
		tc->msg = NULL;
	}
	tc->msg = rd_kafka_consumer_poll(tc->rk, POLL_MS);
	consumer_check(tc);
	return tc->msg;
}

/*
 * Fetches metadata until the broker answers, ERROR naming the servers after
 * mnist_ml.kafka_timeout_ms.  Returns the partition count of topic, 0 if it does not exist.
 */
static int
consumer_wait_broker(TopicConsumer *tc, const char *servers, const char *topic)
{
	TimestampTz start = GetCurrentTimestamp();

	for (;;)
	{
		const struct rd_kafka_metadata *md;
		rd_kafka_resp_err_t err;

		CHECK_FOR_INTERRUPTS();
		err = rd_kafka_metadata(tc->rk, 1, NULL, &md, POLL_MS * 2);
		rd_kafka_poll(tc->rk, 0);
		consumer_check(tc);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			int			partitions = 0;

			for (int i = 0; i < md->topic_cnt; i++)
				if (strcmp(md->topics[i].topic, topic) == 0 &&
					md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
					partitions = md->topics[i].partition_cnt;
			rd_kafka_metadata_destroy(md);
			return partitions;
		}
		if (elapsed_ms(start) >= mnist_kafka_timeout_ms)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not reach Kafka broker at \"%s\" within %d ms",
							servers ? servers : mnist_kafka_bootstrap_servers,
							mnist_kafka_timeout_ms),
					 tc->last_error[0] ? errdetail("%s", tc->last_error) :
					 errdetail("%s", rd_kafka_err2str(err)),
					 errhint("Check mnist_ml.kafka_bootstrap_servers or the bootstrap_servers argument.")));
	}
}

/* Commit errors that a rebalance or a coordinator change explains: worth retrying. */
static bool
commit_error_is_retriable(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS:
		case RD_KAFKA_RESP_ERR_ILLEGAL_GENERATION:
		case RD_KAFKA_RESP_ERR_UNKNOWN_MEMBER_ID:
		case RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE:
		case RD_KAFKA_RESP_ERR_NOT_COORDINATOR:
		case RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS:
		case RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT:
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__WAIT_COORD:
		case RD_KAFKA_RESP_ERR__STATE:
			return true;
		default:
			return false;
	}
}

/*
 * Sends one commit of the positions read and waits for its answer (until kafka_timeout_ms
 * after start).  Messages polled meanwhile are not read: they come again in the next call.
 */
static rd_kafka_resp_err_t
consumer_commit_once(TopicConsumer *tc, const char *topic, TimestampTz start)
{
	rd_kafka_topic_partition_list_t *offsets;
	rd_kafka_resp_err_t err;

	offsets = rd_kafka_topic_partition_list_new(Max(tc->npositions, 1));
	for (int p = 0; p < tc->npositions; p++)
		if (tc->positions[p] >= 0)
			rd_kafka_topic_partition_list_add(offsets, topic, p)->offset = tc->positions[p];
	/* nothing read, nothing to commit; else librdkafka copies the list */
	err = offsets->cnt == 0 ? RD_KAFKA_RESP_ERR__NO_OFFSET :
		rd_kafka_commit_queue(tc->rk, offsets, tc->queue, NULL, NULL);
	rd_kafka_topic_partition_list_destroy(offsets);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err;

	for (;;)
	{
		rd_kafka_event_t *ev = rd_kafka_queue_poll(tc->queue, 0);

		if (ev && rd_kafka_event_type(ev) == RD_KAFKA_EVENT_OFFSET_COMMIT)
		{
			const rd_kafka_topic_partition_list_t *done = rd_kafka_event_topic_partition_list(ev);

			err = rd_kafka_event_error(ev);
			for (int i = 0; done && err == RD_KAFKA_RESP_ERR_NO_ERROR && i < done->cnt; i++)
				err = done->elems[i].err;
			rd_kafka_event_destroy(ev);
			return err;
		}
		if (ev)
			rd_kafka_event_destroy(ev);
		if (elapsed_ms(start) >= mnist_kafka_timeout_ms)
			return RD_KAFKA_RESP_ERR__TIMED_OUT;
		/* serve the group meanwhile: librdkafka holds a commit back during a rebalance */
		consumer_poll(tc);
	}
}

/*
 * Commits the positions this call read.  What a rebalance explains is retried, for at most
 * mnist_ml.kafka_timeout_ms in all; ERROR when the commit fails.
 */
static void
consumer_commit(TopicConsumer *tc, const char *topic)
{
	TimestampTz start = GetCurrentTimestamp();
	rd_kafka_resp_err_t err;

	if (tc->queue == NULL)
		tc->queue = rd_kafka_queue_new(tc->rk);
	for (;;)
	{
		err = consumer_commit_once(tc, topic, start);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR || !commit_error_is_retriable(err) ||
			elapsed_ms(start) >= mnist_kafka_timeout_ms)
			break;
		elog(DEBUG1, "retrying the commit of consumer group offsets: %s", rd_kafka_err2str(err));
		consumer_poll(tc);
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not commit consumer group offsets of topic \"%s\": %s",
						topic, rd_kafka_err2str(err))));
}

/*
 * Leaves the group, waiting at most bound_ms; interruptible on the successful path only (a
 * resource release must not raise).  Calls no PostgreSQL function that can fail otherwise.
 */
static void
consumer_leave(TopicConsumer *tc, int bound_ms, bool interruptible)
{
	TimestampTz start = GetCurrentTimestamp();
	rd_kafka_error_t *error;

	if (tc->queue == NULL)
		tc->queue = rd_kafka_queue_new(tc->rk);
	error = rd_kafka_consumer_close_queue(tc->rk, tc->queue);
	if (error)
		rd_kafka_error_destroy(error);
	else
	{
		while (!rd_kafka_consumer_closed(tc->rk) && elapsed_ms(start) < bound_ms)
		{
			rd_kafka_event_t *ev;

			if (interruptible)
				CHECK_FOR_INTERRUPTS();
			ev = rd_kafka_queue_poll(tc->queue, POLL_MS);
			if (ev)
			{
				/* the rebalance callback is not used during close: unassign here */
				if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_REBALANCE)
				{
					if (strcmp(rd_kafka_rebalance_protocol(tc->rk), "COOPERATIVE") == 0)
					{
						rd_kafka_error_t *e = rd_kafka_incremental_unassign(tc->rk,
																			rd_kafka_event_topic_partition_list(ev));

						if (e)
							rd_kafka_error_destroy(e);
					}
					else
						rd_kafka_assign(tc->rk, NULL);
				}
				rd_kafka_event_destroy(ev);
			}
		}
	}
}

/* Leaves the group (bounded wait) and destroys the consumer: the successful path. */
static void
consumer_close(TopicConsumer *tc)
{
	consumer_leave(tc, mnist_kafka_timeout_ms, true);
	consumer_flush_logs(tc);
	consumer_destroy(tc);
}


/* ---- messages ---- */

/* Records a bad message; ERROR at once under mnist_ml.strict_messages. */
static void
bad_message(BadMessages *bad, const char *topic, int32 partition, int64 offset,
			const char *reason)
{
	if (mnist_strict_messages)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("bad message in topic \"%s\" at partition %d offset " INT64_FORMAT ": %s",
						topic, partition, offset, reason),
				 errhint("Set mnist_ml.strict_messages to off to skip bad messages.")));
	if (bad->count++ == 0)
	{
		bad->first_partition = partition;
		bad->first_offset = offset;
		bad->first_reason = reason;
	}
}

/* WARNING with the count and the first bad message, if any. */
static void
report_bad_messages(const BadMessages *bad, const char *topic)
{
	if (bad->count > 0)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("skipped " INT64_FORMAT " bad message%s in topic \"%s\"",
						bad->count, bad->count == 1 ? "" : "s", topic),
				 errdetail("The first is at partition %d offset " INT64_FORMAT ": %s.",
						   bad->first_partition, bad->first_offset, bad->first_reason)));
}

/* Decodes a message's key (label) and value (pixels); false (recorded) when bad. */
static bool
decode_message(const rd_kafka_message_t *msg, const char *topic, uint8 *pixels, int *label,
			   BadMessages *bad)
{
	const char *reason;

	reason = mnist_pixels_csv_decode_label(msg->key, msg->key_len, label);
	if (reason == NULL)
		reason = mnist_pixels_csv_decode(msg->payload, msg->len, pixels);
	if (reason == NULL)
		return true;
	bad_message(bad, topic, msg->partition, msg->offset, reason);
	return false;
}

/*
 * A consumer error event.  librdkafka recovers from most by itself (a topic not created yet,
 * a partition leader moving, a rebalance): those are recorded, for the detail of a later
 * timeout, and the wait goes on.  Only what retrying cannot fix is an ERROR.
 */
static void
consumer_message_error(TopicConsumer *tc, const rd_kafka_message_t *msg, const char *topic)
{
	switch (msg->err)
	{
		case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR__SSL:
		case RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION:
		case RD_KAFKA_RESP_ERR_INVALID_GROUP_ID:
		case RD_KAFKA_RESP_ERR__FATAL:
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not consume topic \"%s\": %s",
							topic, rd_kafka_message_errstr(msg))));
			break;
		case RD_KAFKA_RESP_ERR__PARTITION_EOF:
			break;
		default:
			strlcpy(tc->last_error, rd_kafka_message_errstr(msg), sizeof(tc->last_error));
			elog(DEBUG1, "Kafka consumer of topic \"%s\": %s", topic, tc->last_error);
			break;
	}
}


/* ---- mnist_train_topic ---- */

/*
 * mnist_train_topic(topic, model_name, epochs, batch_size, learning_rate, hidden_units, seed,
 * init_model, bootstrap_servers, validation, deploy): trains on every message present when the
 * call starts.
 */
Datum
mnist_train_topic(PG_FUNCTION_ARGS)
{
	char	   *topic;
	char	   *servers;
	TrainOptions opt;
	TopicConsumer *tc;
	int			nparts;
	int64	   *low,
			   *high,
			   *base;
	bool	   *done;
	bool	   *valid;
	int			remaining = 0;
	int64		total = 0,
				received = 0;
	TrainSet	set,
				vset;
	BadMessages bad = {0};
	rd_kafka_topic_partition_list_t *assignment;
	TimestampTz start,
				last_progress;
	StringInfoData source;
	int64		model_id;

	static const char *const argnames[] = {"topic", "model_name", "epochs", "batch_size",
	"learning_rate", "hidden_units", "seed"};

	/* only init_model and bootstrap_servers may be null */
	for (int i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mnist_kafka_topic_name_check(topic);
	memset(&opt, 0, sizeof(opt));
	opt.model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	opt.epochs = PG_GETARG_INT32(2);
	opt.batch_size = PG_GETARG_INT32(3);
	opt.learning_rate = PG_GETARG_FLOAT8(4);
	opt.hidden_units = PG_GETARG_INT32(5);
	opt.seed = PG_GETARG_INT64(6);
	opt.init_model = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
	servers = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
	mnist_train_options_gate(&opt, fcinfo, 9);
	mnist_train_options_validate(&opt);	/* before reading the topic */
	if (OidIsValid(opt.validation))
		mnist_train_read_validation(&opt, "pixels", "label", &vset);

	start = GetCurrentTimestamp();
	tc = consumer_create(servers, NULL);
	nparts = consumer_wait_broker(tc, servers, topic);
	if (nparts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Kafka topic \"%s\" does not exist", topic)));

	elog(DEBUG1, "topic \"%s\": broker answered after " INT64_FORMAT " ms", topic, elapsed_ms(start));

	/* the watermarks when the call starts bound what it reads */
	low = palloc0(sizeof(int64) * nparts);
	high = palloc0(sizeof(int64) * nparts);
	base = palloc0(sizeof(int64) * nparts);
	done = palloc0(sizeof(bool) * nparts);
	for (int p = 0; p < nparts; p++)
	{
		rd_kafka_resp_err_t err;

		for (;;)
		{
			CHECK_FOR_INTERRUPTS();
			err = rd_kafka_query_watermark_offsets(tc->rk, topic, p, &low[p], &high[p],
												   POLL_MS * 5);
			if (err != RD_KAFKA_RESP_ERR__TIMED_OUT || elapsed_ms(start) >= mnist_kafka_timeout_ms)
				break;
		}
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			ereport(ERROR,
					(errcode(ERRCODE_CONNECTION_FAILURE),
					 errmsg("could not read the offsets of partition %d of Kafka topic \"%s\": %s",
							p, topic, rd_kafka_err2str(err))));
		base[p] = total;
		total += high[p] - low[p];
		done[p] = high[p] <= low[p];
		if (!done[p])
			remaining++;
	}
	if (total == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("Kafka topic \"%s\" has no messages", topic)));
	elog(DEBUG1, "topic \"%s\": watermarks after " INT64_FORMAT " ms", topic, elapsed_ms(start));
	if (mnist_progress)
		ereport(NOTICE,
				(errmsg("reading " INT64_FORMAT " messages from %d partitions of topic \"%s\"",
						total, nparts, topic)));

	/*
	 * Each message goes to its place in (partition, offset) order as it arrives, straight into
	 * the training set's arrays; holes (bad or missing messages) are squeezed out at the end.
	 */
	mnist_trainset_init(&set, total);
	valid = palloc_extended(total, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);

	rd_kafka_poll_set_consumer(tc->rk);
	assignment = rd_kafka_topic_partition_list_new(nparts);
	for (int p = 0; p < nparts; p++)
		if (!done[p])
			rd_kafka_topic_partition_list_add(assignment, topic, p)->offset = low[p];
	{
		rd_kafka_resp_err_t err = rd_kafka_assign(tc->rk, assignment);

		rd_kafka_topic_partition_list_destroy(assignment);
		if (err)
			ereport(ERROR,
					(errcode(ERRCODE_INTERNAL_ERROR),
					 errmsg("could not assign the partitions of Kafka topic \"%s\": %s",
							topic, rd_kafka_err2str(err))));
	}

	last_progress = GetCurrentTimestamp();
	while (remaining > 0)
	{
		rd_kafka_message_t *msg = consumer_poll(tc);
		int32		p;

		if (msg == NULL)
		{
			if (elapsed_ms(last_progress) >= mnist_kafka_timeout_ms)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("no message from Kafka topic \"%s\" for %d ms, " INT64_FORMAT
								" of " INT64_FORMAT " read",
								topic, mnist_kafka_timeout_ms, received, total),
						 tc->last_error[0] ? errdetail("%s", tc->last_error) : 0));
			continue;
		}
		p = msg->partition;
		if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			consumer_message_error(tc, msg, topic);
			continue;
		}
		last_progress = GetCurrentTimestamp();
		if (p < 0 || p >= nparts || done[p])
			continue;
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			/* offsets may have holes (compaction, transaction markers) */
			if (msg->offset >= high[p])
			{
				done[p] = true;
				remaining--;
			}
		}
		else if (msg->offset >= low[p] && msg->offset < high[p])
		{
			int64		slot = base[p] + (msg->offset - low[p]);
			int			label;

			if (decode_message(msg, topic, set.images + slot * MNIST_PIXELS, &label, &bad))
			{
				set.labels[slot] = label;
				valid[slot] = true;
			}
			received++;
			if (msg->offset == high[p] - 1)
			{
				done[p] = true;
				remaining--;
			}
		}
	}
	elog(DEBUG1, "topic \"%s\": last message after " INT64_FORMAT " ms", topic, elapsed_ms(start));
	consumer_close(tc);
	elog(DEBUG1, "topic \"%s\": consumer closed after " INT64_FORMAT " ms", topic, elapsed_ms(start));

	/* squeeze out holes, keeping (partition, offset) order */
	for (int64 i = 0; i < total; i++)
		if (valid[i])
		{
			if (set.n != i)
			{
				memcpy(set.images + set.n * MNIST_PIXELS, set.images + i * MNIST_PIXELS,
					   MNIST_PIXELS);
				set.labels[set.n] = set.labels[i];
			}
			set.n++;
		}
	pfree(valid);
	report_bad_messages(&bad, topic);
	if (mnist_progress)
		ereport(NOTICE,
				(errmsg("read " INT64_FORMAT " messages (" INT64_FORMAT " usable) from topic \"%s\" in %.2f s",
						received, set.n, topic, elapsed_ms(start) / 1000.0)));

	/* the source: topic, servers and the offset range read from each partition */
	initStringInfo(&source);
	appendStringInfoString(&source, "{\"topic\": ");
	escape_json(&source, topic);
	appendStringInfoString(&source, ", \"servers\": ");
	escape_json(&source, servers ? servers : mnist_kafka_bootstrap_servers);
	appendStringInfo(&source, ", \"messages\": " INT64_FORMAT ", \"skipped\": " INT64_FORMAT
					 ", \"offsets\": [", received, bad.count);
	for (int p = 0; p < nparts; p++)
		appendStringInfo(&source, "%s{\"partition\": %d, \"from\": " INT64_FORMAT
						 ", \"to\": " INT64_FORMAT "}",
						 p ? ", " : "", p, low[p], high[p]);
	appendStringInfoString(&source, "]}");

	model_id = mnist_train_and_store(&set, &opt, source.data,
									 OidIsValid(opt.validation) ? &vset : NULL);
	PG_RETURN_INT64(model_id);
}


/* ---- mnist_evaluate_topic, mnist_predict_topic ---- */

/* One streaming read of a topic through a consumer group. */
typedef struct StreamCall
{
	const char *topic;
	const char *model_name;
	const char *group_id;
	int			stream_timeout_ms;
	const char *servers;
} StreamCall;

/* Called for each good message of a stream. */
typedef void (*StreamVisit) (void *arg, const rd_kafka_message_t *msg, int label,
							 const uint8 *pixels);

static void
stream_args(FunctionCallInfo fcinfo, StreamCall *call)
{
	static const char *const argnames[] = {"topic", "model_name", "group_id",
	"stream_timeout_ms"};

	/* only bootstrap_servers may be null */
	for (int i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	call->topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mnist_kafka_topic_name_check(call->topic);
	call->model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	call->group_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	call->stream_timeout_ms = PG_GETARG_INT32(3);
	call->servers = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (call->stream_timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream_timeout_ms must not be negative")));
	if (call->group_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_id must not be empty")));
}

/*
 * Reads the topic through the consumer group until stream_timeout_ms pass without a new
 * message (counted from the latest assignment or message), visiting each good message, then
 * commits the group's offsets.  Returns the number of messages visited.
 */
static int64
stream_topic(const StreamCall *call, StreamVisit visit, void *arg)
{
	TopicConsumer *tc;
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;
	BadMessages bad = {0};
	uint8		pixels[MNIST_PIXELS];
	int			seen_assignments = 0,
				seen_revocations = 0;
	int64		visited = 0;
	TimestampTz waiting_since,
				last_activity = 0,
				last_notice = 0;

	tc = consumer_create(call->servers, call->group_id);
	consumer_wait_broker(tc, call->servers, call->topic);

	rd_kafka_poll_set_consumer(tc->rk);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, call->topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(tc->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not subscribe to Kafka topic \"%s\": %s",
						call->topic, rd_kafka_err2str(err))));
	waiting_since = GetCurrentTimestamp();

	for (;;)
	{
		rd_kafka_message_t *msg = consumer_poll(tc);
		int			label;

		if (tc->revocations != seen_revocations)
		{
			seen_revocations = tc->revocations;
			waiting_since = GetCurrentTimestamp();
		}
		if (tc->assignments != seen_assignments)
		{
			seen_assignments = tc->assignments;
			last_activity = GetCurrentTimestamp();
			if (mnist_progress)
				ereport(NOTICE,
						(errmsg("consumer group \"%s\" assigned %d partition%s of topic \"%s\"; streaming until %d ms pass without a message",
								call->group_id, tc->assigned, tc->assigned == 1 ? "" : "s",
								call->topic, call->stream_timeout_ms)));
		}

		if (msg == NULL)
		{
			if (seen_assignments == 0)
			{
				/*
				 * The broker answered: the group must form within a session timeout more (a
				 * member that died without leaving holds the rebalance until it expires).
				 */
				if (elapsed_ms(waiting_since) >= mnist_kafka_timeout_ms + tc->session_timeout_ms)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("consumer group \"%s\" got no assignment from \"%s\"",
									call->group_id,
									call->servers ? call->servers : mnist_kafka_bootstrap_servers),
							 tc->last_error[0] ? errdetail("%s", tc->last_error) : 0));
			}
			else if (tc->revoked &&
					 elapsed_ms(waiting_since) < mnist_kafka_timeout_ms + tc->session_timeout_ms)
				;				/* rebalancing: the stream waits for the partitions to come back */
			else if (elapsed_ms(last_activity) >= call->stream_timeout_ms)
				break;
			continue;
		}

		if (msg->err)
		{
			/* a topic that does not exist yet, say: keep waiting */
			consumer_message_error(tc, msg, call->topic);
			continue;
		}

		if (msg->partition >= tc->npositions)
			consumer_grow_positions(tc, msg->partition + 1);
		tc->positions[msg->partition] = msg->offset + 1;
		last_activity = GetCurrentTimestamp();
		if (decode_message(msg, call->topic, pixels, &label, &bad))
		{
			visit(arg, msg, label, pixels);
			visited++;
		}

		if (mnist_progress && TimestampDifferenceExceeds(last_notice, last_activity, 2000))
		{
			if (last_notice != 0)
				ereport(NOTICE,
						(errmsg("received " INT64_FORMAT " messages from topic \"%s\"",
								visited + bad.count, call->topic)));
			last_notice = last_activity;
		}
	}

	consumer_commit(tc, call->topic);
	consumer_close(tc);
	report_bad_messages(&bad, call->topic);
	return visited;
}

/* Running totals of mnist_evaluate_topic. */
typedef struct EvalState
{
	MnistModel *model;
	double		loss_sum;
	int64		correct;
} EvalState;

static void
evaluate_visit(void *arg, const rd_kafka_message_t *msg, int label, const uint8 *pixels)
{
	EvalState  *st = (EvalState *) arg;
	float		logits[NET_OUTPUTS];

	if (mnist_net_predict(&st->model->net, pixels, st->model->scratch, NULL, logits) == label)
		st->correct++;
	st->loss_sum += mnist_net_cross_entropy(logits, label);
}

/*
 * mnist_evaluate_topic(topic, model_name, group_id, stream_timeout_ms, bootstrap_servers):
 * rows, mean loss and accuracy over the messages streamed through a consumer group.
 */
Datum
mnist_evaluate_topic(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StreamCall	call;
	EvalState	st = {0};
	int64		rows;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	stream_args(fcinfo, &call);
	InitMaterializedSRF(fcinfo, 0);
	st.model = mnist_model_get(call.model_name);

	rows = stream_topic(&call, evaluate_visit, &st);

	values[0] = Int64GetDatum(rows);
	if (rows > 0)
	{
		values[1] = Float8GetDatum(st.loss_sum / rows);
		values[2] = Float8GetDatum((double) st.correct / rows);
	}
	else
		nulls[1] = nulls[2] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* What mnist_predict_topic's visits need. */
typedef struct PredictState
{
	MnistModel *model;
	ReturnSetInfo *rsinfo;
} PredictState;

static void
predict_visit(void *arg, const rd_kafka_message_t *msg, int label, const uint8 *pixels)
{
	PredictState *st = (PredictState *) arg;
	float		probs[NET_OUTPUTS];
	int			predicted;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	predicted = mnist_net_predict(&st->model->net, pixels, st->model->scratch, probs, NULL);
	values[0] = Int32GetDatum(msg->partition);
	values[1] = Int64GetDatum(msg->offset);
	values[2] = Int16GetDatum(label);
	values[3] = Int16GetDatum(predicted);
	values[4] = Float4GetDatum(probs[predicted]);
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
}

/*
 * mnist_predict_topic(topic, model_name, group_id, stream_timeout_ms, bootstrap_servers):
 * a row per message streamed through a consumer group, with the model's prediction.
 */
Datum
mnist_predict_topic(PG_FUNCTION_ARGS)
{
	StreamCall	call;
	PredictState st;

	stream_args(fcinfo, &call);
	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.model = mnist_model_get(call.model_name);

	stream_topic(&call, predict_visit, &st);
	return (Datum) 0;
}

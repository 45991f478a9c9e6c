/*
 * kafka_consumer.c
 *		The Kafka consumer of the topic functions: creation from the settings, group
 *		membership (eager or cooperative rebalancing) or assignment by hand, polls with bounded
 *		waits, offsets read and committed, leaving the group on success, error or cancel, and
 *		the classification of consumer errors.  Terms are defined in kafka_consumer.h.
 *
 * librdkafka's threads never call PostgreSQL: the callbacks (served by rd_kafka_poll and
 * rd_kafka_consumer_poll in this backend) only record into the MnistConsumer, and every poll
 * reports what they recorded.  Every wait polls with a short timeout and calls
 * CHECK_FOR_INTERRUPTS.
 */
#include "postgres.h"

#include "miscadmin.h"
#include "utils/memutils.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

#include "kafka_conf.h"
#include "kafka_consumer.h"
#include "mnist_ml.h"
#include "pixels_csv.h"

/* poll timeout of every wait loop: short, so a cancel is seen at once */
#define POLL_MS			100
/* how long an error or a cancel waits for the consumer to leave its group */
#define LEAVE_ON_ERROR_MS 1000
/* librdkafka properties of every consumer that the user's may override (see mnist_consumer_create) */
#define CONSUMER_DEFAULTS \
	"auto.offset.reset=earliest allow.auto.create.topics=false topic.metadata.refresh.interval.ms=500"

static MnistConsumer *open_consumers = NULL;
static bool release_callback_registered = false;


/* ---- callbacks: record only ---- */

static void
consumer_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	MnistConsumer *tc = (MnistConsumer *) opaque;

	strlcpy(tc->last_error, reason, sizeof(tc->last_error));
	if (err == RD_KAFKA_RESP_ERR__FATAL)
		tc->fatal = true;
	if (err == RD_KAFKA_RESP_ERR__AUTHENTICATION)
		strlcpy(tc->auth_error, reason, sizeof(tc->auth_error));
}

static void
consumer_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	MnistConsumer *tc = (MnistConsumer *) rd_kafka_opaque(rk);

	if (tc->nlogs == MNIST_CONSUMER_LOG_SLOTS)
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
consumer_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
				   rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	MnistConsumer *tc = (MnistConsumer *) opaque;
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

static void consumer_leave(MnistConsumer *tc, int bound_ms, bool interruptible);

/* Destroys a consumer (after consumer_leave, or without leaving its group if that timed out). */
static void
consumer_destroy(MnistConsumer *tc)
{
	MnistConsumer **p;

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
consumer_release_cb(ResourceReleasePhase phase, bool isCommit, bool isTopLevel, void *arg)
{
	MnistConsumer *tc,
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
consumer_flush_logs(MnistConsumer *tc)
{
	for (int i = 0; i < tc->nlogs; i++)
		elog(tc->log_level[i] <= 4 ? DEBUG1 : DEBUG2, "librdkafka: %s", tc->log_line[i]);
	if (tc->dropped_logs)
		elog(DEBUG2, "librdkafka: %d log lines dropped", tc->dropped_logs);
	tc->nlogs = 0;
	tc->dropped_logs = 0;
}

/* Milliseconds elapsed since start. */
int64
mnist_consumer_elapsed_ms(TimestampTz start)
{
	return (GetCurrentTimestamp() - start) / 1000;
}

/* Makes room for the positions of partitions 0 .. n - 1 (new ones: nothing read). */
static void
consumer_grow_positions(MnistConsumer *tc, int n)
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
MnistConsumer *
mnist_consumer_create(const char *servers, const char *group_id)
{
	rd_kafka_conf_t *conf;
	MnistConsumer *tc;
	char		errstr[512];

	if (!release_callback_registered)
	{
		RegisterResourceReleaseCallback(consumer_release_cb, NULL);
		release_callback_registered = true;
	}

	/*
	 * Defaults the user's properties may override: a new group reads a topic from its start,
	 * reading never creates a topic, and a topic created after the call started is found
	 * within a second.  Without a group the messages read exist already: the broker need not
	 * hold a fetch waiting for new ones (a partition read after another would wait out the
	 * fetch of the one read, up to librdkafka's default of 500 ms).
	 */
	conf = mnist_kafka_consumer_conf(servers,
							group_id ? CONSUMER_DEFAULTS : CONSUMER_DEFAULTS " fetch.wait.max.ms=10");
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

	tc = MemoryContextAllocZero(TopMemoryContext, sizeof(MnistConsumer));
	tc->session_timeout_ms = conf_get_int(conf, "session.timeout.ms");
	rd_kafka_conf_set_opaque(conf, tc);
	rd_kafka_conf_set_error_cb(conf, consumer_error_cb);
	rd_kafka_conf_set_log_cb(conf, consumer_log_cb);
	if (group_id)
		rd_kafka_conf_set_rebalance_cb(conf, consumer_rebalance_cb);

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
consumer_check(MnistConsumer *tc)
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
rd_kafka_message_t *
mnist_consumer_poll(MnistConsumer *tc)
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
int
mnist_consumer_wait_broker(MnistConsumer *tc, const char *servers, const char *topic)
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
		if (mnist_consumer_elapsed_ms(start) >= mnist_kafka_timeout_ms)
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
consumer_commit_once(MnistConsumer *tc, const char *topic, TimestampTz start)
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
		if (mnist_consumer_elapsed_ms(start) >= mnist_kafka_timeout_ms)
			return RD_KAFKA_RESP_ERR__TIMED_OUT;
		/* serve the group meanwhile: librdkafka holds a commit back during a rebalance */
		mnist_consumer_poll(tc);
	}
}

/*
 * Commits the positions this call read.  What a rebalance explains is retried, for at most
 * mnist_ml.kafka_timeout_ms in all; ERROR when the commit fails.
 */
void
mnist_consumer_commit(MnistConsumer *tc, const char *topic)
{
	TimestampTz start = GetCurrentTimestamp();
	rd_kafka_resp_err_t err;

	if (tc->queue == NULL)
		tc->queue = rd_kafka_queue_new(tc->rk);
	for (;;)
	{
		err = consumer_commit_once(tc, topic, start);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR || !commit_error_is_retriable(err) ||
			mnist_consumer_elapsed_ms(start) >= mnist_kafka_timeout_ms)
			break;
		elog(DEBUG1, "retrying the commit of consumer group offsets: %s", rd_kafka_err2str(err));
		mnist_consumer_poll(tc);
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
consumer_leave(MnistConsumer *tc, int bound_ms, bool interruptible)
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
		while (!rd_kafka_consumer_closed(tc->rk) && mnist_consumer_elapsed_ms(start) < bound_ms)
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
void
mnist_consumer_close(MnistConsumer *tc)
{
	consumer_leave(tc, mnist_kafka_timeout_ms, true);
	consumer_flush_logs(tc);
	consumer_destroy(tc);
}

/*
 * A consumer error event.  librdkafka recovers from most by itself (a topic not created yet,
 * a partition leader moving, a rebalance): those are recorded, for the detail of a later
 * timeout, and the wait goes on.  Only what retrying cannot fix is an ERROR.
 */
void
mnist_consumer_message_error(MnistConsumer *tc, const rd_kafka_message_t *msg, const char *topic)
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
void
mnist_consumer_mark_read(MnistConsumer *tc, const rd_kafka_message_t *msg)
{
	if (msg->partition >= tc->npositions)
		consumer_grow_positions(tc, msg->partition + 1);
	tc->positions[msg->partition] = msg->offset + 1;
}

void
mnist_consumer_watermarks(MnistConsumer *tc, const char *topic, int32 partition,
						  TimestampTz start, int64 *low, int64 *high)
{
	rd_kafka_resp_err_t err;

	for (;;)
	{
		CHECK_FOR_INTERRUPTS();
		err = rd_kafka_query_watermark_offsets(tc->rk, topic, partition, low, high,
											   POLL_MS * 5);
		if (err != RD_KAFKA_RESP_ERR__TIMED_OUT ||
			mnist_consumer_elapsed_ms(start) >= mnist_kafka_timeout_ms)
			break;
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not read the offsets of partition %d of Kafka topic \"%s\": %s",
						partition, topic, rd_kafka_err2str(err))));
}

void
mnist_consumer_assign(MnistConsumer *tc, const char *topic,
					  rd_kafka_topic_partition_list_t *list)
{
	rd_kafka_resp_err_t err;

	rd_kafka_poll_set_consumer(tc->rk);
	err = rd_kafka_assign(tc->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("could not assign the partitions of Kafka topic \"%s\": %s",
						topic, rd_kafka_err2str(err))));
}

void
mnist_consumer_subscribe(MnistConsumer *tc, const char *topic)
{
	rd_kafka_topic_partition_list_t *topics;
	rd_kafka_resp_err_t err;

	rd_kafka_poll_set_consumer(tc->rk);
	topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(tc->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("could not subscribe to Kafka topic \"%s\": %s",
						topic, rd_kafka_err2str(err))));
}

const char *
mnist_consumer_decode(const rd_kafka_message_t *msg, uint8 *pixels, int *label)
{
	const char *reason;

	reason = mnist_pixels_csv_decode_label(msg->key, msg->key_len, label);
	if (reason == NULL)
		reason = mnist_pixels_csv_decode(msg->payload, msg->len, pixels);
	return reason;
}

/*
 * kafka_consumer.h
 *		The consumer of a backend's call, over a handle of kafka_handle.h: owned by a resource
 *		owner, group membership or assignment by hand, polls with bounded waits, the offsets a
 *		call read and their commit, leaving the group, and what a consumer error means for a
 *		call.  No SQL-function code: topic_sql.c is its user.
 *
 * Terms.  A consumer is owned by the resource owner current when it was made: an error or a
 * cancel releases that owner, which makes the consumer leave its group (within a second) and
 * destroys it, committing nothing.  A position is the next offset of a partition the call has
 * read (-1: nothing read); a group consumer resumes at it after a rebalance and commits
 * exactly the positions.  librdkafka's callbacks run inside our polls, in this thread, and
 * only record into the consumer; every poll then reports what they recorded.
 */
#ifndef MNIST_KAFKA_CONSUMER_H
#define MNIST_KAFKA_CONSUMER_H

#include "datatype/timestamp.h"
#include "utils/resowner.h"

#include "kafka_handle.h"

/* A consumer: its handle (with what librdkafka's callbacks recorded) and its call's state. */
typedef struct MnistConsumer
{
	MnistKafkaHandle *h;
	rd_kafka_queue_t *queue;	/* private queue for commit and close, or NULL */
	rd_kafka_message_t *msg;	/* the message being handled, or NULL */
	ResourceOwner owner;		/* destroyed when this owner is released */
	struct MnistConsumer *next; /* list of open consumers */

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
} MnistConsumer;

/*
 * A new consumer for servers (NULL: the setting).  group_id NULL: no group (partitions are
 * assigned by hand, end of partition reported).  Owned by the current resource owner.
 */
extern MnistConsumer *mnist_consumer_create(const char *servers, const char *group_id);

/*
 * Fetches metadata until the broker answers, ERROR naming the servers after
 * mnist_ml.kafka_timeout_ms.  Returns the partition count of topic, 0 if it does not exist.
 */
extern int	mnist_consumer_wait_broker(MnistConsumer *tc, const char *servers, const char *topic);

/*
 * The low and high watermarks of a partition; ERROR when the broker does not tell them
 * within mnist_ml.kafka_timeout_ms after start.
 */
extern void mnist_consumer_watermarks(MnistConsumer *tc, const char *topic, int32 partition,
									  TimestampTz start, int64 *low, int64 *high);

/* Reads n partitions of topic, partitions[i] from offsets[i]; no group. */
extern void mnist_consumer_assign(MnistConsumer *tc, const char *topic, int n,
								  const int32 *partitions, const int64 *offsets);

/* Joins the consumer's group on topic. */
extern void mnist_consumer_subscribe(MnistConsumer *tc, const char *topic);

/*
 * The next message or event (NULL after a short wait without one), freed by the next poll or
 * by the consumer's destruction; recorded errors are raised.  Calls CHECK_FOR_INTERRUPTS.
 */
extern rd_kafka_message_t *mnist_consumer_poll(MnistConsumer *tc);

/*
 * A consumer error event: recorded (tc->h->last_error) when librdkafka recovers by itself,
 * ERROR when retrying cannot fix it.
 */
extern void mnist_consumer_message_error(MnistConsumer *tc, const rd_kafka_message_t *msg,
										 const char *topic);

/* Records msg as read: its partition's position becomes its offset + 1. */
extern void mnist_consumer_mark_read(MnistConsumer *tc, const rd_kafka_message_t *msg);

/*
 * Commits the positions read.  What a rebalance explains is retried, for at most
 * mnist_ml.kafka_timeout_ms in all; ERROR when the commit fails.
 */
extern void mnist_consumer_commit(MnistConsumer *tc, const char *topic);

/* Leaves the group (bounded wait) and destroys the consumer: the successful path. */
extern void mnist_consumer_close(MnistConsumer *tc);

/* Milliseconds elapsed since start. */
extern int64 mnist_consumer_elapsed_ms(TimestampTz start);

#endif							/* MNIST_KAFKA_CONSUMER_H */

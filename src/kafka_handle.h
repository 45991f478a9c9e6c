/*
 * kafka_handle.h
 *		A librdkafka consumer handle: its creation from the settings, its callbacks, the
 *		metadata, watermarks and assignment of a topic's partitions, the one classification of
 *		librdkafka's errors, and a message decoded as a labelled image.  No resource owner: the
 *		topic functions hold a handle through kafka_consumer.c, the online worker holds its
 *		own across transactions.
 *
 * Terms.  A handle is malloc'd with its rd_kafka_t and freed by mnist_kafka_handle_destroy or
 * mnist_kafka_handle_destroy_detached, so it may outlive any memory context.  librdkafka's
 * callbacks run inside the handle's polls, in the polling thread, and only record into the
 * handle; mnist_kafka_handle_report then reports what they recorded.  The operations return
 * librdkafka error codes: the caller decides whether an error waits, pauses or raises.
 * Error classes:
 *   - transport: no broker reachable (down, refused, not resolved); waiting may fix it;
 *   - authentication: the broker refused the credentials; retrying cannot fix it;
 *   - fatal: the client is unusable;
 *   - other: librdkafka recovers by itself (a rebalance, a leader moving, a topic not made yet).
 */
#ifndef MNIST_KAFKA_HANDLE_H
#define MNIST_KAFKA_HANDLE_H

#include <librdkafka/rdkafka.h>

/* librdkafka log lines kept between two reports */
#define MNIST_KAFKA_LOG_SLOTS 16

typedef enum MnistKafkaErrorClass
{
	MNIST_KAFKA_ERROR_OTHER,
	MNIST_KAFKA_ERROR_TRANSPORT,
	MNIST_KAFKA_ERROR_AUTHENTICATION,
	MNIST_KAFKA_ERROR_FATAL
} MnistKafkaErrorClass;

/* The rebalance callback of a group consumer; opaque is the handle's user pointer. */
typedef void (*MnistKafkaRebalanceFn) (rd_kafka_t *rk, rd_kafka_resp_err_t err,
									   rd_kafka_topic_partition_list_t *partitions, void *user);

typedef struct MnistKafkaHandle
{
	rd_kafka_t *rk;
	void	   *user;			/* the caller's object, passed to the rebalance callback */
	MnistKafkaRebalanceFn rebalance;
	rd_kafka_queue_t **queues;	/* with split queues: one per partition, else NULL */
	int			nqueues;

	/* written by callbacks (in the polling thread), read after polls */
	bool		fatal;
	bool		broker_down;	/* a transport error since mnist_kafka_handle_clear_down */
	char		auth_error[256];	/* why the broker refused our credentials, or "" */
	char		transport_error[256];	/* the last transport error */
	char		last_error[256];	/* the last error of any class */
	int			nlogs;
	int			dropped_logs;
	int			log_level[MNIST_KAFKA_LOG_SLOTS];
	char		log_line[MNIST_KAFKA_LOG_SLOTS][256];
} MnistKafkaHandle;

/* The class of a librdkafka error code (see the banner). */
extern MnistKafkaErrorClass mnist_kafka_error_class(rd_kafka_resp_err_t err);

/*
 * A new consumer for servers (NULL: the setting): mnist_kafka_conf(servers, defaults), then
 * the forced properties (key, value, ..., NULL), the handle's callbacks (rebalance NULL: none)
 * and its logs served by its polls.  ERROR (SQLSTATE, no handle left) when it cannot be made.
 */
extern MnistKafkaHandle *mnist_kafka_handle_create(const char *servers, const char *defaults,
												   const char *const *forced,
												   MnistKafkaRebalanceFn rebalance, void *user);

/* An integer property as librdkafka uses it (the user's value or its default). */
extern int	mnist_kafka_handle_conf_int(MnistKafkaHandle *h, const char *key);

/*
 * Reports what the callbacks recorded: the log lines to the server log (DEBUG levels), and an
 * authentication (SQLSTATE 28000, with a hint) or fatal error (08006) as an ERROR.
 */
extern void mnist_kafka_handle_report(MnistKafkaHandle *h);

/* Clears the transport error recorded (the broker answered since). */
extern void mnist_kafka_handle_clear_down(MnistKafkaHandle *h);

/*
 * The partitions of topic by a metadata request of at most timeout_ms: *n is their count,
 * 0 when the topic does not exist, -1 when the broker knows it but has an error for it.
 */
extern rd_kafka_resp_err_t mnist_kafka_handle_partitions(MnistKafkaHandle *h, const char *topic,
														 int timeout_ms, int *n);

/* The low and high watermarks of a partition, asked for at most timeout_ms. */
extern rd_kafka_resp_err_t mnist_kafka_handle_watermarks(MnistKafkaHandle *h, const char *topic,
														 int32_t partition, int timeout_ms,
														 int64_t *low, int64_t *high);

/*
 * The ends (high watermarks) of partitions 0 .. n - 1 in one request (-1 where the broker
 * did not tell).
 */
extern rd_kafka_resp_err_t mnist_kafka_handle_ends(MnistKafkaHandle *h, const char *topic, int n,
												   int timeout_ms, int64_t *ends);

/*
 * Reads n partitions of topic, no group: partitions[i] (NULL: partition i) from offsets[i].
 * split (partitions NULL): each partition's messages on a queue of its own
 * (mnist_kafka_handle_consume_partition).
 */
extern rd_kafka_resp_err_t mnist_kafka_handle_assign(MnistKafkaHandle *h, const char *topic, int n,
													 const int32_t *partitions,
													 const int64_t *offsets, bool split);

/* Joins the handle's group on topic. */
extern rd_kafka_resp_err_t mnist_kafka_handle_subscribe(MnistKafkaHandle *h, const char *topic);

/*
 * Serves the callbacks before an assignment or subscription (afterwards mnist_kafka_handle_poll
 * does): what they record is for mnist_kafka_handle_report.
 */
extern void mnist_kafka_handle_serve(MnistKafkaHandle *h);

/* The next message or event (NULL after timeout_ms without one); serves the callbacks. */
extern rd_kafka_message_t *mnist_kafka_handle_poll(MnistKafkaHandle *h, int timeout_ms);

/* The next message of a partition's own queue (split assignment), NULL: none now. */
extern rd_kafka_message_t *mnist_kafka_handle_consume_partition(MnistKafkaHandle *h, int partition);

/* Destroys the handle at once, not leaving its group (the caller left it, or gives up). */
extern void mnist_kafka_handle_destroy(MnistKafkaHandle *h);

/*
 * Closes and destroys the handle in a thread of its own, with every signal blocked:
 * librdkafka 2.0's rd_kafka_destroy can wait forever once the consumer met a deleted topic
 * (librdkafka issue 3007), and must then hold up nothing of the caller.
 */
extern void mnist_kafka_handle_destroy_detached(MnistKafkaHandle *h);

/*
 * A message as a labelled image: the key is the label, the value the pixels as CSV
 * (pixels_csv.h).  Returns NULL, or a static text saying what is wrong.  Plain: no ERROR.
 */
extern const char *mnist_kafka_decode(const rd_kafka_message_t *msg, unsigned char *pixels,
									  int *label);

#endif							/* MNIST_KAFKA_HANDLE_H */

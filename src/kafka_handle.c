/*
 * kafka_handle.c
 *		The librdkafka consumer handle every consumer of the extension uses (the topic
 *		functions through kafka_consumer.c, the online worker directly): creation from the
 *		settings, callbacks that only record, metadata, watermarks, assignment, destruction
 *		(also in a thread of its own), the one classification of librdkafka's errors, and a
 *		message decoded as a labelled image.  Terms are defined in kafka_handle.h.
 *
 * No resource owner and no transaction here: a handle is malloc'd and lives until its owner
 * destroys it.  librdkafka's threads never call PostgreSQL: the callbacks run inside the
 * handle's polls and only record; mnist_kafka_handle_report turns the record into log lines
 * and errors in the calling backend.
 */
#include "postgres.h"

#include <pthread.h>
#include <signal.h>

#include "kafka_conf.h"
#include "kafka_handle.h"
#include "pixels_csv.h"

MnistKafkaErrorClass
mnist_kafka_error_class(rd_kafka_resp_err_t err)
{
	switch (err)
	{
		case RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN:
		case RD_KAFKA_RESP_ERR__TRANSPORT:
		case RD_KAFKA_RESP_ERR__RESOLVE:
			return MNIST_KAFKA_ERROR_TRANSPORT;
		case RD_KAFKA_RESP_ERR__AUTHENTICATION:
		case RD_KAFKA_RESP_ERR_SASL_AUTHENTICATION_FAILED:
			return MNIST_KAFKA_ERROR_AUTHENTICATION;
		case RD_KAFKA_RESP_ERR__FATAL:
			return MNIST_KAFKA_ERROR_FATAL;
		default:
			return MNIST_KAFKA_ERROR_OTHER;
	}
}

/* ---- callbacks: record only ---- */

static void
handle_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	MnistKafkaHandle *h = (MnistKafkaHandle *) opaque;

	strlcpy(h->last_error, reason, sizeof(h->last_error));
	switch (mnist_kafka_error_class(err))
	{
		case MNIST_KAFKA_ERROR_TRANSPORT:
			h->broker_down = true;
			strlcpy(h->transport_error, reason, sizeof(h->transport_error));
			break;
		case MNIST_KAFKA_ERROR_AUTHENTICATION:
			strlcpy(h->auth_error, reason, sizeof(h->auth_error));
			break;
		case MNIST_KAFKA_ERROR_FATAL:
			h->fatal = true;
			break;
		case MNIST_KAFKA_ERROR_OTHER:
			break;
	}
}

static void
handle_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	MnistKafkaHandle *h = (MnistKafkaHandle *) rd_kafka_opaque(rk);

	if (h->nlogs == MNIST_KAFKA_LOG_SLOTS)
	{
		h->dropped_logs++;
		return;
	}
	h->log_level[h->nlogs] = level;
	snprintf(h->log_line[h->nlogs], sizeof(h->log_line[0]), "%s: %s", fac, buf);
	h->nlogs++;
}

static void
handle_rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
					rd_kafka_topic_partition_list_t *partitions, void *opaque)
{
	MnistKafkaHandle *h = (MnistKafkaHandle *) opaque;

	h->rebalance(rk, err, partitions, h->user);
}

/* ---- lifetime ---- */

MnistKafkaHandle *
mnist_kafka_handle_create(const char *servers, const char *defaults, const char *const *forced,
						  MnistKafkaRebalanceFn rebalance, void *user)
{
	rd_kafka_conf_t *conf = mnist_kafka_consumer_conf(servers, defaults);
	MnistKafkaHandle *h;
	char		errstr[512];

	for (int i = 0; forced && forced[i]; i += 2)
		mnist_kafka_conf_set(conf, forced[i], forced[i + 1]);
	/* logs are served by the handle's polls, in the polling thread */
	mnist_kafka_conf_set(conf, "log.queue", "true");

	h = calloc(1, sizeof(MnistKafkaHandle));
	if (h == NULL)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_OUT_OF_MEMORY),
				 errmsg("out of memory")));
	}
	h->user = user;
	h->rebalance = rebalance;
	rd_kafka_conf_set_opaque(conf, h);
	rd_kafka_conf_set_error_cb(conf, handle_error_cb);
	rd_kafka_conf_set_log_cb(conf, handle_log_cb);
	if (rebalance)
		rd_kafka_conf_set_rebalance_cb(conf, handle_rebalance_cb);

	h->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (h->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		free(h);
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not create Kafka consumer: %s", errstr),
				 errhint("Check mnist_ml.kafka_properties and mnist_ml.kafka_properties_file.")));
	}
	rd_kafka_set_log_queue(h->rk, NULL);
	return h;
}

int
mnist_kafka_handle_conf_int(MnistKafkaHandle *h, const char *key)
{
	char		value[64];
	size_t		size = sizeof(value);

	if (rd_kafka_conf_get(rd_kafka_conf(h->rk), key, value, &size) != RD_KAFKA_CONF_OK)
		elog(ERROR, "librdkafka has no property \"%s\"", key);
	return atoi(value);
}

/* Empties and drops the partitions' own queues: a message left in one holds the consumer up. */
static void
handle_drop_queues(MnistKafkaHandle *h)
{
	rd_kafka_message_t *msg;

	for (int p = 0; p < h->nqueues; p++)
	{
		while ((msg = rd_kafka_consume_queue(h->queues[p], 0)) != NULL)
			rd_kafka_message_destroy(msg);
		rd_kafka_queue_destroy(h->queues[p]);
	}
	free(h->queues);
	h->queues = NULL;
	h->nqueues = 0;
}

void
mnist_kafka_handle_destroy(MnistKafkaHandle *h)
{
	handle_drop_queues(h);
	rd_kafka_destroy_flags(h->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
	free(h);
}

/* mnist_kafka_handle_destroy_detached's thread: librdkafka calls only, never PostgreSQL's. */
static void *
handle_destroy_main(void *arg)
{
	MnistKafkaHandle *h = (MnistKafkaHandle *) arg;

	rd_kafka_assign(h->rk, NULL);
	rd_kafka_consumer_close(h->rk);
	rd_kafka_destroy(h->rk);
	free(h);
	return NULL;
}

void
mnist_kafka_handle_destroy_detached(MnistKafkaHandle *h)
{
	pthread_t	thread;
	pthread_attr_t attr;
	sigset_t	all,
				old;
	int			rc;

	handle_drop_queues(h);
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	rc = pthread_create(&thread, &attr, handle_destroy_main, h);
	pthread_attr_destroy(&attr);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc != 0)
		handle_destroy_main(h);
}

/* ---- what the callbacks recorded ---- */

void
mnist_kafka_handle_report(MnistKafkaHandle *h)
{
	for (int i = 0; i < h->nlogs; i++)
		elog(h->log_level[i] <= 4 ? DEBUG1 : DEBUG2, "librdkafka: %s", h->log_line[i]);
	if (h->dropped_logs)
		elog(DEBUG2, "librdkafka: %d log lines dropped", h->dropped_logs);
	h->nlogs = 0;
	h->dropped_logs = 0;

	if (h->auth_error[0] != '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_AUTHORIZATION_SPECIFICATION),
				 errmsg("authentication to the Kafka broker failed"),
				 errdetail("%s", h->auth_error),
				 errhint("Check the security.protocol, sasl.* and ssl.* properties of mnist_ml.kafka_properties_file.")));
	if (h->fatal)
	{
		char		errstr[256];
		rd_kafka_resp_err_t err = rd_kafka_fatal_error(h->rk, errstr, sizeof(errstr));

		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("Kafka consumer failed: %s", rd_kafka_err2str(err)),
				 errdetail("%s", errstr)));
	}
}

void
mnist_kafka_handle_clear_down(MnistKafkaHandle *h)
{
	h->broker_down = false;
}

/* ---- topics and partitions ---- */

rd_kafka_resp_err_t
mnist_kafka_handle_partitions(MnistKafkaHandle *h, const char *topic, int timeout_ms, int *n)
{
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(h->rk, topic, NULL);
	const struct rd_kafka_metadata *md;
	rd_kafka_resp_err_t err;

	*n = -1;
	if (rkt == NULL)
		return rd_kafka_last_error();
	err = rd_kafka_metadata(h->rk, 0, rkt, &md, timeout_ms);
	rd_kafka_topic_destroy(rkt);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		return err;
	if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
		*n = 0;
	else if (md->topic_cnt == 1 && md->topics[0].err == RD_KAFKA_RESP_ERR_NO_ERROR)
		*n = md->topics[0].partition_cnt;
	rd_kafka_metadata_destroy(md);
	return RD_KAFKA_RESP_ERR_NO_ERROR;
}

rd_kafka_resp_err_t
mnist_kafka_handle_watermarks(MnistKafkaHandle *h, const char *topic, int32_t partition,
							  int timeout_ms, int64_t *low, int64_t *high)
{
	return rd_kafka_query_watermark_offsets(h->rk, topic, partition, low, high, timeout_ms);
}

rd_kafka_resp_err_t
mnist_kafka_handle_ends(MnistKafkaHandle *h, const char *topic, int n, int timeout_ms,
						int64_t *ends)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(n);
	rd_kafka_resp_err_t err;

	for (int p = 0; p < n; p++)
	{
		rd_kafka_topic_partition_list_add(list, topic, p)->offset = RD_KAFKA_OFFSET_END;
		ends[p] = -1;
	}
	/* ListOffsets for the timestamp "latest" */
	err = rd_kafka_offsets_for_times(h->rk, list, timeout_ms);
	for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < list->cnt; i++)
		if (list->elems[i].err == RD_KAFKA_RESP_ERR_NO_ERROR && list->elems[i].offset >= 0 &&
			list->elems[i].partition >= 0 && list->elems[i].partition < n)
			ends[list->elems[i].partition] = list->elems[i].offset;
	rd_kafka_topic_partition_list_destroy(list);
	return err;
}

rd_kafka_resp_err_t
mnist_kafka_handle_assign(MnistKafkaHandle *h, const char *topic, int n, const int32_t *partitions,
						  const int64_t *offsets, bool split)
{
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(Max(n, 1));
	rd_kafka_resp_err_t err;

	for (int i = 0; i < n; i++)
		rd_kafka_topic_partition_list_add(list, topic, partitions ? partitions[i] : i)->offset =
			offsets[i];
	rd_kafka_poll_set_consumer(h->rk);
	err = rd_kafka_assign(h->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR && split && partitions == NULL && n > 0)
	{
		/* each partition's messages on a queue of their own, so a reader takes from all evenly */
		h->queues = calloc(n, sizeof(rd_kafka_queue_t *));
		if (h->queues == NULL)
			err = RD_KAFKA_RESP_ERR__FAIL;
		for (int p = 0; h->queues && p < n; p++)
		{
			h->queues[p] = rd_kafka_queue_get_partition(h->rk, topic, p);
			rd_kafka_queue_forward(h->queues[p], NULL);
			h->nqueues++;
		}
	}
	return err;
}

rd_kafka_resp_err_t
mnist_kafka_handle_subscribe(MnistKafkaHandle *h, const char *topic)
{
	rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new(1);
	rd_kafka_resp_err_t err;

	rd_kafka_poll_set_consumer(h->rk);
	rd_kafka_topic_partition_list_add(topics, topic, RD_KAFKA_PARTITION_UA);
	err = rd_kafka_subscribe(h->rk, topics);
	rd_kafka_topic_partition_list_destroy(topics);
	return err;
}

void
mnist_kafka_handle_serve(MnistKafkaHandle *h)
{
	rd_kafka_poll(h->rk, 0);
}

rd_kafka_message_t *
mnist_kafka_handle_poll(MnistKafkaHandle *h, int timeout_ms)
{
	return rd_kafka_consumer_poll(h->rk, timeout_ms);
}

rd_kafka_message_t *
mnist_kafka_handle_consume_partition(MnistKafkaHandle *h, int partition)
{
	if (partition < 0 || partition >= h->nqueues)
		return NULL;
	return rd_kafka_consume_queue(h->queues[partition], 0);
}

const char *
mnist_kafka_decode(const rd_kafka_message_t *msg, unsigned char *pixels, int *label)
{
	const char *reason;

	reason = mnist_pixels_csv_decode_label(msg->key, msg->key_len, label);
	if (reason == NULL)
		reason = mnist_pixels_csv_decode(msg->payload, msg->len, pixels);
	return reason;
}

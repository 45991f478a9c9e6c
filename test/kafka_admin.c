/*
 * kafka_admin.c
 *		The test harness's admin client for a real Kafka cluster (librdkafka's Admin API), so a
 *		test creates a topic or reads its watermarks in milliseconds instead of a JVM start.
 *
 *	kafka_admin BOOTSTRAP create TOPIC PARTITIONS [REPLICATION [KEY=VALUE ...]]
 *		creates the topic (replication factor 1 unless given; KEY=VALUE are topic configs such
 *		as min.insync.replicas=2) and waits until every partition has a leader; an existing
 *		topic is an error
 *	kafka_admin BOOTSTRAP watermarks TOPIC
 *		prints "partition:low:high" for every partition, space separated; a missing topic is
 *		an error
 *	kafka_admin BOOTSTRAP leader TOPIC PARTITION
 *		prints the broker id leading the partition (-1 while none does)
 *	kafka_admin BOOTSTRAP partitions TOPIC COUNT
 *		grows the topic to COUNT partitions (CreatePartitions) and waits until each has a leader
 *	kafka_admin BOOTSTRAP delete-records TOPIC PARTITION OFFSET
 *		deletes the partition's messages before OFFSET (DeleteRecords: the log start moves to
 *		OFFSET, as retention does)
 *	kafka_admin BOOTSTRAP delete-topic TOPIC
 *		deletes the topic (DeleteTopics) and waits until the broker no longer knows it
 *
 * Exit status 0 on success, 1 with one line on stderr otherwise.  Every wait is bounded by
 * KAFKA_ADMIN_TIMEOUT_MS (default 30000).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>

static int	timeout_ms = 30000;

static void
die(const char *fmt,...) __attribute__((format(printf, 1, 2), noreturn));

static void
die(const char *fmt,...)
{
	va_list		ap;

	fprintf(stderr, "kafka_admin: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

static long
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000;
}

/* The topic's metadata, or NULL when the broker does not know it (error: exits). */
static const rd_kafka_metadata_t *
topic_metadata(rd_kafka_t *rk, const char *topic, const rd_kafka_metadata_topic_t **t)
{
	const rd_kafka_metadata_t *md;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);

	rd_kafka_topic_destroy(rkt);
	if (err)
		die("metadata of %s: %s", topic, rd_kafka_err2str(err));
	*t = &md->topics[0];
	if ((*t)->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART || (*t)->partition_cnt == 0)
	{
		rd_kafka_metadata_destroy(md);
		return NULL;
	}
	if ((*t)->err)
		die("metadata of %s: %s", topic, rd_kafka_err2str((*t)->err));
	return md;
}

/* Waits (bounded) until the topic has that many partitions, each with a leader. */
static void
wait_partitions(rd_kafka_t *rk, const char *topic, int partitions)
{
	long		start = now_ms();

	for (;;)
	{
		const rd_kafka_metadata_topic_t *t;
		const rd_kafka_metadata_t *md = topic_metadata(rk, topic, &t);
		int			led = 0;

		if (md)
		{
			for (int p = 0; p < t->partition_cnt; p++)
				led += t->partitions[p].leader >= 0;
			if (t->partition_cnt != partitions)
				led = -1;
			rd_kafka_metadata_destroy(md);
		}
		if (led == partitions)
			return;
		if (now_ms() - start > timeout_ms)
			die("%s: not %d partitions with a leader after %d ms", topic, partitions, timeout_ms);
		usleep(50 * 1000);
	}
}

static void
create_topic(rd_kafka_t *rk, const char *topic, int partitions, int replication,
			 char **configs, int nconfigs)
{
	char		errstr[512];
	rd_kafka_NewTopic_t *nt;
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev;
	const rd_kafka_CreateTopics_result_t *res;
	const rd_kafka_topic_result_t **results;
	size_t		n;

	if (partitions < 1)
		die("%s: the partition count must be at least 1", topic);
	nt = rd_kafka_NewTopic_new(topic, partitions, replication, errstr, sizeof(errstr));
	if (nt == NULL)
		die("%s: %s", topic, errstr);
	for (int i = 0; i < nconfigs; i++)
	{
		char	   *eq = strchr(configs[i], '=');

		if (eq == NULL)
			die("%s: topic config \"%s\" is not KEY=VALUE", topic, configs[i]);
		*eq = '\0';
		if (rd_kafka_NewTopic_set_config(nt, configs[i], eq + 1))
			die("%s: bad topic config %s", topic, configs[i]);
	}
	rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
	ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	if (ev == NULL)
		die("%s: no answer to CreateTopics", topic);
	if (rd_kafka_event_error(ev))
		die("%s: %s", topic, rd_kafka_event_error_string(ev));
	res = rd_kafka_event_CreateTopics_result(ev);
	results = rd_kafka_CreateTopics_result_topics(res, &n);
	if (n != 1)
		die("%s: no result for the topic", topic);
	if (rd_kafka_topic_result_error(results[0]))
		die("%s: %s", topic, rd_kafka_topic_result_error_string(results[0]));
	rd_kafka_event_destroy(ev);
	rd_kafka_NewTopic_destroy(nt);
	rd_kafka_queue_destroy(q);
	/* created in the controller: wait until the broker serves every partition */
	wait_partitions(rk, topic, partitions);
}

/* Waits (bounded) for an admin request's result event; exits on a request-level error. */
static rd_kafka_event_t *
admin_result(rd_kafka_queue_t *q, const char *what, const char *topic)
{
	rd_kafka_event_t *ev = rd_kafka_queue_poll(q, timeout_ms + 1000);

	if (ev == NULL)
		die("%s: no answer to %s", topic, what);
	if (rd_kafka_event_error(ev))
		die("%s: %s: %s", topic, what, rd_kafka_event_error_string(ev));
	return ev;
}

static void
add_partitions(rd_kafka_t *rk, const char *topic, int count)
{
	char		errstr[512];
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_NewPartitions_t *np = rd_kafka_NewPartitions_new(topic, count, errstr, sizeof(errstr));
	rd_kafka_event_t *ev;
	const rd_kafka_topic_result_t **results;
	size_t		n;

	if (np == NULL)
		die("%s: %s", topic, errstr);
	rd_kafka_CreatePartitions(rk, &np, 1, NULL, q);
	ev = admin_result(q, "CreatePartitions", topic);
	results = rd_kafka_CreatePartitions_result_topics(rd_kafka_event_CreatePartitions_result(ev), &n);
	if (n != 1 || rd_kafka_topic_result_error(results[0]))
		die("%s: %s", topic, n == 1 ? rd_kafka_topic_result_error_string(results[0]) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_NewPartitions_destroy(np);
	rd_kafka_queue_destroy(q);
	wait_partitions(rk, topic, count);
}

static void
delete_records(rd_kafka_t *rk, const char *topic, int partition, long long offset)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new(1);
	rd_kafka_DeleteRecords_t *del;
	rd_kafka_event_t *ev;
	const rd_kafka_topic_partition_list_t *res;

	rd_kafka_topic_partition_list_add(list, topic, partition)->offset = offset;
	del = rd_kafka_DeleteRecords_new(list);
	rd_kafka_DeleteRecords(rk, &del, 1, NULL, q);
	ev = admin_result(q, "DeleteRecords", topic);
	res = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
	if (res == NULL || res->cnt != 1 || res->elems[0].err)
		die("%s: DeleteRecords: %s", topic, res && res->cnt == 1 ? rd_kafka_err2str(res->elems[0].err) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_DeleteRecords_destroy(del);
	rd_kafka_topic_partition_list_destroy(list);
	rd_kafka_queue_destroy(q);
}

static void
delete_topic(rd_kafka_t *rk, const char *topic)
{
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_DeleteTopic_t *dt = rd_kafka_DeleteTopic_new(topic);
	rd_kafka_event_t *ev;
	const rd_kafka_topic_result_t **results;
	size_t		n;
	long		start = now_ms();

	rd_kafka_DeleteTopics(rk, &dt, 1, NULL, q);
	ev = admin_result(q, "DeleteTopics", topic);
	results = rd_kafka_DeleteTopics_result_topics(rd_kafka_event_DeleteTopics_result(ev), &n);
	if (n != 1 || rd_kafka_topic_result_error(results[0]))
		die("%s: %s", topic, n == 1 ? rd_kafka_topic_result_error_string(results[0]) : "no result");
	rd_kafka_event_destroy(ev);
	rd_kafka_DeleteTopic_destroy(dt);
	rd_kafka_queue_destroy(q);
	for (;;)
	{
		const rd_kafka_metadata_topic_t *t;
		const rd_kafka_metadata_t *md = topic_metadata(rk, topic, &t);

		if (md == NULL)
			return;
		rd_kafka_metadata_destroy(md);
		if (now_ms() - start > timeout_ms)
			die("%s: deleted, but still known after %d ms", topic, timeout_ms);
		usleep(50 * 1000);
	}
}

static void
watermarks(rd_kafka_t *rk, const char *topic)
{
	const rd_kafka_metadata_topic_t *t;
	const rd_kafka_metadata_t *md = topic_metadata(rk, topic, &t);

	if (md == NULL)
		die("topic %s does not exist", topic);
	for (int p = 0; p < t->partition_cnt; p++)
	{
		int64_t		lo,
					hi;
		long		start = now_ms();
		rd_kafka_resp_err_t err;

		/* a partition between leaders (a broker just restarted or thawed) answers later */
		while ((err = rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_ms)) != 0 &&
			   (err == RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION ||
				err == RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE ||
				err == RD_KAFKA_RESP_ERR__TRANSPORT ||
				err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) &&
			   now_ms() - start < timeout_ms)
			usleep(100 * 1000);
		if (err)
			die("watermarks of %s: %s", topic, rd_kafka_err2str(err));
		printf("%s%d:%lld:%lld", p ? " " : "", p, (long long) lo, (long long) hi);
	}
	printf("\n");
	rd_kafka_metadata_destroy(md);
}

static void
leader(rd_kafka_t *rk, const char *topic, int partition)
{
	const rd_kafka_metadata_topic_t *t;
	const rd_kafka_metadata_t *md = topic_metadata(rk, topic, &t);

	if (md == NULL)
		die("topic %s does not exist", topic);
	if (partition < 0 || partition >= t->partition_cnt)
		die("topic %s has no such partition", topic);
	printf("%d\n", (int) t->partitions[partition].leader);
	rd_kafka_metadata_destroy(md);
}

int
main(int argc, char **argv)
{
	char		errstr[512];
	rd_kafka_conf_t *conf;
	rd_kafka_t *rk;
	const char *env = getenv("KAFKA_ADMIN_TIMEOUT_MS");

	if (argc < 4)
	{
		fprintf(stderr, "usage: kafka_admin BOOTSTRAP create TOPIC PARTITIONS [REPLICATION [KEY=VALUE ...]]\n"
				"       kafka_admin BOOTSTRAP watermarks TOPIC\n"
				"       kafka_admin BOOTSTRAP leader TOPIC PARTITION\n"
				"       kafka_admin BOOTSTRAP partitions TOPIC COUNT\n"
				"       kafka_admin BOOTSTRAP delete-records TOPIC PARTITION OFFSET\n"
				"       kafka_admin BOOTSTRAP delete-topic TOPIC\n");
		return 1;
	}
	if (env)
		timeout_ms = atoi(env);

	conf = rd_kafka_conf_new();
	if (rd_kafka_conf_set(conf, "bootstrap.servers", argv[1], errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "allow.auto.create.topics", "false", errstr, sizeof(errstr)) ||
		rd_kafka_conf_set(conf, "log_level", "0", errstr, sizeof(errstr)))
		die("%s", errstr);
	/* a producer handle: no group, and it can query watermarks and run admin requests */
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		die("%s", errstr);

	if (strcmp(argv[2], "create") == 0 && argc >= 5)
		create_topic(rk, argv[3], atoi(argv[4]), argc >= 6 ? atoi(argv[5]) : 1,
					 argv + 6, argc > 6 ? argc - 6 : 0);
	else if (strcmp(argv[2], "watermarks") == 0 && argc == 4)
		watermarks(rk, argv[3]);
	else if (strcmp(argv[2], "leader") == 0 && argc == 5)
		leader(rk, argv[3], atoi(argv[4]));
	else if (strcmp(argv[2], "partitions") == 0 && argc == 5)
		add_partitions(rk, argv[3], atoi(argv[4]));
	else if (strcmp(argv[2], "delete-records") == 0 && argc == 6)
		delete_records(rk, argv[3], atoi(argv[4]), atoll(argv[5]));
	else if (strcmp(argv[2], "delete-topic") == 0 && argc == 4)
		delete_topic(rk, argv[3]);
	else
		die("unknown command or wrong arguments: %s", argv[2]);

	rd_kafka_destroy(rk);
	return 0;
}

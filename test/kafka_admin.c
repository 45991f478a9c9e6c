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
	long		start = now_ms();

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
	for (;;)
	{
		const rd_kafka_metadata_topic_t *t;
		const rd_kafka_metadata_t *md = topic_metadata(rk, topic, &t);
		int			led = 0;

		if (md)
		{
			for (int p = 0; p < t->partition_cnt; p++)
				led += t->partitions[p].leader >= 0;
			rd_kafka_metadata_destroy(md);
			if (led == partitions)
				return;
		}
		if (now_ms() - start > timeout_ms)
			die("%s: created, but not every partition has a leader yet", topic);
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
				"       kafka_admin BOOTSTRAP leader TOPIC PARTITION\n");
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
	else
		die("unknown command or wrong arguments: %s", argv[2]);

	rd_kafka_destroy(rk);
	return 0;
}

/*
 * mock_broker.c
 *		A standalone Kafka-protocol broker for tests and the demo: librdkafka's
 *		mock cluster listening on loopback, driven by line commands on stdin.
 *
 * Usage: mock_broker [-b BROKERS]
 *
 * Prints the bootstrap address ("127.0.0.1:PORT[,...]") as its first line on
 * stdout, then reads one command per line from stdin and answers each with
 * one line, "ok" or "error <message>":
 *
 *		create TOPIC PARTITIONS	create a topic (fails if it already exists)
 *		watermarks TOPIC		answer "ok P:LOW:HIGH ..." for each partition
 *								(LOW > 0: the mock dropped older messages)
 *		down					disconnect all brokers and refuse connections
 *		up						accept connections again
 *		ping					just answer
 *		quit					stop (so do end of input, SIGINT and SIGTERM)
 *
 * A command may start with "@TAG "; its answer then starts with "@TAG " too,
 * so that several clients writing into one FIFO can find their own answers.
 *
 * Limits of librdkafka 2.0.2's mock cluster that tests must respect: each
 * partition keeps at most 5 MiB (and 100,000 message sets) and silently drops
 * older data; there is no Admin API (create topics here, or let producers
 * auto-create them with 4 partitions); a consumer group rejoins slowly
 * unless session.timeout.ms is small.
 *
 * Built by test/lib.sh: gcc -O2 -Wall -Wextra -o test/mock_broker
 * test/mock_broker.c -lrdkafka
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#define QUERY_TIMEOUT_MS 5000
#define REPLY_MAX 65536

static volatile sig_atomic_t stop_requested = 0;
static rd_kafka_t *query_client;

static void
handle_stop_signal(int signo)
{
	(void) signo;
	stop_requested = 1;
}

/* A producer handle (bootstrap may be NULL) logging at log_level and above. */
static rd_kafka_t *
new_handle(const char *bootstrap, const char *log_level)
{
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_t *rk;
	char		errstr[512];

	if (rd_kafka_conf_set(conf, "client.id", "mock_broker", errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		rd_kafka_conf_set(conf, "log_level", log_level, errstr,
						  sizeof(errstr)) != RD_KAFKA_CONF_OK ||
		(bootstrap != NULL &&
		 rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, errstr,
						   sizeof(errstr)) != RD_KAFKA_CONF_OK))
	{
		fprintf(stderr, "mock_broker: %s\n", errstr);
		rd_kafka_conf_destroy(conf);
		return NULL;
	}
	rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
	if (rk == NULL)
		fprintf(stderr, "mock_broker: could not create handle: %s\n", errstr);
	return rk;
}

/*
 * Answer "ok P:LOW:HIGH ..." for every partition of an existing topic, asking
 * the mock over the protocol like any client (without auto-creating it).
 */
static void
watermarks(rd_kafka_t *rk, const char *topic, char *reply, size_t replylen)
{
	const struct rd_kafka_metadata *md;
	const struct rd_kafka_metadata_topic *mt = NULL;
	rd_kafka_resp_err_t err;
	size_t		len;
	int			i;

	err = rd_kafka_metadata(rk, 1, NULL, &md, QUERY_TIMEOUT_MS);
	if (err)
	{
		snprintf(reply, replylen, "error metadata: %s", rd_kafka_err2str(err));
		return;
	}
	for (i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, topic) == 0)
			mt = &md->topics[i];
	if (mt == NULL || mt->err)
	{
		snprintf(reply, replylen, "error topic \"%s\" does not exist", topic);
		rd_kafka_metadata_destroy(md);
		return;
	}

	len = snprintf(reply, replylen, "ok");
	for (i = 0; i < mt->partition_cnt && len < replylen; i++)
	{
		int64_t		lo,
					hi;

		err = rd_kafka_query_watermark_offsets(rk, topic,
											   mt->partitions[i].id, &lo, &hi,
											   QUERY_TIMEOUT_MS);
		if (err)
		{
			snprintf(reply, replylen, "error partition %d: %s",
					 mt->partitions[i].id, rd_kafka_err2str(err));
			break;
		}
		len += snprintf(reply + len, replylen - len, " %d:%lld:%lld",
						mt->partitions[i].id, (long long) lo, (long long) hi);
	}
	if (len >= replylen)
		snprintf(reply, replylen, "error too many partitions");
	rd_kafka_metadata_destroy(md);
}

/* Run one command line; write the answer (without tag or newline) to reply. */
static void
run_command(rd_kafka_mock_cluster_t *mcluster, char *line,
			char *reply, size_t replylen, int *quit)
{
	char	   *argv[4];
	int			argc = 0;
	char	   *save = NULL;
	char	   *tok;
	rd_kafka_resp_err_t err;

	for (tok = strtok_r(line, " \t", &save); tok != NULL && argc < 4;
		 tok = strtok_r(NULL, " \t", &save))
		argv[argc++] = tok;

	if (argc == 0)
	{
		snprintf(reply, replylen, "error empty command");
		return;
	}

	if (strcmp(argv[0], "create") == 0)
	{
		char	   *end;
		long		parts;

		if (argc != 3)
		{
			snprintf(reply, replylen, "error usage: create TOPIC PARTITIONS");
			return;
		}
		parts = strtol(argv[2], &end, 10);
		if (*end != '\0' || parts < 1 || parts > 10000)
		{
			snprintf(reply, replylen, "error invalid partition count \"%s\"",
					 argv[2]);
			return;
		}
		err = rd_kafka_mock_topic_create(mcluster, argv[1], (int) parts, 1);
	}
	else if (strcmp(argv[0], "watermarks") == 0 && argc == 2)
	{
		watermarks(query_client, argv[1], reply, replylen);
		return;
	}
	else if (strcmp(argv[0], "down") == 0 && argc == 1)
		err = rd_kafka_mock_broker_set_down(mcluster, -1);
	else if (strcmp(argv[0], "up") == 0 && argc == 1)
		err = rd_kafka_mock_broker_set_up(mcluster, -1);
	else if (strcmp(argv[0], "ping") == 0 && argc == 1)
		err = RD_KAFKA_RESP_ERR_NO_ERROR;
	else if (strcmp(argv[0], "quit") == 0 && argc == 1)
	{
		*quit = 1;
		err = RD_KAFKA_RESP_ERR_NO_ERROR;
	}
	else
	{
		snprintf(reply, replylen,
				 "error unknown command \"%s\" (create TOPIC N, watermarks TOPIC, down, up, ping, quit)",
				 argv[0]);
		return;
	}

	if (err)
		snprintf(reply, replylen, "error %s", rd_kafka_err2str(err));
	else
		snprintf(reply, replylen, "ok");
}

/* Split a raw input line into its optional "@TAG" and the command, run it, answer. */
static void
handle_line(rd_kafka_mock_cluster_t *mcluster, char *line, int *quit)
{
	static char reply[REPLY_MAX];
	char	   *tag = NULL;
	size_t		len = strlen(line);

	while (len > 0 && isspace((unsigned char) line[len - 1]))
		line[--len] = '\0';
	while (isspace((unsigned char) *line))
		line++;
	if (*line == '\0')
		return;
	if (*line == '@')
	{
		tag = line;
		line += strcspn(line, " \t");
		if (*line != '\0')
			*line++ = '\0';
		while (isspace((unsigned char) *line))
			line++;
	}

	run_command(mcluster, line, reply, sizeof(reply), quit);
	if (tag)
		printf("%s %s\n", tag, reply);
	else
		printf("%s\n", reply);
	fflush(stdout);
}

int
main(int argc, char **argv)
{
	rd_kafka_t *rk;
	rd_kafka_mock_cluster_t *mcluster;
	char		buf[8192];
	size_t		used = 0;
	int			brokers = 1;
	int			quit = 0;
	int			opt;
	struct sigaction sa;

	while ((opt = getopt(argc, argv, "b:")) != -1)
	{
		if (opt == 'b' && atoi(optarg) >= 1)
			brokers = atoi(optarg);
		else
		{
			fprintf(stderr, "usage: %s [-b BROKERS]\n", argv[0]);
			return 2;
		}
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handle_stop_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* The mock cluster lives in (and is run by the threads of) this handle. */
	rk = new_handle(NULL, "4");
	if (rk == NULL)
		return 1;
	mcluster = rd_kafka_mock_cluster_new(rk, brokers);
	if (mcluster == NULL)
	{
		fprintf(stderr, "mock_broker: could not create mock cluster\n");
		rd_kafka_destroy(rk);
		return 1;
	}
	/* A client of the mock for "watermarks"; its errors go into the answers. */
	query_client = new_handle(rd_kafka_mock_cluster_bootstraps(mcluster), "2");
	if (query_client == NULL)
		return 1;

	printf("%s\n", rd_kafka_mock_cluster_bootstraps(mcluster));
	fflush(stdout);

	while (!quit && !stop_requested)
	{
		struct pollfd pfd = {.fd = STDIN_FILENO,.events = POLLIN};
		ssize_t		n;
		char	   *nl;

		if (poll(&pfd, 1, 500) < 0)
		{
			if (errno == EINTR)
				continue;
			perror("mock_broker: poll");
			break;
		}
		if (pfd.revents == 0)
			continue;

		n = read(STDIN_FILENO, buf + used, sizeof(buf) - 1 - used);
		if (n < 0)
		{
			if (errno == EINTR || errno == EAGAIN)
				continue;
			perror("mock_broker: read");
			break;
		}
		if (n == 0)
			break;				/* end of input */
		used += n;
		buf[used] = '\0';

		while (!quit && (nl = strchr(buf, '\n')) != NULL)
		{
			size_t		linelen = nl - buf + 1;

			*nl = '\0';
			handle_line(mcluster, buf, &quit);
			memmove(buf, buf + linelen, used - linelen + 1);
			used -= linelen;
		}
		if (used == sizeof(buf) - 1)
		{
			printf("error line too long\n");
			fflush(stdout);
			used = 0;
		}
	}

	rd_kafka_destroy(query_client);
	rd_kafka_mock_cluster_destroy(mcluster);
	rd_kafka_destroy(rk);
	return 0;
}

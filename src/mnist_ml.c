/*
 * mnist_ml.c
 *		Module entry point: settings (GUCs) and, when preloaded, the change data capture worker
 *		and the online learning worker (online_worker.c).
 *
 * One shared library serves the SQL functions, the logical decoding output plugin (decoder.c)
 * and the background workers (cdc_worker.c, online_worker.c).  Nothing here creates threads
 * or librdkafka handles: this code may run in the postmaster, which forks every other process.
 */
#include "postgres.h"

#include <limits.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "cdc_worker.h"
#include "kafka_conf.h"
#include "mnist_ml.h"
#include "net.h"
#include "net_pool.h"
#include "online.h"

PG_MODULE_MAGIC;

bool		mnist_progress = true;
bool		mnist_strict_messages = false;
int			mnist_kafka_timeout_ms = 10000;
char	   *mnist_kafka_bootstrap_servers = NULL;
char	   *mnist_kafka_properties = NULL;
char	   *mnist_kafka_properties_file = NULL;
char	   *mnist_cdc_tables = NULL;
char	   *mnist_cdc_database = NULL;
bool		mnist_cdc_create_topics = true;
bool		mnist_cdc_trace_latency = false;
int			mnist_cdc_topic_partitions = -1;
int			mnist_cdc_topic_replication_factor = -1;
int			mnist_cdc_delivery = MNIST_CDC_AT_LEAST_ONCE;
int			mnist_cdc_batch_rows = 10000;
int			mnist_cdc_batch_ms = 100;
char	   *mnist_topic_prefix = NULL;
char	   *mnist_online_database = NULL;
int			mnist_model_cache_size = 64 * 1024;
int			mnist_train_memory = -1;
int			mnist_train_threads = 1;
bool		mnist_preloaded = false;

static int	mnist_cpu_path = NET_CPU_AUTO;

static const struct config_enum_entry cpu_path_options[] = {
	{"auto", NET_CPU_AUTO, false},
	{"avx512", NET_CPU_AVX512, false},
	{"avxvnni", NET_CPU_AVXVNNI, false},
	{"avx2", NET_CPU_AVX2, false},
	{"baseline", NET_CPU_BASELINE, false},
	{NULL, 0, false}
};

static const struct config_enum_entry cdc_delivery_options[] = {
	{"at_least_once", MNIST_CDC_AT_LEAST_ONCE, false},
	{"exactly_once", MNIST_CDC_EXACTLY_ONCE, false},
	{NULL, 0, false}
};

void		_PG_init(void);

/* mnist_ml.cdc_topic_partitions, cdc_topic_replication_factor: -1 (the broker's) or at least 1. */
static bool
check_topic_count(int *newval, void **extra, GucSource source)
{
	if (*newval != 0)
		return true;
	GUC_check_errdetail("Use -1 for the broker's default, or a number of at least 1.");
	return false;
}

/* mnist_ml.cpu_path: a path this CPU lacks would die of SIGILL, so it is refused. */
static bool
check_cpu_path(int *newval, void **extra, GucSource source)
{
	if (mnist_net_cpu_supports((NetCpuPath) *newval))
		return true;
	GUC_check_errcode(ERRCODE_FEATURE_NOT_SUPPORTED);
	GUC_check_errmsg("this CPU cannot run the %s code path", mnist_net_cpu_path_name((NetCpuPath) *newval));
	GUC_check_errdetail("avx512 needs AVX-512 F, CD, BW, DQ and VL with FMA; avxvnni needs AVX2, FMA and AVX-VNNI; avx2 needs AVX2 and FMA.");
	return false;
}

/* mnist_ml.train_memory: -1, or at least 64 kB (as work_mem). */
static bool
check_train_memory(int *newval, void **extra, GucSource source)
{
	if (*newval == -1 || *newval >= 64)
		return true;
	GUC_check_errdetail("mnist_ml.train_memory must be -1 (maintenance_work_mem) or at least 64 kB.");
	return false;
}

static void
assign_cpu_path(int newval, void *extra)
{
	mnist_net_set_cpu_path((NetCpuPath) newval);
}

void
_PG_init(void)
{
	DefineCustomBoolVariable("mnist_ml.progress",
							 "Reports a NOTICE with loss, accuracy and speed after each training epoch.",
							 NULL, &mnist_progress, true,
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("mnist_ml.strict_messages",
							 "Makes a malformed Kafka message an error instead of a skipped, counted message.",
							 NULL, &mnist_strict_messages, false,
							 PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.kafka_timeout_ms",
							"How long a topic function waits for an unreachable broker before failing.",
							NULL, &mnist_kafka_timeout_ms, 10000, 100, 3600 * 1000,
							PGC_USERSET, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.kafka_bootstrap_servers",
							   "Kafka bootstrap servers (host:port,...) for change data capture and topic functions.",
							   NULL, &mnist_kafka_bootstrap_servers, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.kafka_properties",
							   "Extra librdkafka properties as key=value pairs separated by commas or spaces (acks, compression, SASL/SSL).",
							   NULL, &mnist_kafka_properties, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL,
							   mnist_kafka_properties_show);

	DefineCustomStringVariable("mnist_ml.kafka_properties_file",
							   "File of extra librdkafka properties, one key=value per line: the place for secrets, which are never logged.",
							   NULL, &mnist_kafka_properties_file, "",
							   PGC_SIGHUP, GUC_SUPERUSER_ONLY, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.cdc_tables",
							   "Comma-separated schema.table globs captured to Kafka; empty turns change data capture off.",
							   NULL, &mnist_cdc_tables, "public.mnist_*",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.cdc_database",
							   "Database whose changes are captured (the extension must be created there).",
							   NULL, &mnist_cdc_database, "postgres",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("mnist_ml.cdc_create_topics",
							 "Whether change data capture creates a captured table's missing topic (Admin API).",
							 "Off: the rows of a table without a topic wait until someone creates it.",
							 &mnist_cdc_create_topics, true,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomBoolVariable("mnist_ml.cdc_trace_latency",
							 "Developer setting: change data capture messages carry an mnist_trace header of stage times.",
							 "\"SEEN PRODUCED\": when the worker found the WAL of the row's commit and when it produced the message, microseconds since the Unix epoch (bench/cdc.sh).",
							 &mnist_cdc_trace_latency, false,
							 PGC_SIGHUP, GUC_NOT_IN_SAMPLE, NULL, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.cdc_topic_partitions",
							"Partitions of a topic change data capture creates; -1 means the broker's default (num.partitions).",
							NULL, &mnist_cdc_topic_partitions, -1, -1, 100000,
							PGC_SIGHUP, 0, check_topic_count, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.cdc_topic_replication_factor",
							"Replication factor of a topic change data capture creates; -1 means the broker's default (default.replication.factor).",
							NULL, &mnist_cdc_topic_replication_factor, -1, -1, 32767,
							PGC_SIGHUP, 0, check_topic_count, NULL, NULL);

	DefineCustomEnumVariable("mnist_ml.cdc_delivery",
							 "Delivery of change data capture: at_least_once, or exactly_once (Kafka transactions with the slot position).",
							 "exactly_once needs consumers that read committed (isolation.level=read_committed).",
							 &mnist_cdc_delivery, MNIST_CDC_AT_LEAST_ONCE, cdc_delivery_options,
							 PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.cdc_batch_rows",
							"With exactly_once delivery, a Kafka transaction closes after the decoded transaction that reaches this many rows.",
							NULL, &mnist_cdc_batch_rows, 10000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.cdc_batch_ms",
							"With exactly_once delivery, a Kafka transaction closes this long after it began, at the next transaction boundary.",
							NULL, &mnist_cdc_batch_ms, 100, 1, 600000,
							PGC_SIGHUP, GUC_UNIT_MS, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.topic_prefix",
							   "Prefix of captured topics: <prefix>.<schema>.<table>.",
							   NULL, &mnist_topic_prefix, "tf",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.train_memory",
							"Memory for the rows mnist_train holds; a larger source is spilled to a temporary file.",
							"-1 means maintenance_work_mem.",
							&mnist_train_memory, -1, -1, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB, check_train_memory, NULL, NULL);

	DefineCustomIntVariable("mnist_ml.train_threads",
							"Threads that share the work of each training mini-batch (the same model for any number).",
							NULL, &mnist_train_threads, 1, 1, NET_MAX_THREADS,
							PGC_USERSET, 0, NULL, NULL, NULL);

	DefineCustomEnumVariable("mnist_ml.cpu_path",
							 "Code path of training and prediction: auto (the best this CPU has), avx512, avxvnni, avx2 or baseline.",
							 NULL, &mnist_cpu_path, NET_CPU_AUTO, cpu_path_options,
							 PGC_SUSET, 0, check_cpu_path, assign_cpu_path, NULL);

	DefineCustomIntVariable("mnist_ml.model_cache_size",
							"Memory of decoded models each session keeps; the least recently used are dropped first.",
							"Models a running query holds are kept until it ends.",
							&mnist_model_cache_size, 64 * 1024, 0, MAX_KILOBYTES,
							PGC_USERSET, GUC_UNIT_KB, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.online_database",
							   "Database whose online learning jobs the online learning worker runs; empty means mnist_ml.cdc_database.",
							   "The worker restarts in the new database when this changes.",
							   &mnist_online_database, "",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("mnist_ml");

	/*
	 * Workers exist only when the library is preloaded (every setting above may be defined in
	 * any backend that loads it on first use: none is PGC_POSTMASTER).  None in a server
	 * started by pg_upgrade: they must not touch slots or Kafka.
	 */
	if (process_shared_preload_libraries_in_progress && !IsBinaryUpgrade)
	{
		mnist_preloaded = true;
		mnist_cdc_register();
		mnist_online_register();
	}
}

/*
 * mnist_ml.c
 *		Module entry point: settings (GUCs) and, when preloaded, the change data capture worker
 *		and the online learning worker (online_worker.c).
 *
 * One shared library serves the SQL functions, the logical decoding output plugin (decoder.c)
 * and the background worker (shipper.c).  Nothing here creates threads or librdkafka handles:
 * this code may run in the postmaster, which forks every other process.
 */
#include "postgres.h"

#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

#include "kafka_conf.h"
#include "mnist_ml.h"
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
char	   *mnist_topic_prefix = NULL;
char	   *mnist_online_database = NULL;

void		_PG_init(void);

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

	DefineCustomStringVariable("mnist_ml.topic_prefix",
							   "Prefix of captured topics: <prefix>.<schema>.<table>.",
							   NULL, &mnist_topic_prefix, "tf",
							   PGC_SIGHUP, 0, NULL, NULL, NULL);

	DefineCustomStringVariable("mnist_ml.online_database",
							   "Database whose online learning jobs the online learning worker runs; empty means mnist_ml.cdc_database.",
							   NULL, &mnist_online_database, "",
							   PGC_POSTMASTER, 0, NULL, NULL, NULL);

	MarkGUCPrefixReserved("mnist_ml");

	if (process_shared_preload_libraries_in_progress)
	{
		cdc_register();
		online_register();
	}
}

/*
 * online.c
 *		Online learning jobs: mnist_online_start, mnist_online_stop and mnist_online_instance.
 *		A job is a row of mnist_online_jobs; the online learning worker (online_worker.c) runs
 *		the rows that are running or paused and were started in this very database.
 */
#include "postgres.h"

#include "access/xlog.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/timestamp.h"

#include "mnist_ml.h"
#include "deploy.h"
#include "model.h"
#include "online.h"
#include "source.h"
#include "kafka_conf.h"
#include "train.h"

#define MAX_ROUND_ROWS	10000000

char *
mnist_online_instance_id(void)
{
	return psprintf(UINT64_FORMAT ":%u", GetSystemIdentifier(), MyDatabaseId);
}

/* The database the online learning worker serves: mnist_ml.online_database, else cdc_database. */
const char *
mnist_online_database_name(void)
{
	return mnist_online_database && mnist_online_database[0] ? mnist_online_database : mnist_cdc_database;
}

/* ERROR unless an online learning worker runs the jobs of this database. */
static void
online_check_worker(void)
{
	const char *here = get_database_name(MyDatabaseId);

	if (!mnist_preloaded)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("online learning needs mnist_ml in shared_preload_libraries"),
				 errdetail("The online learning worker runs only when the server preloads the library."),
				 errhint("Add mnist_ml to shared_preload_libraries and restart the server.")));
	if (strcmp(here, mnist_online_database_name()) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("the online learning worker serves database \"%s\", not \"%s\"",
						mnist_online_database_name(), here),
				 errhint("Start the job in database \"%s\", or set mnist_ml.online_database to \"%s\" and reload the configuration.",
						 mnist_online_database_name(), here)));
}

PG_FUNCTION_INFO_V1(mnist_online_instance);

/* mnist_online_instance() RETURNS text */
Datum
mnist_online_instance(PG_FUNCTION_ARGS)
{
	PG_RETURN_TEXT_P(cstring_to_text(mnist_online_instance_id()));
}

/* The quoted schema-qualified name of a table of the extension (beside mnist_models). */
static char *
online_table(const char *table)
{
	const char *models = mnist_models_table();
	const char *dot = strrchr(models, '.');

	return psprintf("%.*s.%s", (int) (dot - models), models, table);
}

/* Runs a statement writing mnist_online_jobs as its owner (inside SPI); returns SPI_processed. */
static uint64
write_jobs(const char *sql, int nargs, Oid *argtypes, Datum *values, const char *nulls)
{
	Oid			save_userid;
	int			save_sec;
	int			rc;

	mnist_store_as_owner(&save_userid, &save_sec);
	rc = SPI_execute_with_args(sql, nargs, argtypes, values, nulls, false, 0);
	if (rc < 0)
		elog(ERROR, "writing mnist_online_jobs failed: %s", SPI_result_code_string(rc));
	SetUserIdAndSecContext(save_userid, save_sec);
	return SPI_processed;
}

/* ERROR unless the caller sees a row of the validation table (every round needs one). */
static void
online_check_validation(Oid relid)
{
	char	   *name = mnist_source_relation_name(relid);
	bool		empty;

	SPI_connect();
	if (SPI_execute(psprintf("SELECT FROM %s LIMIT 1", name), true, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read %s", name);
	empty = SPI_processed == 0;
	SPI_finish();
	if (empty)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validation table %s has no rows", name),
				 errdetail("Every round compares its candidate with the deployed model on the validation rows the role that starts the job may read.")));
}

PG_FUNCTION_INFO_V1(mnist_online_start);

/*
 * mnist_online_start(model_name text, topic text, validation regclass, group_id text,
 *					  every interval, min_rows int, max_rows int, epochs int, batch_size int,
 *					  learning_rate float8, start_from text, bootstrap_servers text)
 */
Datum
mnist_online_start(PG_FUNCTION_ARGS)
{
	static const char *const argnames[] = {"model_name", "topic", "validation", NULL, "every",
		"min_rows", "max_rows", "epochs", "batch_size", "learning_rate", "start_from"};
	TrainOptions opt = {0};
	char	   *topic;
	char	   *group_id;
	char	   *start_from;
	Interval   *every;
	double		every_s;
	int			min_rows,
				max_rows;
	Oid			argtypes[15] = {TEXTOID, TEXTOID, TEXTOID, TEXTOID, INTERVALOID, INT4OID, INT4OID,
		INT4OID, INT4OID, FLOAT8OID, TEXTOID, TEXTOID, OIDOID, TEXTOID, TEXTOID};
	Datum		values[15];
	char		nulls[16] = "               ";

	for (int i = 0; i < lengthof(argnames); i++)
		if (argnames[i] && PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	PreventCommandIfReadOnly("mnist_online_start()");
	PreventCommandDuringRecovery("mnist_online_start()");

	opt.model_name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	topic = text_to_cstring(PG_GETARG_TEXT_PP(1));
	opt.validation = PG_GETARG_OID(2);
	every = PG_GETARG_INTERVAL_P(4);
	min_rows = PG_GETARG_INT32(5);
	max_rows = PG_GETARG_INT32(6);
	opt.epochs = PG_GETARG_INT32(7);
	opt.batch_size = PG_GETARG_INT32(8);
	opt.learning_rate = PG_GETARG_FLOAT8(9);
	opt.hidden_units = 1;		/* the job continues its model's shape */
	opt.deploy = TRAIN_DEPLOY_IF_BETTER;
	start_from = text_to_cstring(PG_GETARG_TEXT_PP(10));

	/* every bad value before anything is registered */
	mnist_train_options_validate(&opt);
	mnist_kafka_topic_name_check(topic);
	every_s = every->time / 1e6 + every->day * 86400.0 + every->month * 30 * 86400.0;
	if (every_s < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("every must be at least 1 second")));
	if (max_rows < 1 || max_rows > MAX_ROUND_ROWS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_rows must be between 1 and %d, not %d", MAX_ROUND_ROWS, max_rows)));
	if (min_rows < 1 || min_rows > max_rows)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("min_rows must be between 1 and max_rows (%d), not %d", max_rows, min_rows)));
	if (strcmp(start_from, "latest") != 0 && strcmp(start_from, "earliest") != 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("start_from must be 'latest' or 'earliest', not '%s'", start_from)));
	if (!PG_ARGISNULL(11) && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may name bootstrap_servers"),
				 errdetail("The job would make the server connect to them.")));
	if (pg_class_aclcheck(opt.validation, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", mnist_source_relation_name(opt.validation)),
				 errdetail("Every round reads the validation table as the role that started the job.")));
	if (!PG_ARGISNULL(3) && VARSIZE_ANY_EXHDR(PG_GETARG_TEXT_PP(3)) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_id must not be empty"),
				 errhint("Leave it NULL for mnist_ml_online.<database>.<model>.")));
	online_check_validation(opt.validation);
	online_check_worker();
	/* only the owner of a name trains it; the job needs a model to continue */
	mnist_model_lock(opt.model_name, "start or stop online learning of");
	if (mnist_model_served_id(opt.model_name) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", opt.model_name),
				 errhint("Online learning continues a model: train one first with mnist_train().")));

	group_id = PG_ARGISNULL(3) ?
		psprintf("mnist_ml_online.%s.%s", get_database_name(MyDatabaseId), opt.model_name) :
		text_to_cstring(PG_GETARG_TEXT_PP(3));

	values[0] = CStringGetTextDatum(opt.model_name);
	values[1] = CStringGetTextDatum(topic);
	values[2] = CStringGetTextDatum(mnist_source_relation_name(opt.validation));
	values[3] = CStringGetTextDatum(group_id);
	values[4] = IntervalPGetDatum(every);
	values[5] = Int32GetDatum(min_rows);
	values[6] = Int32GetDatum(max_rows);
	values[7] = Int32GetDatum(opt.epochs);
	values[8] = Int32GetDatum(opt.batch_size);
	values[9] = Float8GetDatum(opt.learning_rate);
	values[10] = CStringGetTextDatum(start_from);
	values[11] = PG_ARGISNULL(11) ? (Datum) 0 : PointerGetDatum(PG_GETARG_TEXT_PP(11));
	nulls[11] = PG_ARGISNULL(11) ? 'n' : ' ';
	values[12] = ObjectIdGetDatum(GetUserId());
	values[13] = CStringGetTextDatum(mnist_online_instance_id());
	values[14] = CStringGetTextDatum("running");

	/*
	 * A new job, or a stopped, failed or restored one started again: it keeps its stored
	 * offsets if it reads the same topic, and starts from the deployed model.
	 */
	SPI_connect();
	if (write_jobs(psprintf("INSERT INTO %s AS j (model_name, topic, validation, group_id, every, min_rows, "
							"max_rows, epochs, batch_size, learning_rate, start_from, bootstrap_servers, "
							"started_by, started_at, started_in, state) "
							"VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, pg_catalog.clock_timestamp(), $14, $15) "
							"ON CONFLICT (model_name) DO UPDATE SET topic = EXCLUDED.topic, "
							"validation = EXCLUDED.validation, group_id = EXCLUDED.group_id, "
							"every = EXCLUDED.every, min_rows = EXCLUDED.min_rows, max_rows = EXCLUDED.max_rows, "
							"epochs = EXCLUDED.epochs, batch_size = EXCLUDED.batch_size, "
							"learning_rate = EXCLUDED.learning_rate, start_from = EXCLUDED.start_from, "
							"bootstrap_servers = EXCLUDED.bootstrap_servers, started_by = EXCLUDED.started_by, "
							"started_at = EXCLUDED.started_at, started_in = EXCLUDED.started_in, "
							"state = EXCLUDED.state, last_model_id = NULL, served_model_id = NULL, last_error = NULL, "
							"last_error_at = NULL, "
							"offsets = CASE WHEN j.topic OPERATOR(pg_catalog.=) EXCLUDED.topic THEN j.offsets END "
							"WHERE j.state OPERATOR(pg_catalog.=) ANY ('{stopped,failed}'::pg_catalog.text[]) "
							"OR j.started_in OPERATOR(pg_catalog.<>) EXCLUDED.started_in",
							online_table("mnist_online_jobs")),
				   15, argtypes, values, nulls) == 0)
		ereport(ERROR,
				(errcode(ERRCODE_DUPLICATE_OBJECT),
				 errmsg("online learning of model \"%s\" is already running", opt.model_name),
				 errhint("Stop it first with mnist_online_stop().")));
	SPI_finish();
	PG_RETURN_VOID();
}

PG_FUNCTION_INFO_V1(mnist_online_stop);

/* mnist_online_stop(model_name text) RETURNS boolean */
Datum
mnist_online_stop(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		stopped;

	PreventCommandIfReadOnly("mnist_online_stop()");
	mnist_model_lock(name, "start or stop online learning of");
	SPI_connect();
	stopped = write_jobs(psprintf("UPDATE %s SET state = 'stopped' WHERE model_name OPERATOR(pg_catalog.=) $1 "
								  "AND state OPERATOR(pg_catalog.<>) 'stopped'",
								  online_table("mnist_online_jobs")),
						 1, argtypes, values, NULL) > 0;
	SPI_finish();
	PG_RETURN_BOOL(stopped);
}

/*
 * online_worker.c
 *		The online learning worker: one background process for the database named by
 *		mnist_ml.online_database (default: mnist_ml.cdc_database) runs every online learning
 *		job of that database, one round at a time.
 *
 * Each job keeps a Kafka consumer (a handle of kafka_handle.c) between rounds, ended in a thread
 * of its own (mnist_kafka_handle_destroy_detached).  The consumer joins no group: it assigns the
 * topic's partitions itself at the offsets stored with the job's last round (or, for a new
 * job, at the end or the start of each partition, stored at once), so what a round trains on
 * is exactly what follows the last committed round.  Between rounds the worker consumes new
 * messages into the job's buffer (bad messages are skipped and counted) with no transaction
 * open.  A round (at least min_rows messages and every seconds after the previous one) runs
 * as the role that started the job: it continues training the job's last candidate (the
 * first round: the deployed model) with no transaction open, then in one transaction
 * evaluates it and the deployed model on the validation table, stores it, deploys it through
 * the gate, and stores the round's end offsets and its mnist_online_rounds row.  A round after someone else deployed or rolled
 * back the name is superseded: stored, not deployed, and the job's line starts again from
 * the deployed model.  A crash or restart before the commit loses the
 * round entirely and the restarted worker repeats it from the stored offsets; after the
 * commit, it is never repeated.
 *
 * The role's code a round reaches (a validation view's functions) runs as a security-restricted
 * operation whose setting changes are rolled back at the end of the round.
 *
 * Every second a job looks at its topic: partitions added are read from their beginning, a
 * topic deleted and created again (seen gone, fewer partitions, an offset past a partition's
 * end) is read again from its beginning with a warning.  An offset out of range is never
 * reset silently (auto.offset.reset=error): the job makes its consumer again, going on from the
 * log start and counting what retention deleted as lost (round row, status, WARNING).
 *
 * A broker that cannot be reached pauses the job (state paused, last_error says why) until it
 * answers again; one that refuses the job's credentials, or a fatal librdkafka error, fails it
 * with the topic functions' ERROR (mnist_kafka_handle_report).  An error in a round (a dropped role, a lost privilege, a missing validation
 * table) fails the job: state failed with the message, no retry until mnist_online_start; a
 * job's failure never stops the worker or another job.
 */
#include "postgres.h"

#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/json.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "kafka_handle.h"
#include "mnist_ml.h"
#include "deploy.h"
#include "model.h"
#include "online.h"
#include "train.h"

#define POLL_MS			100		/* the worker's loop with jobs */
#define IDLE_MS			1000	/* without jobs */
#define RETRY_MS		2000	/* between attempts to reach a broker */
#define BROKER_WAIT_MS	2000	/* one attempt */
#define METADATA_MS		1000	/* between looks at a running job's topic (partitions added, topic gone) */

/* One running job. */
typedef struct Job
{
	struct Job *next;
	MemoryContext cxt;			/* everything of the job */
	char	   *name;
	char	   *topic;
	char	   *validation;
	char	   *group_id;
	char	   *servers;		/* NULL: the setting */
	char	   *start_from;
	char	   *started_at;		/* identifies this start of the job */
	double		every_s;
	int			min_rows;
	int			max_rows;
	int			epochs;
	int			batch_size;
	double		learning_rate;
	Oid			owner;

	MnistKafkaHandle *kh;		/* the consumer, NULL until the broker answered */
	int			nparts;			/* partitions of the consumer */
	int64	   *stored;			/* per partition: offset stored with the last round */
	int64	   *next_offset;	/* per partition: next offset to consume into buf */
	int			nknown;			/* partitions with an offset (the job row's, or the last consumer's) */
	TrainSet	buf;			/* messages consumed since the last round */
	int64		skipped;		/* bad messages among them */
	int64		lost;			/* messages lost to retention since the last round */
	char	   *warning;		/* what the job warned about since the last round, NULL: nothing */
	bool		reconnect;		/* the consumer must be made again (offset out of range, new partitions) */
	bool		topic_gone;		/* the topic vanished: when it is back, it is a new topic */
	TimestampTz last_round;
	TimestampTz last_attempt;	/* last attempt to reach the broker */
	TimestampTz last_metadata;	/* last look at the topic's partitions */
	bool		paused;			/* state written: paused */
	char	   *failure;		/* the job failed but its state could not be written yet */
	char		error[256];
	bool		seen;			/* still in mnist_online_jobs (sync_jobs) */
} Job;

static Job *jobs = NULL;
static char *jobs_table = NULL;		/* quoted schema.mnist_online_jobs, NULL: none */
static char *rounds_table = NULL;
static bool warnings_stored = false;	/* the extension at 1.2: rounds.lost, jobs.last_warning */
static MemoryContext worker_cxt = NULL;

PGDLLEXPORT void mnist_online_worker_main(Datum arg);

void
mnist_online_register(void)
{
	BackgroundWorker worker;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 2;
	strlcpy(worker.bgw_library_name, "mnist_ml", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "mnist_online_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "mnist_ml online learning", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "mnist_ml online", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* ---- the job rows ---- */

/* Runs SQL with text arguments inside SPI (the worker is a superuser); returns SPI_processed. */
static uint64
run_sql(const char *sql, int nargs, const char **args, bool read_only)
{
	Oid			types[12];
	Datum		values[12];
	char		nulls[12] = "";
	int			rc;

	Assert(nargs <= 12);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	if (rc < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INTERNAL_ERROR),
				 errmsg("online learning worker: query failed: %s", SPI_result_code_string(rc))));
	return SPI_processed;
}

static char *
value_text(int row, int col)
{
	return SPI_getvalue(SPI_tuptable->vals[row], SPI_tuptable->tupdesc, col);
}

static MemoryContext transaction_caller_cxt;

/* Starts a transaction with SPI and a snapshot; transaction_end() commits it. */
static void
transaction_begin(const char *activity)
{
	transaction_caller_cxt = CurrentMemoryContext;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	SPI_connect();
	PushActiveSnapshot(GetTransactionSnapshot());
	pgstat_report_activity(STATE_RUNNING, activity);
}

static void
transaction_end(void)
{
	SPI_finish();
	PopActiveSnapshot();
	CommitTransactionCommand();
	MemoryContextSwitchTo(transaction_caller_cxt);
	pgstat_report_activity(STATE_IDLE, NULL);
}

/* Writes a job's state and error (in a transaction of its own), if this start still runs. */
static void
job_set_state(Job *job, const char *state, const char *error)
{
	const char *args[4] = {job->name, job->started_at, state, error};

	transaction_begin("mnist_ml online: job state");
	run_sql(psprintf("UPDATE %s SET state = $3, last_error = $4, "
					 "last_error_at = CASE WHEN $4 IS NULL THEN last_error_at ELSE now() END "
					 "WHERE model_name = $1 AND started_at::text = $2 AND state IN ('running', 'paused')",
					 jobs_table), 4, args, false);
	transaction_end();
}

/* The "{"partition": offset, ...}" JSON of offsets. */
static char *
offsets_json(const int64 *offsets, int n)
{
	StringInfoData buf;

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '{');
	for (int p = 0; p < n; p++)
		appendStringInfo(&buf, "%s\"%d\": " INT64_FORMAT, p ? ", " : "", p, offsets[p]);
	appendStringInfoChar(&buf, '}');
	return buf.data;
}

/*
 * Drops the job's consumer; its offsets and the messages consumed since the last round stay,
 * so that the next job_connect goes on where this consumer stopped.
 */
static void
job_disconnect(Job *job)
{
	if (job->kh)
	{
		if (job->kh->nqueues > 0)	/* assigned: the offsets of all its partitions are known */
			job->nknown = job->nparts;
		/* in a thread of its own: librdkafka 2.0 can hang on a deleted topic */
		mnist_kafka_handle_destroy_detached(job->kh);
	}
	job->kh = NULL;
	job->nparts = 0;
	job->reconnect = false;
	job->last_attempt = 0;
}

static void
job_destroy(Job *job)
{
	job_disconnect(job);
	MemoryContextDelete(job->cxt);
}

/* Records a warning: the server log now, the job's status, and the next round's row. */
static void
job_warn(Job *job, const char *warning)
{
	const char *args[3] = {job->name, job->started_at, warning};

	ereport(WARNING,
			(errmsg("online learning of model \"%s\": %s", job->name, warning)));
	job->warning = MemoryContextStrdup(job->cxt, job->warning ?
									   psprintf("%s; %s", job->warning, warning) : warning);
	if (!warnings_stored)
		return;					/* the extension at 1.1: the server log only */
	transaction_begin("mnist_ml online: job warning");
	run_sql(psprintf("UPDATE %s SET last_warning = $3, last_warning_at = now() "
					 "WHERE model_name = $1 AND started_at::text = $2", jobs_table), 3, args, false);
	transaction_end();
}

/* A job from the current SPI row (sync_jobs' query), with its stored offsets. */
static Job *
job_create(int row)
{
	MemoryContext cxt = AllocSetContextCreate(worker_cxt, "mnist_ml online job",
											  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(cxt);
	Job		   *job = palloc0(sizeof(Job));
	char	   *offsets;

	job->cxt = cxt;
	job->name = value_text(row, 1);
	job->topic = value_text(row, 2);
	job->validation = value_text(row, 3);
	job->group_id = value_text(row, 4);
	job->every_s = strtod(value_text(row, 5), NULL);
	job->min_rows = atoi(value_text(row, 6));
	job->max_rows = atoi(value_text(row, 7));
	job->epochs = atoi(value_text(row, 8));
	job->batch_size = atoi(value_text(row, 9));
	job->learning_rate = strtod(value_text(row, 10), NULL);
	job->start_from = value_text(row, 11);
	job->servers = value_text(row, 12);
	job->owner = (Oid) strtoul(value_text(row, 13), NULL, 10);
	job->started_at = value_text(row, 14);
	offsets = value_text(row, 15);
	job->paused = strcmp(value_text(row, 16), "paused") == 0;
	/* every counts from the last round of this start, also across a restart of the worker */
	if (value_text(row, 17))
		job->last_round = strtoll(value_text(row, 17), NULL, 10);
	mnist_trainset_init(&job->buf, Min(job->max_rows, 100000));

	/* offsets: a JSON object {"partition": offset}, read as an array indexed by partition */
	job->nknown = 0;
	if (offsets)
	{
		int			n = 0;

		/*
		 * The values follow the colons in partition order: offsets_json writes partitions
		 * 0..n-1 and jsonb orders keys by length, then bytes, which for "0".."n-1" is the same.
		 */
		for (char *p = offsets; (p = strchr(p, ':')) != NULL; p++)
			n++;
		job->stored = palloc(Max(n, 1) * sizeof(int64));
		job->next_offset = palloc(Max(n, 1) * sizeof(int64));
		for (char *p = offsets; (p = strchr(p, ':')) != NULL; p++)
			job->stored[job->nknown++] = strtoll(p + 1, NULL, 10);
		memcpy(job->next_offset, job->stored, n * sizeof(int64));
	}
	MemoryContextSwitchTo(old);
	return job;
}

/*
 * Re-reads the running jobs of this database: new or restarted jobs get a Job, jobs stopped,
 * failed, deleted or gone with the extension lose theirs (and their consumer).
 */
static void
sync_jobs(void)
{
	Job		  **p;

	transaction_begin("mnist_ml online: jobs");
	for (Job *job = jobs; job; job = job->next)
		job->seen = false;
	if (jobs_table == NULL &&
		run_sql("SELECT quote_ident(n.nspname) FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
				"WHERE e.extname = 'mnist_ml' AND to_regclass(quote_ident(n.nspname) || '.mnist_online_jobs') IS NOT NULL",
				0, NULL, true) == 1)
	{
		char	   *nsp = value_text(0, 1);

		jobs_table = MemoryContextStrdup(worker_cxt, psprintf("%s.mnist_online_jobs", nsp));
		rounds_table = MemoryContextStrdup(worker_cxt, psprintf("%s.mnist_online_rounds", nsp));
	}
	if (jobs_table != NULL && !OidIsValid(get_extension_oid("mnist_ml", true)))
		jobs_table = rounds_table = NULL;	/* dropped: every job goes */
	if (jobs_table != NULL)
	{
		const char *args[1] = {rounds_table};

		warnings_stored = run_sql("SELECT FROM pg_attribute WHERE attrelid = to_regclass($1) "
								  "AND attname = 'lost' AND NOT attisdropped", 1, args, true) == 1;
	}
	if (jobs_table != NULL)
	{
		char	   *instance = mnist_online_instance_id();
		const char *args[1] = {instance};
		uint64		n;

		n = run_sql(psprintf("SELECT model_name, topic, validation, group_id, extract(epoch FROM every)::float8, "
							 "min_rows, max_rows, epochs, batch_size, learning_rate, start_from, "
							 "bootstrap_servers, started_by::oid, started_at::text, offsets::text, state, "
							 "(SELECT ((extract(epoch FROM r.finished_at) - 946684800) * 1000000)::int8 "
							 " FROM %s r WHERE r.model_name = j.model_name AND r.finished_at >= j.started_at "
							 " ORDER BY r.id DESC LIMIT 1) "
							 "FROM %s j WHERE state IN ('running', 'paused') AND started_in = $1 ORDER BY model_name",
							 rounds_table, jobs_table), 1, args, true);
		for (uint64 i = 0; i < n; i++)
		{
			char	   *name = value_text(i, 1);
			char	   *started_at = value_text(i, 14);
			Job		   *job;

			for (job = jobs; job; job = job->next)
				if (strcmp(job->name, name) == 0 && strcmp(job->started_at, started_at) == 0)
					break;
			if (job == NULL)
			{
				job = job_create(i);
				job->next = jobs;
				jobs = job;
				elog(LOG, "online learning of model \"%s\" from topic \"%s\" started", job->name, job->topic);
			}
			job->seen = true;
		}
	}
	transaction_end();

	for (p = &jobs; *p;)
	{
		Job		   *job = *p;

		if (job->seen)
			p = &job->next;
		else
		{
			*p = job->next;
			elog(LOG, "online learning of model \"%s\" ended", job->name);
			job_destroy(job);
		}
	}
}

/* ---- consuming ---- */

/* Records why the broker cannot be reached and pauses the job (state written once). */
static void
job_pause(Job *job, const char *why)
{
	strlcpy(job->error, why, sizeof(job->error));
	if (!job->paused)
	{
		job->paused = true;
		job_set_state(job, "paused", psprintf("Kafka broker unreachable: %s", why));
	}
}

static void
job_resume(Job *job)
{
	if (job->kh)
		mnist_kafka_handle_clear_down(job->kh);
	if (job->paused)
	{
		job->paused = false;
		job_set_state(job, "running", NULL);
	}
}

/*
 * Stores the job's offsets outside a round (where new partitions or a new topic start, or past
 * bad messages only).
 */
static void
job_store_offsets(Job *job, const int64 *offsets)
{
	const char *args[3] = {job->name, job->started_at, offsets_json(offsets, job->nparts)};

	transaction_begin("mnist_ml online: offsets");
	run_sql(psprintf("UPDATE %s SET offsets = $3::jsonb WHERE model_name = $1 AND started_at::text = $2",
					 jobs_table), 3, args, false);
	transaction_end();
}

/* Fails the connection attempt: the consumer goes, the job is paused with why. */
static bool
job_connect_failed(Job *job, const char *why)
{
	mnist_kafka_handle_destroy_detached(job->kh);
	job->kh = NULL;
	job->nparts = 0;
	job_pause(job, why);
	return false;
}

/*
 * Decides where each partition is read from, against its watermarks now:
 *   - a partition with an offset goes on from it; if retention (or DeleteRecords) moved the
 *     partition's start past it, from the start, the messages in between counted as lost;
 *   - a partition without one: for a new job where start_from says, for a partition added to
 *     the topic since, its beginning;
 *   - the topic deleted and created again (seen gone, fewer partitions, or an offset past a
 *     partition's end: offsets never go backwards): every partition from its beginning, the
 *     messages consumed from the old topic and not trained yet dropped.
 * The offsets of partitions that had none (and of a new topic) are stored at once.
 */
static void
job_positions(Job *job, const int64 *low, const int64 *high)
{
	int			n = job->nparts;
	int64	   *stored = MemoryContextAlloc(job->cxt, n * sizeof(int64));
	int64	   *next = MemoryContextAlloc(job->cxt, n * sizeof(int64));
	char	   *recreated = NULL;
	StringInfoData lost;

	if (job->topic_gone)
		recreated = "it was gone";
	else if (n < job->nknown)
		recreated = psprintf("it has %d partitions, not %d", n, job->nknown);
	for (int p = 0; p < job->nknown && p < n && recreated == NULL; p++)
		if (job->next_offset[p] > high[p])
			recreated = psprintf("offset " INT64_FORMAT " of partition %d is past its end " INT64_FORMAT,
								 job->next_offset[p], p, high[p]);
	if (recreated)
	{
		job_warn(job, psprintf("topic \"%s\" was deleted and created again (%s): reading it from its beginning; "
							   INT64_FORMAT " messages read from the old topic and not trained yet are dropped",
							   job->topic, recreated, job->buf.n + job->skipped));
		job->buf.n = 0;
		job->skipped = 0;
		job->lost = 0;
		job->topic_gone = false;
		job->nknown = 0;
		for (int p = 0; p < n; p++)
			stored[p] = next[p] = low[p];
	}
	else
	{
		initStringInfo(&lost);
		for (int p = 0; p < n; p++)
		{
			if (p >= job->nknown)
			{
				/* a new job: start_from; a partition added since the job started: its start */
				stored[p] = next[p] = job->nknown == 0 && strcmp(job->start_from, "latest") == 0 ?
					high[p] : low[p];
				continue;
			}
			stored[p] = job->stored[p];
			next[p] = job->next_offset[p];
			if (next[p] < low[p])
			{
				appendStringInfo(&lost, "%s" INT64_FORMAT " of partition %d (offsets " INT64_FORMAT " to " INT64_FORMAT ")",
								 lost.len ? ", " : "", low[p] - next[p], p, next[p], low[p] - 1);
				job->lost += low[p] - next[p];
				next[p] = low[p];
			}
		}
		if (lost.len)
			job_warn(job, psprintf("messages deleted by retention before they were read: %s", lost.data));
	}
	job->stored = stored;
	job->next_offset = next;
	if (job->nknown < n)
	{
		if (job->nknown > 0)
			elog(LOG, "online learning of model \"%s\": topic \"%s\" has %d partitions now, the new ones read from their beginning",
				 job->name, job->topic, n);
		job_store_offsets(job, job->stored);
	}
	job->nknown = n;
}

/*
 * Creates the job's consumer once the broker answers: the partitions of its topic assigned at
 * the offsets job_positions chose.  False (job paused) when the broker or the topic cannot be
 * reached yet.
 */
static bool
job_connect(Job *job)
{
	/* an offset out of range is an error the job handles (job_positions), never a silent jump */
	const char *const forced[] = {"group.id", job->group_id, "enable.auto.commit", "false",
		"enable.auto.offset.store", "false", "auto.offset.reset", "error", NULL};
	rd_kafka_resp_err_t err;
	int64	   *low,
			   *high;
	int			n;

	if (job->last_attempt != 0 &&
		!TimestampDifferenceExceeds(job->last_attempt, GetCurrentTimestamp(), RETRY_MS))
		return false;
	job->last_attempt = GetCurrentTimestamp();

	job->kh = mnist_kafka_handle_create(job->servers,
										"allow.auto.create.topics=false topic.metadata.refresh.interval.ms=500",
										forced, NULL, NULL);
	err = mnist_kafka_handle_partitions(job->kh, job->topic, BROKER_WAIT_MS, &n);
	/* refused credentials or a fatal error: the job fails (ERROR), a transport error pauses it */
	mnist_kafka_handle_serve(job->kh);
	mnist_kafka_handle_report(job->kh);
	job->nparts = Max(n, 0);
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || job->nparts == 0)
	{
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR && job->nknown > 0)
			job->topic_gone = true;
		return job_connect_failed(job, err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err) :
								  psprintf("topic \"%s\" does not exist", job->topic));
	}

	low = palloc(job->nparts * sizeof(int64));
	high = palloc(job->nparts * sizeof(int64));
	for (int p = 0; p < job->nparts; p++)
	{
		err = mnist_kafka_handle_watermarks(job->kh, job->topic, p, BROKER_WAIT_MS, &low[p], &high[p]);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
			return job_connect_failed(job, rd_kafka_err2str(err));
	}
	job_positions(job, low, high);

	/* each partition's messages on a queue of their own, so that rounds take from all evenly */
	err = mnist_kafka_handle_assign(job->kh, job->topic, job->nparts, NULL, job->next_offset, true);
	if (err)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("could not assign the partitions of Kafka topic \"%s\": %s",
						job->topic, rd_kafka_err2str(err))));
	job->last_metadata = GetCurrentTimestamp();
	job_resume(job);
	return true;
}

/*
 * Now and then, a look at the topic: partitions added (a new consumer reads them too), the
 * topic gone (paused until it is back, then read as a new topic), an offset past a partition's
 * end (the topic created again between two looks: the consumer would wait there silently).
 */
static void
job_check_topic(Job *job)
{
	int64	   *ends;
	int			n;

	if (!TimestampDifferenceExceeds(job->last_metadata, GetCurrentTimestamp(), METADATA_MS))
		return;
	job->last_metadata = GetCurrentTimestamp();
	if (mnist_kafka_handle_partitions(job->kh, job->topic, 500, &n) != RD_KAFKA_RESP_ERR_NO_ERROR)
		return;					/* the broker: job_consume sees to it */
	if (n == 0)
	{
		job->topic_gone = true;
		job_disconnect(job);
		job_pause(job, psprintf("topic \"%s\" does not exist", job->topic));
		return;
	}
	if (n != job->nparts)
	{
		job->reconnect = n > 0;
		return;
	}

	/* the ends of all partitions in one request */
	ends = palloc(job->nparts * sizeof(int64));
	if (mnist_kafka_handle_ends(job->kh, job->topic, job->nparts, 500, ends) == RD_KAFKA_RESP_ERR_NO_ERROR)
		for (int p = 0; p < job->nparts; p++)
			if (ends[p] >= 0 && job->next_offset[p] > ends[p])
				job->reconnect = true;
}

/* Takes one message into the buffer; false for an event that is not a message. */
static bool
job_message(Job *job, rd_kafka_message_t *msg)
{
	uint8		pixels[MNIST_PIXELS];
	int			label;
	const char *bad;

	if (msg->err != RD_KAFKA_RESP_ERR_NO_ERROR || msg->partition < 0 || msg->partition >= job->nparts)
	{
		/* auto.offset.reset=error: the offset left the log (retention, a new topic) */
		if (msg->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET)
			job->reconnect = true;
		if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			strlcpy(job->error, rd_kafka_message_errstr(msg), sizeof(job->error));
		rd_kafka_message_destroy(msg);
		return false;
	}
	bad = mnist_kafka_decode(msg, pixels, &label);
	if (bad == NULL)
		mnist_trainset_add(&job->buf, pixels, label);
	else
		job->skipped++;
	job->next_offset[msg->partition] = msg->offset + 1;
	rd_kafka_message_destroy(msg);
	return true;
}

/*
 * Consumes what has arrived, up to max_rows messages in the buffer, one message from each
 * partition in turn: CDC keys messages by label, so a round cut short by max_rows would
 * otherwise see the labels of a few partitions only.
 */
static void
job_consume(Job *job)
{
	MemoryContext old = MemoryContextSwitchTo(job->cxt);
	rd_kafka_message_t *msg;
	bool		got = false;
	bool		more = true;

	/* serves the callbacks (errors) and anything still on the consumer's queue */
	while ((msg = mnist_kafka_handle_poll(job->kh, 0)) != NULL)
		got |= job_message(job, msg);
	MemoryContextSwitchTo(old);
	/* refused credentials or a fatal error fail the job (ERROR) */
	mnist_kafka_handle_report(job->kh);
	MemoryContextSwitchTo(job->cxt);
	while (more && job->buf.n + job->skipped < job->max_rows)
	{
		more = false;
		for (int p = 0; p < job->nparts && job->buf.n + job->skipped < job->max_rows; p++)
			if ((msg = mnist_kafka_handle_consume_partition(job->kh, p)) != NULL)
			{
				got |= job_message(job, msg);
				more = true;
			}
	}
	MemoryContextSwitchTo(old);

	if (got)
		job_resume(job);
	else if (job->kh->broker_down)
	{
		/* is it back?  (no message may be due; ask for metadata now and then) */
		int			n;

		if (!TimestampDifferenceExceeds(job->last_attempt, GetCurrentTimestamp(), RETRY_MS))
			return;
		job->last_attempt = GetCurrentTimestamp();
		if (mnist_kafka_handle_partitions(job->kh, job->topic, 200, &n) == RD_KAFKA_RESP_ERR_NO_ERROR)
			job_resume(job);
		else
			job_pause(job, job->kh->transport_error);
	}
}

/* ---- a round ---- */

/* What user_code_begin saved. */
typedef struct UserCode
{
	Oid			userid;
	int			sec_context;
	int			guc_level;
} UserCode;

/*
 * Runs what follows as the role that started the job, as a security-restricted operation
 * (like PostgreSQL's index expressions and REFRESH MATERIALIZED VIEW): the role's code, a
 * validation view's functions say, can change no setting of the worker's session beyond
 * user_code_end (which rolls them back), nor its role, nor create temporary objects.
 * An error between the two is undone by the transaction's abort.
 */
static void
user_code_begin(Job *job, UserCode *saved)
{
	GetUserIdAndSecContext(&saved->userid, &saved->sec_context);
	SetUserIdAndSecContext(job->owner, saved->sec_context | SECURITY_LOCAL_USERID_CHANGE |
						   SECURITY_RESTRICTED_OPERATION);
	saved->guc_level = NewGUCNestLevel();
}

static void
user_code_end(UserCode *saved)
{
	AtEOXact_GUC(false, saved->guc_level);
	SetUserIdAndSecContext(saved->userid, saved->sec_context);
}

/* ERROR unless the role that started the job still exists. */
static void
job_check_role(Job *job)
{
	if (!SearchSysCacheExists1(AUTHOID, ObjectIdGetDatum(job->owner)))
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("role with OID %u that started the job no longer exists", job->owner)));
}

/*
 * A round: a short transaction reads the model to continue and the validation rows, training
 * runs with no transaction open, and one transaction stores the candidate, deploys it through
 * the gate and stores the round's end offsets and row.  Both transactions run as the role
 * that started the job.  ERROR (the job fails) for anything the next round could not fix
 * either.
 */
static void
job_round(Job *job)
{
	MemoryContext round_cxt = CurrentMemoryContext; /* outlives the two transactions */
	TimestampTz start = GetCurrentTimestamp();
	char	   *from = offsets_json(job->stored, job->nparts);
	char	   *to = offsets_json(job->next_offset, job->nparts);
	const char *args[12];
	TrainOptions opt = {0};
	TrainSet	vset;
	TrainFit	fit;
	MnistModel *init;
	StringInfoData source;
	UserCode	saved;
	int64		served;
	int64		id;
	bool		superseded;
	RangeVar   *rv;

	args[0] = job->name;
	args[1] = job->started_at;

	/* 1. the model to continue (the job's last candidate, else the deployed model), validation */
	transaction_begin(psprintf("mnist_ml online: preparing a round of model \"%s\"", job->name));
	if (run_sql(psprintf("SELECT last_model_id FROM %s WHERE model_name = $1 AND started_at::text = $2 "
						 "AND state IN ('running', 'paused')", jobs_table), 2, args, true) == 0)
	{
		transaction_end();		/* stopped meanwhile */
		return;
	}
	opt.init_model_id = value_text(0, 1) ? strtoll(value_text(0, 1), NULL, 10) : 0;
	/* what training needs outlives the transaction (an SPI call leaves SPI's context current) */
	MemoryContextSwitchTo(round_cxt);
	job_check_role(job);
	rv = makeRangeVarFromNameList(textToQualifiedNameList(cstring_to_text(job->validation)));
	user_code_begin(job, &saved);
	opt.model_name = job->name;
	opt.epochs = job->epochs;
	opt.batch_size = job->batch_size;
	opt.learning_rate = job->learning_rate;
	opt.seed = start;
	opt.validation = RangeVarGetRelid(rv, AccessShareLock, false);
	if (opt.init_model_id == 0)
		opt.init_model_id = mnist_model_served_id(job->name);
	if (opt.init_model_id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" does not exist", job->name)));
	init = mnist_model_load_id(opt.init_model_id, true);
	opt.hidden_units = init->net.n_hidden;
	/* held whole: used in the third transaction, a temporary file ends with the first */
	mnist_train_read_validation(&opt, "pixels", "label", false, &vset);
	user_code_end(&saved);
	transaction_end();

	/* 2. training, no transaction open */
	mnist_train_fit(&job->buf, &opt, &init->net, &fit);

	/* 3. the candidate, its deployment and the round's offsets and row, in one transaction */
	transaction_begin(psprintf("mnist_ml online: storing a round of model \"%s\"", job->name));
	if (run_sql(psprintf("SELECT served_model_id FROM %s WHERE model_name = $1 AND started_at::text = $2 "
						 "AND state IN ('running', 'paused') FOR UPDATE", jobs_table), 2, args, false) == 0)
	{
		transaction_end();		/* stopped meanwhile */
		return;
	}
	served = value_text(0, 1) ? strtoll(value_text(0, 1), NULL, 10) : 0;
	job_check_role(job);
	user_code_begin(job, &saved);

	/*
	 * A deploy or rollback by someone else since the job's last round (the name's lock, held
	 * from here to the commit, keeps further ones out) supersedes the job's line: the candidate
	 * is stored, not deployed, and the next round starts from the model deployed now.
	 */
	mnist_model_lock(job->name, NULL);
	superseded = served != 0 && mnist_model_served_id(job->name) != served;
	opt.deploy = superseded ? TRAIN_DEPLOY_NEVER : TRAIN_DEPLOY_IF_BETTER;
	initStringInfo(&source);
	appendStringInfoString(&source, "{\"topic\": ");
	escape_json(&source, job->topic);
	appendStringInfo(&source, ", \"online\": true, \"messages\": " INT64_FORMAT
					 ", \"skipped\": " INT64_FORMAT ", \"from\": %s, \"to\": %s}",
					 job->buf.n + job->skipped, job->skipped, from, to);
	id = mnist_train_store(job->buf.n, &opt, &init->net, opt.init_model_id, &fit, source.data, &vset);
	user_code_end(&saved);

	args[2] = psprintf(INT64_FORMAT, id);
	args[3] = from;
	args[4] = to;
	args[5] = psprintf(INT64_FORMAT, job->buf.n);
	args[6] = psprintf(INT64_FORMAT, job->skipped);
	args[7] = psprintf("%.6f", (GetCurrentTimestamp() - start) / 1e6);
	args[8] = psprintf(INT64_FORMAT, mnist_model_served_id(job->name));
	args[9] = superseded ? psprintf("superseded: model " INT64_FORMAT " was deployed since the job's last round",
									mnist_model_served_id(job->name)) : NULL;
	args[10] = psprintf(INT64_FORMAT, job->lost);
	args[11] = job->warning;
	run_sql(psprintf("UPDATE %s SET offsets = $5::jsonb, state = 'running', last_error = NULL, "
					 "last_model_id = CASE WHEN $10 IS NULL THEN $3::bigint END, served_model_id = $9::bigint "
					 "WHERE model_name = $1 AND started_at::text = $2",
					 jobs_table), 10, args, false);
	run_sql(psprintf("INSERT INTO %s (model_name, seconds, rows, skipped, from_offsets, to_offsets, model_id, "
					 "accuracy_before, accuracy_after, deployed, reason%s) "
					 "SELECT $1, $8::float8, $6::bigint, $7::bigint, $4::jsonb, $5::jsonb, id, "
					 "(metrics->'validation'->>'deployed_accuracy')::float8, "
					 "(metrics->'validation'->>'accuracy')::float8, "
					 "(metrics->'deploy'->>'deployed')::boolean, coalesce($10, metrics->'deploy'->>'reason') "
					 "%s FROM %s WHERE id = $3::bigint",
					 rounds_table, warnings_stored ? ", lost, warning" : "",
					 warnings_stored ? ", $11::bigint, $12" : "", mnist_models_table()),
			warnings_stored ? 12 : 10, args, false);
	transaction_end();

	elog(LOG, "online learning of model \"%s\": round of " INT64_FORMAT " messages stored model " INT64_FORMAT,
		 job->name, job->buf.n, id);
	memcpy(job->stored, job->next_offset, job->nparts * sizeof(int64));
	job->buf.n = 0;
	job->skipped = 0;
	job->lost = 0;
	job->warning = NULL;
	job->last_round = GetCurrentTimestamp();
}

/*
 * Only bad messages since the last round: their offsets are stored, nothing is trained (what
 * was lost to retention is counted in the next round's row).
 */
static void
job_skip_bad(Job *job)
{
	job_store_offsets(job, job->next_offset);
	elog(LOG, "online learning of model \"%s\": skipped " INT64_FORMAT " bad messages",
		 job->name, job->skipped);
	memcpy(job->stored, job->next_offset, job->nparts * sizeof(int64));
	job->skipped = 0;
}

/* One step of a job: reach the broker, consume, and run a round when one is due. */
static void
job_step(Job *job)
{
	if (job->kh == NULL && !job_connect(job))
		return;
	job_consume(job);
	if (job->kh != NULL && !job->kh->broker_down)
		job_check_topic(job);
	if (job->reconnect)
		job_disconnect(job);	/* the next step makes a consumer again, at once */
	if (job->kh == NULL)
		return;
	/* (in double: every may be longer than an int of milliseconds holds) */
	if (job->buf.n + job->skipped < job->min_rows ||
		(job->last_round != 0 &&
		 (double) (GetCurrentTimestamp() - job->last_round) / USECS_PER_SEC < job->every_s))
		return;
	if (job->buf.n > 0)
		job_round(job);
	else
		job_skip_bad(job);
}

/* Runs fn(job); an error is caught and its transaction aborted: returns its message, or NULL. */
static char *
job_try(void (*fn) (Job *), Job *job)
{
	MemoryContext cxt = CurrentMemoryContext;
	char	   *volatile message = NULL;

	PG_TRY();
	{
		fn(job);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);	/* not the aborted transaction's */
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		message = MemoryContextStrdup(job->cxt, edata->message);
		FreeErrorData(edata);
	}
	PG_END_TRY();
	return message;
}

static void
job_write_failure(Job *job)
{
	job_set_state(job, "failed", job->failure);
}

/*
 * Runs job_step; an error fails the job (state failed, the message in last_error) and drops
 * its consumer, but never stops the worker or another job: a failed state that cannot be
 * written is tried again every RETRY_MS, the job running no more meanwhile.
 */
static void
job_step_guarded(Job *job)
{
	char	   *error;

	if (job->failure == NULL)
	{
		if ((error = job_try(job_step, job)) == NULL)
			return;
		elog(LOG, "online learning of model \"%s\" failed: %s", job->name, error);
		job->failure = error;
		job_disconnect(job);
	}
	else if (!TimestampDifferenceExceeds(job->last_attempt, GetCurrentTimestamp(), RETRY_MS))
		return;
	job->last_attempt = GetCurrentTimestamp();
	if ((error = job_try(job_write_failure, job)) != NULL)
		elog(LOG, "online learning of model \"%s\": its failed state could not be written, trying again: %s",
			 job->name, error);
	else
		job->seen = false;		/* dropped at the next sync */
}

void
mnist_online_worker_main(Datum arg)
{
	MemoryContext loop_cxt;
	char	   *database;

	worker_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml online", ALLOCSET_DEFAULT_SIZES);
	database = MemoryContextStrdup(worker_cxt, mnist_online_database_name());
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	/* a superuser process: no object of a user's schema may stand in for a catalog one */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	loop_cxt = AllocSetContextCreate(worker_cxt, "mnist_ml online loop", ALLOCSET_DEFAULT_SIZES);

	for (;;)
	{
		MemoryContextSwitchTo(loop_cxt);
		MemoryContextReset(loop_cxt);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			if (strcmp(database, mnist_online_database_name()) != 0)
			{
				/* the postmaster starts it again (bgw_restart_time), connected to the new one */
				ereport(LOG,
						(errmsg("online learning worker: mnist_ml.online_database is now \"%s\": restarting",
								mnist_online_database_name())));
				proc_exit(1);
			}
		}
		sync_jobs();
		for (Job *job = jobs; job; job = job->next)
			if (job->seen)
				job_step_guarded(job);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 jobs ? POLL_MS : IDLE_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}

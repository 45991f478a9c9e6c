/*
 * online_worker.c
 *		The online learning worker: one background process for the database named by
 *		mnist_ml.online_database (default: mnist_ml.cdc_database) runs every online learning
 *		job of that database, one round at a time.
 *
 * Each job keeps a Kafka consumer between rounds.  The consumer joins no group: it assigns the
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
 * A broker that cannot be reached pauses the job (state paused, last_error says why) until it
 * answers again.  An error in a round (a dropped role, a lost privilege, a missing validation
 * table) fails the job: state failed with the message, no retry until mnist_online_start.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

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

#include "kafka_conf.h"
#include "kafka_consumer.h"
#include "mnist_ml.h"
#include "model.h"
#include "online.h"
#include "train.h"

#define POLL_MS			100		/* the worker's loop with jobs */
#define IDLE_MS			1000	/* without jobs */
#define RETRY_MS		2000	/* between attempts to reach a broker */
#define BROKER_WAIT_MS	2000	/* one attempt */

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

	rd_kafka_t *rk;				/* NULL until the broker answered */
	rd_kafka_queue_t **queues;	/* per partition: its own message queue */
	int			nparts;
	int64	   *stored;			/* per partition: offset stored with the last round, -1 none */
	int64	   *next_offset;	/* per partition: next offset to consume into buf */
	int			nstored;		/* entries of stored read from the job row */
	TrainSet	buf;			/* messages consumed since the last round */
	int64		skipped;		/* bad messages among them */
	TimestampTz last_round;
	TimestampTz last_attempt;	/* last attempt to reach the broker */
	bool		broker_down;	/* recorded by the error callback */
	bool		paused;			/* state written: paused */
	char		error[256];
	bool		seen;			/* still in mnist_online_jobs (sync_jobs) */
} Job;

static Job *jobs = NULL;
static char *jobs_table = NULL;		/* quoted schema.mnist_online_jobs, NULL: none */
static char *rounds_table = NULL;
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

/* ---- librdkafka callbacks: record only ---- */

static void
job_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	Job		   *job = (Job *) opaque;

	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN || err == RD_KAFKA_RESP_ERR__TRANSPORT ||
		err == RD_KAFKA_RESP_ERR__RESOLVE)
	{
		job->broker_down = true;
		strlcpy(job->error, reason, sizeof(job->error));
	}
}

static void
job_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	/* librdkafka's own lines stay out of the server log; errors come through job_error_cb */
}

/* ---- the job rows ---- */

/* Runs SQL with text arguments inside SPI (the worker is a superuser); returns SPI_processed. */
static uint64
run_sql(const char *sql, int nargs, const char **args, bool read_only)
{
	Oid			types[10];
	Datum		values[10];
	char		nulls[10] = "";
	int			rc;

	Assert(nargs <= 10);
	for (int i = 0; i < nargs; i++)
	{
		types[i] = TEXTOID;
		values[i] = args[i] ? CStringGetTextDatum(args[i]) : (Datum) 0;
		nulls[i] = args[i] ? ' ' : 'n';
	}
	rc = SPI_execute_with_args(sql, nargs, types, values, nulls, read_only, 0);
	if (rc < 0)
		elog(ERROR, "online learning worker: query failed: %s", SPI_result_code_string(rc));
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

static void
job_destroy(Job *job)
{
	for (int p = 0; job->queues && p < job->nparts; p++)
		rd_kafka_queue_destroy(job->queues[p]);
	if (job->rk)
	{
		rd_kafka_assign(job->rk, NULL);
		rd_kafka_consumer_close(job->rk);
		rd_kafka_destroy(job->rk);
	}
	MemoryContextDelete(job->cxt);
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
	mnist_trainset_init(&job->buf, Min(job->max_rows, 100000));

	/* offsets: a JSON object {"partition": offset}, read as an array indexed by partition */
	job->nstored = 0;
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
		for (char *p = offsets; (p = strchr(p, ':')) != NULL; p++)
			job->stored[job->nstored++] = strtoll(p + 1, NULL, 10);
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
		char	   *instance = mnist_online_instance_id();
		const char *args[1] = {instance};
		uint64		n;

		n = run_sql(psprintf("SELECT model_name, topic, validation, group_id, extract(epoch FROM every)::float8, "
							 "min_rows, max_rows, epochs, batch_size, learning_rate, start_from, "
							 "bootstrap_servers, started_by::oid, started_at::text, offsets::text, state "
							 "FROM %s WHERE state IN ('running', 'paused') AND started_in = $1 ORDER BY model_name",
							 jobs_table), 1, args, true);
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
	job->broker_down = false;
	if (job->paused)
	{
		job->paused = false;
		job_set_state(job, "running", NULL);
	}
}

/*
 * Creates the job's consumer once the broker answers: the partitions of its topic assigned at
 * the stored offsets (a new job stores where it starts first).  False (job paused) when the
 * broker or the topic cannot be reached yet.
 */
static bool
job_connect(Job *job)
{
	MemoryContext old;
	rd_kafka_conf_t *conf;
	const struct rd_kafka_metadata *md;
	rd_kafka_topic_partition_list_t *list;
	rd_kafka_resp_err_t err;
	char		errstr[512];
	bool		resolved = false;

	if (job->last_attempt != 0 &&
		!TimestampDifferenceExceeds(job->last_attempt, GetCurrentTimestamp(), RETRY_MS))
		return false;
	job->last_attempt = GetCurrentTimestamp();

	old = MemoryContextSwitchTo(job->cxt);
	conf = mnist_kafka_conf(job->servers,
							"allow.auto.create.topics=false topic.metadata.refresh.interval.ms=500");
	mnist_kafka_conf_set(conf, "group.id", job->group_id);
	mnist_kafka_conf_set(conf, "enable.auto.commit", "false");
	mnist_kafka_conf_set(conf, "enable.auto.offset.store", "false");
	rd_kafka_conf_set_opaque(conf, job);
	rd_kafka_conf_set_error_cb(conf, job_error_cb);
	rd_kafka_conf_set_log_cb(conf, job_log_cb);
	job->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr));
	if (job->rk == NULL)
	{
		rd_kafka_conf_destroy(conf);
		MemoryContextSwitchTo(old);
		elog(ERROR, "could not create Kafka consumer: %s", errstr);
	}
	rd_kafka_poll_set_consumer(job->rk);

	err = rd_kafka_metadata(job->rk, 1, NULL, &md, BROKER_WAIT_MS);
	job->nparts = 0;
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
	{
		for (int i = 0; i < md->topic_cnt; i++)
			if (strcmp(md->topics[i].topic, job->topic) == 0 &&
				md->topics[i].err == RD_KAFKA_RESP_ERR_NO_ERROR)
				job->nparts = md->topics[i].partition_cnt;
		rd_kafka_metadata_destroy(md);
	}
	if (err != RD_KAFKA_RESP_ERR_NO_ERROR || job->nparts == 0)
	{
		rd_kafka_destroy(job->rk);
		job->rk = NULL;
		MemoryContextSwitchTo(old);
		job_pause(job, err != RD_KAFKA_RESP_ERR_NO_ERROR ? rd_kafka_err2str(err) :
				  psprintf("topic \"%s\" does not exist", job->topic));
		return false;
	}

	/* where each partition starts: the stored offset, else its end or start now */
	job->next_offset = palloc(job->nparts * sizeof(int64));
	for (int p = 0; p < job->nparts; p++)
	{
		int64		low,
					high;

		if (p < job->nstored)
		{
			job->next_offset[p] = job->stored[p];
			continue;
		}
		err = rd_kafka_query_watermark_offsets(job->rk, job->topic, p, &low, &high, BROKER_WAIT_MS);
		if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_destroy(job->rk);
			job->rk = NULL;
			MemoryContextSwitchTo(old);
			job_pause(job, rd_kafka_err2str(err));
			return false;
		}
		job->next_offset[p] = strcmp(job->start_from, "earliest") == 0 ? low : high;
		resolved = true;
	}
	job->stored = palloc(job->nparts * sizeof(int64));
	memcpy(job->stored, job->next_offset, job->nparts * sizeof(int64));
	job->nstored = job->nparts;
	MemoryContextSwitchTo(old);

	if (resolved)
	{
		const char *args[3] = {job->name, job->started_at, offsets_json(job->stored, job->nparts)};

		transaction_begin("mnist_ml online: start offsets");
		run_sql(psprintf("UPDATE %s SET offsets = $3::jsonb WHERE model_name = $1 AND started_at::text = $2",
						 jobs_table), 3, args, false);
		transaction_end();
	}

	list = rd_kafka_topic_partition_list_new(job->nparts);
	for (int p = 0; p < job->nparts; p++)
		rd_kafka_topic_partition_list_add(list, job->topic, p)->offset = job->next_offset[p];
	err = rd_kafka_assign(job->rk, list);
	rd_kafka_topic_partition_list_destroy(list);
	if (err)
		elog(ERROR, "could not assign the partitions of Kafka topic \"%s\": %s",
			 job->topic, rd_kafka_err2str(err));
	/* each partition's messages on a queue of their own, so that rounds take from all evenly */
	job->queues = MemoryContextAlloc(job->cxt, job->nparts * sizeof(rd_kafka_queue_t *));
	for (int p = 0; p < job->nparts; p++)
	{
		job->queues[p] = rd_kafka_queue_get_partition(job->rk, job->topic, p);
		rd_kafka_queue_forward(job->queues[p], NULL);
	}
	job->last_round = 0;
	job_resume(job);
	return true;
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
		if (msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
			strlcpy(job->error, rd_kafka_message_errstr(msg), sizeof(job->error));
		rd_kafka_message_destroy(msg);
		return false;
	}
	bad = mnist_consumer_decode(msg, pixels, &label);
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
	while ((msg = rd_kafka_consumer_poll(job->rk, 0)) != NULL)
		got |= job_message(job, msg);
	while (more && job->buf.n + job->skipped < job->max_rows)
	{
		more = false;
		for (int p = 0; p < job->nparts && job->buf.n + job->skipped < job->max_rows; p++)
			if ((msg = rd_kafka_consume_queue(job->queues[p], 0)) != NULL)
			{
				got |= job_message(job, msg);
				more = true;
			}
	}
	MemoryContextSwitchTo(old);

	if (got)
		job_resume(job);
	else if (job->broker_down)
	{
		/* is it back?  (no message may be due; ask for metadata now and then) */
		const struct rd_kafka_metadata *md;

		if (!TimestampDifferenceExceeds(job->last_attempt, GetCurrentTimestamp(), RETRY_MS))
			return;
		job->last_attempt = GetCurrentTimestamp();
		if (rd_kafka_metadata(job->rk, 0, NULL, &md, 200) == RD_KAFKA_RESP_ERR_NO_ERROR)
		{
			rd_kafka_metadata_destroy(md);
			job_resume(job);
		}
		else
			job_pause(job, job->error);
	}
}

/* ---- a round ---- */

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
	const char *args[10];
	TrainOptions opt = {0};
	TrainSet	vset;
	TrainFit	fit;
	MnistModel *init;
	StringInfoData source;
	Oid			save_userid;
	int			save_sec;
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
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(job->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
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
	SetUserIdAndSecContext(save_userid, save_sec);
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
	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(job->owner, save_sec | SECURITY_LOCAL_USERID_CHANGE);

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
	SetUserIdAndSecContext(save_userid, save_sec);

	args[2] = psprintf(INT64_FORMAT, id);
	args[3] = from;
	args[4] = to;
	args[5] = psprintf(INT64_FORMAT, job->buf.n);
	args[6] = psprintf(INT64_FORMAT, job->skipped);
	args[7] = psprintf("%.6f", (GetCurrentTimestamp() - start) / 1e6);
	args[8] = psprintf(INT64_FORMAT, mnist_model_served_id(job->name));
	args[9] = superseded ? psprintf("superseded: model " INT64_FORMAT " was deployed since the job's last round",
									mnist_model_served_id(job->name)) : NULL;
	run_sql(psprintf("UPDATE %s SET offsets = $5::jsonb, state = 'running', last_error = NULL, "
					 "last_model_id = CASE WHEN $10 IS NULL THEN $3::bigint END, served_model_id = $9::bigint "
					 "WHERE model_name = $1 AND started_at::text = $2",
					 jobs_table), 10, args, false);
	run_sql(psprintf("INSERT INTO %s (model_name, seconds, rows, skipped, from_offsets, to_offsets, model_id, "
					 "accuracy_before, accuracy_after, deployed, reason) "
					 "SELECT $1, $8::float8, $6::bigint, $7::bigint, $4::jsonb, $5::jsonb, id, "
					 "(metrics->'validation'->>'deployed_accuracy')::float8, "
					 "(metrics->'validation'->>'accuracy')::float8, "
					 "(metrics->'deploy'->>'deployed')::boolean, coalesce($10, metrics->'deploy'->>'reason') "
					 "FROM %s WHERE id = $3::bigint",
					 rounds_table, mnist_models_table()), 10, args, false);
	transaction_end();

	elog(LOG, "online learning of model \"%s\": round of " INT64_FORMAT " messages stored model " INT64_FORMAT,
		 job->name, job->buf.n, id);
	memcpy(job->stored, job->next_offset, job->nparts * sizeof(int64));
	job->buf.n = 0;
	job->skipped = 0;
	job->last_round = GetCurrentTimestamp();
}

/* Only bad messages since the last round: their offsets are stored, nothing is trained. */
static void
job_skip_bad(Job *job)
{
	const char *args[3] = {job->name, job->started_at, offsets_json(job->next_offset, job->nparts)};

	transaction_begin("mnist_ml online: skipping bad messages");
	run_sql(psprintf("UPDATE %s SET offsets = $3::jsonb WHERE model_name = $1 AND started_at::text = $2",
					 jobs_table), 3, args, false);
	transaction_end();
	elog(LOG, "online learning of model \"%s\": skipped " INT64_FORMAT " bad messages",
		 job->name, job->skipped);
	memcpy(job->stored, job->next_offset, job->nparts * sizeof(int64));
	job->skipped = 0;
}

/* One step of a job: reach the broker, consume, and run a round when one is due. */
static void
job_step(Job *job)
{
	if (job->rk == NULL && !job_connect(job))
		return;
	job_consume(job);
	if (job->buf.n + job->skipped < job->min_rows ||
		(job->last_round != 0 &&
		 !TimestampDifferenceExceeds(job->last_round, GetCurrentTimestamp(), (int) (job->every_s * 1000))))
		return;
	if (job->buf.n > 0)
		job_round(job);
	else
		job_skip_bad(job);
}

/*
 * Runs job_step; an error fails the job (state failed, the message in last_error) and drops
 * its consumer, but never the worker.
 */
static void
job_step_guarded(Job *job)
{
	MemoryContext cxt = CurrentMemoryContext;

	PG_TRY();
	{
		job_step(job);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);	/* not the aborted transaction's */
		edata = CopyErrorData();
		FlushErrorState();
		AbortCurrentTransaction();
		pgstat_report_activity(STATE_IDLE, NULL);
		elog(LOG, "online learning of model \"%s\" failed: %s", job->name, edata->message);
		job_set_state(job, "failed", edata->message);
		FreeErrorData(edata);
		job->seen = false;		/* dropped at the next sync */
	}
	PG_END_TRY();
}

void
mnist_online_worker_main(Datum arg)
{
	MemoryContext loop_cxt;
	char	   *database = MemoryContextStrdup(TopMemoryContext, mnist_online_database_name());

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(database, NULL, 0);
	/* a superuser process: no object of a user's schema may stand in for a catalog one */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);
	worker_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml online", ALLOCSET_DEFAULT_SIZES);
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

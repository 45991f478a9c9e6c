/*
 * deploy.c
 *		Deployments: mnist_deploy, mnist_rollback and the rows of mnist_deployments they (and
 *		gated training) append.
 *
 * mnist_deployments is a history: the latest row of a name whose model still exists names the
 * model serving it (model.c's resolver reads it).  Each row also keeps rollback_to, the row a
 * rollback from it returns to: the deployment it replaced for a deploy, and for a rollback the
 * rollback_to of the row it restored.  So the rows form a stack and mnist_rollback walks it
 * back one step per call.  Every decision of a name holds the name's lock (mnist_model_lock),
 * reads with the latest snapshot and writes as the table's owner (the table is read-only for
 * everybody else).
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/snapmgr.h"

#include "deploy.h"
#include "model.h"

/* A row of mnist_deployments. */
typedef struct Deployment
{
	int64		id;				/* 0: none */
	int64		model_id;
	int64		rollback_to;	/* 0: nothing earlier */
	bool		model_exists;
} Deployment;

/*
 * Runs a read-only query of the store with the latest snapshot, as its owner (inside SPI);
 * returns SPI_processed.
 */
static uint64
query_latest(const char *sql, int nargs, Oid *argtypes, Datum *values)
{
	Snapshot	snap = RegisterSnapshot(GetLatestSnapshot());
	SPIPlanPtr	plan;
	Oid			save_userid;
	int			save_sec;

	mnist_store_as_owner(&save_userid, &save_sec);
	plan = SPI_prepare(sql, nargs, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	if (SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed", mnist_deployments_table());
	SetUserIdAndSecContext(save_userid, save_sec);
	UnregisterSnapshot(snap);
	return SPI_processed;
}

static int64
column_int64(int col)
{
	bool		isnull;
	Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, col, &isnull);

	return isnull ? 0 : DatumGetInt64(d);
}

/* The deployment row of that name and id (inside SPI); id 0 when there is none. */
static Deployment
deployment_row(const char *name, int64 id)
{
	Oid			argtypes[2] = {TEXTOID, INT8OID};
	Datum		values[2] = {CStringGetTextDatum(name), Int64GetDatum(id)};
	Deployment	d = {0};
	bool		isnull;

	if (query_latest(psprintf("SELECT d.id, d.model_id, d.rollback_to, EXISTS "
							  "(SELECT FROM %s m WHERE m.id OPERATOR(pg_catalog.=) d.model_id "
							  "AND m.name OPERATOR(pg_catalog.=) d.name) "
							  "FROM %s d WHERE d.name OPERATOR(pg_catalog.=) $1 "
							  "AND d.id OPERATOR(pg_catalog.=) $2",
							  mnist_models_table(), mnist_deployments_table()),
					 2, argtypes, values) == 0)
		return d;
	d.id = column_int64(1);
	d.model_id = column_int64(2);
	d.rollback_to = column_int64(3);
	d.model_exists = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4,
												&isnull));
	return d;
}

/* The latest deployment of that name whose model exists (inside SPI); id 0 when none. */
static Deployment
current_deployment(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	Deployment	d = {0};

	if (query_latest(psprintf("SELECT d.id, d.model_id, d.rollback_to FROM %s d "
							  "JOIN %s m ON m.id OPERATOR(pg_catalog.=) d.model_id "
							  "AND m.name OPERATOR(pg_catalog.=) d.name "
							  "WHERE d.name OPERATOR(pg_catalog.=) $1 ORDER BY d.id DESC LIMIT 1",
							  mnist_deployments_table(), mnist_models_table()),
					 1, argtypes, values) == 0)
		return d;
	d.id = column_int64(1);
	d.model_id = column_int64(2);
	d.rollback_to = column_int64(3);
	d.model_exists = true;
	return d;
}

/* The number of deployment rows of that name, whether their models exist or not (inside SPI). */
static int64
deployment_count(const char *name)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};

	query_latest(psprintf("SELECT count(*) FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
						  mnist_deployments_table()), 1, argtypes, values);
	return column_int64(1);
}

/* Appends a deployment row (inside SPI), as the owner of the table. */
static void
insert_deployment(const char *name, int64 model_id, int64 replaced, const char *reason,
				  int64 rollback_to)
{
	Oid			argtypes[6] = {TEXTOID, INT8OID, INT8OID, OIDOID, TEXTOID, INT8OID};
	Datum		values[6];
	char		nulls[6] = "      ";
	Oid			save_userid;
	int			save_sec;

	values[0] = CStringGetTextDatum(name);
	values[1] = Int64GetDatum(model_id);
	values[2] = Int64GetDatum(replaced);
	values[3] = ObjectIdGetDatum(GetUserId());
	values[4] = CStringGetTextDatum(reason);
	values[5] = Int64GetDatum(rollback_to);
	if (replaced == 0)
		nulls[2] = 'n';
	if (rollback_to == 0)
		nulls[5] = 'n';

	mnist_store_as_owner(&save_userid, &save_sec);
	/* no row limit: that would stop the statement before its AFTER STATEMENT trigger */
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (name, model_id, replaced_model_id, deployed_by, "
									   "reason, rollback_to) VALUES ($1, $2, $3, $4, $5, $6)",
									   mnist_deployments_table()),
							  6, argtypes, values, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "inserting into %s failed", mnist_deployments_table());
	SetUserIdAndSecContext(save_userid, save_sec);
}

void
mnist_deployment_record(const char *name, int64 model_id, const char *reason)
{
	int64		served;
	Deployment	cur;

	served = mnist_model_served_id(name);
	SPI_connect();
	cur = current_deployment(name);
	/* a name never deployed was served by its newest model, unless that is this one */
	insert_deployment(name, model_id, cur.id != 0 ? cur.model_id : served != model_id ? served : 0,
					  reason, cur.id);
	SPI_finish();
}

/* ERROR unless the transaction may write. */
static void
deploy_check_writable(const char *what)
{
	PreventCommandIfReadOnly(what);
	PreventCommandDuringRecovery(what);
}

PG_FUNCTION_INFO_V1(mnist_deploy);

/* mnist_deploy(model_name text, model_id bigint DEFAULT NULL) RETURNS bigint */
Datum
mnist_deploy(PG_FUNCTION_ARGS)
{
	char	   *name;
	int64		model_id;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("model_name must not be null")));
	name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	deploy_check_writable("mnist_deploy()");
	mnist_model_lock(name, "deploy or roll back models of");

	SPI_connect();
	{
		Oid			argtypes[2] = {TEXTOID, INT8OID};
		Datum		values[2] = {CStringGetTextDatum(name), Int64GetDatum(PG_ARGISNULL(1) ? 0 : PG_GETARG_INT64(1))};

		if (query_latest(psprintf("SELECT id FROM %s WHERE name OPERATOR(pg_catalog.=) $1 "
								  "AND ($2 OPERATOR(pg_catalog.=) 0 OR id OPERATOR(pg_catalog.=) $2) "
								  "ORDER BY id DESC LIMIT 1", mnist_models_table()),
						 2, argtypes, values) == 0)
		{
			if (PG_ARGISNULL(1))
				ereport(ERROR,
						(errcode(ERRCODE_UNDEFINED_OBJECT),
						 errmsg("model \"%s\" does not exist", name)));
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_OBJECT),
					 errmsg("model \"%s\" has no model id " INT64_FORMAT, name, PG_GETARG_INT64(1)),
					 errhint("The models of a name are listed in mnist_models.")));
		}
		model_id = column_int64(1);
	}
	SPI_finish();
	mnist_deployment_record(name, model_id, "manual");
	PG_RETURN_INT64(model_id);
}

PG_FUNCTION_INFO_V1(mnist_rollback);

/* mnist_rollback(model_name text) RETURNS bigint: the model deployed before the current one */
Datum
mnist_rollback(PG_FUNCTION_ARGS)
{
	char	   *name = text_to_cstring(PG_GETARG_TEXT_PP(0));
	Deployment	cur,
				target;

	deploy_check_writable("mnist_rollback()");
	mnist_model_lock(name, "deploy or roll back models of");

	SPI_connect();
	cur = current_deployment(name);
	if (cur.id == 0 && deployment_count(name) > 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("model \"%s\" has no deployed model to roll back from", name),
				 errdetail("The models deployed under this name were deleted."),
				 errhint("Deploy one of its models with mnist_deploy(model_name, model_id).")));
	if (cur.id == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has never been deployed", name)));
	/* deployments of models deleted since are skipped */
	target.rollback_to = cur.rollback_to;
	do
	{
		if (target.rollback_to == 0)
			ereport(ERROR,
					(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
					 errmsg("model \"%s\" has no earlier deployment to roll back to", name),
					 errdetail("Model id " INT64_FORMAT " is deployed; the models deployed before it, if any, were deleted or rolled back.",
							   cur.model_id)));
		target = deployment_row(name, target.rollback_to);
	} while (!target.model_exists);

	insert_deployment(name, target.model_id, cur.model_id, "rollback", target.rollback_to);
	SPI_finish();
	PG_RETURN_INT64(target.model_id);
}

/*
 * deploy.c
 *		Which stored model serves a name, the middle of the three model layers (store,
 *		resolver, cache): the resolver, and the deployments that decide it: mnist_deploy,
 *		mnist_rollback and the rows of mnist_deployments they (and gated training) append.
 *		It calls the store (model_store.c), never the cache (model_cache.c).
 *
 * Serving: a name is served by its deployed model, the model of its latest row in
 * mnist_deployments whose model still exists.  A name never deployed (or a database still at
 * 1.0, which has no mnist_deployments) is served by its newest model; a name whose deployed
 * models were all deleted is served by none (never by a model that was kept from serving, such
 * as one stored with deploy => 'never').  mnist_model_resolve() is the one resolver; it reads
 * the store by index scans, not SQL.
 *
 * mnist_deployments is a history: the latest row of a name whose model still exists names the
 * model serving it.  Each row also keeps rollback_to, the row a
 * rollback from it returns to: the deployment it replaced for a deploy, and for a rollback the
 * rollback_to of the row it restored.  So the rows form a stack and mnist_rollback walks it
 * back one step per call.  Every decision of a name holds the name's lock (mnist_model_lock),
 * reads with the latest snapshot and writes as the table's owner (the table is read-only for
 * everybody else).
 */
#include "postgres.h"

#include "access/genam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

#include "deploy.h"
#include "model.h"
#include "pg_compat.h"

/* ---- the resolver ---- */

/*
 * The first row of rel visible to snap in the order of index (direction dir) whose first
 * column equals value (eqproc: the equality of its type): true and the row in slot, or false.
 */
static bool
index_first(Relation rel, Oid indexid, Snapshot snap, RegProcedure eqproc, Datum value,
			ScanDirection dir, TupleTableSlot *slot)
{
	Relation	index = index_open(indexid, AccessShareLock);
	IndexScanDesc scan;
	ScanKeyData key;
	bool		found;

	ScanKeyEntryInitialize(&key, 0, 1, BTEqualStrategyNumber, InvalidOid,
						   index->rd_indcollation[0], eqproc, value);
	scan = mnist_index_beginscan(rel, index, snap, 1, 0);
	index_rescan(scan, &key, 1, NULL, 0);
	found = index_getnext_slot(scan, dir, slot);
	index_endscan(scan);
	index_close(index, NoLock);
	return found;
}

/* Whether the mnist_models row in slot has that name. */
static bool
row_has_name(TupleTableSlot *slot, AttrNumber models_name, const text *name)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, models_name, &isnull);
	text	   *stored;

	if (isnull)
		return false;
	stored = DatumGetTextPP(d);
	return VARSIZE_ANY_EXHDR(stored) == VARSIZE_ANY_EXHDR(name) &&
		memcmp(VARDATA_ANY(stored), VARDATA_ANY(name), VARSIZE_ANY_EXHDR(name)) == 0;
}

/*
 * The resolver: id of the model serving that name under snap, or 0 when it has none
 * (*orphaned then tells whether it has models but its deployed ones were all deleted).  The
 * model's row is left in *slot (a slot of mnist_models in CurrentMemoryContext, which the
 * caller drops), with its stored weights (maybe toasted: not read yet).
 *
 * It is the query
 *	 (SELECT m.* FROM mnist_deployments d JOIN mnist_models m ON m.id = d.model_id AND
 *	  m.name = d.name WHERE d.name = $1 ORDER BY d.id DESC LIMIT 1)
 *	 UNION ALL (SELECT * FROM mnist_models WHERE name = $1 AND NOT EXISTS
 *				(SELECT FROM mnist_deployments WHERE name = $1) ORDER BY id DESC LIMIT 1) LIMIT 1
 * run as index scans: no parser, no planner, the half of a new session's first prediction
 * they cost through SPI.  No privilege or row-level security check applies, as for the owner
 * of the store that the functions read it as (mnist_store_as_owner).
 */
int64
mnist_model_resolve(const char *name, Snapshot snap, TupleTableSlot **slot, bool *orphaned)
{
	text	   *key = cstring_to_text(name);
	/* read before a lock accepts invalidations */
	MnistStoreLayout layout = *mnist_store_layout();
	Oid			deployments = layout.deployments;
	Relation	models = table_open(layout.models, AccessShareLock);
	bool		found = false;
	bool		deployed = false;
	bool		isnull;

	*slot = table_slot_create(models, NULL);
	if (OidIsValid(deployments))
	{
		Relation	drel = table_open(deployments, AccessShareLock);
		Relation	index = index_open(layout.deployments_by_name, AccessShareLock);
		TupleTableSlot *d = table_slot_create(drel, NULL);
		IndexScanDesc scan;
		ScanKeyData skey;

		ScanKeyEntryInitialize(&skey, 0, 1, BTEqualStrategyNumber, InvalidOid,
							   index->rd_indcollation[0], F_TEXTEQ, PointerGetDatum(key));
		scan = mnist_index_beginscan(drel, index, snap, 1, 0);
		index_rescan(scan, &skey, 1, NULL, 0);
		/* the latest deployment whose model still exists (with that name) */
		while (!found && index_getnext_slot(scan, BackwardScanDirection, d))
		{
			Datum		model_id = slot_getattr(d, layout.deployments_model_id, &isnull);

			deployed = true;
			found = !isnull &&
				index_first(models, layout.models_by_id, snap, F_INT8EQ, model_id,
							ForwardScanDirection, *slot) &&
				row_has_name(*slot, layout.models_name, key);
		}
		index_endscan(scan);
		ExecDropSingleTupleTableSlot(d);
		index_close(index, NoLock);
		table_close(drel, NoLock);
	}
	/* the newest model: the served one of a name never deployed */
	*orphaned = false;
	if (!found && index_first(models, layout.models_by_name, snap, F_TEXTEQ, PointerGetDatum(key),
							  BackwardScanDirection, *slot))
	{
		found = !deployed;
		*orphaned = deployed;
	}
	table_close(models, NoLock);
	pfree(key);
	if (!found)
		return 0;
	return DatumGetInt64(slot_getattr(*slot, layout.models_id, &isnull));
}

/* The row version in slot (a row of mnist_models). */
void
mnist_model_row(TupleTableSlot *slot, ModelRow *row)
{
	bool		isnull;

	row->relid = slot->tts_tableOid;
	row->xmin = DatumGetTransactionId(slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull));
	ItemPointerCopy(&slot->tts_tid, &row->ctid);
}

/* The stored weights of the mnist_models row in slot (maybe toasted); ERROR when NULL. */
Datum
mnist_model_slot_weights(TupleTableSlot *slot, const char *name, int64 id)
{
	bool		isnull;
	Datum		w = slot_getattr(slot, mnist_store_layout()->models_weights, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" (id " INT64_FORMAT ") has no weights", name, id)));
	return w;
}

void
mnist_model_not_found(const char *name, bool orphaned)
{
	if (orphaned)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model \"%s\" has no deployed model", name),
				 errdetail("The models deployed under this name were deleted; a model never deployed does not serve in their place."),
				 errhint("Deploy one of its models with mnist_deploy(model_name, model_id).")));
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("model \"%s\" does not exist", name),
			 errhint("Train one with mnist_train(); stored models are listed in mnist_models.")));
}

bytea *
mnist_model_fetch_weights(const char *name, int64 *id)
{
	Snapshot	snap;
	TupleTableSlot *slot;
	bytea	   *weights;
	bool		orphaned;

	/* the statement's snapshot, as the query that read it before */
	snap = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	*id = mnist_model_resolve(name, snap, &slot, &orphaned);
	if (*id == 0)
		mnist_model_not_found(name, orphaned);
	weights = DatumGetByteaPCopy(mnist_model_slot_weights(slot, name, *id));
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	return weights;
}

int64
mnist_model_served_id(const char *name)
{
	Snapshot	snap;
	TupleTableSlot *slot;
	int64		id;
	bool		orphaned;

	snap = RegisterSnapshot(GetLatestSnapshot());
	id = mnist_model_resolve(name, snap, &slot, &orphaned);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	return id;
}

/* ---- deployments ---- */

/* A row of mnist_deployments. */
typedef struct Deployment
{
	int64		id;				/* 0: none */
	int64		model_id;
	int64		rollback_to;	/* 0: nothing earlier */
	bool		model_exists;
} Deployment;

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

	if (mnist_store_query_latest(psprintf("SELECT d.id, d.model_id, d.rollback_to, EXISTS "
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

	if (mnist_store_query_latest(psprintf("SELECT d.id, d.model_id, d.rollback_to FROM %s d "
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

	mnist_store_query_latest(psprintf("SELECT count(*) FROM %s WHERE name OPERATOR(pg_catalog.=) $1",
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

		if (mnist_store_query_latest(psprintf("SELECT id FROM %s WHERE name OPERATOR(pg_catalog.=) $1 "
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

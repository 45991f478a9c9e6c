/*
 * model_store.c
 *		The model store, the lowest of the three model layers (store, resolver, cache): the
 *		tables mnist_models and mnist_deployments found in the extension's schema with the
 *		layout the layers above read (indexes, column numbers), the weights bytea format,
 *		models read by id and stored, the owner the functions act as, the lock of a name.
 *
 * Terms.  A stored model is a row of mnist_models; its weights are weights.c's format, which
 * mnist_weights_encode/decode wrap for bytea values, reporting a corrupted value as
 * ERRCODE_DATA_CORRUPTED.  The store generation counts invalidations of the store: a relcache
 * invalidation of mnist_models or mnist_deployments (sent at commit by the statement triggers
 * calling mnist_models_changed), or a cache reset, bumps it and forgets the tables' OIDs, which
 * the next use looks up again.  Without a known mnist_deployments (a 1.0 database, which ALTER
 * EXTENSION UPDATE may upgrade at any time) every invalidation does.  The cache above
 * (model_cache.c) re-checks its entries when the generation moves.
 *
 * Cold load: what a new session pays at its first prediction.  Only the parameters are read
 * (mnist_weights_decode_params), not the Adam state after them, straight from their toast
 * chunks into memory whose pages one system call faults in (mnist_prefaulted).
 *
 * This file calls neither the resolver (deploy.c) nor the cache (model_cache.c).
 */
#include "postgres.h"

#include <sys/mman.h>
#include <unistd.h>

#include "access/detoast.h"
#include "access/genam.h"
#include "access/tableam.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_class.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_type.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/fmgroids.h"
#include "utils/syscache.h"

#include "mnist_ml.h"
#include "model.h"
#include "pg_compat.h"

static MemoryContext store_cxt = NULL;	/* the quoted table names */
static uint64 store_generation = 1;
static char *models_qualname = NULL;	/* quoted schema.mnist_models, in store_cxt */
static char *deployments_qualname = NULL;	/* quoted schema.mnist_deployments, or NULL */
static MnistStoreLayout layout;	/* layout.models: InvalidOid until looked up (again) */

/*
 * Relcache callback: a change to mnist_models or mnist_deployments (or a cache reset) is a new
 * store generation.  Without a known mnist_deployments (a 1.0 database, which ALTER EXTENSION
 * UPDATE may upgrade at any time) every invalidation is.
 */
static void
store_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == layout.models || relid == layout.deployments ||
		!OidIsValid(layout.deployments))
	{
		store_generation++;
		layout.models = InvalidOid;
	}
}

uint64
mnist_store_generation(void)
{
	return store_generation;
}

/*
 * Schema of the extension (PostgreSQL 15 does not export get_extension_schema()).
 */
static Oid
extension_schema(void)
{
	Oid			ext = get_extension_oid("mnist_ml", false);
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp;

	ScanKeyInit(&key, Anum_pg_extension_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(ext));
	scan = systable_beginscan(rel, ExtensionOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "could not find extension mnist_ml");
	nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* ERROR unless an object of the model store exists (id: its OID or column number). */
static int
store_object(int id, const char *what)
{
	if (id == InvalidOid || id == InvalidAttrNumber)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("%s of extension mnist_ml does not exist", what),
				 errhint("Recreate the extension, or restore the object from its install script.")));
	return id;
}

/*
 * The OID of mnist_models (in the extension's schema), remembered until invalidated, with the
 * layout of the store.
 */
static Oid
models_relation(void)
{
	if (store_cxt == NULL)
	{
		store_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml model store",
										  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(store_relcache_cb, (Datum) 0);
	}
	if (!OidIsValid(layout.models))
	{
		Oid			nsp = extension_schema();
		Oid			relid = get_relname_relid("mnist_models", nsp);

		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table mnist_models of extension mnist_ml does not exist")));
		if (models_qualname)
			pfree(models_qualname);
		models_qualname = MemoryContextStrdup(store_cxt,
											  quote_qualified_identifier(get_namespace_name(nsp),
																		 "mnist_models"));
		if (deployments_qualname)
			pfree(deployments_qualname);
		deployments_qualname = NULL;
		layout.deployments = get_relname_relid("mnist_deployments", nsp);
		if (OidIsValid(layout.deployments))
			deployments_qualname =
				MemoryContextStrdup(store_cxt,
									quote_qualified_identifier(get_namespace_name(nsp),
															   "mnist_deployments"));
		layout.models_by_id = store_object(get_relname_relid("mnist_models_pkey", nsp), "index mnist_models_pkey");
		layout.models_by_name = store_object(get_relname_relid("mnist_models_name_id", nsp), "index mnist_models_name_id");
		layout.models_id = store_object(get_attnum(relid, "id"), "column mnist_models.id");
		layout.models_name = store_object(get_attnum(relid, "name"), "column mnist_models.name");
		layout.models_weights = store_object(get_attnum(relid, "weights"), "column mnist_models.weights");
		layout.deployments_by_name = InvalidOid;
		if (OidIsValid(layout.deployments))
		{
			layout.deployments_by_name = store_object(get_relname_relid("mnist_deployments_name_id", nsp),
													  "index mnist_deployments_name_id");
			layout.deployments_model_id = store_object(get_attnum(layout.deployments, "model_id"),
													   "column mnist_deployments.model_id");
		}
		layout.models = relid;
	}
	return layout.models;
}

const MnistStoreLayout *
mnist_store_layout(void)
{
	models_relation();
	return &layout;
}

const char *
mnist_models_table(void)
{
	models_relation();
	return models_qualname;
}

const char *
mnist_deployments_table(void)
{
	models_relation();
	if (deployments_qualname == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("table mnist_deployments of extension mnist_ml does not exist")));
	return deployments_qualname;
}


/* Owner of a relation. */
static Oid
relation_owner(Oid relid)
{
	HeapTuple	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	Oid			owner;

	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", relid);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);
	return owner;
}

Oid
mnist_store_owner(void)
{
	return relation_owner(models_relation());
}

void
mnist_store_as_owner(Oid *save_userid, int *save_sec)
{
	GetUserIdAndSecContext(save_userid, save_sec);
	SetUserIdAndSecContext(mnist_store_owner(),
						   *save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
}

/*
 * Runs a read-only query of the store with the latest snapshot, as its owner (inside SPI);
 * returns SPI_processed.
 */
uint64
mnist_store_query_latest(const char *sql, int nargs, Oid *argtypes, Datum *values)
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
		elog(ERROR, "reading the model store failed: %s", sql);
	SetUserIdAndSecContext(save_userid, save_sec);
	UnregisterSnapshot(snap);
	return SPI_processed;
}

void *
mnist_alloc_aligned64(Size size)
{
	return (void *) TYPEALIGN(64, MemoryContextAllocHuge(CurrentMemoryContext, size + 63));
}

bytea *
mnist_weights_encode(const MnistNet *net)
{
	size_t		len = mnist_weights_size(net->n_hidden,
										 net->adam_m != NULL && net->adam_v != NULL);
	bytea	   *result = (bytea *) palloc(VARHDRSZ + len);

	SET_VARSIZE(result, VARHDRSZ + len);
	mnist_weights_write(net, (uint8 *) VARDATA(result));
	return result;
}

/* ERROR for a weights value that failed validation. */
static pg_noreturn void
weights_corrupted(const char *detail)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATA_CORRUPTED),
			 errmsg("model weights are corrupted"),
			 errdetail("%s", detail)));
}

void
mnist_weights_decode(bytea *weights, MnistNet *net)
{
	const uint8 *d = (const uint8 *) VARDATA_ANY(weights);
	MnistWeightsInfo info;
	char		detail[MNIST_WEIGHTS_DETAIL_SIZE];

	if (mnist_weights_check(d, VARSIZE_ANY_EXHDR(weights), &info, detail))
	{
		float	   *params = mnist_alloc_aligned64(info.n_params * sizeof(float)),
				   *m = mnist_alloc_aligned64(info.n_params * sizeof(float)),
				   *v = mnist_alloc_aligned64(info.n_params * sizeof(float));

		if (mnist_weights_read(d, &info, params, m, v, detail))
		{
			mnist_net_bind(net, info.n_hidden, params, m, v);
			net->adam_step = info.adam_step;
			return;
		}
	}
	weights_corrupted(detail);
}

/*
 * Faults in the whole pages of a fresh allocation in one system call (MADV_POPULATE_WRITE,
 * Linux 5.14), instead of a page fault at the first touch of each 4 kB page: those were a
 * third of a new session's first prediction on a virtual machine.  Nothing happens where the
 * call is unknown.
 */
void *
mnist_prefaulted(void *p, Size len)
{
#ifdef MADV_POPULATE_WRITE
	static Size page = 0;
	uintptr_t	start,
				end;

	if (page == 0)
		page = (Size) sysconf(_SC_PAGESIZE);
	start = TYPEALIGN(page, (uintptr_t) p);
	end = TYPEALIGN_DOWN(page, (uintptr_t) p + len);
	if (end > start)
		(void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
	return p;
}

/*
 * Reads length bytes from offset of a value stored out of line uncompressed straight into
 * dst, which has VARHDRSZ bytes of room before it (the header of the slice), without
 * detoasting a copy.  false for a value stored otherwise (inline, or compressed).
 */
static bool
fetch_slice_into(struct varlena *stored, int32 offset, int32 length, char *dst)
{
	struct varatt_external pointer;
	struct varlena *slice = (struct varlena *) (dst - VARHDRSZ);
	Relation	toastrel;

	if (!VARATT_IS_EXTERNAL_ONDISK(stored))
		return false;
	VARATT_EXTERNAL_GET_POINTER(pointer, stored);
	if (VARATT_EXTERNAL_IS_COMPRESSED(pointer) ||
		offset + length > VARATT_EXTERNAL_GET_EXTSIZE(pointer))
		return false;
	SET_VARSIZE(slice, VARHDRSZ + length);
	toastrel = table_open(pointer.va_toastrelid, AccessShareLock);
	table_relation_fetch_toast_slice(toastrel, pointer.va_valueid,
									 VARATT_EXTERNAL_GET_EXTSIZE(pointer), offset, length, slice);
	table_close(toastrel, AccessShareLock);
	return true;
}

/*
 * Decodes the parameters of a stored weights value (as read from the table: maybe toasted)
 * into net, in CurrentMemoryContext, without its Adam state: what serving needs.  Only the
 * header and then the parameters are read, a third of a value with Adam state.  A value stored
 * out of line uncompressed (mnist_models.weights is STORAGE EXTERNAL since 1.1, and floats
 * hardly ever compressed before) is read from its toast chunks straight into the parameters'
 * memory; one stored compressed or inline is detoasted (a prefix) and copied.  The header is
 * checked against the length of the whole value.
 */
void
mnist_weights_decode_params(Datum value, MnistNet *net)
{
	struct varlena *stored = (struct varlena *) DatumGetPointer(value);
	Size		len = toast_raw_datum_size(value) - VARHDRSZ;
	struct varlena *head = detoast_attr_slice(stored, 0, Min(len, MNIST_WEIGHTS_HEADER));
	MnistWeightsInfo info;
	char		detail[MNIST_WEIGHTS_DETAIL_SIZE];

	bool		valid = mnist_weights_check((const uint8 *) VARDATA_ANY(head), len, &info, detail);

	pfree(head);
	if (valid)
	{
		size_t		bytes = info.n_params * sizeof(float);
		struct varlena *prefix = NULL;
		/* 64 bytes before the parameters: room for the header they follow */
		char	   *mem = mnist_prefaulted(mnist_alloc_aligned64(64 + bytes), 64 + bytes);
		float	   *params = (float *) (mem + 64);
		const uint8 *d = (const uint8 *) params - MNIST_WEIGHTS_HEADER;

		if (!fetch_slice_into(stored, MNIST_WEIGHTS_HEADER, bytes, (char *) params))
		{
			size_t		end = mnist_weights_params_end(&info);

			prefix = detoast_attr_slice(stored, 0, end);

			if (VARSIZE_ANY_EXHDR(prefix) != end)
				elog(ERROR, "weights prefix of %zu bytes read as %zu", end,
					 (Size) VARSIZE_ANY_EXHDR(prefix));
			d = (const uint8 *) VARDATA_ANY(prefix);
		}
		valid = mnist_weights_read_params(d, &info, params, detail);
		if (prefix)
			pfree(prefix);
		if (valid)
		{
			mnist_net_bind(net, info.n_hidden, params, NULL, NULL);
			net->adam_step = 0;
			return;
		}
	}
	weights_corrupted(detail);
}

/* Bytes of a model's scratch: what mnist_net_predict and mnist_screen_classify need. */
Size
mnist_model_scratch_size(int n_hidden)
{
	return Max(mnist_net_predict_scratch(n_hidden), mnist_screen_scratch(n_hidden)) * sizeof(float);
}

MnistModel *
mnist_model_load_id(int64 id, bool with_adam)
{
	Oid			argtypes[1] = {INT8OID};
	Datum		values[1] = {Int64GetDatum(id)};
	MemoryContext caller = CurrentMemoryContext;
	MnistModel *m;
	bool		isnull;
	Datum		weights;

	models_relation();
	SPI_connect();
	/* the latest snapshot: a gate compares with a model deployed after the statement began */
	mnist_store_query_latest(psprintf("SELECT name, weights FROM %s WHERE id OPERATOR(pg_catalog.=) $1",
									  models_qualname), 1, argtypes, values);
	if (SPI_processed == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("model id " INT64_FORMAT " does not exist", id),
				 errhint("Stored models are listed in mnist_models.")));
	m = MemoryContextAllocZero(caller, sizeof(MnistModel));
	m->id = id;
	m->name = MemoryContextStrdup(caller, SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1));
	weights = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	{
		/* a detoasted copy of the whole value stays in SPI's memory, freed by SPI_finish */
		bytea	   *whole = with_adam ? DatumGetByteaPP(weights) : NULL;
		MemoryContext old = MemoryContextSwitchTo(caller);

		if (with_adam)
			mnist_weights_decode(whole, &m->net);
		else
			mnist_weights_decode_params(weights, &m->net);
		m->scratch = palloc(mnist_model_scratch_size(m->net.n_hidden));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return m;
}

void
mnist_model_name_check(const char *name)
{
	if (name == NULL || name[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model_name must not be empty")));
	if (strlen(name) > MNIST_MAX_NAME_BYTES)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("model_name must be at most %d bytes, not %zu",
						MNIST_MAX_NAME_BYTES, strlen(name))));
}

/*
 * ERROR unless user may add models of that name (run inside SPI).  The caller holds the name's
 * lock; the owner is read with the latest snapshot, so a first store committed while we waited
 * for the lock counts.
 */
static void
check_name_owner(const char *name, Oid user, const char *action)
{
	Oid			argtypes[1] = {TEXTOID};
	Datum		values[1] = {CStringGetTextDatum(name)};
	bool		isnull;
	Oid			owner;
	char	   *owner_name;

	if (mnist_store_query_latest(psprintf("SELECT trained_by FROM %s WHERE name OPERATOR(pg_catalog.=) $1 "
										  "ORDER BY id LIMIT 1", models_qualname),
								 1, argtypes, values) == 0)
		return;
	owner = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										   &isnull));
	if (isnull || has_privs_of_role(user, owner))
		return;
	owner_name = GetUserNameFromId(owner, true);
	if (owner_name == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("model \"%s\" belongs to a dropped role (OID %u)", name, owner),
				 errhint("A superuser can give the name to another role with mnist_model_reassign(model_name, new_owner).")));
	ereport(ERROR,
			(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
			 errmsg("model \"%s\" belongs to role %s", name, owner_name),
			 action ? errhint("Only members of that role may %s this name.", action) :
			 errhint("Choose another model_name; only members of that role may store newer models of this name.")));
}

/*
 * Waits for and takes, until the end of the transaction, the lock on a model name: the
 * advisory lock pg_advisory_xact_lock(<OID of mnist_models>::int4, hashtext(name)).
 */
static void
lock_name(Oid relid, const char *name)
{
	LOCKTAG		tag;

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, (uint32) relid,
						 hash_bytes((const unsigned char *) name, strlen(name)), 2);
	(void) LockAcquire(&tag, ExclusiveLock, false, false);
}

void
mnist_model_lock(const char *name, const char *action)
{
	mnist_model_name_check(name);
	lock_name(models_relation(), name);
	SPI_connect();
	check_name_owner(name, GetUserId(), action);
	SPI_finish();
}

int64
mnist_model_store(const char *name, const char *hyperparameters, const char *metrics,
				  bytea *weights)
{
	Oid			relid = models_relation();
	Oid			user = GetUserId();
	Oid			save_userid;
	int			save_sec;
	Oid			argtypes[5] = {TEXTOID, TEXTOID, TEXTOID, BYTEAOID, OIDOID};
	Datum		values[5];
	bool		isnull;
	int64		id;

	values[0] = CStringGetTextDatum(name);
	values[1] = CStringGetTextDatum(hyperparameters);
	values[2] = CStringGetTextDatum(metrics);
	values[3] = PointerGetDatum(weights);
	values[4] = ObjectIdGetDatum(user);

	/* ordinary users cannot write mnist_models: insert as its owner, this statement only */
	mnist_store_as_owner(&save_userid, &save_sec);
	mnist_model_name_check(name);
	lock_name(relid, name);
	SPI_connect();
	check_name_owner(name, user, NULL);
	/* no row limit: that would stop the statement before its AFTER STATEMENT trigger */
	if (SPI_execute_with_args(psprintf("INSERT INTO %s (name, hyperparameters, metrics, weights, trained_by) "
									   "VALUES ($1, $2::pg_catalog.jsonb, $3::pg_catalog.jsonb, $4, $5) "
									   "RETURNING id", models_qualname),
							  5, argtypes, values, NULL, false, 0) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "inserting into %s failed", models_qualname);
	SetUserIdAndSecContext(save_userid, save_sec);
	id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	SPI_finish();
	return id;
}

PG_FUNCTION_INFO_V1(mnist_models_changed);

/*
 * Statement trigger on mnist_models: tells every backend (at commit) to re-check its cached
 * models.
 */
Datum
mnist_models_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("mnist_models_changed() must be called as a trigger")));
	CacheInvalidateRelcacheByRelid(RelationGetRelid(td->tg_relation));
	return PointerGetDatum(NULL);
}


/*
 * model.c
 *		Stored models: the weights bytea format, the mnist_models table and the per-backend
 *		cache of decoded models.
 *
 * The weights format is weights.c's; mnist_weights_encode/decode wrap it for bytea values
 * and report a corrupted value as ERRCODE_DATA_CORRUPTED.
 *
 * Serving: a name is served by its deployed model, the model of its latest row in
 * mnist_deployments whose model still exists (deploy.c writes them).  A name never deployed
 * (or a database still at 1.0, which has no mnist_deployments) is served by its newest model;
 * a name whose deployed models were all deleted is served by none (never by a model that
 * was kept from serving, such as one stored with deploy => 'never').
 * lookup_model() is the one resolver; it reads the store by index scans, not SQL.
 *
 * Cold load: what a new session pays at its first prediction.  Only the parameters are read
 * (weights_decode_params), not the Adam state after them, straight from their toast chunks
 * into memory whose pages one system call faults in; the screen is built only once the model
 * has classified enough images to repay it (mnist_model_classify).
 *
 * Cache: decoded models are kept per backend by name.  Statement-level triggers on
 * mnist_models and mnist_deployments (mnist_models_changed) send a relcache invalidation for
 * the table; our relcache callback bumps a generation counter, so the next mnist_model_get()
 * (after AcceptInvalidationMessages) resolves the name again with a fresh snapshot and
 * decodes the served row unless it is the very row version already cached: same table (OID),
 * same xmin and ctid.  Ids alone are not enough: TRUNCATE ... RESTART IDENTITY or DROP/CREATE
 * EXTENSION reuse them, and an UPDATE keeps them.
 *
 * Holders: mnist_model_get() hands a model out to a holder, a memory context of the caller
 * (a per-row function's fn_mcxt, which lives as long as its query's executor state, or the
 * context of one call).  A model is held until every holder it was handed to is reset or
 * deleted (a reset callback counts them down); a model replaced by a newer row version, or
 * dropped from the cache, is freed once nothing holds it.
 *
 * Bound: the cache holds at most mnist_ml.model_cache_size of decoded models (their memory
 * contexts), dropping the least recently used first, but never a held one: the cache exceeds
 * the bound by at most the models that running queries hold, also inside one transaction
 * (a DO block trying 200 models keeps no more than the bound plus the one in use).
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
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
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

/* A row version of mnist_models: a cached model is valid only for the very row it decoded. */
typedef struct ModelRow
{
	Oid			relid;			/* mnist_models, which DROP/CREATE EXTENSION replaces */
	TransactionId xmin;			/* the inserting (or updating) transaction */
	ItemPointerData ctid;
} ModelRow;

/* A decoded model and what holds it. */
typedef struct Decoded
{
	MnistModel	model;
	MemoryContext cxt;			/* holds this struct and all of the model's memory */
	int			holders;		/* holder contexts not reset or deleted yet */
	bool		cached;			/* still the model of its cache entry */
} Decoded;

/* One cached model name. */
typedef struct CacheEntry
{
	dlist_node	node;			/* in cache_lru */
	char	   *name;
	Decoded    *decoded;
	ModelRow	row;			/* the row model was decoded from */
	Size		bytes;			/* memory of decoded->cxt */
	uint64		checked_gen;	/* cache_generation when the id was last checked */
	LocalTransactionId checked_lxid;	/* valid only in this transaction, or Invalid */
} CacheEntry;

static MemoryContext cache_cxt = NULL;
static dlist_head cache_lru = DLIST_STATIC_INIT(cache_lru);	/* most recently used first */
static Size cache_bytes = 0;	/* sum of the entries' bytes */
static uint64 cache_generation = 1;
static Oid	models_relid = InvalidOid;
static char *models_qualname = NULL;	/* quoted schema.mnist_models, in cache_cxt */
static Oid	deployments_relid = InvalidOid; /* InvalidOid: none (1.0) or not looked up yet */
static char *deployments_qualname = NULL;	/* quoted schema.mnist_deployments, or NULL */

/* What the resolver reads, looked up with the relations: indexes and column numbers. */
typedef struct StoreLayout
{
	Oid			models_by_id;	/* mnist_models_pkey (id) */
	Oid			models_by_name; /* mnist_models_name_id (name, id) */
	Oid			deployments_by_name;	/* mnist_deployments_name_id (name, id), or InvalidOid */
	AttrNumber	models_id;
	AttrNumber	models_name;
	AttrNumber	models_weights;
	AttrNumber	deployments_model_id;
} StoreLayout;
static StoreLayout layout;

/*
 * Relcache callback: a change to mnist_models or mnist_deployments (or a cache reset) makes
 * every entry stale.  Without a known mnist_deployments (a 1.0 database, which ALTER EXTENSION
 * UPDATE may upgrade at any time) every invalidation does.
 */
static void
models_relcache_cb(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == models_relid || relid == deployments_relid ||
		!OidIsValid(deployments_relid))
	{
		cache_generation++;
		models_relid = InvalidOid;
	}
}

/* Frees a decoded model no cache entry has any more, once nothing holds it. */
static void
decoded_release(Decoded *d)
{
	d->cached = false;
	if (d->holders == 0)
		MemoryContextDelete(d->cxt);
}

/* Reset callback of a holder context: one holder of a model fewer. */
static void
decoded_unhold(void *arg)
{
	Decoded    *d = (Decoded *) arg;

	if (--d->holders == 0 && !d->cached)
		MemoryContextDelete(d->cxt);
}

/* Hands d out to holder: it stays valid until holder is reset or deleted. */
static void
decoded_hold(Decoded *d, MemoryContext holder)
{
	MemoryContextCallback *cb = MemoryContextAlloc(holder, sizeof(MemoryContextCallback));

	cb->func = decoded_unhold;
	cb->arg = d;
	MemoryContextRegisterResetCallback(holder, cb);
	d->holders++;
}

/* Drops a cache entry; its model goes once nothing holds it. */
static void
cache_evict(CacheEntry *e)
{
	dlist_delete(&e->node);
	cache_bytes -= e->bytes;
	decoded_release(e->decoded);
	pfree(e->name);
	pfree(e);
}

/* Drops least recently used models nothing holds until the cache fits mnist_ml.model_cache_size. */
static void
cache_trim(void)
{
	Size		limit = (Size) mnist_model_cache_size * 1024;
	dlist_node *node,
			   *prev;

	if (dlist_is_empty(&cache_lru))
		return;
	for (node = dlist_tail_node(&cache_lru); cache_bytes > limit && node != &cache_lru.head;
		 node = prev)
	{
		CacheEntry *e = dlist_container(CacheEntry, node, node);

		prev = node->prev;
		if (e->decoded->holders == 0)
			cache_evict(e);
	}
}

/* At the end of a transaction its queries' holders are gone: the cache goes back within its bound. */
static void
cache_xact_cb(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT || event == XACT_EVENT_PREPARE)
		cache_trim();
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
	if (cache_cxt == NULL)
	{
		cache_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml models",
										  ALLOCSET_SMALL_SIZES);
		CacheRegisterRelcacheCallback(models_relcache_cb, (Datum) 0);
		RegisterXactCallback(cache_xact_cb, NULL);
	}
	if (!OidIsValid(models_relid))
	{
		Oid			nsp = extension_schema();
		Oid			relid = get_relname_relid("mnist_models", nsp);

		if (!OidIsValid(relid))
			ereport(ERROR,
					(errcode(ERRCODE_UNDEFINED_TABLE),
					 errmsg("table mnist_models of extension mnist_ml does not exist")));
		if (models_qualname)
			pfree(models_qualname);
		models_qualname = MemoryContextStrdup(cache_cxt,
											  quote_qualified_identifier(get_namespace_name(nsp),
																		 "mnist_models"));
		if (deployments_qualname)
			pfree(deployments_qualname);
		deployments_qualname = NULL;
		deployments_relid = get_relname_relid("mnist_deployments", nsp);
		if (OidIsValid(deployments_relid))
			deployments_qualname =
				MemoryContextStrdup(cache_cxt,
									quote_qualified_identifier(get_namespace_name(nsp),
															   "mnist_deployments"));
		layout.models_by_id = store_object(get_relname_relid("mnist_models_pkey", nsp), "index mnist_models_pkey");
		layout.models_by_name = store_object(get_relname_relid("mnist_models_name_id", nsp), "index mnist_models_name_id");
		layout.models_id = store_object(get_attnum(relid, "id"), "column mnist_models.id");
		layout.models_name = store_object(get_attnum(relid, "name"), "column mnist_models.name");
		layout.models_weights = store_object(get_attnum(relid, "weights"), "column mnist_models.weights");
		layout.deployments_by_name = InvalidOid;
		if (OidIsValid(deployments_relid))
		{
			layout.deployments_by_name = store_object(get_relname_relid("mnist_deployments_name_id", nsp),
													  "index mnist_deployments_name_id");
			layout.deployments_model_id = store_object(get_attnum(deployments_relid, "model_id"),
													   "column mnist_deployments.model_id");
		}
		models_relid = relid;
	}
	return models_relid;
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
static void *
prefaulted(void *p, Size len)
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
static void
weights_decode_params(Datum value, MnistNet *net)
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
		char	   *mem = prefaulted(mnist_alloc_aligned64(64 + bytes), 64 + bytes);
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

/* Error context naming the model being read. */
static void
model_error_callback(void *arg)
{
	errcontext("reading model \"%s\"", (const char *) arg);
}

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
row_has_name(TupleTableSlot *slot, const text *name)
{
	bool		isnull;
	Datum		d = slot_getattr(slot, layout.models_name, &isnull);
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
static int64
lookup_model(const char *name, Snapshot snap, TupleTableSlot **slot, bool *orphaned)
{
	text	   *key = cstring_to_text(name);
	Oid			deployments = deployments_relid;	/* read before a lock accepts invalidations */
	Relation	models = table_open(models_relid, AccessShareLock);
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
				row_has_name(*slot, key);
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
static void
slot_row(TupleTableSlot *slot, ModelRow *row)
{
	bool		isnull;

	row->relid = slot->tts_tableOid;
	row->xmin = DatumGetTransactionId(slot_getsysattr(slot, MinTransactionIdAttributeNumber, &isnull));
	ItemPointerCopy(&slot->tts_tid, &row->ctid);
}

/* The stored weights of the mnist_models row in slot (maybe toasted); ERROR when NULL. */
static Datum
slot_weights(TupleTableSlot *slot, const char *name, int64 id)
{
	bool		isnull;
	Datum		w = slot_getattr(slot, layout.models_weights, &isnull);

	if (isnull)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_CORRUPTED),
				 errmsg("model \"%s\" (id " INT64_FORMAT ") has no weights", name, id)));
	return w;
}

static void
model_not_found(const char *name, bool orphaned)
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

	models_relation();
	/* the statement's snapshot, as the query that read it before */
	snap = RegisterSnapshot(ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());
	*id = lookup_model(name, snap, &slot, &orphaned);
	if (*id == 0)
		model_not_found(name, orphaned);
	weights = DatumGetByteaPCopy(slot_weights(slot, name, *id));
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

	models_relation();
	snap = RegisterSnapshot(GetLatestSnapshot());
	id = lookup_model(name, snap, &slot, &orphaned);
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	return id;
}

/* Bytes of a model's scratch: what mnist_net_predict and mnist_screen_classify need. */
static Size
model_scratch_size(int n_hidden)
{
	return Max(mnist_net_predict_scratch(n_hidden), mnist_screen_scratch(n_hidden)) * sizeof(float);
}

int
mnist_model_classify(MnistModel *model, const uint8_t *pixels)
{
	int			k;

	/* built once it pays; built again if mnist_ml.cpu_path has changed to another kind */
	if (model->screen_mem != NULL &&
		(model->screen == NULL ? ++model->classified >= MNIST_SCREEN_AFTER :
		 mnist_screen_stale(model->screen)))
		model->screen = mnist_screen_build(&model->net, prefaulted(model->screen_mem,
																   model->screen_bytes));
	k = mnist_screen_classify(model->screen, pixels, model->scratch);
	return k >= 0 ? k : mnist_net_predict(&model->net, pixels, model->scratch, NULL, NULL);
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
	SPIPlanPtr	plan;
	Snapshot	snap;
	Oid			save_userid;
	int			save_sec;

	models_relation();
	SPI_connect();
	mnist_store_as_owner(&save_userid, &save_sec);
	plan = SPI_prepare(psprintf("SELECT name, weights FROM %s WHERE id OPERATOR(pg_catalog.=) $1",
								models_qualname),
					   1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	/* the latest snapshot: a gate compares with a model deployed after the statement began */
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed", models_qualname);
	UnregisterSnapshot(snap);
	SetUserIdAndSecContext(save_userid, save_sec);
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
			weights_decode_params(weights, &m->net);
		m->scratch = palloc(model_scratch_size(m->net.n_hidden));
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return m;
}

MnistModel *
mnist_model_get(const char *name, MemoryContext holder)
{
	CacheEntry *e;
	dlist_iter	iter;
	uint64		gen;
	bool		latest;
	int64		id;
	ModelRow	row;
	TupleTableSlot *slot;
	Snapshot	snap;
	ErrorContextCallback errcb;
	bool		orphaned;

	AcceptInvalidationMessages();
	models_relation();
	e = NULL;
	dlist_foreach(iter, &cache_lru)
	{
		CacheEntry *c = dlist_container(CacheEntry, node, iter.cur);

		if (strcmp(c->name, name) == 0)
		{
			e = c;
			dlist_move_head(&cache_lru, &e->node);
			break;
		}
	}
	if (e != NULL && e->checked_gen == cache_generation &&
		(e->checked_lxid == InvalidLocalTransactionId || e->checked_lxid == mnist_proc_lxid(MyProc)))
	{
		decoded_hold(e->decoded, holder);
		return &e->decoded->model;
	}

	/* no entry, nor a query, for a name that cannot exist */
	mnist_model_name_check(name);
	gen = cache_generation;

	/*
	 * Read with the latest snapshot, which sees every commit whose invalidation we have
	 * accepted; where that is impossible (parallel mode, or a transaction snapshot) the answer
	 * is trusted only until the end of this transaction.
	 */
	latest = !IsInParallelMode() && !IsolationUsesXactSnapshot();
	snap = RegisterSnapshot(latest ? GetLatestSnapshot() :
							ActiveSnapshotSet() ? GetActiveSnapshot() : GetTransactionSnapshot());

	errcb.callback = model_error_callback;
	errcb.arg = (void *) name;
	errcb.previous = error_context_stack;
	error_context_stack = &errcb;

	id = lookup_model(name, snap, &slot, &orphaned);
	if (id == 0)
		model_not_found(name, orphaned);
	slot_row(slot, &row);
	if (e == NULL || e->row.relid != row.relid ||
		!TransactionIdEquals(e->row.xmin, row.xmin) || !ItemPointerEquals(&e->row.ctid, &row.ctid))
	{
		MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "mnist_ml model",
												  ALLOCSET_DEFAULT_SIZES);
		MemoryContext old = MemoryContextSwitchTo(cxt);
		Decoded    *d = palloc0(sizeof(Decoded));
		MnistModel *m = &d->model;

		d->cxt = cxt;
		d->cached = true;
		m->id = id;
		m->name = pstrdup(name);
		weights_decode_params(slot_weights(slot, name, id), &m->net);
		/* reserved, not touched: mnist_model_classify builds the screen when it pays */
		m->screen_bytes = mnist_screen_size(m->net.n_hidden);
		if (m->screen_bytes > 0)
			m->screen_mem = mnist_alloc_aligned64(m->screen_bytes);
		m->scratch = palloc(model_scratch_size(m->net.n_hidden));
		MemoryContextSwitchTo(old);

		if (e == NULL)
		{
			e = MemoryContextAllocZero(cache_cxt, sizeof(CacheEntry));
			e->name = MemoryContextStrdup(cache_cxt, name);
			dlist_push_head(&cache_lru, &e->node);
		}
		else
		{
			/* the previous model goes once the queries holding it end */
			decoded_release(e->decoded);
			cache_bytes -= e->bytes;
		}
		MemoryContextSetParent(cxt, cache_cxt);
		e->bytes = MemoryContextMemAllocated(cxt, true);
		cache_bytes += e->bytes;
		e->decoded = d;
		e->row = row;
	}
	ExecDropSingleTupleTableSlot(slot);
	UnregisterSnapshot(snap);
	error_context_stack = errcb.previous;

	e->checked_gen = gen;
	e->checked_lxid = latest ? InvalidLocalTransactionId : mnist_proc_lxid(MyProc);
	decoded_hold(e->decoded, holder);
	cache_trim();
	return &e->decoded->model;
}

PG_FUNCTION_INFO_V1(mnist_model_cache);

/*
 * mnist_model_cache() RETURNS TABLE (name text, model_id bigint, hidden_units int, bytes
 * bigint): this backend's cached models, most recently used first.
 */
Datum
mnist_model_cache(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	dlist_iter	iter;

	InitMaterializedSRF(fcinfo, 0);
	dlist_foreach(iter, &cache_lru)
	{
		CacheEntry *e = dlist_container(CacheEntry, node, iter.cur);
		Datum		values[4];
		bool		nulls[4] = {false, false, false, false};

		values[0] = CStringGetTextDatum(e->name);
		values[1] = Int64GetDatum(e->decoded->model.id);
		values[2] = Int32GetDatum(e->decoded->model.net.n_hidden);
		values[3] = Int64GetDatum((int64) e->bytes);
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	return (Datum) 0;
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
	SPIPlanPtr	plan;
	Snapshot	snap;
	bool		isnull;
	Oid			owner;
	char	   *owner_name;
	Oid			save_userid;
	int			save_sec;

	mnist_store_as_owner(&save_userid, &save_sec);
	plan = SPI_prepare(psprintf("SELECT trained_by FROM %s WHERE name OPERATOR(pg_catalog.=) $1 "
								"ORDER BY id LIMIT 1",
								models_qualname), 1, argtypes);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare failed: %s", SPI_result_code_string(SPI_result));
	snap = RegisterSnapshot(GetLatestSnapshot());
	if (SPI_execute_snapshot(plan, values, NULL, snap, InvalidSnapshot, true, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "reading %s failed", models_qualname);
	UnregisterSnapshot(snap);
	SetUserIdAndSecContext(save_userid, save_sec);
	if (SPI_processed == 0)
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

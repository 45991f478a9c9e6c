/*
 * model_cache.c
 *		The per-backend cache of decoded models, the top of the three model layers (store,
 *		resolver, cache): mnist_model_get hands out the model serving a name, decoded once,
 *		and mnist_model_classify classifies with it; mnist_model_cache() lists the cache.
 *
 * Cache: decoded models are kept per backend by name.  An entry is checked again when the
 * store generation (model_store.c: a relcache invalidation of mnist_models or
 * mnist_deployments) has moved: the next mnist_model_get() (after AcceptInvalidationMessages)
 * resolves the name again (deploy.c's resolver) with a fresh snapshot and decodes the served
 * row unless it is the very row version already cached: same table (OID), same xmin and ctid.
 * Ids alone are not enough: TRUNCATE ... RESTART IDENTITY or DROP/CREATE EXTENSION reuse
 * them, and an UPDATE keeps them.
 *
 * Screen: a cached model owns its prediction screen (screen.c), built only once the model has
 * classified enough images to repay it (mnist_model_classify).
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

#include "access/transam.h"
#include "access/xact.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "storage/itemptr.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"

#include "deploy.h"
#include "mnist_ml.h"
#include "model.h"
#include "model_cache.h"
#include "pg_compat.h"

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
	uint64		checked_gen;	/* mnist_store_generation() when the id was last checked */
	LocalTransactionId checked_lxid;	/* valid only in this transaction, or Invalid */
} CacheEntry;

static MemoryContext cache_cxt = NULL;
static dlist_head cache_lru = DLIST_STATIC_INIT(cache_lru);	/* most recently used first */
static Size cache_bytes = 0;	/* sum of the entries' bytes */

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

/* The cache's memory context and transaction callback, at its first use. */
static void
cache_init(void)
{
	if (cache_cxt != NULL)
		return;
	cache_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml models", ALLOCSET_SMALL_SIZES);
	RegisterXactCallback(cache_xact_cb, NULL);
}

/* Error context naming the model being read. */
static void
model_error_callback(void *arg)
{
	errcontext("reading model \"%s\"", (const char *) arg);
}

int
mnist_model_classify(MnistModel *model, const uint8_t *pixels)
{
	int			k;

	/* built once it pays; built again if mnist_ml.cpu_path has changed to another kind */
	if (model->screen_mem != NULL &&
		(model->screen == NULL ? ++model->classified >= MNIST_SCREEN_AFTER :
		 mnist_screen_stale(model->screen)))
		model->screen = mnist_screen_build(&model->net, mnist_prefaulted(model->screen_mem,
																   model->screen_bytes));
	k = mnist_screen_classify(model->screen, pixels, model->scratch);
	return k >= 0 ? k : mnist_net_predict(&model->net, pixels, model->scratch, NULL, NULL);
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
	cache_init();
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
	if (e != NULL && e->checked_gen == mnist_store_generation() &&
		(e->checked_lxid == InvalidLocalTransactionId || e->checked_lxid == mnist_proc_lxid(MyProc)))
	{
		decoded_hold(e->decoded, holder);
		return &e->decoded->model;
	}

	/* no entry, nor a query, for a name that cannot exist */
	mnist_model_name_check(name);
	gen = mnist_store_generation();

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

	id = mnist_model_resolve(name, snap, &slot, &orphaned);
	if (id == 0)
		mnist_model_not_found(name, orphaned);
	mnist_model_row(slot, &row);
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
		mnist_weights_decode_params(mnist_model_slot_weights(slot, name, id), &m->net);
		/* reserved, not touched: mnist_model_classify builds the screen when it pays */
		m->screen_bytes = mnist_screen_size(m->net.n_hidden);
		if (m->screen_bytes > 0)
			m->screen_mem = mnist_alloc_aligned64(m->screen_bytes);
		m->scratch = palloc(mnist_model_scratch_size(m->net.n_hidden));
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

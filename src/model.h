/*
 * model.h
 *		The model store (model_store.c), the lowest of the three model layers: the tables, the
 *		weights bytea format, models read by id and stored, the store's owner and name locks.
 *		The resolver is deploy.h's, the per-backend cache model_cache.h's.
 */
#ifndef MNIST_MODEL_H
#define MNIST_MODEL_H

#include "net.h"
#include "screen.h"
#include "weights.h"

#define MNIST_MAX_NAME_BYTES	200	/* longest model name, in bytes */

/*
 * A decoded model (model_cache.h caches them per backend).  A cached model owns its prediction
 * screen (screen.h), which mnist_model_classify tries before the network.  The screen is built by
 * the MNIST_SCREEN_AFTER-th classification, into memory reserved (not yet touched) when the
 * model was loaded: building it costs about what it saves on a thousand images, so a session
 * that classifies a few images never pays it.
 */
typedef struct MnistModel
{
	int64		id;				/* mnist_models.id */
	char	   *name;
	MnistNet	net;			/* params only (no Adam state) */
	const NetScreen *screen;	/* or NULL: none yet, none on this CPU path, or not cached */
	void	   *screen_mem;		/* screen_bytes for the screen, or NULL */
	size_t		screen_bytes;
	int64		classified;		/* classifications before the screen was built */
	float	   *scratch;		/* enough for mnist_net_predict and mnist_screen_classify */
} MnistModel;

/*
 * The stored model of that id as of now (the latest snapshot), decoded (not cached) in
 * CurrentMemoryContext, with its Adam state if with_adam.  ERROR (42704) if there is none.
 */
extern MnistModel *mnist_model_load_id(int64 id, bool with_adam);

/*
 * Quoted schema-qualified names of mnist_models and mnist_deployments.  ERROR (42P01) if the
 * table does not exist: mnist_deployments is 1.1's, and only 1.1's functions write it.
 */
extern const char *mnist_models_table(void);
extern const char *mnist_deployments_table(void);

/* What the layers above read of the store, looked up with its tables. */
typedef struct MnistStoreLayout
{
	Oid			models;			/* mnist_models */
	Oid			deployments;	/* mnist_deployments, InvalidOid in a database at 1.0 */
	Oid			models_by_id;	/* mnist_models_pkey (id) */
	Oid			models_by_name; /* mnist_models_name_id (name, id) */
	Oid			deployments_by_name;	/* mnist_deployments_name_id (name, id), or InvalidOid */
	AttrNumber	models_id;
	AttrNumber	models_name;
	AttrNumber	models_weights;
	AttrNumber	deployments_model_id;
} MnistStoreLayout;

/* The store's layout, looked up again after an invalidation.  ERROR if an object is missing. */
extern const MnistStoreLayout *mnist_store_layout(void);

/*
 * The store generation: it moves with every relcache invalidation of mnist_models or
 * mnist_deployments (or a cache reset), after which what was read of the store may be stale.
 */
extern uint64 mnist_store_generation(void);

/*
 * Decodes the parameters of a stored weights value (as read from mnist_models: maybe toasted)
 * into net, in CurrentMemoryContext, without its Adam state: what serving needs.  ERROR when
 * corrupted.
 */
extern void mnist_weights_decode_params(Datum value, MnistNet *net);

/* Bytes of a model's scratch: what mnist_net_predict and mnist_screen_classify need. */
extern Size mnist_model_scratch_size(int n_hidden);

/* p, with the whole pages of its len bytes faulted in at once where the kernel can. */
extern void *mnist_prefaulted(void *p, Size len);

/* Owner of mnist_models: the role the functions switch to when they write the model store. */
extern Oid	mnist_store_owner(void);

/*
 * Switches to mnist_store_owner() (security-restricted) to read or write mnist_models,
 * mnist_deployments or the online learning tables; SetUserIdAndSecContext(*save_userid,
 * *save_sec) switches back.  The functions read the store as its owner too, so privileges and
 * row-level security on the store decide what roles see of it, not which models serve.
 */
extern void mnist_store_as_owner(Oid *save_userid, int *save_sec);

/*
 * Takes, until the end of the transaction, the lock serializing stores and deploy decisions of
 * a name (pg_advisory_xact_lock(<OID of mnist_models>::int4, hashtext(name))), then checks
 * that the current user may write it: ERROR 42501 unless it has the privileges of the role
 * owning the name, whose hint says what only that role may do (action: "deploy or roll back
 * models of", "start or stop online learning of"; NULL when storing a model).  22023 for a
 * name that cannot be stored.
 */
extern void mnist_model_lock(const char *name, const char *action);

/*
 * Runs a read-only query of the store (one row at most) with the latest snapshot, as the
 * store's owner, inside SPI (the caller's SPI_connect); returns SPI_processed.
 */
extern uint64 mnist_store_query_latest(const char *sql, int nargs, Oid *argtypes, Datum *values);

/*
 * size bytes starting on a 64-byte cache line, in CurrentMemoryContext (PostgreSQL 15 has no
 * palloc_aligned; the vector loops read whole weight rows, which must not straddle lines).
 */
extern void *mnist_alloc_aligned64(Size size);

/* The weights bytea of a net (with its Adam state when net->adam_m is not NULL). */
extern bytea *mnist_weights_encode(const MnistNet *net);

/*
 * Validates a weights bytea and decodes it into net with its Adam state (zero when the bytea
 * has none), palloc'd in CurrentMemoryContext.  ERROR when corrupted.
 */
extern void mnist_weights_decode(bytea *weights, MnistNet *net);

/* ERROR (22023) unless name is a model name that can be stored: 1 to 200 bytes. */
extern void mnist_model_name_check(const char *name);

/*
 * Inserts a model row (as the owner of mnist_models) and returns its id.  hyperparameters
 * and metrics are JSON object texts.  A name belongs to the role that first stored it: ERROR
 * unless the current user has the privileges of that role.  Stores of one name are serialized
 * by a transaction-level advisory lock, so a concurrent first store decides the owner.
 */
extern int64 mnist_model_store(const char *name, const char *hyperparameters,
							   const char *metrics, bytea *weights);

#endif							/* MNIST_MODEL_H */

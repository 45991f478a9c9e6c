/*
 * model.h
 *		Stored models: the weights format, the mnist_models table and the per-backend cache.
 */
#ifndef MNIST_MODEL_H
#define MNIST_MODEL_H

#include "net.h"
#include "screen.h"
#include "weights.h"

#define MNIST_MAX_NAME_BYTES	200	/* longest model name, in bytes */

/*
 * A decoded model, as cached per backend.  A cached model owns its prediction screen
 * (screen.h), which mnist_model_classify tries before the network.  The screen is built by
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

#define MNIST_SCREEN_AFTER	1000	/* classifications of a model before its screen is built */

/* The argmax class of one image (NET_INPUTS bytes): the screen where it can tell, else the net. */
extern int	mnist_model_classify(MnistModel *model, const uint8_t *pixels);

/*
 * The model serving that name (its deployed model, else its newest), decoded once and cached
 * per backend (within mnist_ml.model_cache_size, least recently used dropped first).  A model
 * stored, deployed or rolled back by any session is seen by the next statement.  ERROR if
 * there is none.  The result stays valid until holder (a memory context of the caller's:
 * fn_mcxt for a model kept in fn_extra) is reset or deleted.
 */
extern MnistModel *mnist_model_get(const char *name, MemoryContext holder);

/* Id of the model serving that name as of now (the latest snapshot), or 0 if it has none. */
extern int64 mnist_model_served_id(const char *name);

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

/* The weights of the model serving that name (a copy), and its id.  ERROR if none. */
extern bytea *mnist_model_fetch_weights(const char *name, int64 *id);

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

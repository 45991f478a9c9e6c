/*
 * deploy.h
 *		Which stored model serves a name: the resolver and the deployments (the
 *		mnist_deployments history), above the store (model.h), below the cache (model_cache.h).
 */
#ifndef MNIST_DEPLOY_H
#define MNIST_DEPLOY_H

#include "executor/tuptable.h"
#include "utils/snapshot.h"

#include "pg_compat.h"

/* A row version of mnist_models: a cached model is valid only for the very row it decoded. */
typedef struct ModelRow
{
	Oid			relid;			/* mnist_models, which DROP/CREATE EXTENSION replaces */
	TransactionId xmin;			/* the inserting (or updating) transaction */
	ItemPointerData ctid;
} ModelRow;

/*
 * The resolver: id of the model serving that name under snap, or 0 when it has none
 * (*orphaned then tells whether it has models but its deployed ones were all deleted).  The
 * model's row is left in *slot (a slot of mnist_models in CurrentMemoryContext, which the
 * caller drops), with its stored weights (maybe toasted: not read yet).
 */
extern int64 mnist_model_resolve(const char *name, Snapshot snap, TupleTableSlot **slot,
								 bool *orphaned);

/* The row version of the mnist_models row in slot. */
extern void mnist_model_row(TupleTableSlot *slot, ModelRow *row);

/* The stored weights of the mnist_models row in slot (maybe toasted); ERROR when NULL. */
extern Datum mnist_model_slot_weights(TupleTableSlot *slot, const char *name, int64 id);

/* ERROR (42704) for a name the resolver found no model for. */
extern pg_noreturn void mnist_model_not_found(const char *name, bool orphaned);

/* Id of the model serving that name as of now (the latest snapshot), or 0 if it has none. */
extern int64 mnist_model_served_id(const char *name);

/* The weights of the model serving that name (a copy), and its id.  ERROR if none. */
extern bytea *mnist_model_fetch_weights(const char *name, int64 *id);

/*
 * Deploys the stored model model_id of that name: appends a row to mnist_deployments (as its
 * owner) recording the model it replaces, the current user and reason.  The caller holds the
 * name's lock (mnist_model_lock).  Only 1.1's functions call it (a database still at 1.0 has
 * no mnist_deployments: its newest model serves, see TRAIN_DEPLOY_NEWEST).
 */
extern void mnist_deployment_record(const char *name, int64 model_id, const char *reason);

#endif							/* MNIST_DEPLOY_H */

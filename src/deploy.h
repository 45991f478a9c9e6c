/*
 * deploy.h
 *		Deployments: which stored model serves a name (the mnist_deployments history).
 */
#ifndef MNIST_DEPLOY_H
#define MNIST_DEPLOY_H

/*
 * Deploys the stored model model_id of that name: appends a row to mnist_deployments (as its
 * owner) recording the model it replaces, the current user and reason.  The caller holds the
 * name's lock (mnist_model_lock).  Only 1.1's functions call it (a database still at 1.0 has
 * no mnist_deployments: its newest model serves, see TRAIN_DEPLOY_NEWEST).
 */
extern void mnist_deployment_record(const char *name, int64 model_id, const char *reason);

#endif							/* MNIST_DEPLOY_H */

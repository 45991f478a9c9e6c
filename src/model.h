/*
 * model.h
 *		Stored models: the weights format, the mnist_models table and the per-backend cache.
 */
#ifndef MNIST_MODEL_H
#define MNIST_MODEL_H

#include "net.h"

/* A decoded model, as cached per backend. */
typedef struct MnistModel
{
	int64		id;				/* mnist_models.id */
	char	   *name;
	MnistNet	net;			/* params only (no Adam state) */
	float	   *scratch;		/* net_predict_scratch() floats */
} MnistModel;

/*
 * The newest model of that name (highest id), decoded once and cached per backend.  A newer
 * model stored by any session is seen by the next statement.  ERROR if there is none.
 */
extern MnistModel *mnist_model_get(const char *name);

#endif							/* MNIST_MODEL_H */

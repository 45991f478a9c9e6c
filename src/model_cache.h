/*
 * model_cache.h
 *		The per-backend cache of decoded models (model_cache.c), the top of the three model
 *		layers: above the resolver (deploy.h) and the store (model.h).
 */
#ifndef MNIST_MODEL_CACHE_H
#define MNIST_MODEL_CACHE_H

#include "model.h"

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

#endif							/* MNIST_MODEL_CACHE_H */

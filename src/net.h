/*
 * net.h
 *		The network alone: 784 -> Dense(H, relu) -> Dense(10) logits, softmax cross-entropy,
 *		Adam.  Plain C + CBLAS with no PostgreSQL calls, so it can be tested and benchmarked
 *		outside the server.  All memory is supplied by the caller (palloc in the backend), so
 *		an error or a cancel between two calls leaks nothing.
 */
#ifndef MNIST_NET_H
#define MNIST_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "image.h"

#define NET_INPUTS	MNIST_PIXELS
#define NET_OUTPUTS MNIST_CLASSES

/* Buffers are carved into 64-byte aligned blocks (net.c's trainer, and users of the net). */
#define NET_ALIGN64(x)	(((x) + (size_t) 63) & ~(size_t) 63)

/* Returns the next 64-byte aligned block of bytes from *p and advances *p. */
static inline void *
net_carve(char **p, size_t bytes)
{
	void	   *r = *p;

	*p += NET_ALIGN64(bytes);
	return r;
}

/*
 * Parameters live in one contiguous float array, in this order (the order of the stored
 * weights format, and of Keras' kernels):
 *   w1[NET_INPUTS * H]   w1[i * H + j]: input pixel i -> hidden unit j
 *   b1[H]
 *   w2[H * NET_OUTPUTS]  w2[j * 10 + k]: hidden unit j -> logit k
 *   b2[NET_OUTPUTS]
 * Adam's first and second moments (m, v) have the same layout; adam_step counts updates.
 */
typedef struct MnistNet
{
	int			n_hidden;
	size_t		n_params;		/* mnist_net_param_count(n_hidden) */
	float	   *params;
	float	   *w1,
			   *b1,
			   *w2,
			   *b2;				/* views into params */
	float	   *adam_m;			/* n_params floats, or NULL when not training */
	float	   *adam_v;
	int64_t		adam_step;
} MnistNet;

/* Hyperparameters of one training step (Keras defaults: 0.001, 0.9, 0.999, 1e-7). */
typedef struct NetAdam
{
	float		learning_rate;
	float		beta1;
	float		beta2;
	float		epsilon;
} NetAdam;

/* Number of floats in params for a hidden layer of n_hidden units. */
extern size_t mnist_net_param_count(int n_hidden);

/* Points the views of net at params (and at adam_m/adam_v, which may be NULL). */
extern void mnist_net_bind(MnistNet *net, int n_hidden, float *params, float *adam_m, float *adam_v);

/* Glorot-uniform weights, zero biases, zero Adam state (when bound), from a seed. */
extern void mnist_net_init_glorot(MnistNet *net, uint64_t seed);

/* Deterministic generator for shuffles (same seed => same sequence on every machine). */
typedef struct NetRng
{
	uint64_t	s[4];
} NetRng;
extern void mnist_net_rng_seed(NetRng *rng, uint64_t seed);
/* Fisher-Yates shuffle of idx[0..n-1] */
extern void mnist_net_shuffle(NetRng *rng, uint32_t *idx, size_t n);

/*
 * Workspace for training net on batches of up to max_batch images with threads threads
 * (1..NET_MAX_THREADS; a pool of as many is given by mnist_net_trainer_set_pool): the caller
 * allocates mnist_net_trainer_size() bytes (any alignment) and binds it once, after net's
 * weights and Adam state are set.  With more than one thread, each thread's share of the first
 * layer's weights and Adam state is copied into the workspace, where training updates it:
 * mnist_net_trainer_sync() copies it back into net, to be called after the last batch.
 */
typedef struct NetTrainer NetTrainer;
extern size_t mnist_net_trainer_size(int n_hidden, int max_batch, int threads);
extern NetTrainer *mnist_net_trainer_bind(void *mem, MnistNet *net, int max_batch, int threads);
extern void mnist_net_trainer_sync(NetTrainer *t);

/*
 * A function mnist_net_train_batch calls between blocks of its work (every NET_CHECK_ROWS images
 * of the first layer's forward pass and of its gradient, every NET_CHECK_FLOATS or so hidden
 * values of the gradient), in the caller's thread while the pool's are idle, so that one large
 * batch can be interrupted: it may leave by longjmp (a PostgreSQL ERROR), which leaves the net
 * partly updated.  The blocks change no result.  None is called until one is set.
 */
#define NET_CHECK_ROWS		64
#define NET_CHECK_FLOATS	(1 << 20)

/*
 * Blocks of rows of a matrix product that OpenBLAS computes exactly as inside the whole
 * product: its kernels tile rows from the first one, so a block that starts at a multiple of
 * the tile height gets the same tiles.  768 is a multiple of the tile heights of its x86-64
 * sgemm kernels (4 to 32, and 48 with AVX-512, where blocks of 64 rows give other bits).
 */
#define NET_BLAS_ROWS		768
typedef void (*NetCheckFn) (void *arg);
extern void mnist_net_trainer_set_check(NetTrainer *t, NetCheckFn check, void *arg);

/*
 * Threads (net_pool.h, as many as the trainer was bound for) that share each batch's work
 * from now on, or NULL.  Every value is computed by one thread in the order a single thread
 * uses, so the model does not depend on the number of threads.  The check is called by the
 * caller's thread only, between rounds of work (when the pool's threads are idle).
 */
struct NetPool;
extern void mnist_net_trainer_set_pool(NetTrainer *t, struct NetPool *pool);

/*
 * One Adam step on a batch: images[idx[0..n-1]] (each NET_INPUTS bytes at images +
 * idx[r] * NET_INPUTS, scaled by 1/255) with labels[idx[r]] in 0..9.  Adds the batch's
 * summed cross-entropy to *loss_sum and its number of correct argmax predictions (before the
 * update) to *correct.
 */
extern void mnist_net_train_batch(NetTrainer *t, const NetAdam *adam,
							const uint8_t *images, const uint8_t *labels,
							const uint32_t *idx, int n,
							double *loss_sum, int64_t *correct);

/* Scratch floats mnist_net_predict needs for a hidden layer of n_hidden units. */
extern size_t mnist_net_predict_scratch(int n_hidden);

/*
 * Classifies one image (NET_INPUTS bytes).  Returns the argmax class; when probs is not
 * NULL, writes the 10 softmax probabilities; when logits is not NULL, the 10 logits.
 */
extern int	mnist_net_predict(const MnistNet *net, const uint8_t *pixels, float *scratch,
						float *probs, float *logits);

/*
 * CPU paths.  The hot loops (training's sparse layers and Adam, pixel compaction, the forward
 * pass) are compiled once per instruction set, and the best path this CPU has runs
 * unless mnist_net_set_cpu_path() picks another (mnist_ml.cpu_path).  The AVX-512 and AVX2 paths give
 * bit-identical results: both multiply-add with FMA, in the same order.  The AVX-VNNI path runs
 * the AVX2 code; only its prediction screen (screen.c) differs.  The baseline path
 * rounds each product and sum separately (x86-64-v2 has no FMA), so it trains a slightly
 * different model from the same seed.
 */
typedef enum NetCpuPath
{
	NET_CPU_AUTO,				/* the best path this CPU has */
	NET_CPU_AVX512,				/* AVX-512 F, CD, BW, DQ, VL and FMA */
	NET_CPU_AVX2,				/* AVX2 and FMA */
	NET_CPU_BASELINE,			/* what the build targets (-march=x86-64-v2 by default) */
	NET_CPU_AVXVNNI				/* AVX2, FMA and AVX-VNNI: the AVX2 code, another screen */
} NetCpuPath;

/* Whether this CPU can run path (always for NET_CPU_AUTO and NET_CPU_BASELINE). */
extern bool mnist_net_cpu_supports(NetCpuPath path);
/* Uses path (which this CPU must support) from now on; NET_CPU_AUTO: the best it supports. */
extern void mnist_net_set_cpu_path(NetCpuPath path);
/* The path in use (never NET_CPU_AUTO), and a path's name as mnist_ml.cpu_path spells it. */
extern NetCpuPath mnist_net_cpu_path(void);
extern const char *mnist_net_cpu_path_name(NetCpuPath path);

/* Index of the largest of the 10 logits (the first on ties). */
extern int	mnist_net_argmax10(const float *z);

/* Cross-entropy of logits (10) against a label, computed stably (log-sum-exp). */
extern double mnist_net_cross_entropy(const float *logits, int label);

#endif							/* MNIST_NET_H */

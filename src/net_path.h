/*
 * net_path.h
 *		What net.c shares with its hot loops (net_kernels.h), which are compiled once per CPU
 *		path: src/net_baseline.c, net_avx2.c and net_avx512.c each include them, and the
 *		Makefile compiles each file for its instruction set.  net.c picks one path at run time.
 */
#ifndef MNIST_NET_PATH_H
#define MNIST_NET_PATH_H

#include "net.h"
#include "net_pool.h"

/* Columns of the hidden layer in one unit of work of the threads (64 bytes of floats). */
#define NET_GROUP 16

/*
 * One thread's lists of the nonzero pixels of a round (NET_CHECK_ROWS images) of the batch,
 * by block of w1 rows: image r0 + i's pixels of block b are idx/val[block_start[i *
 * (n_blocks + 1) + b]..] up to the next.
 */
typedef struct NetPixels
{
	uint64_t	round;			/* the round they are of (BatchTask in net_kernels.h), or 0 */
	uint32_t   *block_start;
	uint32_t   *idx;			/* pixel index */
	float	   *val;			/* value / 255 */
} __attribute__((aligned(64))) NetPixels;

/*
 * The columns c0..c1-1 of the first layer that one thread looks after (its share of the column
 * groups), with their part of w1, of its Adam moments and of its gradient, as rows of stride
 * floats: with one thread these are net's own arrays (stride H); with more, copies of those
 * columns alone, so that a thread's weights are contiguous and no cache line holds two
 * threads' (mnist_net_trainer_sync copies them back).
 */
typedef struct NetShare
{
	int			c0,
				c1,
				stride;
	float	   *w1,
			   *m,
			   *v,
			   *grad;			/* w1's gradient during a batch, else zeros */
} NetShare;

/* Training workspace, carved out of the caller's buffer by mnist_net_trainer_bind. */
struct NetTrainer
{
	MnistNet   *net;
	int			max_batch;
	int			threads;		/* threads it was laid out for */
	int			block;			/* w1 rows per block of the first layer */
	int			n_blocks;		/* blocks of NET_INPUTS rows */
	uint64_t	batches;		/* batches trained so far */
	NetPixels	pixels[NET_MAX_THREADS];	/* each thread's */
	NetShare	share[NET_MAX_THREADS];	/* each thread's */
	float	   *hidden;			/* max_batch x H, after relu */
	float	   *dhidden;		/* max_batch x H, loss gradient before relu */
	float	   *logits;			/* max_batch x NET_OUTPUTS */
	float	   *dlogits;		/* max_batch x NET_OUTPUTS */
	float	   *grad;			/* gradients of b1, w2, b2 (their layout in params) */
	uint32_t   *batch_rows;		/* max_batch: 0, 1, 2, ... */
	float	   *ones;			/* max_batch ones */
	NetCheckFn	check;			/* called between blocks of work, or NULL */
	void	   *check_arg;
	NetPool    *pool;			/* threads sharing the work, or NULL */
};

/* One path's hot code: mnist_net_train_batch, and mnist_net_predict. */
typedef struct NetKernels
{
	void		(*train_batch) (NetTrainer *t, const NetAdam *adam,
								const uint8_t *images, const uint8_t *labels,
								const uint32_t *idx, int n,
								double *loss_sum, int64_t *correct);
	int			(*predict) (const MnistNet *net, const uint8_t *pixels, float *scratch,
							float *probs, float *logits);
} NetKernels;

extern const NetKernels mnist_net_kernels_baseline;
#ifdef __x86_64__
extern const NetKernels mnist_net_kernels_avx2;
extern const NetKernels mnist_net_kernels_avx512;
#endif

/*
 * log(sum(exp(z))) of 10 logits, computed stably in double from z - max(z); when p is not
 * NULL, also the softmax probabilities.
 */
extern double mnist_net_log_sum_exp10(const float *z, float *p);

#endif							/* MNIST_NET_PATH_H */

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
 * What one thread keeps: its lists of the nonzero pixels of a round (NET_CHECK_ROWS images) of
 * the batch, by block of w1 rows (image r0 + i's pixels of block b are idx/val[block_start[i *
 * (n_blocks + 1) + b]..] up to the next), and how long it worked on how many columns since the
 * shares were last balanced.
 */
typedef struct NetWorker
{
	uint64_t	round;			/* the round the lists are of (BatchTask in net_kernels.h), or 0 */
	uint32_t   *block_start;
	uint32_t   *idx;			/* pixel index */
	float	   *val;			/* value / 255 */
	uint64_t	busy_ns;		/* in its tasks */
	uint64_t	columns;		/* columns of images done in them */
} __attribute__((aligned(64))) NetWorker;

/*
 * The columns c0..c1-1 of the first layer that one thread looks after (its share of the column
 * groups), with their part of w1, of its Adam moments and of its gradient, as rows of stride
 * floats: with one thread these are net's own arrays (stride H); with more, copies of those
 * columns alone (NET_INPUTS x (c1 - c0) at NET_INPUTS * c0 in the trainer's arrays), so that a
 * thread's weights are contiguous and no cache line holds two threads' (mnist_net_trainer_sync
 * copies them back).  The shares follow the threads' speeds (mnist_net_trainer_balance).
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

/* Batches between two looks at the balance of the threads' shares. */
#define NET_BALANCE_BATCHES 64

/* Training workspace, carved out of the caller's buffer by mnist_net_trainer_bind. */
struct NetTrainer
{
	MnistNet   *net;
	int			max_batch;
	int			threads;		/* threads it was laid out for */
	int			block;			/* w1 rows per block of the first layer */
	int			n_blocks;		/* blocks of NET_INPUTS rows */
	uint64_t	batches;		/* batches trained so far */
	NetWorker	worker[NET_MAX_THREADS];
	NetShare	share[NET_MAX_THREADS];
	int			bounds[NET_MAX_THREADS + 1];	/* share w: column groups bounds[w].. */
	float	   *w1,				/* with several threads: the shares' copies */
			   *m,
			   *v,
			   *w1_grad;		/* the shares' gradients */
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

/*
 * Moves columns between the threads' shares so that each share takes the same time, by the
 * speeds measured since the last call (when that gains over 5%), and restarts the measure.
 * Called between batches.
 */
extern void mnist_net_trainer_balance(NetTrainer *t);

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

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

/* Training workspace, carved out of the caller's buffer by mnist_net_trainer_bind. */
struct NetTrainer
{
	MnistNet   *net;
	int			max_batch;
	const uint8_t **image;		/* max_batch: the batch's images */
	int			block;			/* w1 rows per block of the first layer */
	int			n_blocks;		/* blocks of NET_INPUTS rows */
	uint32_t   *block_start;	/* max_batch * (n_blocks + 1): image r's pixels of block b are
								 * row_*[block_start[r * (n_blocks + 1) + b]..] up to the next */
	uint32_t   *row_idx;		/* nonzero pixels of the batch by image (image r's from
								 * r * NET_INPUTS on): pixel index */
	float	   *row_val;		/* and value / 255 */
	uint32_t   *col_idx;		/* NET_MAX_THREADS x max_batch: for each thread, the nonzero
								 * pixels of one w1 row: image in the batch */
	float	   *col_val;
	float	   *hidden;			/* max_batch x H, after relu */
	float	   *dhidden;		/* max_batch x H, loss gradient before relu */
	float	   *logits;			/* max_batch x NET_OUTPUTS */
	float	   *dlogits;		/* max_batch x NET_OUTPUTS */
	float	   *grad;			/* gradients of b1, w2, b2 (their layout in params) */
	float	   *grad_row;		/* NET_MAX_THREADS x H: for each thread, gradient of one w1 row */
	float	   *zero_row;		/* H zeros: the gradient of a w1 row of zero pixels */
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

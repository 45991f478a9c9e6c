/*
 * net_kernels.h
 *		The network's hot loops: training's sparse layers and Adam, pixel compaction, the
 *		forward pass.  A template: src/net_baseline.c, net_avx2.c and net_avx512.c each define
 *		NET_KERNELS (the name of their NetKernels) and include it, and the Makefile compiles
 *		each for its instruction set; the code follows the compiler's (__AVX512F__, __AVX2__).
 *		Plain C, no PostgreSQL calls, no allocation.
 */
#include <math.h>
#include <string.h>
#include <time.h>

#include <cblas.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "net_path.h"

#define Min(a, b)	((a) < (b) ? (a) : (b))
#define Max(a, b)	((a) > (b) ? (a) : (b))

/*
 * The two sparse kernels of the first layer, on a range of width columns of matrices whose
 * rows are stride floats apart:
 *	accumulate_rows: for k = 0..count-1 in order, acc[0..width) += val[k] * rows[idx[k] * stride + 0..width)
 *	scatter_rows:	 for k = 0..count-1 in order, rows[idx[k] * stride + 0..width) += val[k] * d[0..width)
 * The forward pass is accumulate_rows over an image's nonzero pixels (rows = w1), the w1
 * gradient scatter_rows of each image's hidden gradient into the rows of its nonzero pixels;
 * so zero pixels cost nothing.  Columns go in blocks of fixed widths, which the compiler
 * keeps in vector registers.  Every element is one multiply-add per k in the order of idx
 * whatever the block, the column range or the thread: training and mnist_net_predict
 * compute the first layer identically, and any split of the columns gives the same bits.
 */
#ifdef __AVX512F__
#define CHUNK 128
#else
#define CHUNK 64
#endif

/* One block of width columns (a constant once inlined) of accumulate_rows. */
static inline __attribute__((always_inline)) void
accumulate_block(float *restrict acc, const float *restrict rows, size_t stride, int width,
				 const uint32_t *restrict idx, const float *restrict val, int count)
{
	float		a[CHUNK];
	int			j,
				k;

	memcpy(a, acc, sizeof(float) * width);
	for (k = 0; k < count; k++)
	{
		const float *w = rows + idx[k] * stride;
		float		x = val[k];

#pragma GCC unroll 128
		for (j = 0; j < width; j++)
			a[j] += x * w[j];
	}
	memcpy(acc, a, sizeof(float) * width);
}

/* One block of width columns (a constant once inlined) of scatter_rows. */
static inline __attribute__((always_inline)) void
scatter_block(float *restrict rows, size_t stride, int width, const float *restrict d,
			  const uint32_t *restrict idx, const float *restrict val, int count)
{
	float		a[CHUNK];
	int			j,
				k;

	memcpy(a, d, sizeof(float) * width);
	for (k = 0; k < count; k++)
	{
		float	   *restrict g = rows + idx[k] * stride;
		float		x = val[k];

#pragma GCC ivdep
		for (j = 0; j < width; j++)
			g[j] += x * a[j];
	}
}

/*
 * Calls BLOCK(j0, w) over columns 0..width-1 in blocks of CHUNK columns, then of 64, 32, 16,
 * 8 and 1 (each w a constant), so that a range of any width runs in a few wide blocks.
 */
#define FOR_COLUMN_BLOCKS(width, BLOCK) \
	do { \
		int			j0_ = 0; \
		for (; j0_ + CHUNK <= (width); j0_ += CHUNK) \
			BLOCK(j0_, CHUNK); \
		if (CHUNK > 64 && j0_ + 64 <= (width)) \
		{ \
			BLOCK(j0_, 64); \
			j0_ += 64; \
		} \
		if (j0_ + 32 <= (width)) \
		{ \
			BLOCK(j0_, 32); \
			j0_ += 32; \
		} \
		if (j0_ + 16 <= (width)) \
		{ \
			BLOCK(j0_, 16); \
			j0_ += 16; \
		} \
		if (j0_ + 8 <= (width)) \
		{ \
			BLOCK(j0_, 8); \
			j0_ += 8; \
		} \
		for (; j0_ < (width); j0_++) \
			BLOCK(j0_, 1); \
	} while (0)

static void
accumulate_rows(float *restrict acc, const float *restrict rows, int stride, int width,
				const uint32_t *restrict idx, const float *restrict val, int count)
{
#define ACCUMULATE(j0, w) \
	accumulate_block(acc + (j0), rows + (j0), stride, w, idx, val, count)
	FOR_COLUMN_BLOCKS(width, ACCUMULATE);
#undef ACCUMULATE
}

static void
scatter_rows(float *restrict rows, int stride, int width, const float *restrict d,
			 const uint32_t *restrict idx, const float *restrict val, int count)
{
#define SCATTER(j0, w) \
	scatter_block(rows + (j0), stride, w, d + (j0), idx, val, count)
	FOR_COLUMN_BLOCKS(width, SCATTER);
#undef SCATTER
}

/* Pixel values / 255, as the reference scales them (computed at compile time). */
#define SCALE1(i)	((float) (i) / 255.0f)
#define SCALE4(i)	SCALE1(i), SCALE1(i + 1), SCALE1(i + 2), SCALE1(i + 3)
#define SCALE16(i)	SCALE4(i), SCALE4(i + 4), SCALE4(i + 8), SCALE4(i + 12)
#define SCALE64(i)	SCALE16(i), SCALE16(i + 16), SCALE16(i + 32), SCALE16(i + 48)
static const float pixel_scale[256] = {SCALE64(0), SCALE64(64), SCALE64(128), SCALE64(192)};

/*
 * Nonzero pixels from..to-1 of one image, in pixel order: their indexes and values / 255.
 * Returns the count.  With AVX-512, sixteen pixels at a time are compacted in registers
 * (vcompress, then a store of just the nonzero lanes); with AVX2, eight at a time (a
 * permutation from a table); the divisions are IEEE, so the values equal pixel_scale's.
 * Otherwise eight pixels at a time are skipped when all are zero (most of a digit's are), and
 * within a block the scan is branch-free (pixels are zero at random).  Without AVX-512, idx
 * and val get written up to the position of the last pixel: they need to - from entries.
 */
#if defined(__AVX2__) && !defined(__AVX512F__)
/* For each mask of 8 lanes, the numbers of its set lanes packed into bytes, lowest first. */
#define LANE(m, k)	(((m) >> (k) & 1) ? (uint64_t) (k) << (8 * __builtin_popcount((m) & ((1u << (k)) - 1))) : 0)
#define LANES1(m)	(LANE(m, 0) | LANE(m, 1) | LANE(m, 2) | LANE(m, 3) | \
					 LANE(m, 4) | LANE(m, 5) | LANE(m, 6) | LANE(m, 7))
#define LANES4(m)	LANES1(m), LANES1(m + 1), LANES1(m + 2), LANES1(m + 3)
#define LANES16(m)	LANES4(m), LANES4(m + 4), LANES4(m + 8), LANES4(m + 12)
#define LANES64(m)	LANES16(m), LANES16(m + 16), LANES16(m + 32), LANES16(m + 48)
static const uint64_t nonzero_lanes[256] = {LANES64(0u), LANES64(64u), LANES64(128u), LANES64(192u)};
#endif

#define SPARSE_ONE(i) \
	do { idx[count] = (i); val[count] = pixel_scale[pixels[i]]; count += pixels[i] != 0; } while (0)

static int
sparse_pixels(const uint8_t *pixels, int from, int to, uint32_t *idx, float *val)
{
	int			i = from,
				count = 0;

#ifdef __AVX512F__
	const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	const __m512 v255 = _mm512_set1_ps(255.0f);

	for (; i + 16 <= to; i += 16)
	{
		__m512i		p = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *) (pixels + i)));
		__mmask16	nz = _mm512_test_epi32_mask(p, p);
		__mmask16	first;

		if (nz == 0)
			continue;
		first = (__mmask16) ((1u << __builtin_popcount(nz)) - 1);
		_mm512_mask_storeu_epi32(idx + count, first,
								 _mm512_maskz_compress_epi32(nz, _mm512_add_epi32(lanes, _mm512_set1_epi32(i))));
		_mm512_mask_storeu_ps(val + count, first,
							  _mm512_maskz_compress_ps(nz, _mm512_div_ps(_mm512_cvtepi32_ps(p), v255)));
		count += __builtin_popcount(nz);
	}
#elif defined(__AVX2__)
	const __m256 v255 = _mm256_set1_ps(255.0f);

	for (; i + 8 <= to; i += 8)
	{
		uint64_t	block;
		__m256i		p,
					order;
		unsigned	nz;

		memcpy(&block, pixels + i, sizeof(block));
		if (block == 0)
			continue;
		/* the nonzero lanes' numbers, packed in pixel order, as a permutation */
		p = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long) block));
		nz = (unsigned) _mm256_movemask_ps(_mm256_castsi256_ps(
			_mm256_cmpgt_epi32(p, _mm256_setzero_si256())));
		order = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long) nonzero_lanes[nz]));
		/* full 8-lane stores: they stay below idx + (i - from) + 8 <= idx + (to - from) */
		_mm256_storeu_si256((__m256i *) (idx + count),
							_mm256_permutevar8x32_epi32(_mm256_add_epi32(_mm256_set1_epi32(i),
																		 _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)),
														order));
		_mm256_storeu_ps(val + count,
						 _mm256_permutevar8x32_ps(_mm256_div_ps(_mm256_cvtepi32_ps(p), v255), order));
		count += __builtin_popcount(nz);
	}
#else
	for (; i + 8 <= to; i += 8)
	{
		uint64_t	block;

		memcpy(&block, pixels + i, sizeof(block));
		if (block == 0)
			continue;
		for (int j = i; j < i + 8; j++)
			SPARSE_ONE(j);
	}
#endif
	for (; i < to; i++)
		SPARSE_ONE(i);
	return count;
}

/*
 * relu in place, and the mask of its gradient (d[i] = 0 where the unit was off): loops in
 * fixed blocks with the values loaded unconditionally, so that they vectorise.
 */
#define RELU_ONE(x, i) \
	do { float v_ = (x)[i]; (x)[i] = v_ > 0.0f ? v_ : 0.0f; } while (0)
#define MASK_ONE(d, gate, i) \
	do { float v_ = (d)[i]; (d)[i] = (gate)[i] > 0.0f ? v_ : 0.0f; } while (0)

static void
relu(float *x, size_t n)
{
	size_t		i0 = 0,
				i;

	for (; i0 + CHUNK <= n; i0 += CHUNK)
		for (i = i0; i < i0 + CHUNK; i++)
			RELU_ONE(x, i);
	for (i = i0; i < n; i++)
		RELU_ONE(x, i);
}

static void
relu_mask(float *restrict d, const float *restrict gate, size_t n)
{
	size_t		i0 = 0,
				i;

	for (; i0 + CHUNK <= n; i0 += CHUNK)
		for (i = i0; i < i0 + CHUNK; i++)
			MASK_ONE(d, gate, i);
	for (i = i0; i < n; i++)
		MASK_ONE(d, gate, i);
}

/* First layer of one image: hid = relu(b1 + sum of its nonzero pixels' w1 rows, scaled). */
static void
hidden_layer(const MnistNet *net, const uint32_t *idx, const float *val, int count, float *hid)
{
	int			h = net->n_hidden;

	memcpy(hid, net->b1, sizeof(float) * h);
	accumulate_rows(hid, net->w1, h, h, idx, val, count);
	relu(hid, h);
}

/* Keras' Adam for one step: the coefficients shared by every parameter. */
typedef struct AdamStep
{
	float		b1,
				b2,
				c1,
				c2,
				eps,
				alpha;
} AdamStep;

static void
adam_step_init(AdamStep *a, const NetAdam *adam, int64_t t)
{
	a->b1 = adam->beta1;
	a->b2 = adam->beta2;
	a->c1 = 1.0f - adam->beta1;
	a->c2 = 1.0f - adam->beta2;
	a->eps = adam->epsilon;
	a->alpha = (float) (adam->learning_rate * sqrt(1.0 - pow(adam->beta2, (double) t)) /
						(1.0 - pow(adam->beta1, (double) t)));
}

/* One Adam parameter: m = b1 m + (1-b1) g, v = b2 v + (1-b2) g^2, p -= alpha m / (sqrt(v) + eps). */
#define ADAM_ONE(a, p, m, v, g, i) \
	do { \
		float		mi_ = (a)->b1 * (m)[i] + (a)->c1 * (g)[i]; \
		float		vi_ = (a)->b2 * (v)[i] + (a)->c2 * (g)[i] * (g)[i]; \
		(m)[i] = mi_; \
		(v)[i] = vi_; \
		(p)[i] -= (a)->alpha * mi_ / (sqrtf(vi_) + (a)->eps); \
	} while (0)

/* Adam on width parameters (a constant once inlined). */
static inline __attribute__((always_inline)) void
adam_block(const AdamStep *a, float *restrict p, float *restrict m, float *restrict v,
		   const float *restrict g, int width)
{
	int			i;

	for (i = 0; i < width; i++)
		ADAM_ONE(a, p, m, v, g, i);
}

/* Adam on n parameters with gradient g (in fixed-size blocks, so that it vectorises). */
static void
adam_update(const AdamStep *a, float *restrict p, float *restrict m, float *restrict v,
			const float *restrict g, int n)
{
#define ADAM(j0, w)	adam_block(a, p + (j0), m + (j0), v + (j0), g + (j0), w)
	FOR_COLUMN_BLOCKS(n, ADAM);
#undef ADAM
}

/*
 * The images of a batch are read in random order: fetch them ahead.  16 images (208 cache
 * lines) keep two threads, each reading every image, fed from memory when the rows are 1 GB
 * (one epoch of 1.2M rows, 2 threads: 242k-275k rows/s with 12 to 24 ahead, 184k-233k with 4;
 * no change with one thread or 60k rows).
 */
#define PREFETCH_AHEAD 16

static inline void
prefetch_image(const uint8_t *image)
{
	int			i;

	for (i = 0; i < NET_INPUTS; i += 64)
		__builtin_prefetch(image + i);
}

/* Calls the trainer's check, if it has one, between rounds of work. */
static inline void
check(const NetTrainer *t)
{
	if (t->check)
		t->check(t->check_arg);
}

/*
 * A batch as its tasks see it.  The first layer's work is split by columns (hidden units):
 * a task gets a range of column groups (NET_GROUP columns each) for the images r0..r1-1 of
 * the batch, the round being worked on.
 */
typedef struct BatchTask BatchTask;

/* One phase's work on the round's images, columns c0..c1-1 of share sh, by a thread. */
typedef void (*ColumnsFn) (const BatchTask *bt, const NetWorker *px, const NetShare *sh,
						   int c0, int c1);

struct BatchTask
{
	NetTrainer *t;
	ColumnsFn	work;			/* the phase being run */
	const uint8_t *images;
	const uint32_t *idx;
	int			r0,
				r1;
	uint64_t	round;			/* names the batch and r0, for the threads' pixel lists */
	bool		adam;			/* the round is the batch's last: the task then updates w1 */
	AdamStep	step;
};

/* Nanoseconds of CLOCK_MONOTONIC, for the balance of the threads' shares. */
static inline uint64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/*
 * The nonzero pixels of the round's images in the calling thread's lists, by block of w1
 * rows (first_layer_blocks), unless they are there already.
 */
static NetWorker *
round_pixels(const BatchTask *bt, int worker)
{
	NetTrainer *t = bt->t;
	NetWorker  *px = &t->worker[worker];
	int			nb = t->n_blocks;
	uint32_t	total = 0;

	if (px->round == bt->round)
		return px;
	for (int r = bt->r0; r < bt->r1 && r < bt->r0 + PREFETCH_AHEAD; r++)
		prefetch_image(bt->images + (size_t) bt->idx[r] * NET_INPUTS);
	for (int r = bt->r0; r < bt->r1; r++)
	{
		const uint8_t *image = bt->images + (size_t) bt->idx[r] * NET_INPUTS;
		uint32_t   *start = px->block_start + (r - bt->r0) * (nb + 1);

		if (r + PREFETCH_AHEAD < bt->r1)
			prefetch_image(bt->images + (size_t) bt->idx[r + PREFETCH_AHEAD] * NET_INPUTS);
		for (int b = 0; b < nb; b++)
		{
			start[b] = total;
			total += sparse_pixels(image, b * t->block, Min((b + 1) * t->block, NET_INPUTS),
								   px->idx + total, px->val + total);
		}
		start[nb] = total;
	}
	px->round = bt->round;
	return px;
}

/*
 * Forward pass of the round's images to hidden = relu(x w1 + b1) on columns c0..c1-1 of
 * share sh: the sums of hidden_layer(), in the same order, one block of w1 rows at a time
 * for all the round's images.
 */
static void
forward_columns(const BatchTask *bt, const NetWorker *px, const NetShare *sh, int c0, int c1)
{
	NetTrainer *t = bt->t;
	const MnistNet *net = t->net;
	const float *w1 = sh->w1 + (c0 - sh->c0);
	int			h = net->n_hidden;
	int			nb = t->n_blocks;

	for (int r = bt->r0; r < bt->r1; r++)
		memcpy(t->hidden + (size_t) r * h + c0, net->b1 + c0, sizeof(float) * (c1 - c0));
	for (int b = 0; b < nb; b++)
		for (int r = bt->r0; r < bt->r1; r++)
		{
			const uint32_t *start = px->block_start + (r - bt->r0) * (nb + 1);

			accumulate_rows(t->hidden + (size_t) r * h + c0, w1, sh->stride, c1 - c0,
							px->idx + start[b], px->val + start[b], (int) (start[b + 1] - start[b]));
		}
	for (int r = bt->r0; r < bt->r1; r++)
		relu(t->hidden + (size_t) r * h + c0, c1 - c0);
}

/*
 * The w1 gradient of the round's images on columns c0..c1-1 of share sh: each image's hidden
 * gradient, scaled by each of its nonzero pixels, added to that pixel's row of the gradient
 * (zero before the batch), in batch order; one block of w1 rows at a time, for all the
 * round's images, so that the block's gradient rows stay in the L1 cache.  After the batch's
 * last round, Adam on those columns of w1 (rows of zero pixels have a zero gradient, their
 * moments still decay), and the gradient rows are zeroed again.
 */
static void
gradient_columns(const BatchTask *bt, const NetWorker *px, const NetShare *sh, int c0, int c1)
{
	NetTrainer *t = bt->t;
	int			h = t->net->n_hidden;
	int			nb = t->n_blocks;
	size_t		off = c0 - sh->c0;

	for (int b = 0; b < nb; b++)
		for (int r = bt->r0; r < bt->r1; r++)
		{
			const uint32_t *start = px->block_start + (r - bt->r0) * (nb + 1);

			scatter_rows(sh->grad + off, sh->stride, c1 - c0, t->dhidden + (size_t) r * h + c0,
						 px->idx + start[b], px->val + start[b], (int) (start[b + 1] - start[b]));
		}
	if (!bt->adam)
		return;
	for (int i = 0; i < NET_INPUTS; i++, off += sh->stride)
	{
		adam_update(&bt->step, sh->w1 + off, sh->m + off, sh->v + off, sh->grad + off, c1 - c0);
		memset(sh->grad + off, 0, sizeof(float) * (c1 - c0));
	}
}

/*
 * A chunk of the pool's run: bt->work on column groups first..last-1, share by share (a
 * chunk is one share, or all of them without a pool), timed for the balance of the shares.
 */
static void
share_task(void *arg, int worker, int first, int last)
{
	BatchTask  *bt = arg;
	NetTrainer *t = bt->t;
	uint64_t	start = monotonic_ns();
	NetWorker  *px = round_pixels(bt, worker);

	for (int w = 0; w < t->threads; w++)
	{
		const NetShare *sh = &t->share[w];
		int			c0 = Max(first * NET_GROUP, sh->c0),
					c1 = Min(last * NET_GROUP, sh->c1);

		if (c0 < c1)
		{
			bt->work(bt, px, sh, c0, c1);
			px->columns += (uint64_t) (c1 - c0) * (bt->r1 - bt->r0);
		}
	}
	px->busy_ns += monotonic_ns() - start;
}

/* Runs work on the column groups for each round of NET_CHECK_ROWS images, checking between. */
static void
run_rounds(NetTrainer *t, BatchTask *bt, ColumnsFn work, int n, bool adam)
{
	bt->work = work;
	for (int r0 = 0; r0 < n; r0 += NET_CHECK_ROWS)
	{
		bt->r0 = r0;
		bt->r1 = Min(r0 + NET_CHECK_ROWS, n);
		bt->round = (t->batches << 32) | (uint64_t) r0;
		bt->adam = adam && bt->r1 == n;
		mnist_net_pool_run(t->pool, share_task, bt, t->bounds, t->threads);
		if (bt->r1 < n)
			check(t);
	}
}

static void
train_batch(NetTrainer *t, const NetAdam *adam,
			const uint8_t *images, const uint8_t *labels,
			const uint32_t *idx, int n,
			double *loss_sum, int64_t *correct)
{
	MnistNet   *net = t->net;
	int			h = net->n_hidden;
	float	   *gb1 = t->grad;
	float	   *gw2 = gb1 + h;
	float	   *gb2 = gw2 + (size_t) h * NET_OUTPUTS;
	float		inv_n = 1.0f / n;
	int			rows = NET_BLAS_ROWS * (1 + NET_CHECK_FLOATS / NET_BLAS_ROWS / h);
	BatchTask	bt = {.t = t, .images = images, .idx = idx};
	int			r,
				k;

	/*
	 * forward: hidden = relu(x w1 + b1) from the nonzero pixels (split over the threads by
	 * column), logits = hidden w2 + b2
	 */
	if (++t->batches % NET_BALANCE_BATCHES == 0 && t->pool)
		mnist_net_trainer_balance(t);
	run_rounds(t, &bt, forward_columns, n, false);
	for (r = 0; r < n; r++)
		memcpy(t->logits + r * NET_OUTPUTS, net->b2, sizeof(float) * NET_OUTPUTS);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, NET_OUTPUTS, h,
				1.0f, t->hidden, h, net->w2, NET_OUTPUTS, 1.0f, t->logits, NET_OUTPUTS);

	/* loss, accuracy, dlogits = (softmax - onehot) / n (the loss is the batch mean) */
	for (r = 0; r < n; r++)
	{
		const float *z = t->logits + r * NET_OUTPUTS;
		float	   *dz = t->dlogits + r * NET_OUTPUTS;
		int			label = labels[idx[r]];

		*loss_sum += mnist_net_log_sum_exp10(z, dz) - z[label];
		if (mnist_net_argmax10(z) == label)
			(*correct)++;
		dz[label] -= 1.0f;
		for (k = 0; k < NET_OUTPUTS; k++)
			dz[k] *= inv_n;
	}

	/* backward: second layer, then the hidden gradient through relu */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, h, NET_OUTPUTS, n,
				1.0f, t->hidden, h, t->dlogits, NET_OUTPUTS, 0.0f, gw2, NET_OUTPUTS);
	for (k = 0; k < NET_OUTPUTS; k++)
	{
		float		s = 0.0f;

		for (r = 0; r < n; r++)
			s += t->dlogits[r * NET_OUTPUTS + k];
		gb2[k] = s;
	}
	for (r = 0; r < n; r += rows)
	{
		/* in blocks of rows (one for most batches), computed exactly as in a single call */
		int			m = n - r < rows ? n - r : rows;

		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, h, NET_OUTPUTS,
					1.0f, t->dlogits + (size_t) r * NET_OUTPUTS, NET_OUTPUTS, net->w2, NET_OUTPUTS,
					0.0f, t->dhidden + (size_t) r * h, h);
		relu_mask(t->dhidden + (size_t) r * h, t->hidden + (size_t) r * h, (size_t) m * h);
		check(t);
	}

	/* b1's gradient: the sum of the hidden gradients */
	memset(gb1, 0, sizeof(float) * h);
	accumulate_rows(gb1, t->dhidden, h, h, t->batch_rows, t->ones, n);

	/*
	 * Adam: w1 (with its gradient, split over the threads by column, in the last round),
	 * then b1, w2, b2, which follow w1 in params.
	 */
	net->adam_step++;
	adam_step_init(&bt.step, adam, net->adam_step);
	run_rounds(t, &bt, gradient_columns, n, true);
	{
		size_t		off = (size_t) NET_INPUTS * h;

		adam_update(&bt.step, net->b1, net->adam_m + off, net->adam_v + off, t->grad,
					(int) (net->n_params - off));
	}
}

/* mnist_net_predict */
static int
predict(const MnistNet *net, const uint8_t *pixels, float *scratch, float *probs, float *logits)
{
	int			h = net->n_hidden;
	float	   *hid = scratch;
	float	   *val = scratch + h;
	uint32_t   *idx = (uint32_t *) (scratch + h + NET_INPUTS);
	float		acc[NET_OUTPUTS],
				z[NET_OUTPUTS];
	int			j,
				k;

	hidden_layer(net, idx, val, sparse_pixels(pixels, 0, NET_INPUTS, idx, val), hid);

	/* the second layer in registers (acc is never addressed as a whole) */
#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		acc[k] = net->b2[k];
	for (j = 0; j < h; j++)
	{
		const float *w = net->w2 + (size_t) j * NET_OUTPUTS;

#pragma GCC unroll 10
		for (k = 0; k < NET_OUTPUTS; k++)
			acc[k] += hid[j] * w[k];
	}
#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		z[k] = acc[k];
	if (logits)
		memcpy(logits, z, sizeof(z));
	if (probs)
		mnist_net_log_sum_exp10(z, probs);
	return mnist_net_argmax10(z);
}

const NetKernels NET_KERNELS = {train_batch, predict};

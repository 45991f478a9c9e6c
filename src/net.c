/*
 * net.c
 *		The network: 784 -> Dense(H, relu) -> Dense(10) logits, softmax cross-entropy, Adam
 *		as Keras.  Plain C + CBLAS, no PostgreSQL calls, no allocation: every buffer comes
 *		from the caller.  Deterministic: the same seed and data give a bit-identical model.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "net.h"

#define Min(a, b)	((a) < (b) ? (a) : (b))

/* Training workspace, carved out of the caller's buffer by net_trainer_bind. */
struct NetTrainer
{
	MnistNet   *net;
	int			max_batch;
	const uint8_t **image;		/* max_batch: the batch's images */
	int			block;			/* w1 rows per block of the first layer */
	int			n_blocks;		/* blocks of NET_INPUTS rows */
	uint32_t   *block_start;	/* max_batch * n_blocks + 1: image r's pixels of block b are
								 * row_*[block_start[r * n_blocks + b]..] up to the next */
	uint32_t   *row_idx;		/* nonzero pixels of the batch by image: pixel index */
	float	   *row_val;		/* and value / 255 */
	uint32_t   *col_start;		/* NET_INPUTS + 1: pixel i's images are col_*[col_start[i]..] */
	uint32_t   *col_idx;		/* the same nonzero pixels by pixel: image in the batch */
	float	   *col_val;
	float	   *hidden;			/* max_batch x H, after relu */
	float	   *dhidden;		/* max_batch x H, loss gradient before relu */
	float	   *logits;			/* max_batch x NET_OUTPUTS */
	float	   *dlogits;		/* max_batch x NET_OUTPUTS */
	float	   *grad;			/* gradients of b1, w2, b2 (their layout in params) */
	float	   *grad_row;		/* H: gradient of one w1 row */
	float	   *zero_row;		/* H zeros: the gradient of a w1 row of zero pixels */
	NetCheckFn	check;			/* called between blocks of work, or NULL */
	void	   *check_arg;
};

size_t
net_param_count(int n_hidden)
{
	return (size_t) NET_INPUTS * n_hidden + n_hidden +
		(size_t) n_hidden * NET_OUTPUTS + NET_OUTPUTS;
}

void
net_bind(MnistNet *net, int n_hidden, float *params, float *adam_m, float *adam_v)
{
	net->n_hidden = n_hidden;
	net->n_params = net_param_count(n_hidden);
	net->params = params;
	net->w1 = params;
	net->b1 = net->w1 + (size_t) NET_INPUTS * n_hidden;
	net->w2 = net->b1 + n_hidden;
	net->b2 = net->w2 + (size_t) n_hidden * NET_OUTPUTS;
	net->adam_m = adam_m;
	net->adam_v = adam_v;
	net->adam_step = 0;
	net->screen = NULL;
}

/* splitmix64: expands a seed into the xoshiro state. */
static uint64_t
splitmix64(uint64_t *x)
{
	uint64_t	z = (*x += UINT64_C(0x9E3779B97F4A7C15));

	z = (z ^ (z >> 30)) * UINT64_C(0xBF58476D1CE4E5B9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94D049BB133111EB);
	return z ^ (z >> 31);
}

static inline uint64_t
rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

/* xoshiro256**: the next 64 random bits. */
static uint64_t
rng_next(NetRng *rng)
{
	uint64_t   *s = rng->s;
	uint64_t	result = rotl(s[1] * 5, 7) * 9;
	uint64_t	t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

void
net_rng_seed(NetRng *rng, uint64_t seed)
{
	uint64_t	x = seed;
	int			i;

	for (i = 0; i < 4; i++)
		rng->s[i] = splitmix64(&x);
}

/* Uniform integer in [0, bound), unbiased (Lemire's multiply-and-reject). */
static uint64_t
rng_below(NetRng *rng, uint64_t bound)
{
	unsigned __int128 m = (unsigned __int128) rng_next(rng) * bound;
	uint64_t	low = (uint64_t) m;

	if (low < bound)
	{
		uint64_t	threshold = -bound % bound;

		while (low < threshold)
		{
			m = (unsigned __int128) rng_next(rng) * bound;
			low = (uint64_t) m;
		}
	}
	return (uint64_t) (m >> 64);
}

void
net_shuffle(NetRng *rng, uint32_t *idx, size_t n)
{
	size_t		i;

	for (i = n; i > 1; i--)
	{
		size_t		j = (size_t) rng_below(rng, i);
		uint32_t	tmp = idx[i - 1];

		idx[i - 1] = idx[j];
		idx[j] = tmp;
	}
}

/* Fills w[0..n-1] uniformly in [-limit, limit) from 24 random bits each. */
static void
fill_uniform(NetRng *rng, float *w, size_t n, double limit)
{
	size_t		i;

	for (i = 0; i < n; i++)
	{
		double		u = (double) (rng_next(rng) >> 40) * (1.0 / 16777216.0);

		w[i] = (float) ((2.0 * u - 1.0) * limit);
	}
}

void
net_init_glorot(MnistNet *net, uint64_t seed)
{
	int			h = net->n_hidden;
	NetRng		rng;

	/* a stream of its own, so init and shuffles with the same seed are unrelated */
	net_rng_seed(&rng, seed ^ UINT64_C(0x676c6f726f74));
	fill_uniform(&rng, net->w1, (size_t) NET_INPUTS * h, sqrt(6.0 / (NET_INPUTS + h)));
	memset(net->b1, 0, sizeof(float) * h);
	fill_uniform(&rng, net->w2, (size_t) h * NET_OUTPUTS, sqrt(6.0 / (h + NET_OUTPUTS)));
	memset(net->b2, 0, sizeof(float) * NET_OUTPUTS);
	if (net->adam_m)
		memset(net->adam_m, 0, sizeof(float) * net->n_params);
	if (net->adam_v)
		memset(net->adam_v, 0, sizeof(float) * net->n_params);
	net->adam_step = 0;
}

/*
 * Sums of scaled rows, the one kernel of both layers' sparse side: for k = 0..count-1 in
 * order, acc[0..h) += val[k] * rows[idx[k] * h + 0..h).  The first layer's forward pass
 * (rows = w1, one entry per nonzero pixel) and its weight gradient (rows = the hidden
 * gradients, one entry per image with that pixel nonzero) both reduce to it, so zero pixels
 * cost nothing.  Columns go in blocks of a fixed width, which the compiler keeps in vector
 * registers; each element is summed in the order of idx, so training and net_predict compute
 * the first layer identically.
 */
#ifdef __AVX512F__
#define CHUNK 128
#else
#define CHUNK 64
#endif

/* One block of width columns (a constant once inlined) of accumulate_rows. */
static inline __attribute__((always_inline)) void
accumulate_block(float *restrict acc, const float *restrict rows, size_t h, int width,
				 const uint32_t *restrict idx, const float *restrict val, int count)
{
	float		a[CHUNK];
	int			j,
				k;

	memcpy(a, acc, sizeof(float) * width);
	for (k = 0; k < count; k++)
	{
		const float *w = rows + idx[k] * h;
		float		x = val[k];

#pragma GCC unroll 128
		for (j = 0; j < width; j++)
			a[j] += x * w[j];
	}
	memcpy(acc, a, sizeof(float) * width);
}

static void
accumulate_rows(float *restrict acc, const float *restrict rows, int h,
				const uint32_t *restrict idx, const float *restrict val, int count)
{
	int			j0 = 0;

	for (; j0 + CHUNK <= h; j0 += CHUNK)
		accumulate_block(acc + j0, rows + j0, h, CHUNK, idx, val, count);
	for (; j0 + 8 <= h; j0 += 8)
		accumulate_block(acc + j0, rows + j0, h, 8, idx, val, count);
	for (; j0 < h; j0++)
		accumulate_block(acc + j0, rows + j0, h, 1, idx, val, count);
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
	accumulate_rows(hid, net->w1, h, idx, val, count);
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

/* Adam on n parameters with gradient g (fixed-size blocks so that it vectorises). */
static void
adam_update(const AdamStep *a, float *restrict p, float *restrict m, float *restrict v,
			const float *restrict g, size_t n)
{
	size_t		i0 = 0,
				i;

	for (; i0 + CHUNK <= n; i0 += CHUNK)
		for (i = i0; i < i0 + CHUNK; i++)
			ADAM_ONE(a, p, m, v, g, i);
	for (i = i0; i < n; i++)
		ADAM_ONE(a, p, m, v, g, i);
}

/*
 * The batch's first layer works on blocks of w1 rows small enough (32 kB) to stay in the L1
 * cache while every image adds its pixels of that block; a whole image's w1 rows would
 * stream from L2 instead (the first layer alone takes about 25% longer).  At least 16 rows, so
 * that the block bookkeeping stays small for wide layers.  Returns the number of blocks, and
 * their size in *block.
 */
static int
first_layer_blocks(int n_hidden, int *block)
{
	int			rows = n_hidden < 8192 / 16 ? 8192 / n_hidden : 16;

	if (block)
		*block = rows;
	return (NET_INPUTS + rows - 1) / rows;
}

size_t
net_trainer_size(int n_hidden, int max_batch)
{
	size_t		b = (size_t) max_batch;
	size_t		h = (size_t) n_hidden;

	return 64 +					/* for aligning the caller's pointer */
		NET_ALIGN64(sizeof(NetTrainer)) +
		NET_ALIGN64(sizeof(uint8_t *) * b) +
		NET_ALIGN64(sizeof(uint32_t) * (b * first_layer_blocks(n_hidden, NULL) + 1)) +
		NET_ALIGN64(sizeof(uint32_t) * (NET_INPUTS + 1)) +
		2 * NET_ALIGN64(sizeof(uint32_t) * b * NET_INPUTS) +
		2 * NET_ALIGN64(sizeof(float) * b * NET_INPUTS) +
		2 * NET_ALIGN64(sizeof(float) * b * h) +
		2 * NET_ALIGN64(sizeof(float) * b * NET_OUTPUTS) +
		NET_ALIGN64(sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS)) +
		2 * NET_ALIGN64(sizeof(float) * h);
}

NetTrainer *
net_trainer_bind(void *mem, MnistNet *net, int max_batch)
{
	char	   *p = (char *) NET_ALIGN64((uintptr_t) mem);
	NetTrainer *t;
	size_t		b = (size_t) max_batch;
	size_t		h = (size_t) net->n_hidden;

	t = net_carve(&p, sizeof(NetTrainer));
	t->net = net;
	t->max_batch = max_batch;
	t->image = net_carve(&p, sizeof(uint8_t *) * b);
	t->n_blocks = first_layer_blocks(net->n_hidden, &t->block);
	t->block_start = net_carve(&p, sizeof(uint32_t) * (b * t->n_blocks + 1));
	t->col_start = net_carve(&p, sizeof(uint32_t) * (NET_INPUTS + 1));
	t->row_idx = net_carve(&p, sizeof(uint32_t) * b * NET_INPUTS);
	t->col_idx = net_carve(&p, sizeof(uint32_t) * b * NET_INPUTS);
	t->row_val = net_carve(&p, sizeof(float) * b * NET_INPUTS);
	t->col_val = net_carve(&p, sizeof(float) * b * NET_INPUTS);
	t->hidden = net_carve(&p, sizeof(float) * b * h);
	t->dhidden = net_carve(&p, sizeof(float) * b * h);
	t->logits = net_carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->dlogits = net_carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->grad = net_carve(&p, sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS));
	t->grad_row = net_carve(&p, sizeof(float) * h);
	t->zero_row = net_carve(&p, sizeof(float) * h);
	memset(t->zero_row, 0, sizeof(float) * h);
	t->check = NULL;
	t->check_arg = NULL;
	return t;
}

void
net_trainer_set_check(NetTrainer *t, NetCheckFn check, void *arg)
{
	t->check = check;
	t->check_arg = arg;
}

int
net_argmax10(const float *z)
{
	int			best = 0;
	int			k;

	for (k = 1; k < NET_OUTPUTS; k++)
		if (z[k] > z[best])
			best = k;
	return best;
}

/*
 * log(sum(exp(z))) of 10 logits, computed stably in double from z - max(z); when p is not
 * NULL, also the softmax probabilities.
 */
static double
log_sum_exp10(const float *z, float *p)
{
	float		zmax = z[net_argmax10(z)];
	double		sum = 0.0;
	double		e[NET_OUTPUTS];
	int			k;

	for (k = 0; k < NET_OUTPUTS; k++)
	{
		e[k] = exp((double) z[k] - zmax);
		sum += e[k];
	}
	if (p)
		for (k = 0; k < NET_OUTPUTS; k++)
			p[k] = (float) (e[k] / sum);
	return log(sum) + zmax;
}

double
net_cross_entropy(const float *logits, int label)
{
	return log_sum_exp10(logits, NULL) - logits[label];
}

/* Calls the trainer's check, if it has one, at the end of every block of every items. */
static inline void
check_every(const NetTrainer *t, int i, int every)
{
	if (t->check && i % every == every - 1)
		t->check(t->check_arg);
}

/* The images of a batch are read in random order: fetch them a few ahead. */
#define PREFETCH_AHEAD 4

static inline void
prefetch_image(const uint8_t *image)
{
	int			i;

	for (i = 0; i < NET_INPUTS; i += 64)
		__builtin_prefetch(image + i);
}

/*
 * The batch's nonzero pixels twice: by image and block of w1 rows (row_*, for the forward
 * pass) and by pixel (col_*, images in batch order, for the first layer's weight gradient).
 * Both are branch-free compactions of the pixel bytes.
 */
static void
sparse_batch(NetTrainer *t, const uint8_t *images, const uint32_t *idx, int n)
{
	const uint8_t **image = t->image;
	uint32_t	total = 0;
	int			r,
				b,
				i;

	for (r = 0; r < n; r++)
	{
		image[r] = images + (size_t) idx[r] * NET_INPUTS;
		if (r < PREFETCH_AHEAD)
			prefetch_image(image[r]);
	}
	for (r = 0; r < n; r++)
	{
		if (r + PREFETCH_AHEAD < n)
			prefetch_image(image[r + PREFETCH_AHEAD]);
		for (b = 0; b < t->n_blocks; b++)
		{
			t->block_start[r * t->n_blocks + b] = total;
			total += sparse_pixels(image[r], b * t->block, Min((b + 1) * t->block, NET_INPUTS),
								   t->row_idx + total, t->row_val + total);
		}
		check_every(t, r, NET_CHECK_ROWS);
	}
	t->block_start[n * t->n_blocks] = total;

	total = 0;
	for (i = 0; i < NET_INPUTS; i++)
	{
		t->col_start[i] = total;
		for (r = 0; r < n; r++)
		{
			uint8_t		p = image[r][i];

			t->col_idx[total] = r;
			t->col_val[total] = pixel_scale[p];
			total += p != 0;
		}
		check_every(t, i, NET_CHECK_PIXELS);
	}
	t->col_start[NET_INPUTS] = total;
}

/*
 * hidden = relu(x w1 + b1) for the batch: the sums of hidden_layer(), in the same order, one
 * block of w1 rows at a time (first_layer_blocks).
 */
static void
first_layer_batch(NetTrainer *t, int n)
{
	const MnistNet *net = t->net;
	int			h = net->n_hidden;
	int			r,
				b;

	for (r = 0; r < n; r++)
	{
		memcpy(t->hidden + (size_t) r * h, net->b1, sizeof(float) * h);
		check_every(t, r, NET_CHECK_ROWS);
	}
	for (b = 0; b < t->n_blocks; b++)
	{
		for (r = 0; r < n; r++)
		{
			uint32_t	c0 = t->block_start[r * t->n_blocks + b],
						c1 = t->block_start[r * t->n_blocks + b + 1];

			accumulate_rows(t->hidden + (size_t) r * h, net->w1, h, t->row_idx + c0,
							t->row_val + c0, (int) (c1 - c0));
			check_every(t, r, NET_CHECK_ROWS);
		}
	}
	relu(t->hidden, (size_t) n * h);
}

void
net_train_batch(NetTrainer *t, const NetAdam *adam,
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
	uint32_t   *all = t->row_idx;	/* 0..n-1, for the bias gradient */
	float	   *ones = t->row_val;
	AdamStep	step;
	int			r,
				i,
				k;

	/* forward: hidden = relu(x w1 + b1) from the nonzero pixels, logits = hidden w2 + b2 */
	sparse_batch(t, images, idx, n);
	first_layer_batch(t, n);
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

		*loss_sum += log_sum_exp10(z, dz) - z[label];
		if (net_argmax10(z) == label)
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
		if (t->check)
			t->check(t->check_arg);
	}

	/* b1's gradient: the sum of the hidden gradients (the row lists are free again) */
	for (r = 0; r < n; r++)
	{
		all[r] = r;
		ones[r] = 1.0f;
	}
	memset(gb1, 0, sizeof(float) * h);
	accumulate_rows(gb1, t->dhidden, h, all, ones, n);

	/*
	 * Adam, w1 row by row with its gradient computed on the fly from the images where that
	 * pixel is nonzero (a zero gradient for the others, whose moments still decay), then b1,
	 * w2, b2, which follow w1 in params.
	 */
	net->adam_step++;
	adam_step_init(&step, adam, net->adam_step);
	for (i = 0; i < NET_INPUTS; i++)
	{
		uint32_t	c0 = t->col_start[i],
					c1 = t->col_start[i + 1];
		size_t		off = (size_t) i * h;
		const float *g = t->zero_row;

		if (c1 > c0)
		{
			memset(t->grad_row, 0, sizeof(float) * h);
			accumulate_rows(t->grad_row, t->dhidden, h, t->col_idx + c0, t->col_val + c0,
							(int) (c1 - c0));
			g = t->grad_row;
		}
		adam_update(&step, net->w1 + off, net->adam_m + off, net->adam_v + off, g, h);
		check_every(t, i, NET_CHECK_PIXELS);
	}
	{
		size_t		off = (size_t) NET_INPUTS * h;

		adam_update(&step, net->b1, net->adam_m + off, net->adam_v + off, t->grad,
					net->n_params - off);
	}
}

size_t
net_predict_scratch(int n_hidden)
{
	/* hidden, values and indexes of nonzero pixels; or what the screen needs */
	size_t		exact = (size_t) n_hidden + 2 * NET_INPUTS;
	size_t		screen = net_screen_scratch(n_hidden);

	return exact > screen ? exact : screen;
}

int
net_predict(const MnistNet *net, const uint8_t *pixels, float *scratch,
			float *probs, float *logits)
{
	int			h = net->n_hidden;
	float	   *hid = scratch;
	float	   *val = scratch + h;
	uint32_t   *idx = (uint32_t *) (scratch + h + NET_INPUTS);
	float		acc[NET_OUTPUTS],
				z[NET_OUTPUTS];
	int			j,
				k;

	if (net->screen != NULL && probs == NULL && logits == NULL)
	{
		k = net_screen_classify(net, pixels, scratch);
		if (k >= 0)
			return k;
	}
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
		log_sum_exp10(z, probs);
	return net_argmax10(z);
}

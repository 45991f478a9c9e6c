/*
 * net.c
 *		The network: 784 -> Dense(H, relu) -> Dense(10) logits, softmax cross-entropy, Adam
 *		as Keras.  Plain C + CBLAS, no PostgreSQL calls, no allocation: every buffer comes
 *		from the caller.  Deterministic: the same seed and data give a bit-identical model.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include <cblas.h>
#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

#include "net.h"

/* The screen (see net_screen_build) needs AVX-512 with 16-bit dot products (VNNI). */
#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__) && defined(__AVX512VNNI__)
#define NET_SCREEN 1
#endif

#define Min(a, b)	((a) < (b) ? (a) : (b))
#define ALIGN64(x)	(((x) + (size_t) 63) & ~(size_t) 63)

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
		ALIGN64(sizeof(NetTrainer)) +
		ALIGN64(sizeof(uint8_t *) * b) +
		ALIGN64(sizeof(uint32_t) * (b * first_layer_blocks(n_hidden, NULL) + 1)) +
		ALIGN64(sizeof(uint32_t) * (NET_INPUTS + 1)) +
		2 * ALIGN64(sizeof(uint32_t) * b * NET_INPUTS) +
		2 * ALIGN64(sizeof(float) * b * NET_INPUTS) +
		2 * ALIGN64(sizeof(float) * b * h) +
		2 * ALIGN64(sizeof(float) * b * NET_OUTPUTS) +
		ALIGN64(sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS)) +
		2 * ALIGN64(sizeof(float) * h);
}

/* Returns the next 64-byte aligned block of bytes from *p and advances *p. */
static void *
carve(char **p, size_t bytes)
{
	void	   *r = *p;

	*p += ALIGN64(bytes);
	return r;
}

NetTrainer *
net_trainer_bind(void *mem, MnistNet *net, int max_batch)
{
	char	   *p = (char *) ALIGN64((uintptr_t) mem);
	NetTrainer *t;
	size_t		b = (size_t) max_batch;
	size_t		h = (size_t) net->n_hidden;

	t = carve(&p, sizeof(NetTrainer));
	t->net = net;
	t->max_batch = max_batch;
	t->image = carve(&p, sizeof(uint8_t *) * b);
	t->n_blocks = first_layer_blocks(net->n_hidden, &t->block);
	t->block_start = carve(&p, sizeof(uint32_t) * (b * t->n_blocks + 1));
	t->col_start = carve(&p, sizeof(uint32_t) * (NET_INPUTS + 1));
	t->row_idx = carve(&p, sizeof(uint32_t) * b * NET_INPUTS);
	t->col_idx = carve(&p, sizeof(uint32_t) * b * NET_INPUTS);
	t->row_val = carve(&p, sizeof(float) * b * NET_INPUTS);
	t->col_val = carve(&p, sizeof(float) * b * NET_INPUTS);
	t->hidden = carve(&p, sizeof(float) * b * h);
	t->dhidden = carve(&p, sizeof(float) * b * h);
	t->logits = carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->dlogits = carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->grad = carve(&p, sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS));
	t->grad_row = carve(&p, sizeof(float) * h);
	t->zero_row = carve(&p, sizeof(float) * h);
	memset(t->zero_row, 0, sizeof(float) * h);
	return t;
}

/* Index of the largest of the 10 logits (the first on ties). */
static int
argmax10(const float *z)
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
	float		zmax = z[argmax10(z)];
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
		memcpy(t->hidden + (size_t) r * h, net->b1, sizeof(float) * h);
	for (b = 0; b < t->n_blocks; b++)
	{
		for (r = 0; r < n; r++)
		{
			uint32_t	c0 = t->block_start[r * t->n_blocks + b],
						c1 = t->block_start[r * t->n_blocks + b + 1];

			accumulate_rows(t->hidden + (size_t) r * h, net->w1, h, t->row_idx + c0,
							t->row_val + c0, (int) (c1 - c0));
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
		if (argmax10(z) == label)
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
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, h, NET_OUTPUTS,
				1.0f, t->dlogits, NET_OUTPUTS, net->w2, NET_OUTPUTS, 0.0f, t->dhidden, h);
	relu_mask(t->dhidden, t->hidden, (size_t) n * h);

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
	}
	{
		size_t		off = (size_t) NET_INPUTS * h;

		adam_update(&step, net->b1, net->adam_m + off, net->adam_v + off, t->grad,
					net->n_params - off);
	}
}

/*
 * The screen.  net_predict's first layer sums, per hidden unit j, b1[j] and the w1 rows of the
 * nonzero pixels scaled by p / 255, in float.  The screen sums the same in integers:
 * w1[i][j] / 255 ~ scale[j] * q[i][j] (a scale per unit), q = 256 hi + lo with |q| <= 32000
 * (NET_SCREEN_QMAX), so hi (|hi| <= 125) and lo (-128..127) are signed bytes.  Pixels go in
 * fours: one vpdpbusd multiplies four pixel bytes (p[4g] .. p[4g+3]) by four weight bytes of
 * each of 16 units and adds the products, exactly, to int32 lanes; fours of zero pixels are
 * skipped.
 *  - Stage 1 sums only hi (a quarter of the bytes of float weights): S1 = sum p hi.
 *  - Stage 2, when stage 1 cannot tell, adds lo: S2 = 256 S1 + sum p lo = sum p q.
 * Then hidden = relu(S * scale' + b1) and the logits are float.  On digits stage 1 decides
 * about 80% of images and stage 2 all but about 0.3%; the rest take net_predict's float path.
 *
 * Why a decision is net_predict's answer.  With u = 2^-24, gamma(m) = m u / (1 - m u),
 * P = sum p[i] and n the nonzero pixels, against the real-valued b1[j] + sum p[i] w1[i][j] / 255:
 *  - a stage's hidden value is off by at most P rho[j] (rho[j] = max over i of
 *    |scale' q'[i][j] - w1[i][j] / 255| for its q' (256 hi or q) and scale' (256 scale or
 *    scale), measured when the screen is built), plus gamma(3) (P Q[j] + |b1[j]|) for its
 *    three roundings (Q[j] = scale' max |q'[i][j]|);
 *  - net_predict's float sum is off by at most gamma(2n + 1) (P W[j] + |b1[j]|)
 *    (W[j] = max |w1[i][j]| / 255; a rounding per product, per addition and per p / 255);
 *  - relu does not widen a difference, so their sum e[j] bounds the difference of the two
 *    hidden values; through the second layer that is sum e[j] |w2[j][k]|, linear in P, with
 *    coefficients summed once when the screen is built;
 *  - each second layer rounds by at most gamma(2 width + 2) (|b2[k]| + sum hidden |w2[j][k]|),
 *    where net_predict's hidden values are at most the screen's plus e[j], and sum hidden
 *    |w2[j][k]| <= G max |w2[.][k]| (G: the sum of the screen's hidden values).
 * If the screen's best logit t beats every other k by more than bound[t] + bound[k] (bounds
 * taken 1% wider, for the float arithmetic that computes them and the margins), net_predict's
 * logit t is strictly the largest, and the class is t.  Otherwise the stage cannot tell.
 */
#define SCREEN_QUADS (NET_INPUTS / 4)
#define SCREEN_WIDTH(h) (((size_t) (h) + 15) & ~(size_t) 15)	/* units rounded up to 16 */
#define SCREEN_BLOCK 8			/* vectors of 16 units summed in registers at a time */

struct NetScreen
{
	int			width;			/* SCREEN_WIDTH(n_hidden) */
	int8_t	   *hi;				/* [SCREEN_QUADS][width][4]: hi[4g..4g+3][j] */
	int8_t	   *lo;				/* the same for lo */
	float	   *scale1;			/* [width]: 256 scale[j], stage 1's */
	float	   *scale2;			/* [width]: scale[j], stage 2's */
	float	   *b1;				/* [width] */
	float	   *w2;				/* [NET_OUTPUTS][width]: w2[j][k] at [k][j] */
	float		b2[16];
	/* per stage: bound[k] = c[0] P + c[1] gamma(2n + 1) P + c[2] gamma(2n + 1) + c[3] + c[4] G */
	float		bound_coef[2][5][16];
};

#ifdef NET_SCREEN

typedef float screen_f16 __attribute__((vector_size(64)));	/* 16 floats */
typedef int32_t screen_i16 __attribute__((vector_size(64)));	/* 16 int32 */
typedef int64_t screen_l16 __attribute__((vector_size(128)));	/* 16 int64 */

/* gamma(m) = m u / (1 - m u), u = 2^-24: the relative error bound of m float roundings */
static double
gamma_n(int m)
{
	const double u = 1.0 / 16777216.0;

	return m * u / (1.0 - m * u);
}

size_t
net_screen_size(int n_hidden)
{
	size_t		w = SCREEN_WIDTH(n_hidden);

	return ALIGN64(sizeof(NetScreen)) + 2 * ALIGN64((size_t) NET_INPUTS * w) +
		3 * ALIGN64(sizeof(float) * w) + ALIGN64(sizeof(float) * w * NET_OUTPUTS);
}

const NetScreen *
net_screen_build(const MnistNet *net, void *mem)
{
	char	   *p = mem;
	int			h = net->n_hidden;
	size_t		w = SCREEN_WIDTH(h);
	NetScreen  *s = carve(&p, sizeof(NetScreen));
	double		err[2][2][NET_OUTPUTS],	/* per stage: sum rho[j] |w2[j][k]|, sum Q[j] |..| */
				err_w[NET_OUTPUTS] = {0},	/* sum W[j] |w2[j][k]| */
				err_b[NET_OUTPUTS] = {0},	/* sum |b1[j]| |w2[j][k]| */
				w2_max[NET_OUTPUTS],	/* max |w2[j][k]| */
				gb = gamma_n(3),
				gc = gamma_n(2 * (int) w + 2);
	int			i,
				j,
				k,
				st;

	memset(s, 0, sizeof(NetScreen));
	s->width = (int) w;
	s->hi = carve(&p, (size_t) NET_INPUTS * w);
	s->lo = carve(&p, (size_t) NET_INPUTS * w);
	s->scale1 = carve(&p, sizeof(float) * w);
	s->scale2 = carve(&p, sizeof(float) * w);
	s->b1 = carve(&p, sizeof(float) * w);
	s->w2 = carve(&p, sizeof(float) * w * NET_OUTPUTS);
	memset(s->hi, 0, (size_t) NET_INPUTS * w);
	memset(s->lo, 0, (size_t) NET_INPUTS * w);
	memset(s->scale1, 0, sizeof(float) * w);
	memset(s->scale2, 0, sizeof(float) * w);
	memset(s->b1, 0, sizeof(float) * w);
	memset(s->w2, 0, sizeof(float) * w * NET_OUTPUTS);
	memcpy(s->b2, net->b2, sizeof(float) * NET_OUTPUTS);
	memset(err, 0, sizeof(err));
	memset(w2_max, 0, sizeof(w2_max));

	for (j = 0; j < h; j++)
	{
		double		wmax = 0.0,
					rho[2] = {0.0, 0.0},
					qmax[2] = {0.0, 0.0};
		float		scale;

		for (i = 0; i < NET_INPUTS; i++)
			wmax = fmax(wmax, fabs(net->w1[(size_t) i * h + j]));
		scale = (float) (wmax / (255.0 * NET_SCREEN_QMAX));
		if (!(scale >= FLT_MIN))
			scale = 0.0f;		/* all zero (or tiny): q = 0, rho = W */
		for (i = 0; i < NET_INPUTS; i++)
		{
			double		x = net->w1[(size_t) i * h + j] / 255.0;
			double		q = scale > 0.0f ? rint(x / scale) : 0.0;
			double		hi;
			size_t		at = ((size_t) (i / 4) * w + j) * 4 + (i & 3);

			q = fmin(fmax(q, -NET_SCREEN_QMAX), NET_SCREEN_QMAX);
			hi = floor((q + 128.0) / 256.0);
			s->hi[at] = (int8_t) hi;
			s->lo[at] = (int8_t) (q - 256.0 * hi);
			rho[0] = fmax(rho[0], fabs(256.0 * scale * hi - x));
			rho[1] = fmax(rho[1], fabs((double) scale * q - x));
			qmax[0] = fmax(qmax[0], fabs(256.0 * hi));
			qmax[1] = fmax(qmax[1], fabs(q));
		}
		s->scale1[j] = 256.0f * scale;
		s->scale2[j] = scale;
		s->b1[j] = net->b1[j];
		for (k = 0; k < NET_OUTPUTS; k++)
		{
			double		a = fabs(net->w2[(size_t) j * NET_OUTPUTS + k]);

			s->w2[(size_t) k * w + j] = net->w2[(size_t) j * NET_OUTPUTS + k];
			for (st = 0; st < 2; st++)
			{
				err[st][0][k] += rho[st] * a;
				err[st][1][k] += scale * qmax[st] * a;
			}
			err_w[k] += wmax / 255.0 * a;
			err_b[k] += fabs(net->b1[j]) * a;
			w2_max[k] = fmax(w2_max[k], a);
		}
	}

	/* the bound of each stage as a function of P, gamma(2n + 1) and G (see above) */
	for (st = 0; st < 2; st++)
		for (k = 0; k < NET_OUTPUTS; k++)
		{
			double		f = 1.01 * (1.0 + gc);

			s->bound_coef[st][0][k] = (float) (f * (err[st][0][k] + gb * err[st][1][k]));
			s->bound_coef[st][1][k] = (float) (f * err_w[k]);
			s->bound_coef[st][2][k] = (float) (f * err_b[k]);
			s->bound_coef[st][3][k] = (float) (f * gb * err_b[k] + 1.01 * 2.0 * gc * fabs(net->b2[k]));
			s->bound_coef[st][4][k] = (float) (1.01 * 2.0 * gc * 1.001 * w2_max[k]);
		}
	return s;
}

/*
 * The fours of pixels of an image with a nonzero pixel: their numbers g (pixels 4g..4g+3) and
 * their four bytes.  Returns the count; sets *psum to the sum of the pixels and *nonzero to
 * the number of nonzero pixels.
 */
static int
screen_quads(const uint8_t *pixels, uint32_t *quad, uint32_t *qval, int64_t *psum,
			 int *nonzero)
{
	const __m512i lanes = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
	__m512i		sum = _mm512_setzero_si512();
	int			g,
				count = 0,
				nz_pixels = 0;

	/* 16 fours (64 pixels) at a time; the last 4 with a masked load */
	for (g = 0; g < SCREEN_QUADS; g += 16)
	{
		__mmask64	bytes = g + 16 <= SCREEN_QUADS ? ~(__mmask64) 0 :
			(__mmask64) ((1ull << (4 * (SCREEN_QUADS - g))) - 1);
		__m512i		v = _mm512_maskz_loadu_epi8(bytes, pixels + 4 * g);
		__mmask16	nz = _mm512_test_epi32_mask(v, v);
		__mmask16	first;

		if (nz == 0)
			continue;
		sum = _mm512_add_epi64(sum, _mm512_sad_epu8(v, _mm512_setzero_si512()));
		nz_pixels += __builtin_popcountll(_mm512_test_epi8_mask(v, v));
		first = (__mmask16) ((1u << __builtin_popcount(nz)) - 1);
		_mm512_mask_storeu_epi32(qval + count, first, _mm512_maskz_compress_epi32(nz, v));
		_mm512_mask_storeu_epi32(quad + count, first,
								 _mm512_maskz_compress_epi32(nz, _mm512_add_epi32(lanes, _mm512_set1_epi32(g))));
		count += __builtin_popcount(nz);
	}
	*psum = _mm512_reduce_add_epi64(sum);
	*nonzero = nz_pixels;
	return count;
}

/*
 * sum[0..nvec * 16) = sum over the fours of their pixels times the weight bytes of the units
 * (units j0.. of a [SCREEN_QUADS][width][4] array, rows stride bytes apart).
 */
static inline __attribute__((always_inline)) void
screen_block(int32_t *sum, const int8_t *q, size_t stride, int nvec,
			 const uint32_t *quad, const uint32_t *qval, int count)
{
	__m512i		a[SCREEN_BLOCK];
	int			k,
				v;

#pragma GCC unroll 8
	for (v = 0; v < nvec; v++)
		a[v] = _mm512_setzero_si512();
	for (k = 0; k < count; k++)
	{
		const __m512i *row = (const __m512i *) (q + quad[k] * stride);
		__m512i		p = _mm512_set1_epi32((int) qval[k]);

#pragma GCC unroll 8
		for (v = 0; v < nvec; v++)
			a[v] = _mm512_dpbusd_epi32(a[v], p, _mm512_load_si512(row + v));
	}
#pragma GCC unroll 8
	for (v = 0; v < nvec; v++)
		_mm512_storeu_si512(sum + 16 * v, a[v]);
}

/* sum[0..w) = the integer first layer of one byte array (hi or lo) */
static void
screen_layer(int32_t *sum, const int8_t *q, int w, const uint32_t *quad, const uint32_t *qval,
			 int count)
{
	int			j;

	for (j = 0; j + SCREEN_BLOCK * 16 <= w; j += SCREEN_BLOCK * 16)
		screen_block(sum + j, q + 4 * j, 4 * (size_t) w, SCREEN_BLOCK, quad, qval, count);
	for (; j < w; j += 16)
		screen_block(sum + j, q + 4 * j, 4 * (size_t) w, 1, quad, qval, count);
}

/*
 * One stage's decision from its first layer sums (as floats): the class, or -1 when the bound
 * cannot rule out another.
 */
static int
screen_decide(const NetScreen *s, int stage, const float *sumf, const float *scale,
			  int64_t psum, int nonzero)
{
	const screen_f16 *c = (const screen_f16 *) s->bound_coef[stage];
	int			w = s->width,
				j,
				k,
				t;
	screen_f16	acc[NET_OUTPUTS],
				g16 = {0},
				bound;
	float		z[NET_OUTPUTS],
				g,
				P = (float) psum,
				ga = (float) gamma_n(2 * nonzero + 1);

	/* hidden = relu(sum * scale + b1), 16 units at a time, into G and the second layer */
#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		acc[k] = g16;
	for (j = 0; j < w; j += 16)
	{
		screen_f16	a;
		screen_i16	bits;

		memcpy(&a, sumf + j, sizeof(a));
		a = a * *(const screen_f16 *) (scale + j) + *(const screen_f16 *) (s->b1 + j);
		bits = (screen_i16) a & (screen_i16) (a > 0.0f);
		memcpy(&a, &bits, sizeof(a));
		g16 += a;
#pragma GCC unroll 10
		for (k = 0; k < NET_OUTPUTS; k++)
			acc[k] += a * *(const screen_f16 *) (s->w2 + (size_t) k * w + j);
	}
	g = _mm512_reduce_add_ps((__m512) g16);
#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		z[k] = s->b2[k] + _mm512_reduce_add_ps((__m512) acc[k]);

	/* the bounds, and the decision */
	bound = c[0] * P + c[1] * (ga * P) + c[2] * ga + c[3] + c[4] * g;
	t = argmax10(z);
	for (k = 0; k < NET_OUTPUTS; k++)
		if (k != t && !(z[t] - z[k] > bound[t] + bound[k]))
			return -1;
	return t;
}

int
net_screen_classify(const MnistNet *net, const uint8_t *pixels, float *scratch)
{
	const NetScreen *s = net->screen;
	int			w,
				count,
				nonzero,
				j,
				t;
	int32_t    *sum1,
			   *sum2;
	float	   *sumf;
	uint32_t   *quad,
			   *qval;
	int64_t		psum;

	if (s == NULL)
		return -1;
	w = s->width;
	sum1 = (int32_t *) scratch;
	sum2 = (int32_t *) (scratch + w);
	sumf = scratch + 2 * w;
	quad = (uint32_t *) (scratch + 3 * w);
	qval = quad + SCREEN_QUADS;
	count = screen_quads(pixels, quad, qval, &psum, &nonzero);

	/* stage 1: the high bytes */
	screen_layer(sum1, s->hi, w, quad, qval, count);
	for (j = 0; j < w; j += 16)
	{
		screen_i16	s1;
		screen_f16	f;

		memcpy(&s1, sum1 + j, sizeof(s1));
		f = __builtin_convertvector(s1, screen_f16);
		memcpy(sumf + j, &f, sizeof(f));
	}
	t = screen_decide(s, 0, sumf, s->scale1, psum, nonzero);
	if (t >= 0)
		return t;

	/* stage 2: and the low bytes, q = 256 hi + lo (summed exactly in int64) */
	screen_layer(sum2, s->lo, w, quad, qval, count);
	for (j = 0; j < w; j += 16)
	{
		screen_i16	s1,
					s2;
		screen_f16	f;

		memcpy(&s1, sum1 + j, sizeof(s1));
		memcpy(&s2, sum2 + j, sizeof(s2));
		f = __builtin_convertvector(__builtin_convertvector(s1, screen_l16) * 256 +
									__builtin_convertvector(s2, screen_l16), screen_f16);
		memcpy(sumf + j, &f, sizeof(f));
	}
	return screen_decide(s, 1, sumf, s->scale2, psum, nonzero);
}

#else							/* no screen in this build */

size_t
net_screen_size(int n_hidden)
{
	return 0;
}

const NetScreen *
net_screen_build(const MnistNet *net, void *mem)
{
	return NULL;
}

int
net_screen_classify(const MnistNet *net, const uint8_t *pixels, float *scratch)
{
	return -1;
}

#endif

size_t
net_predict_scratch(int n_hidden)
{
	/* net_predict: hidden, values, indexes; the screen: 3 sums of units, fours, their values */
	return 3 * SCREEN_WIDTH(n_hidden) + 2 * NET_INPUTS;
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
	return argmax10(z);
}

/*
 * screen.c
 *		The prediction screen: mnist_net_predict's argmax from the first layer in integers, with a
 *		rigorous bound, for most images in a fraction of the float network's time.  Plain C
 *		with intrinsics, no PostgreSQL calls, no allocation.  Three kinds, one per x86-64 CPU
 *		path (screen_kind): AVX-512 VNNI (the avx512 path on a CPU with VNNI), AVX-VNNI (the
 *		avxvnni path) and AVX2 alone (the avx2 path, and avx512 without VNNI).  The functions
 *		of each kind are compiled for its instructions whatever the build targets, and run only
 *		while the path in use is theirs.  The screen knows the network (net.h); the network
 *		does not know the screen.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "net.h"
#include "screen.h"

/* The screen needs byte or word dot products (AVX2 at least): on x86-64 only. */
#ifdef __x86_64__
#define NET_SCREEN 1
#define SCREEN_TARGET __attribute__((target("avx512f,avx512cd,avx512bw,avx512dq,avx512vl,avx512vnni,fma")))
#define SCREEN_VNNI256_TARGET __attribute__((target("avx2,fma,avxvnni")))
#define SCREEN_AVX2_TARGET __attribute__((target("avx2,fma")))
#include <immintrin.h>
#endif

/*
 * The screen.  mnist_net_predict's first layer sums, per hidden unit j, b1[j] and the w1 rows of the
 * nonzero pixels scaled by p / 255, in float.  The screen sums the same in integers:
 * w1[i][j] / 255 ~ scale[j] * q[i][j] (a scale per unit), q = 256 hi + lo with |q| <= 32000
 * (NET_SCREEN_QMAX), so hi (|hi| <= 125) and lo (-128..127) are signed bytes.  Pixels go in
 * fours: one vpdpbusd multiplies four pixel bytes (p[4g] .. p[4g+3]) by four weight bytes of
 * each of 16 units and adds the products, exactly, to int32 lanes; fours of zero pixels are
 * skipped.
 *  - Stage 1 sums only hi (a quarter of the bytes of float weights): S1 = sum p hi.
 *  - Stage 2, when stage 1 cannot tell, adds lo: S2 = 256 S1 + sum p lo = sum p q.
 * Then hidden = relu(S * scale' + b1) and the logits are float.  On digits stage 1 decides
 * about 80% of images and stage 2 all but 0.1-0.3%; the rest take mnist_net_predict's float path.
 * AVX-VNNI (vpdpbusd on 8 units) does the same with the same bytes.
 *
 * AVX2 alone has no byte dot product that adds into int32: vpmaddubsw adds two u8 x s8
 * products into int16 with saturation (2 * 255 * 128 > 32767, so it would need |weights| <= 64).
 * The AVX2 screen uses vpmaddwd instead, on pixels widened to 16 bits: one stage, with
 * q[i][j] itself as an int16 (|q| <= NET_SCREEN_QMAX16), pixels in pairs (p[2g], p[2g+1]), and
 * one vpmaddwd multiplying the pair by the two weights of each of 8 units and adding the two
 * products into int32 lanes.  Why nothing overflows: a product is at most 255 * 10000 in
 * magnitude, a pair's sum 5,100,000, exact in int32 (vpmaddwd wraps only for -32768 * -32768
 * twice, and 0 <= p <= 255); the sum over the 392 pairs is at most 784 * 255 * 10000 =
 * 1,999,200,000 < 2^31 - 1 in magnitude, so the int32 lanes hold S = sum p q exactly
 * (net_check's "largest sum" test: every weight at the largest q, every pixel 255).  Its
 * decision is stage 2's with its own scale and rho.
 *
 * Why a decision is mnist_net_predict's answer.  With u = 2^-24, gamma(m) = m u / (1 - m u),
 * P = sum p[i] and n the nonzero pixels, against the real-valued b1[j] + sum p[i] w1[i][j] / 255:
 *  - a stage's hidden value is off by at most P rho[j] (rho[j] = max over i of
 *    |scale' q'[i][j] - w1[i][j] / 255| for its q' (256 hi or q) and scale' (256 scale or
 *    scale), measured when the screen is built), plus gamma(3) (P Q[j] + |b1[j]|) for its
 *    three roundings (Q[j] = scale' max |q'[i][j]|);
 *  - mnist_net_predict's float sum is off by at most gamma(2n + 1) (P W[j] + |b1[j]|)
 *    (W[j] = max |w1[i][j]| / 255; a rounding per product, per addition and per p / 255);
 *  - relu does not widen a difference, so their sum e[j] bounds the difference of the two
 *    hidden values; through the second layer that is sum e[j] |w2[j][k]|, linear in P, with
 *    coefficients summed once when the screen is built;
 *  - each second layer rounds by at most gamma(2 width + 2) (|b2[k]| + sum hidden |w2[j][k]|),
 *    where mnist_net_predict's hidden values are at most the screen's plus e[j], and sum hidden
 *    |w2[j][k]| <= G max |w2[.][k]| (G: the sum of the screen's hidden values).
 * If the screen's best logit t beats every other k by more than bound[t] + bound[k] (bounds
 * taken 1% wider, for the float arithmetic that computes them and the margins), mnist_net_predict's
 * logit t is strictly the largest, and the class is t.  Otherwise the stage cannot tell.
 */
#define SCREEN_QUADS (NET_INPUTS / 4)
#define SCREEN_PAIRS (NET_INPUTS / 2)
#define SCREEN_WIDTH(h) (((size_t) (h) + 15) & ~(size_t) 15)	/* units rounded up to 16 */
#define SCREEN_BLOCK 8			/* vectors of 16 units summed in registers at a time */
#define SCREEN_BUILD_UNITS 64	/* units built at a time */
#define SCREEN_MAX(a, b) ((a) > (b) ? (a) : (b))	/* of finite values: fmax is a libm call */

/* The instructions a screen's first layer is computed with. */
typedef enum ScreenKind
{
	SCREEN_NONE,
	SCREEN_VNNI512,				/* AVX-512 VNNI, 16 units a vector: hi and lo */
	SCREEN_VNNI256,				/* AVX-VNNI, 8 units: hi and lo */
	SCREEN_AVX2					/* AVX2 vpmaddwd, 8 units: q16 */
} ScreenKind;

struct NetScreen
{
	ScreenKind	kind;			/* the kind it was built for */
	int			width;			/* SCREEN_WIDTH(n_hidden) */
	int8_t	   *hi;				/* VNNI: [SCREEN_QUADS][width][4]: hi[4g..4g+3][j] */
	int8_t	   *lo;				/* VNNI: the same for lo */
	int16_t    *q16;			/* AVX2: [SCREEN_PAIRS][width][2]: q[2g..2g+1][j] */
	float	   *scale1;			/* [width]: 256 scale[j], stage 1's */
	float	   *scale2;			/* [width]: scale[j], stage 2's */
	float	   *b1;				/* [width] */
	float	   *w2;				/* [NET_OUTPUTS][width]: w2[j][k] at [k][j] */
	float		b2[NET_OUTPUTS];
	/* per stage: bound[k] = c[0] P + c[1] gamma(2n + 1) P + c[2] gamma(2n + 1) + c[3] + c[4] G */
	float		bound_coef[2][5][16] __attribute__((aligned(64)));	/* read as 16-float vectors */
};

#ifdef NET_SCREEN

/* The kind of screen of the path in use. */
static ScreenKind
screen_kind(void)
{
	switch (mnist_net_cpu_path())
	{
		case NET_CPU_AVX512:
			return __builtin_cpu_supports("avx512vnni") ? SCREEN_VNNI512 : SCREEN_AVX2;
		case NET_CPU_AVXVNNI:
			return SCREEN_VNNI256;
		case NET_CPU_AVX2:
			return SCREEN_AVX2;
		default:
			return SCREEN_NONE;
	}
}

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
mnist_screen_size(int n_hidden)
{
	size_t		w = SCREEN_WIDTH(n_hidden);

	/*
	 * Every kind takes the same bytes (hi and lo, or q16): a screen is built for the path in
	 * use, again when it changes (then into the same memory); none on CPUs without AVX2.
	 */
	if (!mnist_net_cpu_supports(NET_CPU_AVX2))
		return 0;
	return NET_ALIGN64(sizeof(NetScreen)) + 2 * NET_ALIGN64((size_t) NET_INPUTS * w) +
		3 * NET_ALIGN64(sizeof(float) * w) + NET_ALIGN64(sizeof(float) * w * NET_OUTPUTS);
}

const NetScreen *
mnist_screen_build(const MnistNet *net, void *mem)
{
	char	   *p = mem;
	int			h = net->n_hidden;
	size_t		w = SCREEN_WIDTH(h);
	ScreenKind	kind = screen_kind();
	double		qlimit = kind == SCREEN_AVX2 ? NET_SCREEN_QMAX16 : NET_SCREEN_QMAX;
	NetScreen  *s;
	double		err[2][2][NET_OUTPUTS] = {0},	/* per stage: sum rho[j] |w2[j][k]|, sum Q[j] |..| */
				err_w[NET_OUTPUTS] = {0},	/* sum W[j] |w2[j][k]| */
				err_b[NET_OUTPUTS] = {0},	/* sum |b1[j]| |w2[j][k]| */
				w2_max[NET_OUTPUTS] = {0},	/* max |w2[j][k]| */
				gb = gamma_n(3),
				gc = gamma_n(2 * (int) w + 2);
	int			i,
				j,
				j0,
				b,
				k,
				st;

	if (kind == SCREEN_NONE)
		return NULL;
	s = net_carve(&p, sizeof(NetScreen));
	memset(s, 0, sizeof(NetScreen));
	s->kind = kind;
	s->width = (int) w;
	s->hi = net_carve(&p, (size_t) NET_INPUTS * w);
	s->lo = net_carve(&p, (size_t) NET_INPUTS * w);
	s->q16 = (int16_t *) s->hi; /* 2 NET_INPUTS w bytes: the same as hi and lo */
	s->scale1 = net_carve(&p, sizeof(float) * w);
	s->scale2 = net_carve(&p, sizeof(float) * w);
	s->b1 = net_carve(&p, sizeof(float) * w);
	s->w2 = net_carve(&p, sizeof(float) * w * NET_OUTPUTS);
	memset(s->hi, 0, (size_t) NET_INPUTS * w);
	memset(s->lo, 0, (size_t) NET_INPUTS * w);
	memset(s->scale1, 0, sizeof(float) * w);
	memset(s->scale2, 0, sizeof(float) * w);
	memset(s->b1, 0, sizeof(float) * w);
	memset(s->w2, 0, sizeof(float) * w * NET_OUTPUTS);
	memcpy(s->b2, net->b2, sizeof(float) * NET_OUTPUTS);

	/*
	 * Units in blocks of SCREEN_BUILD_UNITS, pixel by pixel: w1's rows are read in order (a
	 * unit at a time, the whole of w1 would be read with a stride of a row per weight).  The
	 * values are those of a unit-by-unit loop; maxima of finite values need no fmax.
	 */
	for (j0 = 0; j0 < h; j0 += SCREEN_BUILD_UNITS)
	{
		int			nb = h - j0 < SCREEN_BUILD_UNITS ? h - j0 : SCREEN_BUILD_UNITS;
		double		wmax[SCREEN_BUILD_UNITS],
					rho[2][SCREEN_BUILD_UNITS],
					qmax[2][SCREEN_BUILD_UNITS];
		float		scale[SCREEN_BUILD_UNITS];

		for (b = 0; b < nb; b++)
			wmax[b] = rho[0][b] = rho[1][b] = qmax[0][b] = qmax[1][b] = 0.0;
		for (i = 0; i < NET_INPUTS; i++)
		{
			const float *row = net->w1 + (size_t) i * h + j0;

			for (b = 0; b < nb; b++)
				wmax[b] = SCREEN_MAX(wmax[b], fabs(row[b]));
		}
		for (b = 0; b < nb; b++)
		{
			scale[b] = (float) (wmax[b] / (255.0 * qlimit));
			if (!(scale[b] >= FLT_MIN))
				scale[b] = 0.0f;	/* all zero (or tiny): q = 0, rho = W */
		}
		for (i = 0; i < NET_INPUTS; i++)
		{
			const float *row = net->w1 + (size_t) i * h + j0;
			int8_t	   *hi_row = s->hi + ((size_t) (i / 4) * w + j0) * 4 + (i & 3);
			int8_t	   *lo_row = s->lo + ((size_t) (i / 4) * w + j0) * 4 + (i & 3);
			int16_t    *q16_row = s->q16 + ((size_t) (i / 2) * w + j0) * 2 + (i & 1);

			for (b = 0; b < nb; b++)
			{
				double		x = row[b] / 255.0;
				double		q = scale[b] > 0.0f ? rint(x / scale[b]) : 0.0;
				double		hi;

				q = q < -qlimit ? -qlimit : q > qlimit ? qlimit : q;
				hi = floor((q + 128.0) / 256.0);
				if (kind == SCREEN_AVX2)
					q16_row[2 * b] = (int16_t) q;
				else
				{
					hi_row[4 * b] = (int8_t) hi;
					lo_row[4 * b] = (int8_t) (q - 256.0 * hi);
				}
				rho[0][b] = SCREEN_MAX(rho[0][b], fabs(256.0 * scale[b] * hi - x));
				rho[1][b] = SCREEN_MAX(rho[1][b], fabs((double) scale[b] * q - x));
				qmax[0][b] = SCREEN_MAX(qmax[0][b], fabs(256.0 * hi));
				qmax[1][b] = SCREEN_MAX(qmax[1][b], fabs(q));
			}
		}
		for (b = 0; b < nb; b++)
		{
			j = j0 + b;
			s->scale1[j] = 256.0f * scale[b];
			s->scale2[j] = scale[b];
			s->b1[j] = net->b1[j];
			for (k = 0; k < NET_OUTPUTS; k++)
			{
				double		a = fabs(net->w2[(size_t) j * NET_OUTPUTS + k]);

				s->w2[(size_t) k * w + j] = net->w2[(size_t) j * NET_OUTPUTS + k];
				for (st = 0; st < 2; st++)
				{
					err[st][0][k] += rho[st][b] * a;
					err[st][1][k] += scale[b] * qmax[st][b] * a;
				}
				err_w[k] += wmax[b] / 255.0 * a;
				err_b[k] += fabs(net->b1[j]) * a;
				w2_max[k] = SCREEN_MAX(w2_max[k], a);
			}
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
static SCREEN_TARGET int
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
static inline SCREEN_TARGET __attribute__((always_inline)) void
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
static SCREEN_TARGET void
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
 * The class of the screen's logits z: their argmax t when it beats every other k by more
 * than bound[t] + bound[k] (the logits' error bounds), else -1.
 */
static inline int
screen_pick(const float *z, const float *bound)
{
	int			t = mnist_net_argmax10(z);

	for (int k = 0; k < NET_OUTPUTS; k++)
		if (k != t && !(z[t] - z[k] > bound[t] + bound[k]))
			return -1;
	return t;
}

/*
 * One stage's decision from its first layer sums: stage 1's S1 (sum2 NULL), or stage 2's
 * 256 S1 + sum2 (exact in int64).  Returns the class, or -1 when the bound cannot rule out
 * another.
 */
static SCREEN_TARGET int
screen_decide(const NetScreen *s, const int32_t *sum1, const int32_t *sum2, int64_t psum,
			  int nonzero)
{
	int			stage = sum2 ? 1 : 0;
	const screen_f16 *c = (const screen_f16 *) s->bound_coef[stage];
	const float *scale = stage ? s->scale2 : s->scale1;
	int			w = s->width,
				j,
				k;
	screen_f16	acc[NET_OUTPUTS],
				g16 = {0},
				bound;
	float		z[NET_OUTPUTS],
				b[16],
				g,
				P = (float) psum,
				ga = (float) gamma_n(2 * nonzero + 1);

	/* hidden = relu(sum * scale + b1), 16 units at a time, into G and the second layer */
#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		acc[k] = (screen_f16) {0};
	for (j = 0; j < w; j += 16)
	{
		screen_i16	s1,
					bits;
		screen_f16	a;

		memcpy(&s1, sum1 + j, sizeof(s1));
		if (sum2)
		{
			screen_i16	s2;

			memcpy(&s2, sum2 + j, sizeof(s2));
			a = __builtin_convertvector(__builtin_convertvector(s1, screen_l16) * 256 +
										__builtin_convertvector(s2, screen_l16), screen_f16);
		}
		else
			a = __builtin_convertvector(s1, screen_f16);
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
	memcpy(b, &bound, sizeof(b));
	return screen_pick(z, b);
}

static SCREEN_TARGET int
screen_classify(const NetScreen *s, const uint8_t *pixels, float *scratch)
{
	int			w = s->width,
				count,
				nonzero,
				t;
	int32_t    *sum1,
			   *sum2;
	uint32_t   *quad,
			   *qval;
	int64_t		psum;

	sum1 = (int32_t *) scratch;
	sum2 = (int32_t *) (scratch + w);
	quad = (uint32_t *) (scratch + 2 * w);
	qval = quad + SCREEN_QUADS;
	count = screen_quads(pixels, quad, qval, &psum, &nonzero);

	/* stage 1: the high bytes */
	screen_layer(sum1, s->hi, w, quad, qval, count);
	t = screen_decide(s, sum1, NULL, psum, nonzero);
	if (t >= 0)
		return t;

	/* stage 2: and the low bytes, q = 256 hi + lo */
	screen_layer(sum2, s->lo, w, quad, qval, count);
	return screen_decide(s, sum1, sum2, psum, nonzero);
}

/*
 * The 256-bit kinds' nonzero pixels: AVX2 alone.  Of an image, the groups of size bytes
 * (4: fours for AVX-VNNI, 2: pairs for vpmaddwd) with a nonzero pixel: their numbers and
 * their bytes, pairs widened to two 16-bit halves.  Returns the count; sets *psum to the
 * sum of the pixels and *nonzero to the number of nonzero pixels.
 */
static inline SCREEN_AVX2_TARGET __attribute__((always_inline)) int
screen_groups256(const uint8_t *pixels, int size, uint32_t *group, uint32_t *gval,
				 int64_t *psum, int *nonzero)
{
	const __m256i zero = _mm256_setzero_si256();
	__m256i		sum = zero;
	int			i,
				count = 0,
				nz_pixels = 0;

	/* 32 pixels at a time; the last 16 with a 16-byte load */
	for (i = 0; i < NET_INPUTS; i += 32)
	{
		__m256i		v = i + 32 <= NET_INPUTS ?
			_mm256_loadu_si256((const __m256i *) (pixels + i)) :
			_mm256_zextsi128_si256(_mm_loadu_si128((const __m128i *) (pixels + i)));
		uint32_t	zero_bytes = (uint32_t) _mm256_movemask_epi8(_mm256_cmpeq_epi8(v, zero));
		uint32_t	nz;

		if (zero_bytes == 0xffffffffu)
			continue;
		sum = _mm256_add_epi64(sum, _mm256_sad_epu8(v, zero));
		nz_pixels += 32 - __builtin_popcount(zero_bytes);
		/* a bit per group: its first byte's bit, set when a byte of the group is nonzero */
		if (size == 4)
			nz = (uint32_t) ~_mm256_movemask_epi8(_mm256_cmpeq_epi32(v, zero)) & 0x11111111u;
		else
			nz = (uint32_t) ~_mm256_movemask_epi8(_mm256_cmpeq_epi16(v, zero)) & 0x55555555u;
		while (nz)
		{
			int			b = __builtin_ctz(nz);
			const uint8_t *px = pixels + i + b;

			nz &= nz - 1;
			group[count] = (uint32_t) (i + b) / (uint32_t) size;
			if (size == 4)
				memcpy(&gval[count], px, 4);
			else
				gval[count] = (uint32_t) px[0] | (uint32_t) px[1] << 16;
			count++;
		}
	}
	*psum = _mm256_extract_epi64(sum, 0) + _mm256_extract_epi64(sum, 1) +
		_mm256_extract_epi64(sum, 2) + _mm256_extract_epi64(sum, 3);
	*nonzero = nz_pixels;
	return count;
}

/*
 * sum[0..nvec * 8) = the groups' dot products with the weights of 8 units a vector (units
 * j0.. of an array whose rows are stride bytes apart, one row a group): AVX-VNNI's vpdpbusd
 * (fours of bytes) or AVX2's vpmaddwd (pairs of int16), exact in int32 (see above).
 */
#define SCREEN_BLOCK256(name, target, op) \
static inline target __attribute__((always_inline)) void \
name(int32_t *sum, const char *q, size_t stride, int nvec, \
	 const uint32_t *group, const uint32_t *gval, int count) \
{ \
	__m256i		a[SCREEN_BLOCK]; \
	int			k, \
				v; \
	\
	_Pragma("GCC unroll 8") \
	for (v = 0; v < nvec; v++) \
		a[v] = _mm256_setzero_si256(); \
	for (k = 0; k < count; k++) \
	{ \
		const __m256i *row = (const __m256i *) (q + group[k] * stride); \
		__m256i		p = _mm256_set1_epi32((int) gval[k]); \
		\
		_Pragma("GCC unroll 8") \
		for (v = 0; v < nvec; v++) \
			a[v] = op; \
	} \
	_Pragma("GCC unroll 8") \
	for (v = 0; v < nvec; v++) \
		_mm256_storeu_si256((__m256i *) (sum + 8 * v), a[v]); \
}
SCREEN_BLOCK256(screen_block_vnni256, SCREEN_VNNI256_TARGET,
				_mm256_dpbusd_avx_epi32(a[v], p, _mm256_load_si256(row + v)))
SCREEN_BLOCK256(screen_block_avx2, SCREEN_AVX2_TARGET,
				_mm256_add_epi32(a[v], _mm256_madd_epi16(p, _mm256_load_si256(row + v))))

/*
 * sum[0..w) = the integer first layer of one weight array (rows of w units of gsize bytes:
 * 4 for VNNI's bytes, 4 for AVX2's pairs of int16) with block, a SCREEN_BLOCK256 function.
 */
#define SCREEN_LAYER256(sum, q, w, group, gval, count, block) \
	do { \
		int			j_; \
		\
		for (j_ = 0; j_ + SCREEN_BLOCK * 8 <= (w); j_ += SCREEN_BLOCK * 8) \
			block((sum) + j_, (const char *) (q) + 4 * (size_t) j_, 4 * (size_t) (w), \
				  SCREEN_BLOCK, group, gval, count); \
		for (; j_ < (w); j_ += 8) \
			block((sum) + j_, (const char *) (q) + 4 * (size_t) j_, 4 * (size_t) (w), \
				  1, group, gval, count); \
	} while (0)

/* The sum of the 8 floats of v. */
static inline SCREEN_AVX2_TARGET __attribute__((always_inline)) float
screen_hsum8(__m256 v)
{
	__m128		x = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	x = _mm_add_ps(x, _mm_movehl_ps(x, x));
	x = _mm_add_ss(x, _mm_movehdup_ps(x));
	return _mm_cvtss_f32(x);
}

/*
 * screen_decide for the 256-bit kinds, 8 units at a time: the sums of stage 1 or of the AVX2
 * screen (sum2 NULL) or stage 2's 256 S1 + sum2 (exact in double, rounded to float once, as
 * the int64 above), stage's scale and bound.
 */
static inline SCREEN_AVX2_TARGET __attribute__((always_inline)) int
screen_decide256(const NetScreen *s, int stage, const int32_t *sum1, const int32_t *sum2,
				 int64_t psum, int nonzero)
{
	const float *scale = stage ? s->scale2 : s->scale1;
	const float (*c)[16] = s->bound_coef[stage];
	const __m256 zero = _mm256_setzero_ps();
	int			w = s->width,
				j,
				k;
	__m256		acc[NET_OUTPUTS],
				g8 = zero;
	float		z[NET_OUTPUTS],
				bound[NET_OUTPUTS],
				g,
				P = (float) psum,
				ga = (float) gamma_n(2 * nonzero + 1);

#pragma GCC unroll 10
	for (k = 0; k < NET_OUTPUTS; k++)
		acc[k] = zero;
	for (j = 0; j < w; j += 8)
	{
		__m256i		s1 = _mm256_loadu_si256((const __m256i *) (sum1 + j));
		__m256		a;

		if (sum2)
		{
			__m256i		s2 = _mm256_loadu_si256((const __m256i *) (sum2 + j));
			__m256d		k256 = _mm256_set1_pd(256.0);
			__m256d		lo = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_castsi256_si128(s1)), k256,
											 _mm256_cvtepi32_pd(_mm256_castsi256_si128(s2)));
			__m256d		hi = _mm256_fmadd_pd(_mm256_cvtepi32_pd(_mm256_extracti128_si256(s1, 1)), k256,
											 _mm256_cvtepi32_pd(_mm256_extracti128_si256(s2, 1)));

			a = _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
		}
		else
			a = _mm256_cvtepi32_ps(s1);
		/* relu: max gives its second operand, 0, for NaN */
		a = _mm256_max_ps(_mm256_fmadd_ps(a, _mm256_load_ps(scale + j), _mm256_load_ps(s->b1 + j)),
						  zero);
		g8 = _mm256_add_ps(g8, a);
#pragma GCC unroll 10
		for (k = 0; k < NET_OUTPUTS; k++)
			acc[k] = _mm256_fmadd_ps(a, _mm256_load_ps(s->w2 + (size_t) k * w + j), acc[k]);
	}
	g = screen_hsum8(g8);
	for (k = 0; k < NET_OUTPUTS; k++)
	{
		z[k] = s->b2[k] + screen_hsum8(acc[k]);
		bound[k] = c[0][k] * P + c[1][k] * (ga * P) + c[2][k] * ga + c[3][k] + c[4][k] * g;
	}
	return screen_pick(z, bound);
}

/* AVX-VNNI: stage 1 and stage 2 as AVX-512 VNNI's, 8 units a vector */
static SCREEN_VNNI256_TARGET int
screen_classify_vnni256(const NetScreen *s, const uint8_t *pixels, float *scratch)
{
	int			w = s->width,
				count,
				nonzero,
				t;
	int32_t    *sum1 = (int32_t *) scratch,
			   *sum2 = (int32_t *) (scratch + w);
	uint32_t   *quad = (uint32_t *) (scratch + 2 * w),
			   *qval = quad + SCREEN_QUADS;
	int64_t		psum;

	count = screen_groups256(pixels, 4, quad, qval, &psum, &nonzero);
	SCREEN_LAYER256(sum1, s->hi, w, quad, qval, count, screen_block_vnni256);
	t = screen_decide256(s, 0, sum1, NULL, psum, nonzero);
	if (t >= 0)
		return t;
	SCREEN_LAYER256(sum2, s->lo, w, quad, qval, count, screen_block_vnni256);
	return screen_decide256(s, 1, sum1, sum2, psum, nonzero);
}

/* AVX2: one stage, S = sum p q by vpmaddwd, decided as stage 2 */
static SCREEN_AVX2_TARGET int
screen_classify_avx2(const NetScreen *s, const uint8_t *pixels, float *scratch)
{
	int			w = s->width,
				count,
				nonzero;
	int32_t    *sum = (int32_t *) scratch;
	uint32_t   *pair = (uint32_t *) (scratch + 2 * w),
			   *pval = pair + SCREEN_PAIRS;
	int64_t		psum;

	count = screen_groups256(pixels, 2, pair, pval, &psum, &nonzero);
	SCREEN_LAYER256(sum, s->q16, w, pair, pval, count, screen_block_avx2);
	return screen_decide256(s, 1, sum, NULL, psum, nonzero);
}

int
mnist_screen_classify(const NetScreen *screen, const uint8_t *pixels, float *scratch)
{
	if (screen == NULL || screen->kind != screen_kind())
		return -1;
	switch (screen->kind)
	{
		case SCREEN_VNNI512:
			return screen_classify(screen, pixels, scratch);
		case SCREEN_VNNI256:
			return screen_classify_vnni256(screen, pixels, scratch);
		case SCREEN_AVX2:
			return screen_classify_avx2(screen, pixels, scratch);
		default:
			return -1;
	}
}

bool
mnist_screen_stale(const NetScreen *screen)
{
	return screen->kind != screen_kind();
}

int
mnist_screen_qmax(int *stages)
{
	ScreenKind	kind = screen_kind();

	*stages = kind == SCREEN_NONE ? 0 : kind == SCREEN_AVX2 ? 1 : 2;
	return kind == SCREEN_NONE ? 0 : kind == SCREEN_AVX2 ? NET_SCREEN_QMAX16 : NET_SCREEN_QMAX;
}

size_t
mnist_screen_scratch(int n_hidden)
{
	/* two sums of units, the groups of pixels (fours or pairs) and their values */
	return 2 * SCREEN_WIDTH(n_hidden) + 2 * SCREEN_PAIRS;
}

#else							/* not x86-64: no screen */

size_t
mnist_screen_scratch(int n_hidden)
{
	(void) n_hidden;
	return 0;
}

size_t
mnist_screen_size(int n_hidden)
{
	(void) n_hidden;
	return 0;
}

const NetScreen *
mnist_screen_build(const MnistNet *net, void *mem)
{
	(void) net;
	(void) mem;
	return NULL;
}

int
mnist_screen_classify(const NetScreen *screen, const uint8_t *pixels, float *scratch)
{
	(void) screen;
	(void) pixels;
	(void) scratch;
	return -1;
}

bool
mnist_screen_stale(const NetScreen *screen)
{
	(void) screen;
	return false;
}

int
mnist_screen_qmax(int *stages)
{
	*stages = 0;
	return 0;
}

#endif

/*
 * net.c
 *		The network: 784 -> Dense(H, relu) -> Dense(10) logits, softmax cross-entropy, Adam
 *		as Keras.  Plain C, no PostgreSQL calls, no allocation: every buffer comes from the
 *		caller.  Deterministic: the same seed and data give a bit-identical model on the same
 *		CPU path.  The hot loops are in net_kernels.h, compiled once per CPU path; this file
 *		picks the path.
 */
#include <math.h>
#include <string.h>
#ifdef __x86_64__
#include <cpuid.h>
#endif

#include "net_path.h"

#define Min(a, b)	((a) < (b) ? (a) : (b))
#define Max(a, b)	((a) > (b) ? (a) : (b))

size_t
mnist_net_param_count(int n_hidden)
{
	return (size_t) NET_INPUTS * n_hidden + n_hidden +
		(size_t) n_hidden * NET_OUTPUTS + NET_OUTPUTS;
}

void
mnist_net_bind(MnistNet *net, int n_hidden, float *params, float *adam_m, float *adam_v)
{
	net->n_hidden = n_hidden;
	net->n_params = mnist_net_param_count(n_hidden);
	net->params = params;
	net->w1 = params;
	net->b1 = net->w1 + (size_t) NET_INPUTS * n_hidden;
	net->w2 = net->b1 + n_hidden;
	net->b2 = net->w2 + (size_t) n_hidden * NET_OUTPUTS;
	net->adam_m = adam_m;
	net->adam_v = adam_v;
	net->adam_step = 0;
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
mnist_net_rng_seed(NetRng *rng, uint64_t seed)
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
mnist_net_shuffle(NetRng *rng, uint32_t *idx, size_t n)
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
mnist_net_init_glorot(MnistNet *net, uint64_t seed)
{
	int			h = net->n_hidden;
	NetRng		rng;

	/* a stream of its own, so init and shuffles with the same seed are unrelated */
	mnist_net_rng_seed(&rng, seed ^ UINT64_C(0x676c6f726f74));
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

/* Images in a round of the first layer's work (a thread's pixel lists hold one round). */
static int
round_rows(int max_batch)
{
	return max_batch < NET_CHECK_ROWS ? max_batch : NET_CHECK_ROWS;
}

size_t
mnist_net_trainer_size(int n_hidden, int max_batch, int threads)
{
	size_t		b = (size_t) max_batch;
	size_t		h = (size_t) n_hidden;
	size_t		rr = (size_t) round_rows(max_batch);

	return 64 +					/* for aligning the caller's pointer */
		NET_ALIGN64(sizeof(NetTrainer)) +
		threads * (NET_ALIGN64(sizeof(uint32_t) * rr * (first_layer_blocks(n_hidden, NULL) + 1)) +
				   NET_ALIGN64(sizeof(uint32_t) * rr * NET_INPUTS) +
				   NET_ALIGN64(sizeof(float) * rr * NET_INPUTS)) +
		(threads > 1 ? 4 : 1) * NET_ALIGN64(sizeof(float) * NET_INPUTS * h) +
		2 * NET_ALIGN64(sizeof(float) * b * h) +
		2 * NET_ALIGN64(sizeof(float) * b * NET_OUTPUTS) +
		NET_ALIGN64(sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS)) +
		NET_ALIGN64(sizeof(uint32_t) * b) +
		NET_ALIGN64(sizeof(float) * b);
}

/* Copies columns c0..c1-1 of an H-column matrix of NET_INPUTS rows to or from a share. */
static void
copy_columns(float *full, float *part, int h, int c0, int c1, bool to_part)
{
	for (int i = 0; i < NET_INPUTS; i++)
	{
		float	   *f = full + (size_t) i * h + c0;
		float	   *q = part + (size_t) i * (c1 - c0);

		memcpy(to_part ? q : f, to_part ? f : q, sizeof(float) * (c1 - c0));
	}
}

/*
 * Lays the shares out by t->bounds: with one thread, net's own arrays; with more, each share's
 * columns copied from net into the trainer's arrays.  w1_grad is zero, which any layout keeps.
 */
static void
lay_out_shares(NetTrainer *t)
{
	MnistNet   *net = t->net;
	int			h = net->n_hidden;

	for (int w = 0; w < t->threads; w++)
	{
		NetShare   *sh = &t->share[w];
		size_t		at;

		sh->c0 = Min(t->bounds[w] * NET_GROUP, h);
		sh->c1 = Min(t->bounds[w + 1] * NET_GROUP, h);
		at = (size_t) NET_INPUTS * sh->c0;
		sh->grad = t->w1_grad + at;
		if (t->threads == 1)
		{
			sh->stride = h;
			sh->w1 = net->w1;
			sh->m = net->adam_m;
			sh->v = net->adam_v;
			continue;
		}
		sh->stride = sh->c1 - sh->c0;
		sh->w1 = t->w1 + at;
		sh->m = t->m + at;
		sh->v = t->v + at;
		copy_columns(net->w1, sh->w1, h, sh->c0, sh->c1, true);
		copy_columns(net->adam_m, sh->m, h, sh->c0, sh->c1, true);
		copy_columns(net->adam_v, sh->v, h, sh->c0, sh->c1, true);
	}
}

NetTrainer *
mnist_net_trainer_bind(void *mem, MnistNet *net, int max_batch, int threads)
{
	char	   *p = (char *) NET_ALIGN64((uintptr_t) mem);
	NetTrainer *t;
	size_t		b = (size_t) max_batch;
	int			h = net->n_hidden;
	size_t		rr = (size_t) round_rows(max_batch);
	size_t		matrix = sizeof(float) * NET_INPUTS * h;
	int			groups = (h + NET_GROUP - 1) / NET_GROUP;

	t = net_carve(&p, sizeof(NetTrainer));
	t->net = net;
	t->max_batch = max_batch;
	t->threads = threads;
	t->n_blocks = first_layer_blocks(h, &t->block);
	t->batches = 0;
	for (int w = 0; w < threads; w++)
	{
		NetWorker  *wk = &t->worker[w];

		wk->round = 0;
		wk->block_start = net_carve(&p, sizeof(uint32_t) * rr * (t->n_blocks + 1));
		wk->idx = net_carve(&p, sizeof(uint32_t) * rr * NET_INPUTS);
		wk->val = net_carve(&p, sizeof(float) * rr * NET_INPUTS);
		wk->busy_ns = 0;
		wk->columns = 0;
	}
	t->w1_grad = net_carve(&p, matrix);
	memset(t->w1_grad, 0, matrix);
	t->w1 = t->m = t->v = NULL;
	if (threads > 1)
	{
		t->w1 = net_carve(&p, matrix);
		t->m = net_carve(&p, matrix);
		t->v = net_carve(&p, matrix);
	}
	for (int w = 0; w <= threads; w++)
		t->bounds[w] = (w * groups + threads - 1) / threads;
	lay_out_shares(t);
	t->hidden = net_carve(&p, sizeof(float) * b * h);
	t->dhidden = net_carve(&p, sizeof(float) * b * h);
	t->logits = net_carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->dlogits = net_carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->grad = net_carve(&p, sizeof(float) * (h + h * NET_OUTPUTS + NET_OUTPUTS));
	t->batch_rows = net_carve(&p, sizeof(uint32_t) * b);
	t->ones = net_carve(&p, sizeof(float) * b);
	for (size_t r = 0; r < b; r++)
	{
		t->batch_rows[r] = (uint32_t) r;
		t->ones[r] = 1.0f;
	}
	t->check = NULL;
	t->check_arg = NULL;
	t->pool = NULL;
	return t;
}

void
mnist_net_trainer_sync(NetTrainer *t)
{
	MnistNet   *net = t->net;

	if (t->threads == 1)
		return;
	for (int w = 0; w < t->threads; w++)
	{
		NetShare   *sh = &t->share[w];

		copy_columns(net->w1, sh->w1, net->n_hidden, sh->c0, sh->c1, false);
		copy_columns(net->adam_m, sh->m, net->n_hidden, sh->c0, sh->c1, false);
		copy_columns(net->adam_v, sh->v, net->n_hidden, sh->c0, sh->c1, false);
	}
}

void
mnist_net_trainer_balance(NetTrainer *t)
{
	int			threads = t->threads;
	int			groups = (t->net->n_hidden + NET_GROUP - 1) / NET_GROUP;
	double		speed[NET_MAX_THREADS],
				total = 0,
				before = 0,
				after = 0,
				sum = 0;
	int			bounds[NET_MAX_THREADS + 1];
	bool		measured = true;

	for (int w = 0; w < threads; w++)
	{
		NetWorker  *wk = &t->worker[w];

		measured &= wk->busy_ns > 0 && wk->columns > 0;
		speed[w] = measured ? (double) wk->columns / wk->busy_ns : 0;
		total += speed[w];
		wk->busy_ns = 0;
		wk->columns = 0;
	}
	if (threads == 1 || !measured)
		return;
	/* share w gets groups in proportion to its thread's speed, at least one */
	bounds[0] = 0;
	for (int w = 0; w < threads; w++)
	{
		sum += speed[w];
		bounds[w + 1] = w + 1 == threads ? groups : (int) (groups * sum / total + 0.5);
		bounds[w + 1] = Max(bounds[w + 1], Min(bounds[w] + 1, groups));
		if (groups >= threads)
			bounds[w + 1] = Min(bounds[w + 1], groups - (threads - 1 - w));
	}
	for (int w = 0; w < threads; w++)
	{
		before = Max(before, (t->bounds[w + 1] - t->bounds[w]) / speed[w]);
		after = Max(after, (bounds[w + 1] - bounds[w]) / speed[w]);
	}
	if (after > 0.95 * before)
		return;
	mnist_net_trainer_sync(t);
	memcpy(t->bounds, bounds, sizeof(bounds));
	lay_out_shares(t);
}

void
mnist_net_trainer_set_pool(NetTrainer *t, NetPool *pool)
{
	t->pool = pool;
}

void
mnist_net_trainer_set_check(NetTrainer *t, NetCheckFn check, void *arg)
{
	t->check = check;
	t->check_arg = arg;
}

int
mnist_net_argmax10(const float *z)
{
	int			best = 0;
	int			k;

	for (k = 1; k < NET_OUTPUTS; k++)
		if (z[k] > z[best])
			best = k;
	return best;
}

double
mnist_net_log_sum_exp10(const float *z, float *p)
{
	float		zmax = z[mnist_net_argmax10(z)];
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
mnist_net_cross_entropy(const float *logits, int label)
{
	return mnist_net_log_sum_exp10(logits, NULL) - logits[label];
}

size_t
mnist_net_predict_scratch(int n_hidden)
{
	/* hidden, values and indexes of nonzero pixels */
	return (size_t) n_hidden + 2 * NET_INPUTS;
}

/* The CPU paths: the path in use and its kernels (NULL until mnist_net_set_cpu_path). */
static NetCpuPath cpu_path = NET_CPU_AUTO;
static const NetKernels *kernels;

static const char *const cpu_path_names[] = {
	[NET_CPU_AUTO] = "auto",
	[NET_CPU_AVX512] = "avx512",
	[NET_CPU_AVX2] = "avx2",
	[NET_CPU_BASELINE] = "baseline",
	[NET_CPU_AVXVNNI] = "avxvnni",
};

const char *
mnist_net_cpu_path_name(NetCpuPath path)
{
	return cpu_path_names[path];
}

#ifdef __x86_64__
/*
 * AVX-VNNI (VEX-encoded 256-bit VNNI): cpuid leaf 7 subleaf 1, EAX bit 4, asked directly
 * (clang 14's __builtin_cpu_supports, which builds the JIT's bitcode, does not know it).  Its
 * registers are AVX2's, whose use the OS allows where __builtin_cpu_supports("avx2").
 */
static bool
cpu_has_avx_vnni(void)
{
	unsigned int eax,
				ebx,
				ecx,
				edx;

	return __get_cpuid_count(7, 1, &eax, &ebx, &ecx, &edx) && (eax & (1u << 4)) != 0;
}
#endif

bool
mnist_net_cpu_supports(NetCpuPath path)
{
#ifdef __x86_64__
	__builtin_cpu_init();
	switch (path)
	{
		case NET_CPU_AVX512:
			return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512cd") &&
				__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
				__builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("fma");
		case NET_CPU_AVX2:
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
		case NET_CPU_AVXVNNI:
			return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
				cpu_has_avx_vnni();
		default:
			return true;
	}
#else
	return path == NET_CPU_AUTO || path == NET_CPU_BASELINE;
#endif
}

void
mnist_net_set_cpu_path(NetCpuPath path)
{
	if (path == NET_CPU_AUTO)
		path = mnist_net_cpu_supports(NET_CPU_AVX512) ? NET_CPU_AVX512 :
			mnist_net_cpu_supports(NET_CPU_AVXVNNI) ? NET_CPU_AVXVNNI :
			mnist_net_cpu_supports(NET_CPU_AVX2) ? NET_CPU_AVX2 : NET_CPU_BASELINE;
	cpu_path = path;
	switch (path)
	{
#ifdef __x86_64__
		case NET_CPU_AVX512:
			kernels = &mnist_net_kernels_avx512;
			break;
		case NET_CPU_AVX2:
		case NET_CPU_AVXVNNI:
			kernels = &mnist_net_kernels_avx2;
			break;
#endif
		default:
			kernels = &mnist_net_kernels_baseline;
			break;
	}
}

/* The kernels in use, the best this CPU has unless mnist_net_set_cpu_path() chose. */
static inline const NetKernels *
current_kernels(void)
{
	if (kernels == NULL)
		mnist_net_set_cpu_path(NET_CPU_AUTO);
	return kernels;
}

NetCpuPath
mnist_net_cpu_path(void)
{
	current_kernels();
	return cpu_path;
}

void
mnist_net_train_batch(NetTrainer *t, const NetAdam *adam,
				const uint8_t *images, const uint8_t *labels,
				const uint32_t *idx, int n,
				double *loss_sum, int64_t *correct)
{
	current_kernels()->train_batch(t, adam, images, labels, idx, n, loss_sum, correct);
}

int
mnist_net_predict(const MnistNet *net, const uint8_t *pixels, float *scratch,
			float *probs, float *logits)
{
	return current_kernels()->predict(net, pixels, scratch, probs, logits);
}

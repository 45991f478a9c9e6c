/*
 * net.c
 *		The network: 784 -> Dense(H, relu) -> Dense(10) logits, softmax cross-entropy, Adam
 *		as Keras.  Plain C + CBLAS, no PostgreSQL calls, no allocation: every buffer comes
 *		from the caller.  Deterministic: the same seed and data give a bit-identical model.
 */
#include <math.h>
#include <string.h>

#include <cblas.h>

#include "net.h"

#define ALIGN64(x)	(((x) + (size_t) 63) & ~(size_t) 63)

/* Training workspace, carved out of the caller's buffer by net_trainer_bind. */
struct NetTrainer
{
	MnistNet   *net;
	int			max_batch;
	float	   *x;				/* max_batch x NET_INPUTS, pixels / 255 */
	float	   *hidden;			/* max_batch x H, after relu */
	float	   *logits;			/* max_batch x NET_OUTPUTS */
	float	   *dlogits;		/* max_batch x NET_OUTPUTS */
	float	   *dhidden;		/* max_batch x H */
	float	   *grad;			/* n_params, same layout as params */
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

size_t
net_trainer_size(int n_hidden, int max_batch)
{
	size_t		b = (size_t) max_batch;

	return ALIGN64(sizeof(NetTrainer)) +
		ALIGN64(sizeof(float) * b * NET_INPUTS) +
		2 * ALIGN64(sizeof(float) * b * n_hidden) +
		2 * ALIGN64(sizeof(float) * b * NET_OUTPUTS) +
		ALIGN64(sizeof(float) * net_param_count(n_hidden));
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
	int			h = net->n_hidden;

	t = carve(&p, sizeof(NetTrainer));
	t->net = net;
	t->max_batch = max_batch;
	t->x = carve(&p, sizeof(float) * b * NET_INPUTS);
	t->hidden = carve(&p, sizeof(float) * b * h);
	t->dhidden = carve(&p, sizeof(float) * b * h);
	t->logits = carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->dlogits = carve(&p, sizeof(float) * b * NET_OUTPUTS);
	t->grad = carve(&p, sizeof(float) * net->n_params);
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

/* Softmax of 10 logits into p; returns the log of the sum of exp(z - max). */
static double
softmax10(const float *z, float *p)
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
	for (k = 0; k < NET_OUTPUTS; k++)
		p[k] = (float) (e[k] / sum);
	return log(sum);
}

double
net_cross_entropy(const float *logits, int label)
{
	float		zmax = logits[argmax10(logits)];
	double		sum = 0.0;
	int			k;

	for (k = 0; k < NET_OUTPUTS; k++)
		sum += exp((double) logits[k] - zmax);
	return log(sum) - ((double) logits[label] - zmax);
}

/* Keras' Adam on n parameters with gradient g; t is the 1-based step. */
static void
adam_update(float *restrict p, float *restrict m, float *restrict v,
			const float *restrict g, size_t n, const NetAdam *adam, int64_t t)
{
	float		b1 = adam->beta1;
	float		b2 = adam->beta2;
	float		c1 = 1.0f - b1;
	float		c2 = 1.0f - b2;
	float		eps = adam->epsilon;
	float		alpha = (float) (adam->learning_rate *
								 sqrt(1.0 - pow(adam->beta2, (double) t)) /
								 (1.0 - pow(adam->beta1, (double) t)));
	size_t		i;

	for (i = 0; i < n; i++)
	{
		float		mi = b1 * m[i] + c1 * g[i];
		float		vi = b2 * v[i] + c2 * g[i] * g[i];

		m[i] = mi;
		v[i] = vi;
		p[i] -= alpha * mi / (sqrtf(vi) + eps);
	}
}

void
net_train_batch(NetTrainer *t, const NetAdam *adam,
				const uint8_t *images, const uint8_t *labels,
				const uint32_t *idx, int n,
				double *loss_sum, int64_t *correct)
{
	MnistNet   *net = t->net;
	int			h = net->n_hidden;
	float	   *g = t->grad;
	float	   *gw1 = g;
	float	   *gb1 = gw1 + (size_t) NET_INPUTS * h;
	float	   *gw2 = gb1 + h;
	float	   *gb2 = gw2 + (size_t) h * NET_OUTPUTS;
	float		inv_n = 1.0f / n;
	int			r,
				i,
				j,
				k;

	/* inputs: pixels / 255 */
	for (r = 0; r < n; r++)
	{
		const uint8_t *px = images + (size_t) idx[r] * NET_INPUTS;
		float	   *xr = t->x + (size_t) r * NET_INPUTS;

		for (i = 0; i < NET_INPUTS; i++)
			xr[i] = px[i] * (1.0f / 255.0f);
	}

	/* forward: hidden = relu(x w1 + b1), logits = hidden w2 + b2 */
	for (r = 0; r < n; r++)
		memcpy(t->hidden + (size_t) r * h, net->b1, sizeof(float) * h);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, h, NET_INPUTS,
				1.0f, t->x, NET_INPUTS, net->w1, h, 1.0f, t->hidden, h);
	for (i = 0; i < n * h; i++)
		if (t->hidden[i] < 0.0f)
			t->hidden[i] = 0.0f;
	for (r = 0; r < n; r++)
		memcpy(t->logits + r * NET_OUTPUTS, net->b2, sizeof(float) * NET_OUTPUTS);
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, NET_OUTPUTS, h,
				1.0f, t->hidden, h, net->w2, NET_OUTPUTS, 1.0f, t->logits, NET_OUTPUTS);

	/* loss, accuracy, dlogits = (softmax - onehot) / n */
	for (r = 0; r < n; r++)
	{
		const float *z = t->logits + r * NET_OUTPUTS;
		float	   *dz = t->dlogits + r * NET_OUTPUTS;
		int			label = labels[idx[r]];

		*loss_sum += net_cross_entropy(z, label);
		if (argmax10(z) == label)
			(*correct)++;
		softmax10(z, dz);
		dz[label] -= 1.0f;
		for (k = 0; k < NET_OUTPUTS; k++)
			dz[k] *= inv_n;
	}

	/* backward: second layer */
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
	for (i = 0; i < n * h; i++)
		if (t->hidden[i] <= 0.0f)
			t->dhidden[i] = 0.0f;

	/* first layer */
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, NET_INPUTS, h, n,
				1.0f, t->x, NET_INPUTS, t->dhidden, h, 0.0f, gw1, h);
	for (j = 0; j < h; j++)
	{
		float		s = 0.0f;

		for (r = 0; r < n; r++)
			s += t->dhidden[(size_t) r * h + j];
		gb1[j] = s;
	}

	net->adam_step++;
	adam_update(net->params, net->adam_m, net->adam_v, g, net->n_params, adam,
				net->adam_step);
}

size_t
net_predict_scratch(int n_hidden)
{
	return (size_t) n_hidden;
}

int
net_predict(const MnistNet *net, const uint8_t *pixels, float *scratch,
			float *probs, float *logits)
{
	int			h = net->n_hidden;
	float	   *hid = scratch;
	float		z[NET_OUTPUTS];
	int			i,
				j,
				k;

	/* hidden = b1 + sum of the w1 rows of the nonzero pixels, scaled */
	memcpy(hid, net->b1, sizeof(float) * h);
	for (i = 0; i < NET_INPUTS; i++)
	{
		if (pixels[i] != 0)
		{
			float		x = pixels[i] * (1.0f / 255.0f);
			const float *w = net->w1 + (size_t) i * h;

			for (j = 0; j < h; j++)
				hid[j] += x * w[j];
		}
	}
	memcpy(z, net->b2, sizeof(z));
	for (j = 0; j < h; j++)
	{
		float		a = hid[j] > 0.0f ? hid[j] : 0.0f;
		const float *w = net->w2 + (size_t) j * NET_OUTPUTS;

		for (k = 0; k < NET_OUTPUTS; k++)
			z[k] += a * w[k];
	}
	if (logits)
		memcpy(logits, z, sizeof(z));
	if (probs)
		softmax10(z, probs);
	return argmax10(z);
}

/*
 * weights.c
 *		The stored weights format: a network's parameters (and optionally its Adam state) as
 *		the bytes of mnist_models.weights.
 *
 * The weights format (version 1), all integers and floats little-endian:
 *
 *	offset	type		content
 *	0		char[4]		magic "MNML"
 *	4		uint32		format version, 1
 *	8		uint32		inputs, 784
 *	12		uint32		hidden units H, 1..4096
 *	16		uint32		outputs, 10
 *	20		uint32		flags: bit 0 = Adam state follows the parameters (other bits zero)
 *	24		int64		Adam step count (0 without Adam state)
 *	32		float32[P]	parameters in net.h order: w1[784*H] (w1[i*H+j]: pixel i -> unit j),
 *						b1[H], w2[H*10] (w2[j*10+k]: unit j -> logit k), b2[10];
 *						P = 784*H + H + 10*H + 10
 *	32+4P	float32[P]	Adam first moments m (only with flag bit 0)
 *	32+8P	float32[P]	Adam second moments v (only with flag bit 0)
 *
 * A weights value is validated whenever it is read: exact length, magic, version, sizes,
 * flags, every float read finite (v also non-negative), and the parameters small enough that
 * no image makes a logit overflow (logits_bounded).  Serving a model reads the header
 * and the parameters only (mnist_weights_read_params), a third of a value with Adam state; the
 * length it checks is then the whole value's, which the caller knows without reading it.
 */
#include "weights.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#define WEIGHTS_MAGIC		"MNML"
#define WEIGHTS_VERSION		1
#define WEIGHTS_HEADER		MNIST_WEIGHTS_HEADER
#define WEIGHTS_FLAG_ADAM	0x1

#define LITTLE_ENDIAN_HOST	(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__)

static inline void
put_u32(uint8_t *p, uint32_t v)
{
	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static inline uint32_t
get_u32(const uint8_t *p)
{
	return (uint32_t) p[0] | ((uint32_t) p[1] << 8) | ((uint32_t) p[2] << 16) |
		((uint32_t) p[3] << 24);
}

/* Copies n floats to little-endian bytes. */
static void
put_floats(uint8_t *dst, const float *src, size_t n)
{
	if (LITTLE_ENDIAN_HOST)
		memcpy(dst, src, n * sizeof(float));
	else
		for (size_t i = 0; i < n; i++)
		{
			uint32_t	u;

			memcpy(&u, &src[i], 4);
			put_u32(dst + 4 * i, u);
		}
}

/*
 * Checks n little-endian floats are finite (and >= 0 when nonneg), copying them to dst
 * unless it is NULL; dst may be the very floats of src (converted in place).
 */
static bool
get_floats(float *dst, const uint8_t *src, size_t n, bool nonneg)
{
	bool		host_order = LITTLE_ENDIAN_HOST;
	uint32_t	bad = 0;

	if (dst)
	{
		if (LITTLE_ENDIAN_HOST)
		{
			if ((const void *) dst != (const void *) src)
				memcpy(dst, src, n * sizeof(float));
		}
		else
			for (size_t i = 0; i < n; i++)
			{
				uint32_t	u = get_u32(src + 4 * i);

				memcpy(&dst[i], &u, 4);
			}
		src = (const uint8_t *) dst;
		host_order = true;
	}
	for (size_t i = 0; i < n; i++)
	{
		uint32_t	u;

		if (host_order)
			memcpy(&u, src + 4 * i, 4);
		else
			u = get_u32(src + 4 * i);
		/* exponent all ones: infinite or NaN; sign with a nonzero magnitude: below zero */
		bad |= ((u & 0x7f800000u) == 0x7f800000u) | (nonneg & (u >> 31) & ((u & 0x7fffffffu) != 0));
	}
	return bad == 0;
}

size_t
mnist_weights_size(int n_hidden, bool adam)
{
	return WEIGHTS_HEADER + mnist_net_param_count(n_hidden) * sizeof(float) * (adam ? 3 : 1);
}

size_t
mnist_weights_write(const MnistNet *net, uint8_t *out)
{
	size_t		p = net->n_params;
	bool		adam = net->adam_m != NULL && net->adam_v != NULL;
	uint64_t	step = adam ? (uint64_t) net->adam_step : 0;

	memcpy(out, WEIGHTS_MAGIC, 4);
	put_u32(out + 4, WEIGHTS_VERSION);
	put_u32(out + 8, NET_INPUTS);
	put_u32(out + 12, net->n_hidden);
	put_u32(out + 16, NET_OUTPUTS);
	put_u32(out + 20, adam ? WEIGHTS_FLAG_ADAM : 0);
	put_u32(out + 24, (uint32_t) step);
	put_u32(out + 28, (uint32_t) (step >> 32));
	put_floats(out + WEIGHTS_HEADER, net->params, p);
	if (adam)
	{
		put_floats(out + WEIGHTS_HEADER + p * 4, net->adam_m, p);
		put_floats(out + WEIGHTS_HEADER + p * 8, net->adam_v, p);
	}
	return mnist_weights_size(net->n_hidden, adam);
}

#define fail(...) \
	do { \
		snprintf(detail, MNIST_WEIGHTS_DETAIL_SIZE, __VA_ARGS__); \
		return false; \
	} while (0)

bool
mnist_weights_check(const uint8_t *d, size_t len, MnistWeightsInfo *info,
					char detail[MNIST_WEIGHTS_DETAIL_SIZE])
{
	uint32_t	version,
				inputs,
				hidden,
				outputs,
				flags;
	int64_t		step;
	bool		adam;

	if (len < WEIGHTS_HEADER)
		fail("The value has %zu bytes, less than the %d-byte header.", len, WEIGHTS_HEADER);
	if (memcmp(d, WEIGHTS_MAGIC, 4) != 0)
		fail("The value does not start with the magic \"%s\".", WEIGHTS_MAGIC);
	version = get_u32(d + 4);
	if (version != WEIGHTS_VERSION)
		fail("Format version %u is not supported (expected %d).", version, WEIGHTS_VERSION);
	inputs = get_u32(d + 8);
	hidden = get_u32(d + 12);
	outputs = get_u32(d + 16);
	flags = get_u32(d + 20);
	step = (int64_t) ((uint64_t) get_u32(d + 24) | ((uint64_t) get_u32(d + 28) << 32));
	if (inputs != NET_INPUTS || outputs != NET_OUTPUTS || hidden < 1 || hidden > MNIST_MAX_HIDDEN)
		fail("Layer sizes %u -> %u -> %u are not %d -> 1..%d -> %d.",
			 inputs, hidden, outputs, NET_INPUTS, MNIST_MAX_HIDDEN, NET_OUTPUTS);
	if ((flags & ~WEIGHTS_FLAG_ADAM) != 0)
		fail("Unknown flags 0x%x.", flags);
	adam = (flags & WEIGHTS_FLAG_ADAM) != 0;
	if (step < 0 || (!adam && step != 0))
		fail("Invalid Adam step count %lld.", (long long) step);
	if (len != mnist_weights_size(hidden, adam))
		fail("The value has %zu bytes; %u hidden units%s need %zu.", len, hidden,
			 adam ? " with Adam state" : "", mnist_weights_size(hidden, adam));

	info->n_hidden = hidden;
	info->n_params = mnist_net_param_count(hidden);
	info->adam = adam;
	info->adam_step = step;
	return true;
}

size_t
mnist_weights_params_end(const MnistWeightsInfo *info)
{
	return WEIGHTS_HEADER + info->n_params * sizeof(float);
}

/*
 * Whether every logit of every image is finite: pixels scaled to 0..1 make hidden unit j at
 * most |b1[j]| + sum_i |w1[i][j]| in magnitude, and logit k at most |b2[k]| + the sum over j of
 * |w2[j][k]| times that bound.  The bound (in double, which cannot overflow on finite floats)
 * is kept below half the largest float, room for the rounding of any float summation order.
 */
static bool
logits_bounded(const float *params, int hidden)
{
	const float *w1 = params,
			   *b1 = w1 + NET_INPUTS * hidden,
			   *w2 = b1 + hidden,
			   *b2 = w2 + hidden * NET_OUTPUTS;
	double		unit[MNIST_MAX_HIDDEN];
	double		logit[NET_OUTPUTS];

	for (int j = 0; j < hidden; j++)
		unit[j] = fabs(b1[j]);
	for (int i = 0; i < NET_INPUTS; i++)
		for (int j = 0; j < hidden; j++)
			unit[j] += fabs(w1[i * hidden + j]);
	for (int k = 0; k < NET_OUTPUTS; k++)
		logit[k] = fabs(b2[k]);
	for (int j = 0; j < hidden; j++)
		for (int k = 0; k < NET_OUTPUTS; k++)
			logit[k] += fabs(w2[j * NET_OUTPUTS + k]) * unit[j];
	for (int k = 0; k < NET_OUTPUTS; k++)
		if (!(logit[k] < FLT_MAX / 2))
			return false;
	return true;
}

bool
mnist_weights_read_params(const uint8_t *d, const MnistWeightsInfo *info, float *params,
						  char detail[MNIST_WEIGHTS_DETAIL_SIZE])
{
	if (!get_floats(params, d + WEIGHTS_HEADER, info->n_params, false))
		fail("A parameter is not a finite number.");
	if (!logits_bounded(params, info->n_hidden))
		fail("The parameters are so large that an image could make a logit overflow.");
	return true;
}

bool
mnist_weights_read(const uint8_t *d, const MnistWeightsInfo *info, float *params,
				   float *m, float *v, char detail[MNIST_WEIGHTS_DETAIL_SIZE])
{
	size_t		p = info->n_params;

	if (!mnist_weights_read_params(d, info, params, detail))
		return false;
	if (info->adam)
	{
		/* validate the Adam state even when it is not wanted */
		if (!get_floats(m, d + WEIGHTS_HEADER + p * 4, p, false) ||
			!get_floats(v, d + WEIGHTS_HEADER + p * 8, p, true))
			fail("An Adam moment is not a finite number.");
	}
	else if (m && v)
	{
		memset(m, 0, p * sizeof(float));
		memset(v, 0, p * sizeof(float));
	}
	return true;
}

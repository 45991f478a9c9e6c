/*
 * test/fuzz/weights.c
 *		libFuzzer target of the stored weights format (src/weights.c): a bytea any user with
 *		INSERT on mnist_models (or a restored dump) can fill, read by every predict and train.
 *
 * Properties checked on every input:
 *	- validation and decoding stay inside the value (AddressSanitizer) and never trust a size
 *	  field: a value is read only when its length is exactly what its header says;
 *	- an accepted value decodes to finite parameters (Adam v non-negative) and re-encodes to
 *	  the very same bytes; its parameters alone (what serving reads) are the same floats;
 *	- a failure always comes with a detail message;
 *	- encode then decode of a net built from the input (1 to 4 hidden units, floats taken from
 *	  the input and made finite) is the identity.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "weights.h"

/* Decodes a value the checker accepted and checks it re-encodes to the same bytes. */
static void
roundtrip(const uint8_t *data, size_t size, const MnistWeightsInfo *info)
{
	size_t		p = info->n_params;
	float	   *params = malloc(p * sizeof(float));
	float	   *m = malloc(p * sizeof(float));
	float	   *v = malloc(p * sizeof(float));
	char		detail[MNIST_WEIGHTS_DETAIL_SIZE] = "";
	MnistNet	net;
	uint8_t    *out;

	/* without Adam buffers: validates the moments without copying them */
	if (mnist_weights_read(data, info, params, NULL, NULL, detail) !=
		mnist_weights_read(data, info, params, m, v, detail))
		abort();
	if (mnist_weights_read(data, info, params, m, v, detail))
	{
		for (size_t i = 0; i < p; i++)
			if (!isfinite(params[i]) || !isfinite(m[i]) || !isfinite(v[i]) || v[i] < 0.0f)
				abort();
		if (!info->adam)
			for (size_t i = 0; i < p; i++)
				if (m[i] != 0.0f || v[i] != 0.0f)
					abort();
		mnist_net_bind(&net, info->n_hidden, params, info->adam ? m : NULL, info->adam ? v : NULL);
		net.adam_step = info->adam_step;
		out = malloc(size);
		if (mnist_weights_size(info->n_hidden, info->adam) != size ||
			mnist_weights_write(&net, out) != size || memcmp(out, data, size) != 0)
			abort();
		free(out);
		/* the parameters alone (what serving reads), into m: no longer needed */
		if (!mnist_weights_read_params(data, info, m, detail) ||
			memcmp(m, params, p * sizeof(float)) != 0)
			abort();
	}
	else if (detail[0] == '\0')
		abort();
	free(params);
	free(m);
	free(v);
}

/* Encodes a net made from the input and checks it decodes to itself. */
static void
encode_decode(const uint8_t *data, size_t size)
{
	int			hidden = 1 + data[0] % 4;
	bool		adam = data[0] & 0x80;
	size_t		p = mnist_net_param_count(hidden);
	float	   *in = calloc(3 * p, sizeof(float));
	float	   *got = malloc(3 * p * sizeof(float));
	size_t		len = mnist_weights_size(hidden, adam);
	uint8_t    *bytes = malloc(len);
	char		detail[MNIST_WEIGHTS_DETAIL_SIZE];
	MnistWeightsInfo info;
	MnistNet	net;

	memcpy(in, data + 1, size - 1 < 3 * p * sizeof(float) ? size - 1 : 3 * p * sizeof(float));
	/* finite, v non-negative, parameters small enough that no logit can overflow */
	for (size_t i = 0; i < 3 * p; i++)
		if (!isfinite(in[i]) || (i >= 2 * p && in[i] < 0.0f) || (i < p && fabsf(in[i]) > 1e6f))
			in[i] = 0.5f;
	mnist_net_bind(&net, hidden, in, adam ? in + p : NULL, adam ? in + 2 * p : NULL);
	net.adam_step = adam ? data[0] : 0;
	if (mnist_weights_write(&net, bytes) != len ||
		!mnist_weights_check(bytes, len, &info, detail) ||
		info.n_hidden != hidden || info.adam != adam || info.adam_step != net.adam_step ||
		!mnist_weights_read(bytes, &info, got, got + p, got + 2 * p, detail) ||
		memcmp(in, got, (adam ? 3 : 1) * p * sizeof(float)) != 0)
		abort();
	free(in);
	free(got);
	free(bytes);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MnistWeightsInfo info;
	char		detail[MNIST_WEIGHTS_DETAIL_SIZE] = "";

	if (mnist_weights_check(data, size, &info, detail))
		roundtrip(data, size, &info);
	else if (detail[0] == '\0')
		abort();
	if (size > 0)
		encode_decode(data, size);
	return 0;
}

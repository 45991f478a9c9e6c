/*
 * weights.h
 *		The stored weights format "MNML" (see weights.c): encoding, validation and decoding.
 *
 * Plain C with no PostgreSQL calls (the fuzz target test/fuzz/weights.c calls it directly);
 * the caller provides every buffer.  model_store.c wraps it for bytea values and ereport.
 */
#ifndef MNIST_WEIGHTS_H
#define MNIST_WEIGHTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net.h"

#define MNIST_MAX_HIDDEN	4096	/* largest hidden layer trained or read */

/* Bytes of the header, before the parameters. */
#define MNIST_WEIGHTS_HEADER	32

/* Room for a validation failure's detail message. */
#define MNIST_WEIGHTS_DETAIL_SIZE 160

/* What the header of a valid weights value says. */
typedef struct MnistWeightsInfo
{
	int			n_hidden;
	size_t		n_params;		/* mnist_net_param_count(n_hidden) */
	bool		adam;			/* Adam state follows the parameters */
	int64_t		adam_step;		/* 0 without Adam state */
} MnistWeightsInfo;

/* Bytes of the weights of a net with n_hidden units, with Adam state or not. */
extern size_t mnist_weights_size(int n_hidden, bool adam);

/*
 * Writes the weights of net (with its Adam state when net->adam_m and adam_v are not NULL)
 * into out, which has mnist_weights_size() bytes.  Returns the bytes written.
 */
extern size_t mnist_weights_write(const MnistNet *net, uint8_t *out);

/*
 * Validates everything but the floats of a weights value of len bytes: length, magic,
 * version, layer sizes, flags, step count.  Fills info and returns true, or writes a detail
 * message (a sentence) into detail and returns false.  Reads only the first
 * MNIST_WEIGHTS_HEADER bytes of data (none when len is shorter): a reader that knows the
 * length of a value may pass just its header.
 */
extern bool mnist_weights_check(const uint8_t *data, size_t len, MnistWeightsInfo *info,
								char detail[MNIST_WEIGHTS_DETAIL_SIZE]);

/* Bytes of the prefix of a value that holds its header and parameters (no Adam state). */
extern size_t mnist_weights_params_end(const MnistWeightsInfo *info);

/*
 * Copies the parameters of a value mnist_weights_check accepted into params (info->n_params
 * floats), checking every one is finite.  Reads only the first mnist_weights_params_end()
 * bytes of data: what serving a model needs, never its Adam state.  params may be where data
 * holds them (data + MNIST_WEIGHTS_HEADER): they are then converted in place.  Returns true,
 * or false with a detail message.
 */
extern bool mnist_weights_read_params(const uint8_t *data, const MnistWeightsInfo *info,
									  float *params, char detail[MNIST_WEIGHTS_DETAIL_SIZE]);

/*
 * Copies the parameters of a value mnist_weights_check accepted into params (info->n_params
 * floats), and when m and v are not NULL its Adam moments (zeros when it has none); checks
 * every float is finite (v also non-negative), Adam state included even when not copied.
 * Returns true, or false with a detail message.
 */
extern bool mnist_weights_read(const uint8_t *data, const MnistWeightsInfo *info,
							   float *params, float *m, float *v,
							   char detail[MNIST_WEIGHTS_DETAIL_SIZE]);

#endif							/* MNIST_WEIGHTS_H */

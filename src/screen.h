/*
 * screen.h
 *		The prediction screen: an accelerator for the argmax class of a network's prediction.
 *		It computes the first layer again in integers, which settles most images in a fraction
 *		of the float network's time, and says when it cannot (then its owner computes the
 *		float network, mnist_net_predict).  It runs on the AVX-512 path where the CPU also has
 *		VNNI.  Plain C, no PostgreSQL calls, no allocation: the owner of a network (the model
 *		cache, model.c) builds its screen into memory it supplies and calls it first.
 */
#ifndef MNIST_SCREEN_H
#define MNIST_SCREEN_H

#include "net.h"

typedef struct NetScreen NetScreen;

#define NET_SCREEN_QMAX 32000	/* the screen's integer weights: |q| <= 32000 per unit's max */

/*
 * Bytes to allocate (aligned to 64) for the screen of a hidden layer of n_hidden units, 0
 * where the CPU path in use has none: then there is no screen.
 */
extern size_t mnist_screen_size(int n_hidden);

/* Builds the screen of net into mem; net's parameters must not change after. */
extern const NetScreen *mnist_screen_build(const MnistNet *net, void *mem);

/* Scratch floats mnist_screen_classify needs for a hidden layer of n_hidden units. */
extern size_t mnist_screen_scratch(int n_hidden);

/*
 * The argmax class of one image (NET_INPUTS bytes) as mnist_net_predict computes it, or -1
 * when the screen cannot tell (the two best logits are too close for its error bound, or the
 * path in use has no screen).
 */
extern int	mnist_screen_classify(const NetScreen *screen, const uint8_t *pixels, float *scratch);

#endif							/* MNIST_SCREEN_H */

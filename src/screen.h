/*
 * screen.h
 *		The prediction screen: an accelerator for the argmax class of a network's prediction.
 *		It computes the first layer again in integers, which settles most images in a fraction
 *		of the float network's time, and says when it cannot (then its owner computes the
 *		float network, mnist_net_predict).  Each x86-64 CPU path has its own kind: AVX-512
 *		VNNI (avx512, on a CPU with VNNI), AVX-VNNI (avxvnni) or AVX2's vpmaddwd (avx2, and
 *		avx512 without VNNI); baseline has none.  Plain C, no PostgreSQL calls, no allocation:
 *		the owner of a network (the model cache, model_cache.c) builds its screen into memory it
 *		supplies and calls it first.
 */
#ifndef MNIST_SCREEN_H
#define MNIST_SCREEN_H

#include "net.h"

typedef struct NetScreen NetScreen;

#define NET_SCREEN_QMAX 32000	/* VNNI's integer weights: |q| <= 32000 per unit's max */
#define NET_SCREEN_QMAX16 10000 /* AVX2's: 784 * 255 * 10000 < 2^31 (screen.c) */

/*
 * Bytes to allocate (aligned to 64) for the screen of a hidden layer of n_hidden units, of
 * any kind, 0 where the CPU has none (no AVX2): then there is no screen.
 */
extern size_t mnist_screen_size(int n_hidden);

/*
 * Builds the screen of net into mem (mnist_screen_size bytes) for the CPU path in use, or
 * returns NULL when it has none; net's parameters must not change after.
 */
extern const NetScreen *mnist_screen_build(const MnistNet *net, void *mem);

/* Whether screen was built for another CPU path than the one in use (then it never decides). */
extern bool mnist_screen_stale(const NetScreen *screen);

/*
 * The largest |q| of the integer weights of the path in use's screen, and its stages in
 * *stages (2: high bytes, then 16 bits; 1: 16 bits at once); 0 where it has none.
 */
extern int	mnist_screen_qmax(int *stages);

/* Scratch floats mnist_screen_classify needs for a hidden layer of n_hidden units. */
extern size_t mnist_screen_scratch(int n_hidden);

/*
 * The argmax class of one image (NET_INPUTS bytes) as mnist_net_predict computes it, or -1
 * when the screen cannot tell (the two best logits are too close for its error bound, or the
 * path in use has no screen, or another kind).
 */
extern int	mnist_screen_classify(const NetScreen *screen, const uint8_t *pixels, float *scratch);

#endif							/* MNIST_SCREEN_H */

/*
 * net_avx2.c
 *		The network's hot loops (net_kernels.h) for AVX2 and FMA: the Makefile compiles this
 *		file with -mavx2 -mfma.  net.c runs it only on a CPU that has them.
 */
#ifdef __x86_64__
#if !defined(__AVX2__) || !defined(__FMA__)
#error "net_avx2.c must be compiled with -mavx2 -mfma (see Makefile)"
#endif
#define NET_KERNELS mnist_net_kernels_avx2
#include "net_kernels.h"
#endif

/*
 * net_avx512.c
 *		The network's hot loops (net_kernels.h) for AVX-512: the Makefile compiles this file
 *		with -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl -mfma.  net.c runs it only
 *		on a CPU that has them.
 */
#ifdef __x86_64__
#if !defined(__AVX512F__) || !defined(__AVX512CD__) || !defined(__AVX512BW__) || \
	!defined(__AVX512DQ__) || !defined(__AVX512VL__) || !defined(__FMA__)
#error "net_avx512.c must be compiled with -mavx512f -mavx512cd -mavx512bw -mavx512dq -mavx512vl -mfma (see Makefile)"
#endif
#define NET_KERNELS mnist_net_kernels_avx512
#include "net_kernels.h"
#endif

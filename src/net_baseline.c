/*
 * net_baseline.c
 *		The network's hot loops (net_kernels.h) for what the build targets: x86-64-v2 by
 *		default (SSE4.2, no FMA), or OPTFLAGS.  The path every CPU runs.
 */
#define NET_KERNELS mnist_net_kernels_baseline
#include "net_kernels.h"

/*
 * cblas_ref.c
 *		A reference cblas_sgemm (row-major only, as net_kernels.h calls it): C = alpha op(A)
 *		op(B) + beta C, each element summed in order.  For checks only: slow, and its
 *		rounding is not OpenBLAS's.
 */
#include <stdlib.h>

#include "cblas.h"

void
cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
			int m, int n, int k, float alpha, const float *a, int lda,
			const float *b, int ldb, float beta, float *c, int ldc)
{
	if (order != CblasRowMajor)
		abort();
	for (int i = 0; i < m; i++)
		for (int j = 0; j < n; j++)
		{
			float		s = 0.0f;

			for (int p = 0; p < k; p++)
				s += (ta == CblasTrans ? a[p * lda + i] : a[i * lda + p]) *
					(tb == CblasTrans ? b[j * ldb + p] : b[p * ldb + j]);
			c[i * ldc + j] = alpha * s + (beta == 0.0f ? 0.0f : beta * c[i * ldc + j]);
		}
}

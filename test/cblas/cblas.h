/*
 * cblas.h
 *		The one CBLAS call of src/net_kernels.h, for building the network where OpenBLAS is
 *		not at hand (test/net_check_aarch64.sh cross-compiles it): cblas_ref.c implements it.
 */
#ifndef MNIST_CBLAS_REF_H
#define MNIST_CBLAS_REF_H

enum CBLAS_ORDER
{
	CblasRowMajor = 101,
	CblasColMajor = 102
};
enum CBLAS_TRANSPOSE
{
	CblasNoTrans = 111,
	CblasTrans = 112
};

extern void cblas_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb,
						int m, int n, int k, float alpha, const float *a, int lda,
						const float *b, int ldb, float beta, float *c, int ldc);

#endif							/* MNIST_CBLAS_REF_H */

/*
 * image.c
 *		The validator of a labelled image (image.h).  Plain C, no PostgreSQL.
 */
#include <stdio.h>

#include "image.h"

MnistImageProblem
mnist_image_check(long long label, size_t npixels, char *msg, size_t msg_size)
{
	if (label < 0 || label >= MNIST_CLASSES)
	{
		snprintf(msg, msg_size, "label %lld is out of range 0..%d", label, MNIST_CLASSES - 1);
		return MNIST_IMAGE_BAD_LABEL;
	}
	if (npixels != MNIST_PIXELS)
	{
		snprintf(msg, msg_size, "pixels must be %d bytes, not %zu", MNIST_PIXELS, npixels);
		return MNIST_IMAGE_BAD_PIXELS;
	}
	return MNIST_IMAGE_OK;
}

/*
 * image.h
 *		A labelled image: its geometry, defined once here, and the one rule for a valid one.
 *		Plain C with no PostgreSQL, so the network (net.h) and the pixel codec (pixels_csv.h)
 *		include it too.
 *
 * An image is MNIST_SIDE x MNIST_SIDE grey levels, one byte each, row by row (MNIST_PIXELS
 * bytes); its label is a class 0 .. MNIST_CLASSES - 1.
 */
#ifndef MNIST_IMAGE_H
#define MNIST_IMAGE_H

#include <stddef.h>

#define MNIST_SIDE		28
#define MNIST_PIXELS	(MNIST_SIDE * MNIST_SIDE)	/* 784 */
#define MNIST_CLASSES	10

/* What mnist_image_check found wrong. */
typedef enum MnistImageProblem
{
	MNIST_IMAGE_OK = 0,
	MNIST_IMAGE_BAD_LABEL,		/* label outside 0 .. MNIST_CLASSES - 1 */
	MNIST_IMAGE_BAD_PIXELS		/* not MNIST_PIXELS bytes of pixels */
} MnistImageProblem;

/*
 * The validator of a labelled image, for every reader (tables, the output plugin, CDC
 * snapshots, the prediction functions): checks the label, then the number of pixel bytes.
 * On a problem, writes its one wording ("label 12 is out of range 0..9", "pixels must be 784
 * bytes, not 2") into msg (msg_size bytes, MNIST_IMAGE_MSG_SIZE is enough).
 */
#define MNIST_IMAGE_MSG_SIZE 64
extern MnistImageProblem mnist_image_check(long long label, size_t npixels, char *msg,
										   size_t msg_size);

#endif							/* MNIST_IMAGE_H */

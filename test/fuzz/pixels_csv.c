/*
 * test/fuzz/pixels_csv.c
 *		libFuzzer target of the pixel CSV codec (src/pixels_csv.c), which decodes every message
 *		read from a Kafka topic: values and keys come from the network.
 *
 * Properties checked on every input:
 *	- decoding never reads or writes outside its buffers (AddressSanitizer);
 *	- an accepted value re-encodes to a value that decodes to the same pixels, and to the very
 *	  input bytes when the input has no leading zeros (the codec's canonical form);
 *	- encode then decode of arbitrary pixels (the input's first 784 bytes) is the identity;
 *	- an accepted label key is 0..9.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pixels_csv.h"

/* True when no field of an accepted value has a superfluous leading zero. */
static int
canonical(const char *data, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++)
		if (data[i] == '0' && (i == 0 || data[i - 1] == ',') && data[i + 1] != ',')
			return 0;
	return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t		pixels[PIXELS_CSV_COUNT],
				again[PIXELS_CSV_COUNT];
	char		text[PIXELS_CSV_MAX];
	size_t		len;
	int			label = -1;

	if (mnist_pixels_csv_decode((const char *) data, size, pixels) == NULL)
	{
		len = mnist_pixels_csv_encode(pixels, text);
		if (mnist_pixels_csv_decode(text, len, again) != NULL ||
			memcmp(pixels, again, sizeof(pixels)) != 0)
			abort();
		if (canonical((const char *) data, size) && (len != size || memcmp(text, data, size) != 0))
			abort();
	}

	if (size >= PIXELS_CSV_COUNT)
	{
		len = mnist_pixels_csv_encode(data, text);
		if (len > PIXELS_CSV_MAX - 1 ||
			mnist_pixels_csv_decode(text, len, again) != NULL ||
			memcmp(data, again, sizeof(again)) != 0)
			abort();
	}

	if (mnist_pixels_csv_decode_label((const char *) data, size, &label) == NULL &&
		(label < 0 || label > 9))
		abort();
	return 0;
}

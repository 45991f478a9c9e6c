/*
 * pixels_csv.c
 *		Encode and decode pixel messages (CSV of 784 unsigned bytes), and label keys.
 *
 * Encoding goes through a lookup table of the 256 decimal spellings: sprintf per byte is
 * about forty times slower, and the output plugin encodes every captured row.
 */
#include "pixels_csv.h"

#include <string.h>


/* decimal text of each byte value, and its length */
static char digits_text[256][4];
static unsigned char digits_len[256];
static int	digits_ready = 0;

/* Fills the lookup table on first use. */
static void
init_digits(void)
{
	for (int v = 0; v < 256; v++)
	{
		int			n = 0;

		if (v >= 100)
			digits_text[v][n++] = '0' + v / 100;
		if (v >= 10)
			digits_text[v][n++] = '0' + (v / 10) % 10;
		digits_text[v][n++] = '0' + v % 10;
		digits_len[v] = n;
	}
	digits_ready = 1;
}

size_t
mnist_pixels_csv_encode(const uint8_t *pixels, char *out)
{
	char	   *p = out;

	if (!digits_ready)
		init_digits();

	for (int i = 0; i < PIXELS_CSV_COUNT; i++)
	{
		uint8_t		v = pixels[i];

		if (i > 0)
			*p++ = ',';
		memcpy(p, digits_text[v], 4);	/* copies a little slack; only len bytes count */
		p += digits_len[v];
	}
	return p - out;
}

const char *
mnist_pixels_csv_decode(const char *data, size_t len, uint8_t *pixels)
{
	const char *p = data;
	const char *end = data + len;
	int			count = 0;

	if (len == 0)
		return "empty value";

	for (;;)
	{
		unsigned	v = 0;
		int			ndigits = 0;

		while (p < end && *p >= '0' && *p <= '9')
		{
			v = v * 10 + (*p - '0');
			if (++ndigits > 3)
				return "value has more than 3 digits";
			p++;
		}
		if (ndigits == 0)
			return (p < end) ? "non-numeric value" : "empty field";
		if (v > 255)
			return "value above 255";
		if (count == PIXELS_CSV_COUNT)
			return "more than 784 values";
		pixels[count++] = (uint8_t) v;

		if (p == end)
			break;
		if (*p != ',')
			return "non-numeric value";
		p++;
	}
	if (count != PIXELS_CSV_COUNT)
		return "fewer than 784 values";
	return NULL;
}

const char *
mnist_pixels_csv_decode_label(const char *data, size_t len, int *label)
{
	if (data == NULL || len == 0)
		return "missing key";
	if (len != 1 || data[0] < '0' || data[0] > '9')
		return "key is not a label 0..9";
	*label = data[0] - '0';
	return NULL;
}

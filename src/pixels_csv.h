/*
 * pixels_csv.h
 *		The one codec for pixel messages: 784 unsigned decimal bytes joined by commas.
 *
 * Plain C with no PostgreSQL calls, shared by the output plugin (encode) and the topic
 * readers (strict decode).
 */
#ifndef PIXELS_CSV_H
#define PIXELS_CSV_H

#include <stddef.h>
#include <stdint.h>

#include "image.h"

/* values per image */
#define PIXELS_CSV_COUNT MNIST_PIXELS

/* longest encoding: MNIST_PIXELS x "255" plus the commas between them */
#define PIXELS_CSV_MAX	(MNIST_PIXELS * 4)

/* Writes the CSV form of 784 pixels into out (PIXELS_CSV_MAX bytes); returns its length. */
extern size_t mnist_pixels_csv_encode(const uint8_t *pixels, char *out);

/*
 * Parses exactly 784 comma-separated values 0..255 (no sign, no spaces, no empty field)
 * into pixels.  Returns NULL on success, else a static message saying what is wrong.
 */
extern const char *mnist_pixels_csv_decode(const char *data, size_t len, uint8_t *pixels);

/* Parses a label key "0".."9"; returns NULL on success, else a static message. */
extern const char *mnist_pixels_csv_decode_label(const char *data, size_t len, int *label);

#endif							/* PIXELS_CSV_H */

/*
 * idx.c
 *		The IDX reader of mnist2sql: an image file (magic 2051, count x 28 x 28 unsigned
 *		bytes) and a label file (magic 2049, count labels 0..9), each raw or gzip (zlib's gzread
 *		reads both), big-endian headers.  A file must hold exactly what its header promises;
 *		memory grows with the data read, so a lying header cannot make us allocate much.
 */
#include "idx.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* Fills err for path; returns false so callers can "return error(...)". */
static bool error(IdxError *err, const char *path, const char *fmt,...)
			__attribute__((format(printf, 3, 4)));

static bool
error(IdxError *err, const char *path, const char *fmt,...)
{
	va_list		ap;

	err->path = path;
	va_start(ap, fmt);
	vsnprintf(err->message, sizeof(err->message), fmt, ap);
	va_end(ap);
	return false;
}

/* zlib's message for gz, without the "PATH: " it puts in front. */
static const char *
gz_message(gzFile gz, const char *path, int *errnum)
{
	const char *msg = gzerror(gz, errnum);
	size_t		plen = strlen(path);

	if (strncmp(msg, path, plen) == 0 && strncmp(msg + plen, ": ", 2) == 0)
		msg += plen + 2;
	return msg;
}

/* Reads up to len bytes into buf, adding the count to *done; false on a read or gzip error. */
static bool
read_bytes(gzFile gz, const char *path, unsigned char *buf, size_t len, size_t *done,
		   IdxError *err)
{
	size_t		got = 0;

	while (got < len)
	{
		size_t		chunk = len - got;
		int			n;
		int			errnum;
		const char *msg;

		if (chunk > (1u << 30))
			chunk = 1u << 30;
		n = gzread(gz, buf + got, (unsigned) chunk);
		if (n > 0)
		{
			got += n;
			continue;
		}
		msg = gz_message(gz, path, &errnum);
		if (n < 0 && errnum == Z_ERRNO)
			return error(err, path, "could not read: %s", strerror(errno));
		if (n < 0)
			return error(err, path, "corrupt gzip data (%s)", msg);
		if (errnum == Z_BUF_ERROR)
			return error(err, path, "truncated gzip data (%s)", msg);
		break;					/* end of file */
	}
	*done += got;
	return true;
}

/* Opens an IDX file and checks its header: magic, then the dimensions asked for. */
static gzFile
open_idx(const char *path, uint32_t magic, int ndims, uint32_t *dims, IdxError *err)
{
	gzFile		gz;
	unsigned char header[16];
	size_t		hlen = 4 + 4 * ndims;
	size_t		got = 0;
	uint32_t	found;

	errno = 0;
	gz = gzopen(path, "rb");
	if (gz == NULL)
	{
		error(err, path, "could not open: %s", errno ? strerror(errno) : "out of memory");
		return NULL;
	}
	gzbuffer(gz, 1 << 18);

	if (!read_bytes(gz, path, header, hlen, &got, err))
		goto fail;
	if (got == 0)
	{
		error(err, path, "empty file");
		goto fail;
	}
	if (got < 4)
	{
		error(err, path, "truncated header (%zu bytes)", got);
		goto fail;
	}
	found = (uint32_t) header[0] << 24 | header[1] << 16 | header[2] << 8 | header[3];
	if (found != magic)
	{
		error(err, path, "bad magic number %u (expected %u, an IDX %s file)",
			  found, magic, magic == IMAGE_MAGIC ? "image" : "label");
		goto fail;
	}
	if (got < hlen)
	{
		error(err, path, "truncated header (%zu bytes)", got);
		goto fail;
	}
	for (int i = 0; i < ndims; i++)
	{
		unsigned char *p = header + 4 + 4 * i;

		dims[i] = (uint32_t) p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3];
	}
	return gz;

fail:
	gzclose_r(gz);
	return NULL;
}

/*
 * Reads exactly len bytes of data that must end the file and closes it; what/count describe
 * the items for the truncation message.  NULL on failure (gz closed all the same).
 */
static unsigned char *
read_body(gzFile gz, const char *path, size_t len, const char *what,
		  uint32_t count, size_t item_bytes, IdxError *err)
{
	size_t		cap = len < (16u << 20) ? len : (16u << 20);
	unsigned char *buf = malloc(cap ? cap : 1);
	size_t		done = 0;
	size_t		extra = 0;
	unsigned char byte;

	if (buf == NULL)
	{
		error(err, path, "out of memory");
		goto fail;
	}
	/* grow as data arrives, so a lying header cannot make us allocate much */
	for (;;)
	{
		unsigned char *grown;

		if (!read_bytes(gz, path, buf + done, cap - done, &done, err))
			goto fail;
		if (done < cap || cap == len)
			break;
		cap = cap * 2 < len ? cap * 2 : len;
		grown = realloc(buf, cap);
		if (grown == NULL)
		{
			error(err, path, "out of memory");
			goto fail;
		}
		buf = grown;
	}
	if (done < len)
	{
		error(err, path, "truncated: header promises %u %s, file holds %zu",
			  count, what, done / item_bytes);
		goto fail;
	}
	if (!read_bytes(gz, path, &byte, 1, &extra, err))
		goto fail;
	if (extra != 0)
	{
		error(err, path, "unexpected data after the %u %s", count, what);
		goto fail;
	}
	if (gzclose_r(gz) != Z_OK)
	{
		free(buf);
		error(err, path, "could not read to the end");
		return NULL;
	}
	return buf;

fail:
	free(buf);
	gzclose_r(gz);
	return NULL;
}

bool
mnist_idx_load(const char *images, const char *labels, Dataset *ds, IdxError *err)
{
	uint32_t	idims[3];
	uint32_t	ldims[1];
	gzFile		igz;
	gzFile		lgz;

	ds->labels = ds->pixels = NULL;
	igz = open_idx(images, IMAGE_MAGIC, 3, idims, err);
	if (igz == NULL)
		return false;
	if (idims[1] != IMAGE_SIDE || idims[2] != IMAGE_SIDE)
	{
		gzclose_r(igz);
		return error(err, images, "images are %ux%u, expected %dx%d",
					 idims[1], idims[2], IMAGE_SIDE, IMAGE_SIDE);
	}
	lgz = open_idx(labels, LABEL_MAGIC, 1, ldims, err);
	if (lgz == NULL)
	{
		gzclose_r(igz);
		return false;
	}
	if (ldims[0] != idims[0])
	{
		gzclose_r(igz);
		gzclose_r(lgz);
		return error(err, labels, "%u labels but %s has %u images", ldims[0], images, idims[0]);
	}

	ds->count = idims[0];
	ds->labels = read_body(lgz, labels, ds->count, "labels", ds->count, 1, err);
	if (ds->labels == NULL)
	{
		gzclose_r(igz);
		return false;
	}
	for (uint32_t i = 0; i < ds->count; i++)
	{
		if (ds->labels[i] > MAX_LABEL)
		{
			error(err, labels, "label %u at index %u is out of range 0..%d",
				  ds->labels[i], i, MAX_LABEL);
			gzclose_r(igz);
			mnist_idx_free(ds);
			return false;
		}
	}
	ds->pixels = read_body(igz, images, (size_t) ds->count * IMAGE_BYTES,
						   "images", ds->count, IMAGE_BYTES, err);
	if (ds->pixels == NULL)
	{
		mnist_idx_free(ds);
		return false;
	}
	return true;
}

void
mnist_idx_free(Dataset *ds)
{
	free(ds->labels);
	free(ds->pixels);
	ds->labels = ds->pixels = NULL;
}

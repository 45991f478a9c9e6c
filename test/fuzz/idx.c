/*
 * test/fuzz/idx.c
 *		libFuzzer target of mnist2sql's IDX reader (tools/idx.c), raw and gzip: files users
 *		download from the internet.
 *
 * Input: a 2-byte big-endian length L, then L bytes of label file, then the image file; each
 * file is handed to the reader by path (a memfd), so zlib's gzip detection and decoding run
 * exactly as in mnist2sql.
 * Properties checked on every input:
 *	- the reader stays inside its buffers, frees what it allocated and closes what it opened
 *	  on every path (AddressSanitizer, LeakSanitizer, and no file descriptor left open);
 *	- success means count labels 0..9; a failure names one of the two files and says why.
 */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "idx.h"

/* A memfd holding data; its path goes to *path (size 32). */
static int
memfile(const uint8_t *data, size_t size, char *path)
{
	int			fd = memfd_create("idx", 0);

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t) size))
		abort();
	snprintf(path, 32, "/proc/self/fd/%d", fd);
	return fd;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	size_t		llen;
	int			lfd,
				ifd,
				probe;
	char		lpath[32],
				ipath[32];
	Dataset		ds;
	IdxError	err;

	if (size < 2)
		return 0;
	llen = (size_t) data[0] << 8 | data[1];
	if (llen > size - 2)
		llen = size - 2;
	lfd = memfile(data + 2, llen, lpath);
	ifd = memfile(data + 2 + llen, size - 2 - llen, ipath);

	if (mnist_idx_load(ipath, lpath, &ds, &err))
	{
		for (uint32_t i = 0; i < ds.count; i++)
			if (ds.labels[i] > MAX_LABEL)
				abort();
		/* every byte is reachable (AddressSanitizer checks the bounds) */
		if (ds.count > 0)
			(void) *(volatile unsigned char *) &ds.pixels[(size_t) ds.count * IMAGE_BYTES - 1];
		mnist_idx_free(&ds);
	}
	else if ((err.path != ipath && err.path != lpath) || err.message[0] == '\0')
		abort();

	close(lfd);
	close(ifd);
	/* the reader closed its own descriptors: the next one is the lowest of ours */
	probe = dup(0);
	if (probe > (lfd < ifd ? lfd : ifd))
		abort();
	close(probe);
	return 0;
}

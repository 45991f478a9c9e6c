/*
 * train_bench.c
 *		Times src/net.c outside PostgreSQL on IDX data: one epoch (best of N runs), then the test
 *		accuracy after E epochs, and mnist_net_predict's rate.  Prints "key value" lines for
 *		bench/train.sh.
 *
 *		usage: train_bench DATADIR [epochs=5] [repeats=3] [hidden=128] [batch=64] [seed=0]
 *			[cpu_path=auto] [threads=1] [scale=1]
 *		With scale > 1 the timed epochs run on the training rows repeated scale times.
 *		DATADIR holds train-images-idx3-ubyte[.gz] and the three other IDX files.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <zlib.h>

#include "net.h"
#include "net_pool.h"

/* Seconds of the given clock: wall (CLOCK_MONOTONIC) or this process' CPU time. */
static double
clock_seconds(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double
now(void)
{
	return clock_seconds(CLOCK_MONOTONIC);
}

/* FNV-1a hash of the parameters: equal hashes show bit-identical models. */
static uint64_t
fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t	h = UINT64_C(0xcbf29ce484222325);

	while (len--)
		h = (h ^ *p++) * UINT64_C(0x100000001b3);
	return h;
}

/* Reads an IDX file (gzip or raw) of the given magic; returns the payload and its count. */
static uint8_t *
read_idx(const char *dir, const char *name, unsigned magic, size_t item, size_t *count)
{
	char		path[4096];
	unsigned char hdr[16];
	size_t		hdr_len = magic == 0x803 ? 16 : 8;
	gzFile		f;
	uint8_t    *data;
	size_t		n;

	snprintf(path, sizeof(path), "%s/%s.gz", dir, name);
	f = gzopen(path, "rb");
	if (!f)
	{
		snprintf(path, sizeof(path), "%s/%s", dir, name);
		f = gzopen(path, "rb");
	}
	if (!f || gzread(f, hdr, hdr_len) != (int) hdr_len ||
		((unsigned) hdr[2] << 8 | hdr[3]) != magic)
	{
		fprintf(stderr, "train_bench: cannot read IDX file %s\n", path);
		exit(1);
	}
	n = (size_t) hdr[4] << 24 | hdr[5] << 16 | hdr[6] << 8 | hdr[7];
	data = malloc(n * item);
	if (gzread(f, data, n * item) != (int) (n * item))
	{
		fprintf(stderr, "train_bench: %s is truncated\n", path);
		exit(1);
	}
	gzclose(f);
	*count = n;
	return data;
}

/*
 * Trains epochs from a fresh seeded net, with pool's threads (NULL: one); returns the wall and
 * CPU seconds of each epoch in secs[] and cpu[].
 */
static void
train(MnistNet *net, NetPool *pool, const uint8_t *images, const uint8_t *labels, size_t n,
	  int epochs, int batch, uint64_t seed, double *secs, double *cpu, double *loss,
	  double *acc)
{
	NetAdam		adam = {0.001f, 0.9f, 0.999f, 1e-7f};
	int			threads = mnist_net_pool_threads(pool);
	void	   *mem;
	NetTrainer *t;
	NetRng		rng;
	uint32_t   *idx = malloc(sizeof(uint32_t) * n);
	size_t		i;
	int			e;

	mnist_net_init_glorot(net, seed);
	mem = malloc(mnist_net_trainer_size(net->n_hidden, batch, threads));
	t = mnist_net_trainer_bind(mem, net, batch, threads);
	mnist_net_trainer_set_pool(t, pool);
	mnist_net_rng_seed(&rng, seed);
	for (i = 0; i < n; i++)
		idx[i] = (uint32_t) i;
	for (e = 0; e < epochs; e++)
	{
		double		t0 = now(),
					c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID),
					loss_sum = 0.0;
		int64_t		correct = 0;

		mnist_net_shuffle(&rng, idx, n);
		for (i = 0; i < n; i += batch)
			mnist_net_train_batch(t, &adam, images, labels, idx + i,
							(int) (n - i < (size_t) batch ? n - i : (size_t) batch),
							&loss_sum, &correct);
		secs[e] = now() - t0;
		cpu[e] = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
		*loss = loss_sum / n;
		*acc = (double) correct / n;
	}
	mnist_net_trainer_sync(t);
	free(mem);
	free(idx);
}

int
main(int argc, char **argv)
{
	const char *dir = argc > 1 ? argv[1] : "/usr/share/datasets/fashion-mnist";
	int			epochs = argc > 2 ? atoi(argv[2]) : 5;
	int			repeats = argc > 3 ? atoi(argv[3]) : 3;
	int			hidden = argc > 4 ? atoi(argv[4]) : 128;
	int			batch = argc > 5 ? atoi(argv[5]) : 64;
	uint64_t	seed = argc > 6 ? strtoull(argv[6], NULL, 10) : 0;
	const char *path = argc > 7 ? argv[7] : "auto";
	int			threads = argc > 8 ? atoi(argv[8]) : 1;
	int			scale = argc > 9 ? atoi(argv[9]) : 1;
	double		timed_rows;
	size_t		n,
				nl,
				nt,
				ntl,
				i,
				np = mnist_net_param_count(hidden);
	uint8_t    *images = read_idx(dir, "train-images-idx3-ubyte", 0x803, NET_INPUTS, &n);
	uint8_t    *labels = read_idx(dir, "train-labels-idx1-ubyte", 0x801, 1, &nl);
	uint8_t    *test_images = read_idx(dir, "t10k-images-idx3-ubyte", 0x803, NET_INPUTS, &nt);
	uint8_t    *test_labels = read_idx(dir, "t10k-labels-idx1-ubyte", 0x801, 1, &ntl);
	MnistNet	net;
	NetPool    *pool = NULL;
	float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(hidden));
	double	   *secs = malloc(sizeof(double) * (epochs > 1 ? epochs : 1));
	double	   *cpu = malloc(sizeof(double) * (epochs > 1 ? epochs : 1));
	double		best = 1e30,
				best_cpu = 1e30,
				loss,
				acc,
				t0,
				pred_secs = 1e30,
				pred_cpu = 1e30;
	size_t		right = 0;
	int			r,
				p;

	if (n != nl || nt != ntl)
	{
		fprintf(stderr, "train_bench: image and label counts differ\n");
		return 1;
	}
	for (p = NET_CPU_AUTO; p <= NET_CPU_BASELINE; p++)
		if (strcmp(mnist_net_cpu_path_name(p), path) == 0 && mnist_net_cpu_supports(p))
			break;
	if (p > NET_CPU_BASELINE)
	{
		fprintf(stderr, "train_bench: unknown CPU path, or one this CPU lacks: %s\n", path);
		return 1;
	}
	mnist_net_set_cpu_path(p);
	/* weight and moment rows on cache lines, as the extension allocates them */
	mnist_net_bind(&net, hidden, aligned_alloc(64, (sizeof(float) * np + 63) / 64 * 64),
			 aligned_alloc(64, (sizeof(float) * np + 63) / 64 * 64),
			 aligned_alloc(64, (sizeof(float) * np + 63) / 64 * 64));
	if (threads > 1)
		pool = mnist_net_pool_start(malloc(mnist_net_pool_size()), threads);

	printf("rows %zu\ncpu_path %s\nthreads %d\n", n, mnist_net_cpu_path_name(mnist_net_cpu_path()),
		   threads);
	timed_rows = n;
	if (scale > 1)
	{
		/* the rows repeated, for the timed epochs only */
		uint8_t    *si = malloc(n * scale * NET_INPUTS),
				   *sl = malloc(n * scale);

		for (i = 0; i < (size_t) scale; i++)
		{
			memcpy(si + i * n * NET_INPUTS, images, n * NET_INPUTS);
			memcpy(sl + i * n, labels, n);
		}
		printf("scaled_rows %zu\n", n * scale);
		for (r = 0; r < repeats; r++)
		{
			train(&net, pool, si, sl, n * scale, 1, batch, seed, secs, cpu, &loss, &acc);
			printf("epoch_seconds %.4f\nepoch_cpu_seconds %.4f\n", secs[0], cpu[0]);
			best = secs[0] < best ? secs[0] : best;
			best_cpu = cpu[0] < best_cpu ? cpu[0] : best_cpu;
		}
		free(si);
		free(sl);
		timed_rows = n * scale;
		repeats = 0;
	}
	for (r = 0; r < repeats; r++)
	{
		train(&net, pool, images, labels, n, 1, batch, seed, secs, cpu, &loss, &acc);
		printf("epoch_seconds %.4f\nepoch_cpu_seconds %.4f\n", secs[0], cpu[0]);
		if (secs[0] < best)
			best = secs[0];
		if (cpu[0] < best_cpu)
			best_cpu = cpu[0];
	}
	if (best < 1e30)
		printf("epoch_best %.4f\nepoch_cpu_best %.4f\nrows_per_second %.0f\n",
			   best, best_cpu, timed_rows / best);

	if (epochs > 0)
	{
		train(&net, pool, images, labels, n, epochs, batch, seed, secs, cpu, &loss, &acc);
		for (i = 0; i < nt; i++)
			if (mnist_net_predict(&net, test_images + i * NET_INPUTS, scratch, NULL, NULL) ==
				test_labels[i])
				right++;
		printf("train_loss %.4f\ntrain_accuracy %.4f\n", loss, acc);
		printf("params_fnv1a %016llx\n", (unsigned long long) fnv1a(net.params, np * sizeof(float)));
		printf("test_accuracy %.4f\n", (double) right / nt);
	}

	/* mnist_net_predict alone over the test set, best of 3 (wall and CPU time) */
	for (r = 0; r < 3; r++)
	{
		volatile int sink = 0;
		double		c0 = clock_seconds(CLOCK_PROCESS_CPUTIME_ID);

		t0 = now();
		for (i = 0; i < nt; i++)
			sink += mnist_net_predict(&net, test_images + i * NET_INPUTS, scratch, NULL, NULL);
		if (now() - t0 < pred_secs)
			pred_secs = now() - t0;
		if (clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0 < pred_cpu)
			pred_cpu = clock_seconds(CLOCK_PROCESS_CPUTIME_ID) - c0;
	}
	printf("predict_us %.3f\npredict_cpu_us %.3f\n", pred_secs / nt * 1e6, pred_cpu / nt * 1e6);
	return 0;
}

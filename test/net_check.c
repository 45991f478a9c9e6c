/*
 * net_check.c
 *		Standalone checks of src/net.c (no PostgreSQL): gradients against a numerical
 *		derivative computed in double precision, learning on a toy problem, determinism,
 *		mnist_net_predict against the trainer's forward pass, softmax, shuffles, pixel scaling,
 *		the prediction screen against the exact class (also on every image of the digits and
 *		Fashion-MNIST test sets, $MNIST_DATA), and training with threads (whose
 *		shares are moved between them), on every CPU path this machine has; then every path
 *		against the baseline path.
 *		Prints one line per check and exits non-zero if any failed.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net.h"
#include "net_path.h"
#include "net_pool.h"
#include "screen.h"

static int	failures = 0;

static void
check(int ok, const char *what)
{
	printf("%s: %s\n", ok ? "ok" : "FAIL", what);
	if (!ok)
		failures++;
}

/* A trained-or-not net with its own buffers (malloc is fine in a test program). */
typedef struct TestNet
{
	MnistNet	net;
	void	   *mem;
	NetTrainer *trainer;
} TestNet;

static void
testnet_make(TestNet *tn, int h, int max_batch, uint64_t seed)
{
	size_t		np = mnist_net_param_count(h);

	/* misalign the trainer buffer on purpose: mnist_net_trainer_bind must align it */
	tn->mem = malloc(mnist_net_trainer_size(h, max_batch, 1) + 64);
	mnist_net_bind(&tn->net, h, calloc(np, sizeof(float)), calloc(np, sizeof(float)),
			 calloc(np, sizeof(float)));
	mnist_net_init_glorot(&tn->net, seed);
	tn->trainer = mnist_net_trainer_bind((char *) tn->mem + 1, &tn->net, max_batch, 1);
}

static void
testnet_free(TestNet *tn)
{
	free(tn->mem);
	free(tn->net.params);
	free(tn->net.adam_m);
	free(tn->net.adam_v);
}

/* Mean cross-entropy over a batch, all in double: an independent forward pass. */
static double
ref_loss(const MnistNet *net, const uint8_t *images, const uint8_t *labels,
		 const uint32_t *idx, int n)
{
	int			h = net->n_hidden;
	double		total = 0.0;
	double	   *hid = malloc(sizeof(double) * h);
	int			r,
				i,
				j,
				k;

	for (r = 0; r < n; r++)
	{
		const uint8_t *px = images + (size_t) idx[r] * NET_INPUTS;
		double		z[NET_OUTPUTS],
					zmax,
					sum = 0.0;

		for (j = 0; j < h; j++)
		{
			double		s = net->b1[j];

			for (i = 0; i < NET_INPUTS; i++)
				s += (px[i] / 255.0) * net->w1[(size_t) i * h + j];
			hid[j] = s > 0 ? s : 0;
		}
		for (k = 0; k < NET_OUTPUTS; k++)
		{
			z[k] = net->b2[k];
			for (j = 0; j < h; j++)
				z[k] += hid[j] * net->w2[j * NET_OUTPUTS + k];
		}
		zmax = z[0];
		for (k = 1; k < NET_OUTPUTS; k++)
			zmax = z[k] > zmax ? z[k] : zmax;
		for (k = 0; k < NET_OUTPUTS; k++)
			sum += exp(z[k] - zmax);
		total += log(sum) - (z[labels[idx[r]]] - zmax);
	}
	free(hid);
	return total / n;
}

/* Simple deterministic generator for test data (independent of net.c's). */
static uint32_t
lcg(uint32_t *s)
{
	*s = *s * 1664525u + 1013904223u;
	return *s >> 8;
}

/*
 * Toy data: class c lights a 6x6 square at a class-specific place, plus noise; about
 * half the pixels stay zero, as in the real data.
 */
static void
make_toy(uint8_t *images, uint8_t *labels, int n, uint32_t seed)
{
	int			r,
				i;

	for (r = 0; r < n; r++)
	{
		uint8_t    *px = images + (size_t) r * NET_INPUTS;
		int			c = lcg(&seed) % NET_OUTPUTS;
		int			row0 = 2 + (c / 5) * 12 + lcg(&seed) % 4;
		int			col0 = 2 + (c % 5) * 5;
		int			y,
					x;

		labels[r] = (uint8_t) c;
		for (i = 0; i < NET_INPUTS; i++)
			px[i] = (lcg(&seed) % 2) ? (uint8_t) (lcg(&seed) % 90) : 0;
		for (y = row0; y < row0 + 6; y++)
			for (x = col0; x < col0 + 6 && x < 28; x++)
				px[y * 28 + x] = (uint8_t) (160 + lcg(&seed) % 96);
	}
}

/*
 * The gradient the trainer computes, read back from one Adam step with beta1 = beta2 = 0 and
 * learning_rate = epsilon = 2^20: then each update is g * 2^20 / (|g| + 2^20), which is g to
 * float precision for |g| far below 2^20 * 2^-24.
 */
static void
check_gradients(void)
{
	const int	h = 12,
				n = 5;
	TestNet		tn;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t		labels[5];
	uint32_t	idx[5] = {3, 0, 4, 1, 2};
	size_t		np = mnist_net_param_count(h);
	float	   *before = malloc(sizeof(float) * np);
	float	   *grad = malloc(sizeof(float) * np);
	double		loss_sum = 0.0,
				worst = 0.0;
	int64_t		correct = 0;
	NetAdam		probe = {1048576.0f, 0.0f, 0.0f, 1048576.0f};
	size_t		p;
	int			checked = 0,
				zero_rows_ok = 1,
				i;
	char		msg[200];

	make_toy(images, labels, n, 7);
	/* pixel 0 is zero in every image: its w1 row must get an exactly zero gradient */
	for (i = 0; i < n; i++)
		images[(size_t) i * NET_INPUTS] = 0;
	testnet_make(&tn, h, 8, 42);
	/* nonzero biases so their gradients matter too */
	for (i = 0; i < h; i++)
		tn.net.b1[i] = 0.01f * (i % 5) - 0.02f;
	for (i = 0; i < NET_OUTPUTS; i++)
		tn.net.b2[i] = 0.03f * (i % 3);
	memcpy(before, tn.net.params, sizeof(float) * np);

	mnist_net_train_batch(tn.trainer, &probe, images, labels, idx, n, &loss_sum, &correct);
	for (p = 0; p < np; p++)
		grad[p] = before[p] - tn.net.params[p];
	memcpy(tn.net.params, before, sizeof(float) * np);

	snprintf(msg, sizeof(msg), "trainer loss %.6f = double forward %.6f",
			 loss_sum / n, ref_loss(&tn.net, images, labels, idx, n));
	check(fabs(loss_sum / n - ref_loss(&tn.net, images, labels, idx, n)) < 1e-5, msg);

	for (i = 0; i < h; i++)
		if (grad[i] != 0.0f)
			zero_rows_ok = 0;
	check(zero_rows_ok, "w1 row of an all-zero pixel gets a zero gradient");

	/* every parameter of a small net: central differences on the double loss */
	for (p = 0; p < np; p++)
	{
		float		saved = tn.net.params[p];
		const double step = 1e-5;
		double		lp,
					lm,
					num,
					err;

		tn.net.params[p] = saved + (float) step;
		lp = ref_loss(&tn.net, images, labels, idx, n);
		tn.net.params[p] = saved - (float) step;
		lm = ref_loss(&tn.net, images, labels, idx, n);
		tn.net.params[p] = saved;
		num = (lp - lm) / ((double) (saved + (float) step) - (double) (saved - (float) step));
		err = fabs(num - grad[p]) / (fabs(num) + fabs(grad[p]) + 1e-4);
		if (err > worst)
			worst = err;
		if (err > 1e-2 && getenv("NET_CHECK_DEBUG"))
			printf("  param %zu: analytic %g numerical %g\n", p, grad[p], num);
		checked++;
	}
	snprintf(msg, sizeof(msg), "analytic vs numerical gradient on %d parameters, worst relative error %.2e",
			 checked, worst);
	check(worst < 1e-3, msg);

	testnet_free(&tn);
	free(images);
	free(before);
	free(grad);
}

/* Trains epochs over the toy set; returns the last epoch's mean loss, stores its accuracy. */
static double
train_toy(TestNet *tn, const uint8_t *images, const uint8_t *labels, int n, int batch,
		  int epochs, uint64_t seed, double *first_loss, double *accuracy)
{
	NetAdam		adam = {0.001f, 0.9f, 0.999f, 1e-7f};
	NetRng		rng;
	uint32_t   *idx = malloc(sizeof(uint32_t) * n);
	double		loss = 0.0;
	int			e,
				i;

	mnist_net_rng_seed(&rng, seed);
	for (i = 0; i < n; i++)
		idx[i] = i;
	for (e = 0; e < epochs; e++)
	{
		double		loss_sum = 0.0;
		int64_t		correct = 0;

		mnist_net_shuffle(&rng, idx, n);
		for (i = 0; i < n; i += batch)
			mnist_net_train_batch(tn->trainer, &adam, images, labels, idx + i,
							n - i < batch ? n - i : batch, &loss_sum, &correct);
		loss = loss_sum / n;
		if (e == 0 && first_loss)
			*first_loss = loss;
		if (accuracy)
			*accuracy = (double) correct / n;
	}
	free(idx);
	return loss;
}

static void
check_learning_and_determinism(void)
{
	const int	n = 2000,
				h = 32;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t    *labels = malloc(n);
	uint8_t    *test_images = malloc((size_t) 500 * NET_INPUTS);
	uint8_t    *test_labels = malloc(500);
	TestNet		a,
				b,
				c;
	double		first,
				last,
				acc;
	size_t		np = mnist_net_param_count(h);
	int			i,
				right = 0;
	char		msg[200];

	make_toy(images, labels, n, 1);
	make_toy(test_images, test_labels, 500, 99);

	testnet_make(&a, h, 64, 5);
	last = train_toy(&a, images, labels, n, 64, 4, 5, &first, &acc);
	snprintf(msg, sizeof(msg), "toy problem: loss %.4f -> %.4f over 4 epochs, train accuracy %.3f",
			 first, last, acc);
	check(last < first * 0.5 && acc > 0.95, msg);
	{
		float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(h));

		for (i = 0; i < 500; i++)
			if (mnist_net_predict(&a.net, test_images + (size_t) i * NET_INPUTS, scratch, NULL, NULL) == test_labels[i])
				right++;
		free(scratch);
	}
	snprintf(msg, sizeof(msg), "toy problem: held-out accuracy %.3f", right / 500.0);
	check(right > 475, msg);

	/* same seed: bit-identical; another seed: different */
	testnet_make(&b, h, 64, 5);
	train_toy(&b, images, labels, n, 64, 4, 5, NULL, NULL);
	check(memcmp(a.net.params, b.net.params, sizeof(float) * np) == 0 &&
		  memcmp(a.net.adam_m, b.net.adam_m, sizeof(float) * np) == 0 &&
		  memcmp(a.net.adam_v, b.net.adam_v, sizeof(float) * np) == 0 &&
		  a.net.adam_step == b.net.adam_step,
		  "same seed and data: bit-identical parameters and Adam state");
	testnet_make(&c, h, 64, 6);
	train_toy(&c, images, labels, n, 64, 4, 6, NULL, NULL);
	check(memcmp(a.net.params, c.net.params, sizeof(float) * np) != 0,
		  "another seed: different parameters");

	testnet_free(&a);
	testnet_free(&b);
	testnet_free(&c);
	free(images);
	free(labels);
	free(test_images);
	free(test_labels);
}

/* mnist_net_predict against the loss and accuracy the trainer reports before its update. */
static void
check_predict(void)
{
	const int	n = 300,
				h = 128;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t    *labels = malloc(n);
	uint32_t   *idx = malloc(sizeof(uint32_t) * n);
	float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(h));
	NetAdam		adam = {0.001f, 0.9f, 0.999f, 1e-7f};
	TestNet		tn;
	double		pred_loss = 0.0,
				loss_sum = 0.0,
				worst_sum = 0.0;
	int64_t		pred_correct = 0,
				correct = 0;
	int			i,
				k,
				probs_ok = 1;
	char		msg[200];

	make_toy(images, labels, n, 3);
	testnet_make(&tn, h, 64, 11);
	for (i = 0; i < n; i++)
		idx[i] = (uint32_t) ((i * 7) % n);
	/* a few steps first, so the net is not at its initial state */
	for (i = 0; i + 64 <= 256; i += 64)
		mnist_net_train_batch(tn.trainer, &adam, images, labels, idx + i, 64, &loss_sum, &correct);

	for (i = 256; i < n; i++)
	{
		float		probs[NET_OUTPUTS],
					logits[NET_OUTPUTS];
		double		sum = 0.0;
		int			cls = mnist_net_predict(&tn.net, images + (size_t) idx[i] * NET_INPUTS, scratch,
									  probs, logits);

		for (k = 0; k < NET_OUTPUTS; k++)
		{
			sum += probs[k];
			if (probs[k] < 0.0f || probs[k] > 1.0f || probs[k] > probs[cls])
				probs_ok = 0;
		}
		if (fabs(sum - 1.0) > worst_sum)
			worst_sum = fabs(sum - 1.0);
		pred_loss += mnist_net_cross_entropy(logits, labels[idx[i]]);
		if (cls == labels[idx[i]])
			pred_correct++;
	}
	loss_sum = 0.0;
	correct = 0;
	mnist_net_train_batch(tn.trainer, &adam, images, labels, idx + 256, n - 256, &loss_sum, &correct);
	snprintf(msg, sizeof(msg), "mnist_net_predict loss %.6f, correct %ld = trainer's %.6f, %ld",
			 pred_loss, (long) pred_correct, loss_sum, (long) correct);
	check(fabs(pred_loss - loss_sum) < 1e-4 * (1 + loss_sum) && pred_correct == correct, msg);
	snprintf(msg, sizeof(msg), "probabilities in [0,1], argmax = class, sum within %.1e of 1",
			 worst_sum);
	check(probs_ok && worst_sum < 1e-5, msg);

	testnet_free(&tn);
	free(images);
	free(labels);
	free(idx);
	free(scratch);
}

static void
check_shuffle(void)
{
	NetRng		a,
				b;
	uint32_t	x[1000],
				y[1000];
	int			seen[1000] = {0};
	int			i,
				perm = 1,
				moved = 0;

	for (i = 0; i < 1000; i++)
		x[i] = y[i] = i;
	mnist_net_rng_seed(&a, 123);
	mnist_net_rng_seed(&b, 123);
	mnist_net_shuffle(&a, x, 1000);
	mnist_net_shuffle(&b, y, 1000);
	for (i = 0; i < 1000; i++)
	{
		if (x[i] >= 1000 || seen[x[i]]++)
			perm = 0;
		if (x[i] != (uint32_t) i)
			moved++;
	}
	check(perm && moved > 900, "shuffle is a permutation that moves most items");
	check(memcmp(x, y, sizeof(x)) == 0, "same seed: same shuffle");
	mnist_net_rng_seed(&b, 124);
	for (i = 0; i < 1000; i++)
		y[i] = i;
	mnist_net_shuffle(&b, y, 1000);
	check(memcmp(x, y, sizeof(x)) != 0, "another seed: another shuffle");
}

static void
check_init(void)
{
	const int	h = 128;
	TestNet		tn;
	double		limit1 = sqrt(6.0 / (NET_INPUTS + h)),
				limit2 = sqrt(6.0 / (h + NET_OUTPUTS)),
				mean = 0.0;
	size_t		i,
				n1 = (size_t) NET_INPUTS * h;
	int			ok = 1;

	testnet_make(&tn, h, 1, 0);
	for (i = 0; i < n1; i++)
	{
		if (fabs(tn.net.w1[i]) > limit1)
			ok = 0;
		mean += tn.net.w1[i];
	}
	for (i = 0; i < (size_t) h * NET_OUTPUTS; i++)
		if (fabs(tn.net.w2[i]) > limit2)
			ok = 0;
	for (i = 0; i < (size_t) h; i++)
		if (tn.net.b1[i] != 0.0f)
			ok = 0;
	for (i = 0; i < NET_OUTPUTS; i++)
		if (tn.net.b2[i] != 0.0f)
			ok = 0;
	mean /= n1;
	check(ok && fabs(mean) < 0.01 * limit1, "Glorot-uniform within limits, zero biases, centred");
	check(tn.net.w1 == tn.net.params && tn.net.b2 + NET_OUTPUTS == tn.net.params + tn.net.n_params,
		  "parameter layout w1, b1, w2, b2");
	testnet_free(&tn);
}

/* Pixel scaling: an image with value p at pixel i reaches the net as exactly (float) p / 255. */
static void
check_scaling(void)
{
	TestNet		tn;
	float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(1));
	uint8_t		image[NET_INPUTS];
	int			ok = 1;

	/* one hidden unit reading every pixel with weight 1; logit 0 = that unit */
	testnet_make(&tn, 1, 1, 0);
	memset(tn.net.params, 0, sizeof(float) * tn.net.n_params);
	for (int i = 0; i < NET_INPUTS; i++)
		tn.net.w1[i] = 1.0f;
	tn.net.w2[0] = 1.0f;
	for (int i = 0; i < NET_INPUTS; i += 13)	/* 13 is prime to 8 and 16: every vector lane */
		for (int p = 0; p < 256; p++)
		{
			float		logits[NET_OUTPUTS],
						want = (float) p / 255.0f;

			memset(image, 0, sizeof(image));
			image[i] = (uint8_t) p;
			mnist_net_predict(&tn.net, image, scratch, NULL, logits);
			if (memcmp(&logits[0], &want, sizeof(float)) != 0)
				ok = 0;
		}
	check(ok, "every pixel value p, in every vector lane, scales to exactly (float) p / 255");
	testnet_free(&tn);
	free(scratch);
}

/*
 * Runs the screen of net over n images against mnist_net_predict: counts the images it
 * decided and those where its class differs from the exact argmax (must be none).
 */
static void
screen_run(MnistNet *net, const uint8_t *images, int n, long *decided, long *wrong)
{
	size_t		size = mnist_screen_size(net->n_hidden);
	void	   *mem = aligned_alloc(64, (size + 63) & ~(size_t) 63);
	size_t		floats = mnist_net_predict_scratch(net->n_hidden);
	float	   *scratch;
	const NetScreen *screen = mnist_screen_build(net, mem);

	if (mnist_screen_scratch(net->n_hidden) > floats)
		floats = mnist_screen_scratch(net->n_hidden);
	scratch = malloc(sizeof(float) * floats);

	for (int r = 0; r < n; r++)
	{
		const uint8_t *image = images + (size_t) r * NET_INPUTS;
		int			exact,
					k;

		exact = mnist_net_predict(net, image, scratch, NULL, NULL);
		k = mnist_screen_classify(screen, image, scratch);
		if (k >= 0)
			(*decided)++;
		if (k >= 0 && k != exact)
			(*wrong)++;
	}
	free(mem);
	free(scratch);
}

/* Random weights of magnitude about scale, with a few 100 times larger. */
static void
fill_random(float *w, size_t n, double scale, uint32_t *seed)
{
	for (size_t i = 0; i < n; i++)
	{
		double		x = ((double) (lcg(seed) % 20001) - 10000.0) / 10000.0 * scale;

		w[i] = (float) (lcg(seed) % 50 == 0 ? x * 100.0 : x);
	}
}

/*
 * The screen (the first layer in integers, high bytes then low bytes): wherever it decides,
 * its class is mnist_net_predict's exact argmax; it decides most images of a trained net; it never
 * decides a tie; random nets of every scale and width with extreme images never make it
 * disagree.
 */
static void
check_screen(void)
{
	const int	n = 600,
				h = 128;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t    *labels = malloc(n);
	uint8_t    *odd = malloc((size_t) 64 * NET_INPUTS);
	TestNet		tn;
	long		decided = 0,
				wrong = 0,
				stress_decided = 0,
				stress_wrong = 0,
				stress_images = 0;
	uint32_t	seed = 99;
	char		msg[200];

	int			stages,
				qmax = mnist_screen_qmax(&stages);

	if (qmax == 0)
	{
		printf("skip: the %s path has no screen\n", mnist_net_cpu_path_name(mnist_net_cpu_path()));
		free(images);
		free(labels);
		free(odd);
		return;
	}
	make_toy(images, labels, n, 5);
	testnet_make(&tn, h, 64, 21);
	train_toy(&tn, images, labels, n, 64, 3, 1, NULL, NULL);
	screen_run(&tn.net, images, n, &decided, &wrong);
	snprintf(msg, sizeof(msg), "screen of a trained net: decided %ld of %d images, %ld differ from the exact class",
			 decided, n, wrong);
	check(wrong == 0 && decided >= n * 9 / 10, msg);

	/* every logit the same function: the exact logits tie, the screen must not decide */
	for (int j = 0; j < h; j++)
		for (int k = 1; k < NET_OUTPUTS; k++)
			tn.net.w2[j * NET_OUTPUTS + k] = tn.net.w2[j * NET_OUTPUTS];
	for (int k = 1; k < NET_OUTPUTS; k++)
		tn.net.b2[k] = tn.net.b2[0];
	decided = wrong = 0;
	screen_run(&tn.net, images, n, &decided, &wrong);
	snprintf(msg, sizeof(msg), "screen on tied logits: decided %ld of %d images (must be 0)", decided, n);
	check(decided == 0 && wrong == 0, msg);

	/* logits apart by a few float roundings: decided or not, never a different class */
	for (int j = 0; j < h; j++)
		for (int k = 1; k < NET_OUTPUTS; k++)
			tn.net.w2[j * NET_OUTPUTS + k] = tn.net.w2[j * NET_OUTPUTS] * (1.0f + k * 1e-6f);
	decided = wrong = 0;
	screen_run(&tn.net, images, n, &decided, &wrong);
	snprintf(msg, sizeof(msg), "screen on nearly tied logits: %ld differ from the exact class", wrong);
	check(wrong == 0, msg);
	testnet_free(&tn);

	/*
	 * The worst cases of the integer weights: one unit, weight 1 at pixel 0 (setting the
	 * scale: w / 255 = q / qmax / 255 ... see screen.c) and at pixels 1..30 a weight whose q
	 * is 256 * 30 + 125.49: with two stages the high byte (stage 1) leaves 125.49 steps out,
	 * the 16-bit q (stage 2, or the one stage) 0.49, all of the same sign; an image of those
	 * 31 pixels at 255.  Logit 1 is a constant swept around the exact logit 0, by steps of
	 * 1/20 of each stage's rounding.
	 */
	for (int stage = 2 - stages; stage < 2; stage++)
	{
		MnistNet	net;
		float	   *params = calloc(mnist_net_param_count(1), sizeof(float));
		float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(1));
		float		logits[NET_OUTPUTS];
		double		off = 30 * (stage == 0 ? 125.49 : 0.49) / qmax;

		mnist_net_bind(&net, 1, params, NULL, NULL);
		net.w1[0] = 1.0f;
		for (int i = 1; i <= 30; i++)
			net.w1[i] = (float) ((256.0 * 30 + 125.49) / qmax);
		net.w2[0] = 1.0f;
		for (int k = 1; k < NET_OUTPUTS; k++)
			net.b2[k] = -1e6f;
		memset(odd, 0, NET_INPUTS);
		memset(odd, 255, 31);
		mnist_net_predict(&net, odd, scratch, NULL, logits);
		decided = wrong = 0;
		for (int d = -40; d <= 40; d++)
		{
			net.b2[1] = (float) (logits[0] + d * off / 20);
			screen_run(&net, odd, 1, &decided, &wrong);
		}
		snprintf(msg, sizeof(msg), "screen at stage %d's worst rounding: decided %ld of 81 margins, %ld differ from the exact class",
				 stage + 1, decided, wrong);
		check(wrong == 0 && decided > 0, msg);
		free(params);
		free(scratch);
	}

	/*
	 * The largest sums: one unit whose every weight is the largest q (+qmax, then -qmax with
	 * a bias that keeps the unit positive), an image of 784 pixels at 255: the integer sum is
	 * 784 * 255 * qmax, which must not overflow (nor saturate).  Logit 1 is swept around the
	 * exact logit 0 by steps of a thousandth of it.
	 */
	for (int sign = 1; sign >= -1; sign -= 2)
	{
		MnistNet	net;
		float	   *params = calloc(mnist_net_param_count(1), sizeof(float));
		float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(1));
		float		logits[NET_OUTPUTS];

		mnist_net_bind(&net, 1, params, NULL, NULL);
		for (int i = 0; i < NET_INPUTS; i++)
			net.w1[i] = (float) sign;
		net.b1[0] = sign > 0 ? 0.0f : 1000.0f;
		net.w2[0] = 1.0f;
		for (int k = 1; k < NET_OUTPUTS; k++)
			net.b2[k] = -1e6f;
		memset(odd, 255, NET_INPUTS);
		mnist_net_predict(&net, odd, scratch, NULL, logits);
		decided = wrong = 0;
		for (int d = -40; d <= 40; d++)
		{
			net.b2[1] = (float) (logits[0] * (1.0 + d * 1e-3));
			screen_run(&net, odd, 1, &decided, &wrong);
		}
		snprintf(msg, sizeof(msg), "screen at its largest sum (weights %cqmax, pixels 255): decided %ld of 81 margins, %ld differ from the exact class",
				 sign > 0 ? '+' : '-', decided, wrong);
		check(wrong == 0 && decided >= 70, msg);
		free(params);
		free(scratch);
	}

	/*
	 * Random nets: widths that are and are not multiples of the vector width, weights from
	 * 1e-3 to 1e3 with outliers, large biases; images: toy ones, all 255, all 0, one pixel
	 * anywhere, random dense.
	 */
	for (int trial = 0; trial < 60; trial++)
	{
		int			hh = 1 + (int) (lcg(&seed) % 300);
		double		scale = pow(10.0, (double) (lcg(&seed) % 7) - 3.0);
		MnistNet	net;
		float	   *params = malloc(sizeof(float) * mnist_net_param_count(hh));

		mnist_net_bind(&net, hh, params, NULL, NULL);
		fill_random(net.w1, (size_t) NET_INPUTS * hh, scale, &seed);
		fill_random(net.b1, hh, scale * 50.0, &seed);
		fill_random(net.w2, (size_t) hh * NET_OUTPUTS, 1.0, &seed);
		fill_random(net.b2, NET_OUTPUTS, scale * 10.0, &seed);
		memset(odd, 0, (size_t) 64 * NET_INPUTS);
		memset(odd, 255, NET_INPUTS);
		for (int r = 2; r < 32; r++)
			odd[(size_t) r * NET_INPUTS + lcg(&seed) % NET_INPUTS] = (uint8_t) (1 + lcg(&seed) % 255);
		for (int r = 32; r < 64; r++)
			for (int i = 0; i < NET_INPUTS; i++)
				odd[(size_t) r * NET_INPUTS + i] = (uint8_t) lcg(&seed);
		screen_run(&net, odd, 64, &stress_decided, &stress_wrong);
		screen_run(&net, images + (size_t) (trial % 10) * 60 * NET_INPUTS, 60,
				   &stress_decided, &stress_wrong);
		stress_images += 124;
		free(params);
	}
	snprintf(msg, sizeof(msg), "screen on 60 random nets: decided %ld of %ld images, %ld differ from the exact class",
			 stress_decided, stress_images, stress_wrong);
	check(stress_wrong == 0 && stress_decided > stress_images / 2, msg);

	free(images);
	free(labels);
	free(odd);
}

/*
 * A real data set (test/prepare-data's IDX files in $MNIST_DATA, by default
 * /var/cache/mnist_ml/data): a net trained on its training set, and its test images.
 */
typedef struct DataSet
{
	const char *name;			/* digits or fashion */
	TestNet		tn;
	uint8_t    *test;
	int			n_test;
} DataSet;

/* The contents of an IDX file after its header of dims dimensions, and its first dimension. */
static uint8_t *
read_idx(const char *set, const char *file, int dims, int *n)
{
	const char *dir = getenv("MNIST_DATA") ? getenv("MNIST_DATA") : "/var/cache/mnist_ml/data";
	char		path[4096];
	FILE	   *f;
	unsigned char head[16];
	size_t		bytes;
	uint8_t    *data = NULL;

	snprintf(path, sizeof(path), "%s/%s/%s", dir, set, file);
	f = fopen(path, "rb");
	if (f == NULL || fread(head, 4 + 4 * dims, 1, f) != 1 || head[2] != 8 || head[3] != dims)
	{
		printf("cannot read %s\n", path);
		if (f)
			fclose(f);
		return NULL;
	}
	*n = (int) ((uint32_t) head[4] << 24 | (uint32_t) head[5] << 16 | (uint32_t) head[6] << 8 | head[7]);
	bytes = (size_t) *n * (dims == 3 ? NET_INPUTS : 1);
	data = malloc(bytes);
	if (fread(data, 1, bytes, f) != bytes)
	{
		printf("short file %s\n", path);
		free(data);
		data = NULL;
	}
	fclose(f);
	return data;
}

/* Loads set and trains a 128-unit net on its 60,000 training images, 1 epoch; false if unreadable. */
static bool
dataset_load(DataSet *d, const char *set)
{
	int			n,
				n_labels;
	uint8_t    *images = read_idx(set, "train-images-idx3-ubyte", 3, &n),
			   *labels = read_idx(set, "train-labels-idx1-ubyte", 1, &n_labels);

	d->name = set;
	d->test = read_idx(set, "t10k-images-idx3-ubyte", 3, &d->n_test);
	if (images == NULL || labels == NULL || d->test == NULL || n != n_labels)
	{
		free(images);
		free(labels);
		free(d->test);
		d->test = NULL;
		return false;
	}
	testnet_make(&d->tn, 128, 64, 5);
	train_toy(&d->tn, images, labels, n, 64, 1, 3, NULL, NULL);
	free(images);
	free(labels);
	return true;
}

/*
 * The screen of the path in use over every test image of each data set: never a class other
 * than mnist_net_predict's (on this path), and most images decided.
 */
static void
check_screen_data(DataSet *sets, int n_sets)
{
	char		msg[200];
	int			stages;

	if (mnist_screen_qmax(&stages) == 0)
		return;
	for (int i = 0; i < n_sets; i++)
	{
		long		decided = 0,
					wrong = 0;

		screen_run(&sets[i].tn.net, sets[i].test, sets[i].n_test, &decided, &wrong);
		snprintf(msg, sizeof(msg), "screen on the %d %s test images: decided %ld (%.2f%%), %ld differ from the exact class",
				 sets[i].n_test, sets[i].name, decided, 100.0 * decided / sets[i].n_test, wrong);
		check(wrong == 0 && decided >= sets[i].n_test * 9 / 10, msg);
	}
}

/* Trains the toy net of check_paths on the path in use; returns its held-out logits. */
static void
train_on_path(NetCpuPath path, const uint8_t *images, const uint8_t *labels, int n,
			  const uint8_t *test_images, int n_test, TestNet *tn, float *logits)
{
	float	   *scratch = malloc(sizeof(float) * mnist_net_predict_scratch(32));

	mnist_net_set_cpu_path(path);
	testnet_make(tn, 32, 64, 5);
	train_toy(tn, images, labels, n, 64, 4, 5, NULL, NULL);
	for (int i = 0; i < n_test; i++)
		mnist_net_predict(&tn->net, test_images + (size_t) i * NET_INPUTS, scratch, NULL,
					logits + (size_t) i * NET_OUTPUTS);
	free(scratch);
}

/*
 * Every other path against the baseline, the same training from the same seed.  Paths that
 * multiply-add with FMA must give bit-identical models (the README's determinism rule); the
 * baseline has no FMA (unless the build targets it, as -march=native may), so there the
 * rounding differs and the models must only agree: the same held-out classes, logits close.
 */
static void
check_paths(const NetCpuPath *paths, int n_paths)
{
	const int	n = 2000,
				n_test = 500;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t    *labels = malloc(n);
	uint8_t    *test_images = malloc((size_t) n_test * NET_INPUTS);
	uint8_t    *test_labels = malloc(n_test);
	float	   *ref_logits = malloc(sizeof(float) * n_test * NET_OUTPUTS);
	float	   *fma_logits = malloc(sizeof(float) * n_test * NET_OUTPUTS);
	float	   *logits = malloc(sizeof(float) * n_test * NET_OUTPUTS);
	TestNet		ref,
				fma = {0},
				tn;
	int			have_fma = 0;
	char		msg[300];

	make_toy(images, labels, n, 1);
	make_toy(test_images, test_labels, n_test, 99);
	train_on_path(NET_CPU_BASELINE, images, labels, n, test_images, n_test, &ref, ref_logits);
	for (int p = 0; p < n_paths; p++)
	{
		size_t		np = mnist_net_param_count(32);
		double		worst_param = 0.0,
					worst_logit = 0.0;
		int			same_class = 0;

		if (paths[p] == NET_CPU_BASELINE)
			continue;
		train_on_path(paths[p], images, labels, n, test_images, n_test, &tn, logits);
		for (size_t i = 0; i < np; i++)
			worst_param = fmax(worst_param, fabs(tn.net.params[i] - ref.net.params[i]));
		for (int i = 0; i < n_test; i++)
		{
			for (int k = 0; k < NET_OUTPUTS; k++)
				worst_logit = fmax(worst_logit, fabs(logits[i * NET_OUTPUTS + k] - ref_logits[i * NET_OUTPUTS + k]));
			same_class += mnist_net_argmax10(logits + i * NET_OUTPUTS) == mnist_net_argmax10(ref_logits + i * NET_OUTPUTS);
		}
		snprintf(msg, sizeof(msg), "path %s vs baseline after 4 toy epochs: parameters within %.1e, held-out logits within %.1e, %d of %d classes the same",
				 mnist_net_cpu_path_name(paths[p]), worst_param, worst_logit, same_class, n_test);
		check(worst_param < 1e-4 && worst_logit < 1e-3 && same_class >= n_test * 99 / 100, msg);
#ifdef __FMA__
		snprintf(msg, sizeof(msg), "path %s = baseline bit for bit (this build gives the baseline FMA)",
				 mnist_net_cpu_path_name(paths[p]));
		check(memcmp(tn.net.params, ref.net.params, sizeof(float) * np) == 0, msg);
#endif
		if (have_fma)
		{
			snprintf(msg, sizeof(msg), "path %s = path avx2 bit for bit (model and held-out logits)",
					 mnist_net_cpu_path_name(paths[p]));
			check(memcmp(tn.net.params, fma.net.params, sizeof(float) * np) == 0 &&
				  memcmp(tn.net.adam_m, fma.net.adam_m, sizeof(float) * np) == 0 &&
				  memcmp(tn.net.adam_v, fma.net.adam_v, sizeof(float) * np) == 0 &&
				  memcmp(logits, fma_logits, sizeof(float) * n_test * NET_OUTPUTS) == 0, msg);
			testnet_free(&tn);
		}
		else
		{
			fma = tn;
			memcpy(fma_logits, logits, sizeof(float) * n_test * NET_OUTPUTS);
			have_fma = 1;
		}
	}
	testnet_free(&ref);
	if (have_fma)
		testnet_free(&fma);
	free(images);
	free(labels);
	free(test_images);
	free(test_labels);
	free(ref_logits);
	free(fma_logits);
	free(logits);
}

/*
 * Training with 1, 2 and 3 threads, the shares of the threads moved every few batches as if
 * one thread were much slower, then much faster: the same parameters and Adam state, bit for
 * bit (batches of 64 and of 150, which the trainer splits in rounds).
 */
static void
check_threads(void)
{
	const int	n = 1500,
				h = 100;
	uint8_t    *images = malloc((size_t) n * NET_INPUTS);
	uint8_t    *labels = malloc(n);
	size_t		np = mnist_net_param_count(h);
	NetAdam		adam = {0.001f, 0.9f, 0.999f, 1e-7f};
	char		msg[200];

	make_toy(images, labels, n, 3);
	for (int batch = 64; batch <= 150; batch += 86)
	{
		MnistNet	net[3];
		int			moves = 0;

		for (int threads = 1; threads <= 3; threads++)
		{
			MnistNet   *nt = &net[threads - 1];
			void	   *mem = malloc(mnist_net_trainer_size(h, batch, threads));
			NetPool    *pool = threads > 1 ? mnist_net_pool_start(malloc(mnist_net_pool_size()), threads) : NULL;
			NetTrainer *t;
			NetRng		rng;
			uint32_t	idx[1500];
			double		loss_sum = 0;
			int64_t		correct = 0;

			mnist_net_bind(nt, h, aligned_alloc(64, (np * sizeof(float) + 63) / 64 * 64),
						   calloc(np, sizeof(float)), calloc(np, sizeof(float)));
			mnist_net_init_glorot(nt, 7);
			t = mnist_net_trainer_bind(mem, nt, batch, threads);
			mnist_net_trainer_set_pool(t, pool);
			mnist_net_rng_seed(&rng, 7);
			for (int i = 0; i < n; i++)
				idx[i] = i;
			for (int e = 0; e < 2; e++)
			{
				mnist_net_shuffle(&rng, idx, n);
				for (int i = 0, b = 0; i < n; i += batch, b++)
				{
					mnist_net_train_batch(t, &adam, images, labels, idx + i,
										  n - i < batch ? n - i : batch, &loss_sum, &correct);
					if (threads > 1 && b % 3 == 2)
					{
						int			before[NET_MAX_THREADS + 1];

						/* thread 0 ten times slower (then faster) than the others */
						memcpy(before, t->bounds, sizeof(before));
						for (int w = 0; w < threads; w++)
						{
							t->worker[w].columns = 1000;
							t->worker[w].busy_ns = (w == 0) == (b % 2 == 0) ? 10000 : 1000;
						}
						mnist_net_trainer_balance(t);
						moves += memcmp(before, t->bounds, sizeof(before)) != 0;
					}
				}
			}
			mnist_net_trainer_sync(t);
			mnist_net_pool_stop(pool);
			free(pool);
			free(mem);
		}
		snprintf(msg, sizeof(msg),
				 "batch %d: 1, 2 and 3 threads, their shares moved %d times: the same parameters and Adam state",
				 batch, moves);
		check(moves >= 4 &&
			  memcmp(net[0].params, net[1].params, np * sizeof(float)) == 0 &&
			  memcmp(net[0].params, net[2].params, np * sizeof(float)) == 0 &&
			  memcmp(net[0].adam_m, net[1].adam_m, np * sizeof(float)) == 0 &&
			  memcmp(net[0].adam_m, net[2].adam_m, np * sizeof(float)) == 0 &&
			  memcmp(net[0].adam_v, net[1].adam_v, np * sizeof(float)) == 0 &&
			  memcmp(net[0].adam_v, net[2].adam_v, np * sizeof(float)) == 0, msg);
		for (int i = 0; i < 3; i++)
		{
			free(net[i].params);
			free(net[i].adam_m);
			free(net[i].adam_v);
		}
	}
	free(images);
	free(labels);
}

int
main(void)
{
	/* every path, best last, so that the FMA paths are compared with avx2 */
	static const NetCpuPath all[] = {NET_CPU_BASELINE, NET_CPU_AVX2, NET_CPU_AVXVNNI, NET_CPU_AVX512};
	NetCpuPath	paths[4];
	int			n_paths = 0;
	DataSet		sets[2] = {0};

	check_init();
	check_shuffle();
	/* the real data sets' nets, trained on the best path */
	mnist_net_set_cpu_path(NET_CPU_AUTO);
	check(dataset_load(&sets[0], "digits") && dataset_load(&sets[1], "fashion"),
		  "the digits and Fashion-MNIST IDX files load (MNIST_DATA)");
	for (int p = 0; p < 4; p++)
	{
		if (!mnist_net_cpu_supports(all[p]))
		{
			printf("skip: this CPU cannot run the %s path\n", mnist_net_cpu_path_name(all[p]));
			continue;
		}
		paths[n_paths++] = all[p];
		mnist_net_set_cpu_path(all[p]);
		printf("-- path %s\n", mnist_net_cpu_path_name(all[p]));
		check_gradients();
		check_predict();
		check_learning_and_determinism();
		check_scaling();
		check_screen();
		if (sets[1].test != NULL)
			check_screen_data(sets, 2);
		check_threads();
	}
	for (int i = 0; i < 2; i++)
		if (sets[i].test != NULL)
		{
			testnet_free(&sets[i].tn);
			free(sets[i].test);
		}
	printf("-- every path against the baseline\n");
	check_paths(paths, n_paths);
	printf("%s\n", failures ? "net_check: FAILED" : "net_check: all passed");
	return failures ? 1 : 0;
}

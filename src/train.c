/*
 * train.c
 *		Training: mnist_train(source regclass, ...) reads a relation into a compact TrainSet
 *		and mnist_train_and_store() (shared with mnist_train_topic) validates the
 *		hyperparameters, trains the network of net.c with Adam on shuffled mini-batches,
 *		reports each epoch, stores the model row and deploys it: always, never, or through
 *		the gate (if its validation accuracy is at least the deployed model's, both measured
 *		on the same rows in this call, the deployed one at decision time under the name's
 *		lock).
 */
#include "postgres.h"

#include <math.h>
#include <time.h>

#include "fmgr.h"
#include "miscadmin.h"
#include "tcop/utility.h"
#include "utils/builtins.h"
#include "utils/float.h"
#include "utils/json.h"
#include "utils/memutils.h"

#include "deploy.h"
#include "model.h"
#include "net.h"
#include "net_pool.h"
#include "source.h"
#include "train.h"

#define MAX_EPOCHS			1000
#define MAX_BATCH_SIZE		65536
void
mnist_train_options_gate(TrainOptions *opt, FunctionCallInfo fcinfo, int argno)
{
	char	   *deploy;

	opt->validation = PG_ARGISNULL(argno) ? InvalidOid : PG_GETARG_OID(argno);
	if (PG_ARGISNULL(argno + 1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("deploy must not be null")));
	deploy = text_to_cstring(PG_GETARG_TEXT_PP(argno + 1));
	if (strcmp(deploy, "always") == 0)
		opt->deploy = TRAIN_DEPLOY_ALWAYS;
	else if (strcmp(deploy, "never") == 0)
		opt->deploy = TRAIN_DEPLOY_NEVER;
	else if (strcmp(deploy, "if_better") == 0)
		opt->deploy = TRAIN_DEPLOY_IF_BETTER;
	else
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("deploy must be 'always', 'never' or 'if_better', not '%s'", deploy)));
}

void
mnist_train_options_ungated(TrainOptions *opt)
{
	opt->validation = InvalidOid;
	opt->deploy = TRAIN_DEPLOY_NEWEST;
}

void
mnist_train_options_validate(const TrainOptions *opt)
{
	/* fail now rather than after training when the model cannot be stored */
	PreventCommandIfReadOnly("mnist_train()");
	PreventCommandDuringRecovery("mnist_train()");

	mnist_model_name_check(opt->model_name);
	if (opt->epochs < 1 || opt->epochs > MAX_EPOCHS)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("epochs must be between 1 and %d, not %d", MAX_EPOCHS, opt->epochs)));
	if (opt->batch_size < 1 || opt->batch_size > MAX_BATCH_SIZE)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("batch_size must be between 1 and %d, not %d",
						MAX_BATCH_SIZE, opt->batch_size)));
	if (!(opt->learning_rate > 0.0 && opt->learning_rate <= 1.0))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("learning_rate must be greater than 0 and at most 1, not %g",
						opt->learning_rate)));
	if (opt->hidden_units < 1 || opt->hidden_units > MNIST_MAX_HIDDEN)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("hidden_units must be between 1 and %d, not %d",
						MNIST_MAX_HIDDEN, opt->hidden_units)));
	if (opt->deploy == TRAIN_DEPLOY_IF_BETTER && !OidIsValid(opt->validation))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("deploy => 'if_better' needs a validation table"),
				 errhint("Pass validation => 'a_table' with labelled rows held out from training.")));
}

static double
seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - start->tv_sec) + (now.tv_nsec - start->tv_nsec) / 1e9;
}

/* CPU seconds of this process (all its threads) so far. */
static double
cpu_seconds(void)
{
	struct timespec now;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &now);
	return now.tv_sec + now.tv_nsec / 1e9;
}

/* Appends "key": number (shortest exact form) to a JSON object being built. */
static void
json_number(StringInfo buf, const char *key, double value)
{
	if (buf->data[buf->len - 1] != '{')
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfo(buf, ": %s", float8out_internal(value));
}

/* SourceRowFn adding a row to a TrainSet. */
static void
add_row(void *arg, const uint8 *pixels, int label)
{
	mnist_trainset_add((TrainSet *) arg, pixels, label);
}

void
mnist_train_read_validation(const TrainOptions *opt, const char *pixels_column,
					  const char *label_column, bool bounded, TrainSet *vset)
{
	int64		rows = mnist_source_estimated_rows(opt->validation);

	if (bounded)
		mnist_trainset_init_bounded(vset, rows);
	else
		mnist_trainset_init(vset, rows);
	mnist_source_scan(opt->validation, pixels_column, label_column, add_row, vset);
	if (vset->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("validation table %s has no rows", mnist_source_relation_name(opt->validation))));
}

/* Mean cross-entropy and accuracy of net on a set (a spilled one read window by window). */
static void
evaluate_set(const MnistNet *net, TrainSet *set, double *loss, double *accuracy)
{
	float	   *scratch = palloc(mnist_net_predict_scratch(net->n_hidden) * sizeof(float));
	double		loss_sum = 0;
	int64		correct = 0;

	for (int64 first = 0; first < set->n; first += set->capacity)
	{
		int64		count = Min(set->capacity, set->n - first);

		if (set->spill)
			mnist_trainset_read(set, first, count, 0);
		for (int64 i = 0; i < count; i++)
		{
			float		logits[NET_OUTPUTS];
			int			k = mnist_net_predict(net, set->images + i * MNIST_PIXELS, scratch, NULL, logits);

			if ((i & 1023) == 0)
				CHECK_FOR_INTERRUPTS();
			loss_sum += mnist_net_cross_entropy(logits, set->labels[i]);
			correct += (k == set->labels[i]);
		}
	}
	pfree(scratch);
	*loss = loss_sum / set->n;
	*accuracy = (double) correct / set->n;
}

/* NetCheckFn: query cancel and statement_timeout inside a mini-batch. */
static void
check_interrupts(void *arg)
{
	CHECK_FOR_INTERRUPTS();
}

void
mnist_train_init_net(const TrainOptions *opt, MnistNet *net, int64 *init_id)
{
	int			h = opt->hidden_units;
	size_t		p = mnist_net_param_count(h);

	*init_id = 0;
	/* fresh Glorot weights, or those of the initial model with its Adam state */
	if (opt->init_model_id != 0)
	{
		*init_id = opt->init_model_id;
		*net = mnist_model_load_id(*init_id, true)->net;
		if (net->n_hidden != h)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("model id " INT64_FORMAT " has %d hidden units, not %d",
							*init_id, net->n_hidden, h)));
	}
	else if (opt->init_model != NULL)
	{
		bytea	   *w = mnist_model_fetch_weights(opt->init_model, init_id);

		mnist_weights_decode(w, net);
		if (net->n_hidden != h)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("init_model \"%s\" has %d hidden units, not %d",
							opt->init_model, net->n_hidden, h),
					 errhint("Pass hidden_units => %d to continue training it.", net->n_hidden)));
		pfree(w);
	}
	else
	{
		mnist_net_bind(net, h, mnist_alloc_aligned64(p * sizeof(float)),
				 mnist_alloc_aligned64(p * sizeof(float)),
				 mnist_alloc_aligned64(p * sizeof(float)));
		mnist_net_init_glorot(net, (uint64) opt->seed);
	}
}

/* What one epoch trains with: the trainer, Adam's settings and the shuffles' generator. */
typedef struct TrainEpoch
{
	NetTrainer *trainer;
	NetAdam		adam;
	NetRng		rng;
	int			batch_size;
	uint32	   *idx;			/* set->capacity row numbers */
	double		loss_sum;
	int64		correct;
} TrainEpoch;

/* Trains on the rows idx[0..n-1] of the set's arrays in mini-batches. */
static void
train_batches(TrainEpoch *ep, const TrainSet *set, const uint32 *idx, int64 n)
{
	for (int64 off = 0; off < n; off += ep->batch_size)
	{
		CHECK_FOR_INTERRUPTS();
		mnist_net_train_batch(ep->trainer, &ep->adam, set->images, set->labels, idx + off,
							  (int) Min(ep->batch_size, n - off), &ep->loss_sum, &ep->correct);
	}
}

/*
 * A spilled set is read in blocks of rows, each a 16th of what memory holds.  Every epoch
 * shuffles the order of the blocks, and fills memory with the next blocks in that order
 * (after the rows carried over, fewer than a batch); the rows in memory are shuffled and
 * trained in full batches, and those left over carried to the next window.  The last window
 * ends with a partial batch, as an epoch in memory does.
 */
#define SPILL_BLOCKS_IN_MEMORY	16

static int64
spill_block_rows(const TrainSet *set)
{
	return Max(set->capacity / SPILL_BLOCKS_IN_MEMORY, 1);
}

/* ERROR unless memory holds a batch and a block more than the rows carried over. */
static void
spill_check(const TrainSet *set, int batch_size)
{
	if (batch_size - 1 + spill_block_rows(set) > set->capacity)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("mnist_ml.train_memory holds " INT64_FORMAT " rows, too few for batch_size %d",
						set->capacity, batch_size),
				 errdetail("The source has " INT64_FORMAT " rows and was spilled to a temporary file.",
						   set->n),
				 errhint("Raise mnist_ml.train_memory (a row takes %d bytes), or use a smaller batch_size.",
						 MNIST_ROW_BYTES)));
}

static void
train_epoch_spilled(TrainEpoch *ep, TrainSet *set, uint32 *order, uint8 *carry)
{
	int64		block = spill_block_rows(set);
	int64		nblocks = (set->n + block - 1) / block;
	int64		next = 0;		/* next block in order */
	int64		held = 0;		/* rows carried over, at the start of the arrays */

	mnist_net_shuffle(&ep->rng, order, nblocks);
	while (next < nblocks)
	{
		int64		m = held,
					trained;

		while (next < nblocks)
		{
			int64		first = order[next] * block;
			int64		count = Min(block, set->n - first);

			if (m + count > set->capacity)
				break;
			mnist_trainset_read(set, first, count, m);
			m += count;
			next++;
			CHECK_FOR_INTERRUPTS();
		}
		for (int64 i = 0; i < m; i++)
			ep->idx[i] = (uint32) i;
		mnist_net_shuffle(&ep->rng, ep->idx, m);
		trained = next < nblocks ? m - m % ep->batch_size : m;
		train_batches(ep, set, ep->idx, trained);

		/* the rows left over go to the start, through carry (they may be anywhere) */
		held = m - trained;
		for (int64 i = 0; i < held; i++)
		{
			uint32		r = ep->idx[trained + i];

			memcpy(carry + i * MNIST_ROW_BYTES, set->images + (int64) r * MNIST_PIXELS, MNIST_PIXELS);
			carry[i * MNIST_ROW_BYTES + MNIST_PIXELS] = set->labels[r];
		}
		for (int64 i = 0; i < held; i++)
		{
			memcpy(set->images + i * MNIST_PIXELS, carry + i * MNIST_ROW_BYTES, MNIST_PIXELS);
			set->labels[i] = carry[i * MNIST_ROW_BYTES + MNIST_PIXELS];
		}
	}
}

/* Memory context callback: the pool's threads end with the training's memory (or its error). */
static void
stop_pool(void *arg)
{
	mnist_net_pool_stop((NetPool *) arg);
}

/* threads threads for trainer, or none for 1; stopped when the context goes. */
static NetPool *
start_pool(NetTrainer *trainer, int threads)
{
	MemoryContextCallback *cb;
	NetPool    *pool;

	if (threads <= 1)
		return NULL;
	cb = palloc(sizeof(MemoryContextCallback));
	pool = mnist_net_pool_start(palloc(mnist_net_pool_size()), threads);
	if (pool == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_RESOURCES),
				 errmsg("could not start %d training threads: %m", threads),
				 errhint("Lower mnist_ml.train_threads.")));
	cb->func = stop_pool;
	cb->arg = pool;
	MemoryContextRegisterResetCallback(CurrentMemoryContext, cb);
	mnist_net_trainer_set_pool(trainer, pool);
	return pool;
}

void
mnist_train_fit(TrainSet *set, const TrainOptions *opt, MnistNet *net, TrainFit *fit)
{
	TrainEpoch	ep = {.adam = {(float) opt->learning_rate, 0.9f, 0.999f, 1e-7f},
	.batch_size = opt->batch_size};
	uint32	   *order = NULL;
	uint8	   *carry = NULL;
	StringInfoData epochs;
	struct timespec start;
	int			h = net->n_hidden;
	int			threads = mnist_train_threads;	/* mnist_ml.train_threads */
	NetPool    *pool;

	if (set->spill)
	{
		int64		nblocks;

		spill_check(set, opt->batch_size);
		nblocks = (set->n + spill_block_rows(set) - 1) / spill_block_rows(set);
		order = MemoryContextAllocHuge(CurrentMemoryContext, nblocks * sizeof(uint32));
		for (int64 i = 0; i < nblocks; i++)
			order[i] = (uint32) i;
		carry = palloc((Size) opt->batch_size * MNIST_ROW_BYTES);
	}
	ep.trainer = mnist_net_trainer_bind(mnist_alloc_aligned64(mnist_net_trainer_size(h, opt->batch_size, threads)),
										net, opt->batch_size, threads);
	mnist_net_trainer_set_check(ep.trainer, check_interrupts, NULL);
	pool = start_pool(ep.trainer, threads);
	ep.idx = MemoryContextAllocHuge(CurrentMemoryContext, Min(set->n, set->capacity) * sizeof(uint32));
	for (int64 i = 0; i < set->n && !set->spill; i++)
		ep.idx[i] = (uint32) i;
	mnist_net_rng_seed(&ep.rng, (uint64) opt->seed);

	initStringInfo(&epochs);
	appendStringInfoChar(&epochs, '[');
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (int e = 1; e <= opt->epochs; e++)
	{
		struct timespec estart;
		double		secs,
					cpu = cpu_seconds();

		clock_gettime(CLOCK_MONOTONIC, &estart);
		ep.loss_sum = 0;
		ep.correct = 0;
		if (set->spill)
			train_epoch_spilled(&ep, set, order, carry);
		else
		{
			mnist_net_shuffle(&ep.rng, ep.idx, set->n);
			train_batches(&ep, set, ep.idx, set->n);
		}
		secs = seconds_since(&estart);
		cpu = cpu_seconds() - cpu;
		fit->loss = ep.loss_sum / set->n;
		fit->accuracy = (double) ep.correct / set->n;
		if (!isfinite(fit->loss))
			ereport(ERROR,
					(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
					 errmsg("training diverged in epoch %d (loss is not finite)", e),
					 errhint("Use a smaller learning_rate.")));
		if (mnist_progress)
			ereport(NOTICE,
					(errmsg("epoch %d/%d: loss %.4f, accuracy %.4f, %.2f s, %.0f rows/s (CPU %.2f s)",
							e, opt->epochs, fit->loss, fit->accuracy, secs, set->n / Max(secs, 1e-9),
							cpu)));

		appendStringInfoString(&epochs, e > 1 ? ", {" : "{");
		json_number(&epochs, "epoch", e);
		json_number(&epochs, "loss", fit->loss);
		json_number(&epochs, "accuracy", fit->accuracy);
		json_number(&epochs, "seconds", secs);
		appendStringInfoChar(&epochs, '}');
	}
	appendStringInfoChar(&epochs, ']');
	fit->epochs_json = epochs.data;
	fit->seconds = seconds_since(&start);
	mnist_net_pool_stop(pool);
	mnist_net_trainer_sync(ep.trainer);
}

int64
mnist_train_store(int64 rows, const TrainOptions *opt, const MnistNet *net, int64 init_id,
			const TrainFit *fit, const char *source_json, TrainSet *vset)
{
	StringInfoData hyper,
				metrics;
	double		vloss = 0,
				vaccuracy = 0,
				dloss = 0,
				daccuracy = 0;
	int64		deployed_id = 0;
	bool		deploy;
	StringInfoData reason;
	int64		id;

	initStringInfo(&hyper);
	appendStringInfoChar(&hyper, '{');
	json_number(&hyper, "epochs", opt->epochs);
	json_number(&hyper, "batch_size", opt->batch_size);
	json_number(&hyper, "learning_rate", opt->learning_rate);
	json_number(&hyper, "hidden_units", net->n_hidden);
	appendStringInfo(&hyper, ", \"seed\": " INT64_FORMAT ", \"init_model\": ", opt->seed);
	if (opt->init_model)
		escape_json(&hyper, opt->init_model);
	else
		appendStringInfoString(&hyper, "null");
	appendStringInfoString(&hyper, ", \"optimizer\": \"adam\"");
	appendStringInfoString(&hyper, ", \"beta1\": 0.9, \"beta2\": 0.999, \"epsilon\": 1e-07");
	appendStringInfoChar(&hyper, '}');

	/*
	 * The deploy decision, under the name's lock (concurrent decisions of one name queue here),
	 * against the model deployed now: both measured on the validation rows.
	 */
	if (vset)
		evaluate_set(net, vset, &vloss, &vaccuracy);
	mnist_model_lock(opt->model_name, NULL);
	if (vset)
	{
		deployed_id = mnist_model_served_id(opt->model_name);
		if (deployed_id != 0)
			evaluate_set(&mnist_model_load_id(deployed_id, false)->net, vset, &dloss, &daccuracy);
	}
	deploy = opt->deploy == TRAIN_DEPLOY_ALWAYS || opt->deploy == TRAIN_DEPLOY_NEWEST ||
		(opt->deploy == TRAIN_DEPLOY_IF_BETTER && (deployed_id == 0 || vaccuracy >= daccuracy));
	initStringInfo(&reason);
	appendStringInfoString(&reason, opt->deploy == TRAIN_DEPLOY_IF_BETTER ? "gate" : "trained");
	if (vset && deployed_id != 0)
		appendStringInfo(&reason, ": validation accuracy %.4f %s %.4f of model " INT64_FORMAT,
						 vaccuracy, vaccuracy >= daccuracy ? ">=" : "<", daccuracy, deployed_id);
	else if (vset)
		appendStringInfo(&reason, ": validation accuracy %.4f, no model deployed", vaccuracy);

	initStringInfo(&metrics);
	appendStringInfo(&metrics, "{\"rows\": " INT64_FORMAT, rows);
	json_number(&metrics, "seconds", fit->seconds);
	json_number(&metrics, "loss", fit->loss);
	json_number(&metrics, "accuracy", fit->accuracy);
	appendStringInfo(&metrics, ", \"epochs\": %s, \"source\": %s", fit->epochs_json, source_json);
	if (init_id != 0)
		appendStringInfo(&metrics, ", \"init_model_id\": " INT64_FORMAT, init_id);
	appendStringInfo(&metrics, ", \"adam_step\": " INT64_FORMAT, (int64) net->adam_step);
	if (vset)
	{
		appendStringInfoString(&metrics, ", \"validation\": {\"table\": ");
		escape_json(&metrics, mnist_source_relation_name(opt->validation));
		appendStringInfo(&metrics, ", \"rows\": " INT64_FORMAT, vset->n);
		json_number(&metrics, "loss", vloss);
		json_number(&metrics, "accuracy", vaccuracy);
		if (deployed_id != 0)
		{
			appendStringInfo(&metrics, ", \"deployed_model_id\": " INT64_FORMAT, deployed_id);
			json_number(&metrics, "deployed_loss", dloss);
			json_number(&metrics, "deployed_accuracy", daccuracy);
		}
		appendStringInfoChar(&metrics, '}');
	}
	appendStringInfo(&metrics, ", \"deploy\": {\"mode\": \"%s\", \"deployed\": %s, \"reason\": ",
					 opt->deploy == TRAIN_DEPLOY_ALWAYS || opt->deploy == TRAIN_DEPLOY_NEWEST ? "always" :
					 opt->deploy == TRAIN_DEPLOY_NEVER ? "never" : "if_better",
					 deploy ? "true" : "false");
	escape_json(&metrics, reason.data);
	appendStringInfoString(&metrics, "}}");

	id = mnist_model_store(opt->model_name, hyper.data, metrics.data,
						   mnist_weights_encode(net));
	if (deploy && opt->deploy != TRAIN_DEPLOY_NEWEST)
		mnist_deployment_record(opt->model_name, id, reason.data);
	if (vset || (opt->deploy != TRAIN_DEPLOY_ALWAYS && opt->deploy != TRAIN_DEPLOY_NEWEST))
		ereport(NOTICE,
				(errmsg("model " INT64_FORMAT " of \"%s\" %s (%s)", id, opt->model_name,
						deploy ? "deployed" : "stored, not deployed", reason.data)));
	return id;
}

int64
mnist_train_and_store(TrainSet *set, const TrainOptions *opt, const char *source_json,
					  TrainSet *vset)
{
	MnistNet	net;
	int64		init_id,
				id;
	TrainFit	fit;

	mnist_train_options_validate(opt);
	if (set->n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no rows to train on"),
				 errdetail("Source: %s.", source_json)));
	mnist_train_init_net(opt, &net, &init_id);
	mnist_train_fit(set, opt, &net, &fit);
	mnist_trainset_close(set);
	id = mnist_train_store(set->n, opt, &net, init_id, &fit, source_json, vset);
	if (vset)
		mnist_trainset_close(vset);
	return id;
}

/*
 * mnist_train(source regclass, model_name text, epochs int, batch_size int,
 *			   learning_rate float8, hidden_units int, pixels_column name, label_column name,
 *			   seed bigint, init_model text[, validation regclass, deploy text]) RETURNS bigint:
 * 1.0's signature stops at init_model, 1.1's adds validation and deploy (gated).
 */
static Datum
train_relation(FunctionCallInfo fcinfo, bool gated)
{
	static const char *const argnames[] = {"source", "model_name", "epochs", "batch_size",
	"learning_rate", "hidden_units", "pixels_column", "label_column", "seed"};
	TrainOptions opt;
	TrainSet	set,
				vset;
	Oid			relid;
	char	   *relname;
	const char *pixels_column;
	const char *label_column;
	StringInfoData source;
	struct timespec start;
	double		cpu;

	for (int i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	relid = PG_GETARG_OID(0);
	opt.model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	opt.epochs = PG_GETARG_INT32(2);
	opt.batch_size = PG_GETARG_INT32(3);
	opt.learning_rate = PG_GETARG_FLOAT8(4);
	opt.hidden_units = PG_GETARG_INT32(5);
	pixels_column = NameStr(*PG_GETARG_NAME(6));
	label_column = NameStr(*PG_GETARG_NAME(7));
	opt.seed = PG_GETARG_INT64(8);
	opt.init_model = PG_ARGISNULL(9) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(9));
	opt.init_model_id = 0;
	if (gated)
		mnist_train_options_gate(&opt, fcinfo, 10);
	else
		mnist_train_options_ungated(&opt);
	mnist_train_options_validate(&opt);
	if (OidIsValid(opt.validation))
		mnist_train_read_validation(&opt, pixels_column, label_column, true, &vset);

	relname = mnist_source_relation_name(relid);
	/*
	 * sized from the planner's estimate (growing by copies costs as much as reading), up to
	 * what mnist_ml.train_memory holds: the rest spills to a temporary file
	 */
	mnist_trainset_init_bounded(&set, mnist_source_estimated_rows(relid));
	clock_gettime(CLOCK_MONOTONIC, &start);
	cpu = cpu_seconds();
	mnist_source_scan(relid, pixels_column, label_column, add_row, &set);
	if (set.n == 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("source %s has no rows", relname)));
	if (mnist_progress)
		ereport(NOTICE,
				(errmsg("read " INT64_FORMAT " rows of %s in %.2f s (CPU %.2f s)",
						set.n, relname, seconds_since(&start), cpu_seconds() - cpu),
				 set.spill ? errdetail("They exceed mnist_ml.train_memory (" INT64_FORMAT
									   " rows) and were spilled to a temporary file.",
									   set.capacity) : 0));

	initStringInfo(&source);
	appendStringInfoString(&source, "{\"table\": ");
	escape_json(&source, relname);
	appendStringInfoString(&source, ", \"pixels_column\": ");
	escape_json(&source, pixels_column);
	appendStringInfoString(&source, ", \"label_column\": ");
	escape_json(&source, label_column);
	appendStringInfoChar(&source, '}');

	PG_RETURN_INT64(mnist_train_and_store(&set, &opt, source.data,
										  OidIsValid(opt.validation) ? &vset : NULL));
}

/*
 * The SQL entry points: mnist_train_1_1 is bound by the scripts since 1.2 to 1.1's signature (12
 * arguments, unchanged since).  mnist_train is the symbol the released 1.0 and 1.1 install
 * scripts bind, to 1.0's signature (10 arguments) and to 1.1's: for databases not updated
 * yet it tells them apart by their number of arguments.
 */
PG_FUNCTION_INFO_V1(mnist_train_1_1);
PG_FUNCTION_INFO_V1(mnist_train);

Datum
mnist_train_1_1(PG_FUNCTION_ARGS)
{
	return train_relation(fcinfo, true);
}

Datum
mnist_train(PG_FUNCTION_ARGS)
{
	return train_relation(fcinfo, PG_NARGS() == 12);
}

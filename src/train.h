/*
 * train.h
 *		Training shared by mnist_train (a relation) and mnist_train_topic (a Kafka topic).
 */
#ifndef MNIST_TRAIN_H
#define MNIST_TRAIN_H

#include "fmgr.h"

#include "mnist_ml.h"
#include "net.h"
#include "trainset.h"

/* What storing a trained model does to the name's deployment (the deploy argument). */
typedef enum TrainDeploy
{
	TRAIN_DEPLOY_ALWAYS,		/* 'always': deploy it */
	TRAIN_DEPLOY_NEVER,			/* 'never': store it only */
	TRAIN_DEPLOY_IF_BETTER,		/* 'if_better': deploy it if its validation accuracy is at
								 * least the deployed model's */
	TRAIN_DEPLOY_NEWEST			/* the 1.0 functions: no deployment history (a 1.0 database
								 * has no mnist_deployments); the newest model serves */
} TrainDeploy;

/* Hyperparameters as given to the SQL functions (validated by mnist_train_and_store). */
typedef struct TrainOptions
{
	const char *model_name;
	int			epochs;
	int			batch_size;
	double		learning_rate;
	int			hidden_units;
	int64		seed;
	const char *init_model;		/* NULL: fresh Glorot weights */
	int64		init_model_id;	/* if not 0: continue from this stored model (not init_model) */
	Oid			validation;		/* validation relation, or InvalidOid */
	TrainDeploy deploy;
} TrainOptions;

/*
 * The validation and deploy arguments of a training function (1.1's signatures), which are its
 * arguments argno and argno + 1.  ERROR 22023 for a bad deploy value.
 */
extern void mnist_train_options_gate(TrainOptions *opt, FunctionCallInfo fcinfo, int argno);

/* What 1.0's signatures, without validation and deploy, do: no validation, TRAIN_DEPLOY_NEWEST. */
extern void mnist_train_options_ungated(TrainOptions *opt);

/*
 * ERROR unless the hyperparameters are in range (22023) and the transaction can store a model
 * (not read-only, 25006): call before reading a source.
 */
extern void mnist_train_options_validate(const TrainOptions *opt);

/*
 * Reads opt->validation (pixels and labels from those columns, as the caller; bad rows are
 * errors naming the row) into vset, bounded by mnist_ml.train_memory if bounded (a spilled
 * set lives until the end of the transaction).  Call before training, to fail before any work.
 */
extern void mnist_train_read_validation(const TrainOptions *opt, const char *pixels_column,
								  const char *label_column, bool bounded, TrainSet *vset);

/* What training measured (mnist_train_fit). */
typedef struct TrainFit
{
	double		loss;			/* of the last epoch */
	double		accuracy;
	double		seconds;		/* all epochs */
	char	   *epochs_json;	/* [{epoch, loss, accuracy, seconds}, ...] */
} TrainFit;

/*
 * The network to train (in CurrentMemoryContext): fresh Glorot weights, or the model
 * opt->init_model_id or opt->init_model with its Adam state (its id in *init_id, else 0).
 * ERROR if that model has not opt->hidden_units hidden units.
 */
extern void mnist_train_init_net(const TrainOptions *opt, MnistNet *net, int64 *init_id);

/*
 * Trains net on set (not empty) for opt's epochs, reporting each when mnist_ml.progress is on.
 * A set in memory is shuffled whole every epoch; a spilled one block by block (train.c).
 * Needs no transaction (online learning trains between its transactions) unless spilled.
 */
extern void mnist_train_fit(TrainSet *set, const TrainOptions *opt, MnistNet *net, TrainFit *fit);

/*
 * Stores a trained net as a model of opt->model_name (rows: how many it was trained on) and
 * deploys it as opt->deploy says, measuring it and the deployed model on vset (or NULL) under
 * the name's lock; shows the decision in a NOTICE when there is a validation table or deploy
 * is not 'always'.  Returns the new model's id.
 */
extern int64 mnist_train_store(int64 rows, const TrainOptions *opt, const MnistNet *net, int64 init_id,
						 const TrainFit *fit, const char *source_json, TrainSet *vset);

/*
 * Validates opt, trains on set (ERROR when empty), stores the model row with source_json
 * (a JSON object describing the source, e.g. {"table": "public.t"} or {"topic": ...,
 * "offsets": ...}) in its metadata, deploys it as opt->deploy says (vset: the validation
 * rows, or NULL), and returns the new model's id.
 */
extern int64 mnist_train_and_store(TrainSet *set, const TrainOptions *opt,
								   const char *source_json, TrainSet *vset);

#endif							/* MNIST_TRAIN_H */

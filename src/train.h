/*
 * train.h
 *		Training shared by mnist_train (a relation) and mnist_train_topic (a Kafka topic).
 */
#ifndef MNIST_TRAIN_H
#define MNIST_TRAIN_H

#include "mnist_ml.h"

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
} TrainOptions;

/* A compact, growable training set: pixels as uint8, as read (convert per batch). */
typedef struct TrainSet
{
	uint8	   *images;			/* n x MNIST_PIXELS */
	uint8	   *labels;			/* n */
	int64		n;
	int64		capacity;
} TrainSet;

/*
 * ERROR unless the hyperparameters are in range (22023) and the transaction can store a model
 * (not read-only, 25006): call before reading a source.
 */
extern void train_options_validate(const TrainOptions *opt);

/* An empty set with room for expected_rows (it grows beyond if needed). */
extern void trainset_init(TrainSet *set, int64 expected_rows);
extern void trainset_add(TrainSet *set, const uint8 *pixels, int label);

/*
 * Validates opt, trains on set (ERROR when empty), stores the model row with source_json
 * (a JSON object describing the source, e.g. {"table": "public.t"} or {"topic": ..., 
 * "offsets": ...}) in its metadata, and returns the new model's id.
 */
extern int64 mnist_train_and_store(TrainSet *set, const TrainOptions *opt,
								   const char *source_json);

#endif							/* MNIST_TRAIN_H */

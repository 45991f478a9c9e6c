/*
 * mnist_ml.h
 *		Declarations shared across the mnist_ml extension: image geometry and settings.
 */
#ifndef MNIST_ML_H
#define MNIST_ML_H

#include "image.h"				/* MNIST_PIXELS, MNIST_SIDE, MNIST_CLASSES */

/* settings (GUCs), defined in mnist_ml.c */
extern bool mnist_progress;			/* mnist_ml.progress: NOTICE per training epoch */
extern bool mnist_strict_messages;	/* mnist_ml.strict_messages: bad topic message is an ERROR */
extern int	mnist_kafka_timeout_ms;	/* mnist_ml.kafka_timeout_ms: bounded wait for a broker */
extern char *mnist_kafka_bootstrap_servers;	/* mnist_ml.kafka_bootstrap_servers */
extern char *mnist_kafka_properties;	/* mnist_ml.kafka_properties: key=value librdkafka pairs */
extern char *mnist_kafka_properties_file;	/* mnist_ml.kafka_properties_file: one per line */
extern char *mnist_cdc_tables;		/* mnist_ml.cdc_tables: globs of captured tables */
extern char *mnist_cdc_database;	/* mnist_ml.cdc_database */
extern bool mnist_cdc_trace_latency;	/* mnist_ml.cdc_trace_latency: mnist_trace header */
extern bool mnist_cdc_create_topics;	/* mnist_ml.cdc_create_topics: create missing topics */
extern int	mnist_cdc_topic_partitions;	/* mnist_ml.cdc_topic_partitions: -1 broker's default */
extern int	mnist_cdc_topic_replication_factor;	/* mnist_ml.cdc_topic_replication_factor */
/* mnist_ml.cdc_delivery */
typedef enum MnistCdcDelivery
{
	MNIST_CDC_AT_LEAST_ONCE,
	MNIST_CDC_EXACTLY_ONCE
} MnistCdcDelivery;
extern int	mnist_cdc_delivery;		/* mnist_ml.cdc_delivery: a MnistCdcDelivery */
extern int	mnist_cdc_batch_rows;	/* mnist_ml.cdc_batch_rows: rows of a Kafka transaction */
extern int	mnist_cdc_batch_ms;		/* mnist_ml.cdc_batch_ms: duration of a Kafka transaction */
extern char *mnist_topic_prefix;	/* mnist_ml.topic_prefix */
extern char *mnist_online_database;	/* mnist_ml.online_database */
extern int	mnist_model_cache_size;	/* mnist_ml.model_cache_size: kB of decoded models per backend */
extern int	mnist_train_memory;		/* mnist_ml.train_memory: kB of rows, -1: maintenance_work_mem */
extern int	mnist_train_threads;	/* mnist_ml.train_threads: threads of one training */

/* true in the postmaster and the processes it forks when shared_preload_libraries loaded us */
extern bool mnist_preloaded;

#endif							/* MNIST_ML_H */

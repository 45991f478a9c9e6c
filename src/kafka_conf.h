/*
 * kafka_conf.h
 *		librdkafka configuration from mnist_ml's settings, shared by the CDC shipper and the
 *		topic functions.
 */
#ifndef MNIST_KAFKA_CONF_H
#define MNIST_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>

#include "kafka_props.h"

/*
 * A new librdkafka configuration for servers (NULL: mnist_ml.kafka_bootstrap_servers): the
 * caller's defaults (a properties string, or NULL), then mnist_ml.kafka_properties, then
 * mnist_ml.kafka_properties_file, so the user's settings win.  When the caller names servers other than the configured
 * ones, security properties (security.protocol, sasl.*, ssl.*) are left out so configured
 * secrets never reach them; only superusers may name such servers.  ERROR when no servers
 * are known or a property is rejected.
 */
extern rd_kafka_conf_t *mnist_kafka_conf(const char *servers, const char *defaults);

/*
 * mnist_kafka_conf for a consumer: reads committed messages only (isolation.level=
 * read_committed; a user's property that says otherwise is refused with an ERROR by
 * mnist_kafka_conf for every client).
 */
extern rd_kafka_conf_t *mnist_kafka_consumer_conf(const char *servers, const char *defaults);

/* Sets one property, ERROR naming the key (never the value) when librdkafka rejects it. */
extern void mnist_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value);

/*
 * Kafka's rule for topic names: 1 to 249 of [a-zA-Z0-9._-], not "." or "..".  (librdkafka would
 * also take a name starting with "^" as a regular expression.)  _ok tells, _check raises.
 */
extern bool mnist_kafka_topic_name_ok(const char *topic);
extern void mnist_kafka_topic_name_check(const char *topic);

/* SHOW hook of mnist_ml.kafka_properties: the pairs with secret values masked. */
extern const char *mnist_kafka_properties_show(void);

#endif							/* MNIST_KAFKA_CONF_H */

/*
 * topic.h
 *		What the Kafka topic functions share with online learning.
 */
#ifndef MNIST_TOPIC_H
#define MNIST_TOPIC_H

/*
 * ERROR (42602) unless name is a legal Kafka topic name: 1 to 249 of [a-zA-Z0-9._-].
 * (librdkafka would take a name starting with "^" as a regular expression.)
 */
extern void mnist_topic_name_check(const char *name);

#endif							/* MNIST_TOPIC_H */

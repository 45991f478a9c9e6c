/*
 * online.h
 *		Online learning: the jobs (online.c) and the worker that runs them (online_worker.c).
 */
#ifndef MNIST_ONLINE_H
#define MNIST_ONLINE_H

/* "<system identifier>:<database OID>": where a job runs (mnist_online_jobs.started_in). */
extern char *mnist_online_instance_id(void);

/* The database the online learning worker serves (mnist_ml.online_database or cdc_database). */
extern const char *mnist_online_database_name(void);

/* Registers the online learning worker (from _PG_init, when preloaded). */
extern void mnist_online_register(void);

#endif							/* MNIST_ONLINE_H */

/*
 * shipper.c
 *		The change data capture worker: streams its logical slot to Kafka.
 */
#include "postgres.h"

#include "mnist_ml.h"

/* Registers the worker and its shared memory; called from _PG_init when preloaded. */
void
cdc_register(void)
{
}

/*
 * cdc.h
 *		Change data capture shared between the output plugin (decoder.c) and the Kafka
 *		shipper (shipper.c): capture options, per-relation decisions and row extraction.
 */
#ifndef MNIST_CDC_H
#define MNIST_CDC_H

#include <librdkafka/rdkafka.h>

#include "access/htup.h"
#include "access/xlogdefs.h"
#include "datatype/timestamp.h"
#include "storage/spin.h"
#include "utils/hsearch.h"
#include "utils/snapshot.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/rel.h"

/* Options of the output plugin, also used by the shipper's snapshots. */
typedef struct CdcOptions
{
	List	   *tables;			/* schema.table globs (char *); NIL: every table */
	char	   *pixels_column;	/* name of the bytea column */
	char	   *label_column;	/* name of the integer column */
	bool		include_transaction;	/* BEGIN/COMMIT records */
	bool		shipper;		/* internal: records for the Kafka shipper */
} CdcOptions;

/* What to do with one relation, computed once per relation and cached. */
typedef struct CdcRelInfo
{
	Oid			relid;			/* hash key */
	bool		valid;			/* false after a relcache invalidation */
	bool		captured;		/* rows of this relation are sent */
	AttrNumber	pixels_att;
	AttrNumber	label_att;
	Oid			label_type;		/* INT2OID, INT4OID or INT8OID (the base type of a domain) */
	char	   *name;			/* "schema.table", in the cache's context */
	int			name_len;
	char	   *record_name;	/* the same as written in records (mnist_cdc_escape_name) */
	int			record_name_len;
	int			npk;			/* primary key columns, 0 when none */
	AttrNumber	pk_att[INDEX_MAX_KEYS];
	FmgrInfo	pk_out[INDEX_MAX_KEYS];
} CdcRelInfo;

/* name of the shipper's logical slot */
#define CDC_SLOT_NAME "mnist_ml_cdc"

/*
 * A schema or table name as the plugin writes it in a record: backslash, tab, newline and
 * carriage return become \\, \t, \n and \r.  mnist_cdc_unescape_name undoes it in place and returns
 * the new length.
 */
extern void mnist_cdc_escape_name(StringInfo out, const char *name);
extern int	mnist_cdc_unescape_name(char *name, int len);

/* Parses plugin options (DefElem list); ERROR on an unknown or malformed option. */
extern void mnist_cdc_parse_options(List *defelems, CdcOptions *opts);

/* Parses a comma-separated list of schema.table globs into a List of char *. */
extern List *mnist_cdc_parse_globs(const char *globs);

/* Fills info for rel under opts; allocations go into cxt. */
extern void mnist_cdc_relinfo_fill(Relation rel, const CdcOptions *opts, CdcRelInfo *info,
							 MemoryContext cxt);

/*
 * Extracts label and pixels of a captured row.  Returns NULL, or a description of why the
 * row cannot be sent (NULL label, wrong size, ...).  *pixels may point into the tuple.
 * old_tuple (may be NULL): the old row of a decoded UPDATE, logged in full under REPLICA
 * IDENTITY FULL; it supplies pixels that the UPDATE left unchanged out of line, which
 * logical decoding does not carry.
 */
extern const char *mnist_cdc_row_get(const CdcRelInfo *info, HeapTuple tuple, HeapTuple old_tuple,
							   TupleDesc desc, int *label, const uint8 **pixels);

/* The reason mnist_cdc_row_get gives for an unchanged out-of-line value it could not recover. */
extern const char *const mnist_cdc_unchanged_toast;

/* Captured rows skipped in this process, by the plugin or the worker (which publishes it). */
extern uint64 mnist_cdc_rows_skipped;

/* Appends the row's primary key as text (values joined by commas) to out. */
extern void mnist_cdc_row_pk(const CdcRelInfo *info, HeapTuple tuple, TupleDesc desc,
					   StringInfo out);

/* State of the CDC worker in shared memory, shown by mnist_cdc_status(). */
typedef struct CdcShared
{
	slock_t		mutex;
	int			pid;			/* worker process, 0 when none */
	char		state[32];		/* off, blocked, connecting, initial snapshot, streaming... */
	uint64		produced;		/* messages enqueued to librdkafka */
	uint64		acknowledged;	/* messages the broker acknowledged */
	uint64		failed;			/* messages that failed delivery (sent again later) */
	uint64		skipped;		/* captured rows that could not be sent (WARNING each) */
	bool		broker_reachable;
	XLogRecPtr	confirmed_lsn;	/* what the worker last confirmed to its slot */
	char		last_error[256];
	TimestampTz last_error_at;
} CdcShared;

extern CdcShared *mnist_cdc_state;	/* NULL unless preloaded */

/* A librdkafka producer with its topic handles, used by the worker and snapshots. */
typedef struct CdcProducer
{
	rd_kafka_t *rk;
	const char *prefix;			/* topic = prefix.schema.table */
	HTAB	   *topics;			/* schema.table -> rd_kafka_topic_t */
	char		last_name[2 * NAMEDATALEN + 2];
	int			last_len;
	rd_kafka_topic_t *last_rkt;
	uint64		produced;
	void		(*wait) (struct CdcProducer *p);	/* queue full: poll, then retry */
} CdcProducer;

/* Header values of one message. */
typedef struct CdcHeaders
{
	const char *table;
	int			table_len;
	const char *lsn;
	const char *txid;
	const char *commit_time;	/* microseconds since the Unix epoch */
	const char *op;				/* c insert, u update, r snapshot read */
	const char *pk;
	int			pk_len;			/* 0: no primary key header */
} CdcHeaders;

/* Creates p's idempotent producer from conf (consumed), with librdkafka logs via log.queue. */
extern void mnist_cdc_producer_start(CdcProducer *p, rd_kafka_conf_t *conf, const char *prefix,
							   void (*wait) (CdcProducer *p));
extern rd_kafka_topic_t *mnist_cdc_topic(CdcProducer *p, const char *name, int len,
								   char **bad_topic);
extern void mnist_cdc_produce(CdcProducer *p, rd_kafka_topic_t *rkt, const char *key, size_t keylen,
						const char *value, size_t valuelen, const CdcHeaders *h, void *opaque);
extern uint64 mnist_cdc_send_table(CdcProducer *p, Relation rel, const CdcRelInfo *info,
							 Snapshot snap, CdcHeaders *h, void *opaque);
/* librdkafka log lines, served through log.queue by rd_kafka_poll in the calling thread. */
extern void mnist_cdc_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf);
extern void mnist_cdc_lsn_text(XLogRecPtr lsn, char *buf);
extern void mnist_cdc_time_text(TimestampTz ts, char *buf);

#endif							/* MNIST_CDC_H */

/*
 * cdc_capture.h
 *		Change data capture without Kafka: which tables and columns are captured and how a row
 *		becomes a labelled image.  Shared by the output plugin (decoder.c), the CDC worker
 *		(cdc_worker.c) and snapshots (cdc_producer.c).  The record format the plugin writes is
 *		cdc_record.h's.
 *
 * The plugin writes one record per inserted or updated row of a captured table.  A
 * partition's rows are its partitioned root table's: matched against the tables option, and
 * written, by the root's name (whatever the partition is called).  With include-transaction
 * (or shipper), BEGIN and COMMIT records surround the rows of a transaction that produced
 * any.  The option format_version (an integer) asks for a record format version: only
 * MNIST_CDC_RECORD_VERSION is written, another is refused (ERROR, SQLSTATE 0A000); absent,
 * it is that version.
 */
#ifndef MNIST_CDC_CAPTURE_H
#define MNIST_CDC_CAPTURE_H

#include "access/htup.h"
#include "access/tupdesc.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "nodes/pg_list.h"
#include "utils/rel.h"

/* Options of the output plugin, also used by the snapshots of cdc_producer.c. */
typedef struct CdcOptions
{
	List	   *tables;			/* schema.table globs (char *); NIL: every table */
	char	   *pixels_column;	/* name of the bytea column */
	char	   *label_column;	/* name of the integer column */
	bool		include_transaction;	/* BEGIN/COMMIT records */
	bool		shipper;		/* internal: records for the CDC worker */
} CdcOptions;

/* What to do with one relation, computed once per relation and cached. */
typedef struct CdcRelInfo
{
	Oid			relid;			/* hash key */
	Oid			root_relid;		/* of a partition: its partitioned root, else InvalidOid */
	bool		valid;			/* false after a relcache invalidation */
	bool		captured;		/* rows of this relation are sent */
	bool		refused;		/* matched, but its schema's name has a dot: rows skipped */
	AttrNumber	pixels_att;
	AttrNumber	label_att;
	Oid			label_type;		/* INT2OID, INT4OID or INT8OID (the base type of a domain) */
	char	   *name;			/* "schema.table" (a partition's root's), in the cache's context */
	int			name_len;
	char	   *record_name;	/* the same as written in records (mnist_cdc_record_escape) */
	int			record_name_len;
	int			npk;			/* primary key columns, 0 when none */
	AttrNumber	pk_att[INDEX_MAX_KEYS];
	FmgrInfo	pk_out[INDEX_MAX_KEYS];
} CdcRelInfo;

/* Parses plugin options (DefElem list); ERROR on an unknown or malformed option. */
extern void mnist_cdc_parse_options(List *defelems, CdcOptions *opts);

/* Parses a comma-separated list of schema.table globs into a List of char *. */
extern List *mnist_cdc_parse_globs(const char *globs);

/* Fills info for rel under opts (a partition under its root's name); allocations go into cxt. */
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

#endif							/* MNIST_CDC_CAPTURE_H */

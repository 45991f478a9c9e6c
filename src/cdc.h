/*
 * cdc.h
 *		Change data capture shared between the output plugin (decoder.c) and the Kafka
 *		shipper (shipper.c): capture options, per-relation decisions and row extraction.
 */
#ifndef MNIST_CDC_H
#define MNIST_CDC_H

#include "access/htup.h"
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
	Oid			label_type;		/* INT2OID, INT4OID or INT8OID */
	char	   *name;			/* "schema.table", in the cache's context */
	int			name_len;
	int			npk;			/* primary key columns, 0 when none */
	AttrNumber	pk_att[INDEX_MAX_KEYS];
	FmgrInfo	pk_out[INDEX_MAX_KEYS];
} CdcRelInfo;

/* name of the shipper's logical slot */
#define CDC_SLOT_NAME "mnist_ml_cdc"

/* Parses plugin options (DefElem list); ERROR on an unknown or malformed option. */
extern void cdc_parse_options(List *defelems, CdcOptions *opts);

/* Parses a comma-separated list of schema.table globs into a List of char *. */
extern List *cdc_parse_globs(const char *globs);

/* Fills info for rel under opts; allocations go into cxt. */
extern void cdc_relinfo_fill(Relation rel, const CdcOptions *opts, CdcRelInfo *info,
							 MemoryContext cxt);

/*
 * Extracts label and pixels of a captured row.  Returns NULL, or a description of why the
 * row cannot be sent (NULL label, wrong size, ...).  *pixels may point into the tuple.
 */
extern const char *cdc_row_get(const CdcRelInfo *info, HeapTuple tuple, TupleDesc desc,
							   int *label, const uint8 **pixels);

/* Appends the row's primary key as text (values joined by commas) to out. */
extern void cdc_row_pk(const CdcRelInfo *info, HeapTuple tuple, TupleDesc desc,
					   StringInfo out);

/* Shared-memory request and worker registration helpers live in shipper.c. */

#endif							/* MNIST_CDC_H */

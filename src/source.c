/*
 * source.c
 *		Reads labelled images from a relation for training and evaluation: a read-only SPI
 *		query "SELECT pixels, label FROM rel" with quoted identifiers, run as the caller, its
 *		rows received straight from the executor, every row validated with an error naming it.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "catalog/pg_class.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/syscache.h"

#include "coltype.h"
#include "source.h"

char *
mnist_source_relation_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

int64
mnist_source_estimated_rows(Oid relid)
{
	HeapTuple	tuple = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	int64		rows = 0;

	if (HeapTupleIsValid(tuple))
	{
		float4		reltuples = ((Form_pg_class) GETSTRUCT(tuple))->reltuples;

		if (reltuples > 0)
			rows = (int64) reltuples;
		ReleaseSysCache(tuple);
	}
	return rows;
}

void
mnist_source_bad_pixels_length(size_t len)
{
	char		msg[MNIST_IMAGE_MSG_SIZE];

	(void) mnist_image_check(0, len, msg, sizeof(msg));
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("%s", msg),
			 errhint("An image is %d x %d grey levels, one byte each, row by row.",
					 MNIST_SIDE, MNIST_SIDE)));
}

/* ERROR naming a result column of the wrong type. */
static void
column_type_error(TupleDesc desc, int attno, const char *relname, const char *expected)
{
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of %s has type %s, not %s",
					NameStr(TupleDescAttr(desc, attno - 1)->attname), relname,
					format_type_be(TupleDescAttr(desc, attno - 1)->atttypid), expected)));
}

/* The state of one scan: rows arrive straight from the executor, with no tuple copies. */
typedef struct SourceReceiver
{
	DestReceiver pub;
	const char *relname;
	Oid			label_type;
	bool		has_id;			/* column 3 is the source's id, to name bad rows */
	Oid			id_output;		/* its output function */
	int64		rowno;
	SourceRowFn fn;
	void	   *arg;
} SourceReceiver;

/* "row N" or "row N (id X)" for error messages. */
static char *
row_description(SourceReceiver *r, TupleTableSlot *slot)
{
	if (r->has_id && !slot->tts_isnull[2])
		return psprintf("row " INT64_FORMAT " (id %s)", r->rowno,
						OidOutputFunctionCall(r->id_output, slot->tts_values[2]));
	return psprintf("row " INT64_FORMAT, r->rowno);
}

/* Checks the result columns once, before the first row. */
static void
source_startup(DestReceiver *self, int operation, TupleDesc desc)
{
	SourceReceiver *r = (SourceReceiver *) self;

	if (!mnist_pixels_type_ok(TupleDescAttr(desc, 0)->atttypid))
		column_type_error(desc, 1, r->relname, "bytea");
	r->label_type = mnist_label_type(TupleDescAttr(desc, 1)->atttypid);
	if (!OidIsValid(r->label_type))
		column_type_error(desc, 2, r->relname, "smallint, integer or bigint");
	if (r->has_id)
	{
		bool		varlena;

		getTypeOutputInfo(TupleDescAttr(desc, 2)->atttypid, &r->id_output, &varlena);
	}
}

/* Validates one row and hands it to the caller's function. */
static bool
source_receive(TupleTableSlot *slot, DestReceiver *self)
{
	SourceReceiver *r = (SourceReceiver *) self;
	Datum		d;
	bytea	   *pixels;
	int64		label;
	MnistImageProblem problem;
	char		msg[MNIST_IMAGE_MSG_SIZE];

	r->rowno++;
	if ((r->rowno & 1023) == 0)
		CHECK_FOR_INTERRUPTS();
	slot_getsomeattrs(slot, r->has_id ? 3 : 2);

	if (slot->tts_isnull[1])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("label is null in %s of %s", row_description(r, slot), r->relname)));
	label = mnist_label_value(slot->tts_values[1], r->label_type);

	if (slot->tts_isnull[0])
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("pixels are null in %s of %s", row_description(r, slot), r->relname)));
	d = slot->tts_values[0];
	/* the length from the header or the toast pointer: a wrong value is never detoasted */
	problem = mnist_image_check(label, toast_raw_datum_size(d) - VARHDRSZ, msg, sizeof(msg));
	if (problem != MNIST_IMAGE_OK)
		ereport(ERROR,
				(errcode(problem == MNIST_IMAGE_BAD_LABEL ? ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE :
						 ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s, in %s of %s", msg, row_description(r, slot), r->relname)));
	pixels = DatumGetByteaPP(d);
	r->fn(r->arg, (const uint8 *) VARDATA_ANY(pixels), (int) label);
	if ((Pointer) pixels != DatumGetPointer(d))
		pfree(pixels);
	return true;
}

static void
source_shutdown(DestReceiver *self)
{
}

static void
source_destroy(DestReceiver *self)
{
}

int64
mnist_source_scan(Oid relid, const char *pixels_column, const char *label_column,
			SourceRowFn fn, void *arg)
{
	char	   *relname = mnist_source_relation_name(relid);
	AttrNumber	id_att = get_attnum(relid, "id");
	StringInfoData sql;
	SPIExecuteOptions options;
	SourceReceiver r;
	int			rc;

	memset(&r, 0, sizeof(r));
	r.pub.receiveSlot = source_receive;
	r.pub.rStartup = source_startup;
	r.pub.rShutdown = source_shutdown;
	r.pub.rDestroy = source_destroy;
	r.pub.mydest = DestNone;
	r.relname = relname;
	r.fn = fn;
	r.arg = arg;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, %s", quote_identifier(pixels_column),
					 quote_identifier(label_column));
	/* an "id" column the caller may read names a bad row better than its position */
	if (id_att != InvalidAttrNumber && strcmp(pixels_column, "id") != 0 &&
		strcmp(label_column, "id") != 0 &&
		(pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK ||
		 pg_attribute_aclcheck(relid, id_att, GetUserId(), ACL_SELECT) == ACLCHECK_OK))
	{
		appendStringInfoString(&sql, ", id");
		r.has_id = true;
	}
	appendStringInfo(&sql, " FROM %s", relname);

	/* rows go straight from the executor to source_receive: no tuple table, no copies */
	memset(&options, 0, sizeof(options));
	options.read_only = true;
	options.dest = &r.pub;

	SPI_connect();
	rc = SPI_execute_extended(sql.data, &options);
	/* SPI reports a SELECT whose rows go to a DestNone receiver as SPI_OK_UTILITY */
	if (rc != SPI_OK_SELECT && rc != SPI_OK_UTILITY)
		elog(ERROR, "SPI_execute_extended failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(rc));
	SPI_finish();
	return r.rowno;
}

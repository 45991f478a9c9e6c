/*
 * source.c
 *		Reads labelled images from a relation for training and evaluation: a read-only SPI
 *		cursor over "SELECT pixels, label FROM rel" with quoted identifiers, run as the caller,
 *		fetched in chunks, every row validated with an error naming the row.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"

#include "source.h"

#define FETCH_ROWS 1000

char *
source_relation_name(Oid relid)
{
	char	   *rel = get_rel_name(relid);

	if (rel == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_TABLE),
				 errmsg("relation with OID %u does not exist", relid)));
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)), rel);
}

void
source_bad_pixels_length(size_t len)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("pixels must be %d bytes, not %zu", MNIST_PIXELS, len),
			 errhint("An image is 28 x 28 grey levels, one byte each, row by row.")));
}

/* Checks the type of a result column; allowed is a zero-terminated list. */
static void
check_column_type(TupleDesc desc, int attno, const char *relname, const Oid *allowed,
				  const char *expected)
{
	Oid			type = getBaseType(TupleDescAttr(desc, attno - 1)->atttypid);

	for (; *allowed != InvalidOid; allowed++)
		if (type == *allowed)
			return;
	ereport(ERROR,
			(errcode(ERRCODE_DATATYPE_MISMATCH),
			 errmsg("column \"%s\" of %s has type %s, not %s",
					NameStr(TupleDescAttr(desc, attno - 1)->attname), relname,
					format_type_be(TupleDescAttr(desc, attno - 1)->atttypid), expected)));
}

/* "row N" or "row N (id X)" for error messages. */
static char *
row_description(int64 rowno, HeapTuple tuple, TupleDesc desc)
{
	char	   *id = desc->natts >= 3 ? SPI_getvalue(tuple, desc, 3) : NULL;

	if (id != NULL)
		return psprintf("row " INT64_FORMAT " (id %s)", rowno, id);
	return psprintf("row " INT64_FORMAT, rowno);
}

int64
source_scan(Oid relid, const char *pixels_column, const char *label_column,
			SourceRowFn fn, void *arg)
{
	static const Oid pixel_types[] = {BYTEAOID, InvalidOid};
	static const Oid label_types[] = {INT2OID, INT4OID, INT8OID, InvalidOid};
	char	   *relname = source_relation_name(relid);
	AttrNumber	id_att = get_attnum(relid, "id");
	StringInfoData sql;
	SPIPlanPtr	plan;
	Portal		portal;
	int64		rowno = 0;
	Oid			label_type;

	initStringInfo(&sql);
	appendStringInfo(&sql, "SELECT %s, %s", quote_identifier(pixels_column),
					 quote_identifier(label_column));
	/* an "id" column the caller may read names a bad row better than its position */
	if (id_att != InvalidAttrNumber && strcmp(pixels_column, "id") != 0 &&
		strcmp(label_column, "id") != 0 &&
		(pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) == ACLCHECK_OK ||
		 pg_attribute_aclcheck(relid, id_att, GetUserId(), ACL_SELECT) == ACLCHECK_OK))
		appendStringInfoString(&sql, ", id::pg_catalog.text");
	appendStringInfo(&sql, " FROM %s", relname);

	SPI_connect();
	plan = SPI_prepare_cursor(sql.data, 0, NULL, 0);
	if (plan == NULL)
		elog(ERROR, "SPI_prepare_cursor failed for \"%s\": %s", sql.data,
			 SPI_result_code_string(SPI_result));
	portal = SPI_cursor_open(NULL, plan, NULL, NULL, true);
	check_column_type(portal->tupDesc, 1, relname, pixel_types, "bytea");
	check_column_type(portal->tupDesc, 2, relname, label_types, "smallint, integer or bigint");
	label_type = getBaseType(TupleDescAttr(portal->tupDesc, 1)->atttypid);

	for (;;)
	{
		SPITupleTable *tt;

		CHECK_FOR_INTERRUPTS();
		SPI_cursor_fetch(portal, true, FETCH_ROWS);
		if (SPI_processed == 0)
			break;
		tt = SPI_tuptable;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tuple = tt->vals[i];
			bool		isnull;
			Datum		d;
			bytea	   *pixels;
			int64		label;

			rowno++;
			d = SPI_getbinval(tuple, tt->tupdesc, 2, &isnull);
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("label is null in %s of %s",
								row_description(rowno, tuple, tt->tupdesc), relname)));
			if (label_type == INT8OID)
				label = DatumGetInt64(d);
			else if (label_type == INT4OID)
				label = DatumGetInt32(d);
			else
				label = DatumGetInt16(d);
			if (label < 0 || label >= MNIST_CLASSES)
				ereport(ERROR,
						(errcode(ERRCODE_NUMERIC_VALUE_OUT_OF_RANGE),
						 errmsg("label " INT64_FORMAT " is out of range 0..%d in %s of %s",
								label, MNIST_CLASSES - 1,
								row_description(rowno, tuple, tt->tupdesc), relname)));

			d = SPI_getbinval(tuple, tt->tupdesc, 1, &isnull);
			if (isnull)
				ereport(ERROR,
						(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
						 errmsg("pixels are null in %s of %s",
								row_description(rowno, tuple, tt->tupdesc), relname)));
			pixels = DatumGetByteaPP(d);
			if (VARSIZE_ANY_EXHDR(pixels) != MNIST_PIXELS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("pixels must be %d bytes, not %zu, in %s of %s",
								MNIST_PIXELS, (size_t) VARSIZE_ANY_EXHDR(pixels),
								row_description(rowno, tuple, tt->tupdesc), relname)));
			fn(arg, (const uint8 *) VARDATA_ANY(pixels), (int) label);
			if ((Pointer) pixels != DatumGetPointer(d))
				pfree(pixels);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	SPI_finish();
	return rowno;
}

/*
 * coltype.c
 *		The column types of image tables: pixels are bytea, labels smallint, integer or bigint,
 *		each also through a domain over that type.
 */
#include "postgres.h"

#include "catalog/pg_type.h"
#include "utils/lsyscache.h"

#include "coltype.h"

bool
mnist_pixels_type_ok(Oid typid)
{
	return getBaseType(typid) == BYTEAOID;
}

Oid
mnist_label_type(Oid typid)
{
	Oid			base = getBaseType(typid);

	return base == INT2OID || base == INT4OID || base == INT8OID ? base : InvalidOid;
}

int64
mnist_label_value(Datum d, Oid label_type)
{
	if (label_type == INT8OID)
		return DatumGetInt64(d);
	if (label_type == INT4OID)
		return DatumGetInt32(d);
	return DatumGetInt16(d);
}

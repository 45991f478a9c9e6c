/*
 * cdc_capture.c
 *		Change data capture without Kafka (terms and the record format: cdc_capture.h): the
 *		plugin's options and table globs, the per-relation decision (captured or not, which
 *		columns, the primary key), a row's label and pixels.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heaptoast.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "cdc_capture.h"
#include "cdc_globs.h"
#include "cdc_record.h"
#include "coltype.h"
#include "mnist_ml.h"

List *
mnist_cdc_parse_globs(const char *globs)
{
	List	   *result = NIL;
	const char *p = globs;
	const char *start;
	size_t		len;
	MnistGlobsResult rc;

	while ((rc = mnist_cdc_globs_next(&p, &start, &len)) != MNIST_GLOBS_END)
	{
		if (rc == MNIST_GLOBS_NO_SCHEMA)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("table pattern \"%.*s\" has no schema", (int) len, start),
					 errhint("Write schema.table, for example public.mnist_*.")));
		result = lappend(result, pnstrdup(start, len));
	}
	return result;
}

void
mnist_cdc_parse_options(List *defelems, CdcOptions *opts)
{
	ListCell   *lc;

	opts->tables = NIL;
	opts->pixels_column = "pixels";
	opts->label_column = "label";
	opts->include_transaction = false;
	opts->shipper = false;

	foreach(lc, defelems)
	{
		DefElem    *elem = lfirst(lc);
		char	   *value = elem->arg ? strVal(elem->arg) : NULL;

		if (strcmp(elem->defname, "tables") == 0 && value)
			opts->tables = mnist_cdc_parse_globs(value);
		else if (strcmp(elem->defname, "pixels-column") == 0 && value && value[0])
			opts->pixels_column = pstrdup(value);
		else if (strcmp(elem->defname, "label-column") == 0 && value && value[0])
			opts->label_column = pstrdup(value);
		else if (strcmp(elem->defname, "include-transaction") == 0)
			opts->include_transaction = value == NULL || defGetBoolean(elem);
		else if (strcmp(elem->defname, "shipper") == 0)
			opts->shipper = value == NULL || defGetBoolean(elem);
		else if (strcmp(elem->defname, "format_version") == 0)
		{
			char	   *end;
			long		version;

			errno = 0;
			version = value ? strtol(value, &end, 10) : 0;
			if (value == NULL || end == value || *end != '\0' || errno != 0)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid value \"%s\" for option format_version of output plugin mnist_ml",
								value ? value : ""),
						 errhint("format_version is an integer, the record format's version (%d).",
								 MNIST_CDC_RECORD_VERSION)));
			if (!mnist_cdc_record_version_known(version))
				ereport(ERROR,
						(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
						 errmsg("unsupported record format_version %ld of output plugin mnist_ml",
								version),
						 errdetail("This mnist_ml writes record format version %d.",
								   MNIST_CDC_RECORD_VERSION),
						 errhint("Ask for format_version %d, or leave the option out (it is the default); a reader of a newer format needs a newer mnist_ml on the server.",
								 MNIST_CDC_RECORD_VERSION)));
		}
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid option \"%s\" of output plugin mnist_ml", elem->defname),
					 errhint("Valid options are tables, pixels-column, label-column, include-transaction and format_version.")));
	}
}

void
mnist_cdc_relinfo_fill(Relation rel, const CdcOptions *opts, CdcRelInfo *info, MemoryContext cxt)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *nspname;
	char	   *relname;
	size_t		nsplen;
	size_t		rellen;
	bool		listed;
	ListCell   *lc;
	Oid			pkindex;
	int			i;

	/* a partition's rows are its partitioned root's: captured by the root's name */
	info->root_relid = rel->rd_rel->relispartition ?
		llast_oid(get_partition_ancestors(RelationGetRelid(rel))) : InvalidOid;
	if (OidIsValid(info->root_relid))
	{
		nspname = get_namespace_name(get_rel_namespace(info->root_relid));
		relname = get_rel_name(info->root_relid);
	}
	else
	{
		nspname = get_namespace_name(RelationGetNamespace(rel));
		relname = RelationGetRelationName(rel);
	}
	if (info->name)
		pfree(info->name);
	info->name = MemoryContextStrdup(cxt, psprintf("%s.%s", nspname, relname));
	info->name_len = strlen(info->name);
	if (info->record_name)
		pfree(info->record_name);
	nsplen = strlen(nspname);
	rellen = strlen(relname);
	info->record_name = MemoryContextAlloc(cxt, 2 * (nsplen + rellen) + 2);
	info->record_name_len = mnist_cdc_record_escape(info->record_name, nspname, nsplen);
	info->record_name[info->record_name_len++] = '.';
	info->record_name_len += mnist_cdc_record_escape(info->record_name + info->record_name_len,
													 relname, rellen);
	info->record_name[info->record_name_len] = '\0';
	info->captured = false;
	info->refused = false;
	info->pixels_att = InvalidAttrNumber;
	info->label_att = InvalidAttrNumber;
	info->npk = 0;
	info->valid = true;

	/* only tables hold rows (a partitioned table's are in its partitions) */
	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return;
	listed = opts->tables == NIL;
	foreach(lc, opts->tables)
		if (mnist_cdc_table_match(lfirst(lc), nspname, relname))
			listed = true;
	if (!listed)
		return;

	for (i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (att->attisdropped)
			continue;
		if (strcmp(NameStr(att->attname), opts->pixels_column) == 0 &&
			mnist_pixels_type_ok(att->atttypid))
			info->pixels_att = att->attnum;
		else if (strcmp(NameStr(att->attname), opts->label_column) == 0 &&
				 OidIsValid(mnist_label_type(att->atttypid)))
		{
			info->label_att = att->attnum;
			info->label_type = mnist_label_type(att->atttypid);
		}
	}
	if (info->pixels_att == InvalidAttrNumber || info->label_att == InvalidAttrNumber)
		return;
	/* a dot in the schema's name would make <prefix>.<schema>.<table> name two tables */
	info->refused = strchr(nspname, '.') != NULL;
	if (info->refused)
	{
		ereport(WARNING,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("mnist_ml: not capturing table %s: its schema's name contains a dot",
						quote_qualified_identifier(nspname, relname)),
				 errdetail("Its topic and table header would be those of a table named like it in another schema."),
				 errhint("Rename the schema, or leave its tables out of mnist_ml.cdc_tables.")));
		return;
	}
	info->captured = true;

	/* the primary key, for the CDC worker's headers */
	RelationGetIndexList(rel);
	pkindex = rel->rd_pkindex;
	if (OidIsValid(pkindex))
	{
		HeapTuple	indtup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkindex));

		if (HeapTupleIsValid(indtup))
		{
			Form_pg_index index = (Form_pg_index) GETSTRUCT(indtup);

			for (i = 0; i < index->indnkeyatts && index->indkey.values[i] != 0; i++)
			{
				AttrNumber	attnum = index->indkey.values[i];
				Oid			typoutput;
				bool		varlena;

				getTypeOutputInfo(TupleDescAttr(desc, attnum - 1)->atttypid,
								  &typoutput, &varlena);
				info->pk_att[i] = attnum;
				fmgr_info_cxt(typoutput, &info->pk_out[i], cxt);
			}
			info->npk = i;
			ReleaseSysCache(indtup);
		}
	}
}

const char *const mnist_cdc_unchanged_toast = "pixels is an unchanged out-of-line value";

uint64		mnist_cdc_rows_skipped = 0;

const char *
mnist_cdc_row_get(const CdcRelInfo *info, HeapTuple tuple, HeapTuple old_tuple, TupleDesc desc,
			int *label, const uint8 **pixels)
{
	Datum		d;
	bool		isnull;
	int64		value;
	struct varlena *bytes;
	char		problem[MNIST_IMAGE_MSG_SIZE];

	d = heap_getattr(tuple, info->label_att, desc, &isnull);
	if (isnull)
		return "label is null";
	value = mnist_label_value(d, info->label_type);

	d = heap_getattr(tuple, info->pixels_att, desc, &isnull);
	if (isnull)
		return "pixels is null";
	bytes = (struct varlena *) DatumGetPointer(d);
	if (VARATT_IS_EXTERNAL_ONDISK(bytes) && HistoricSnapshotActive())
	{
		/* an unchanged out-of-line value of an UPDATE is not in the WAL: the old row's */
		if (old_tuple == NULL)
			return mnist_cdc_unchanged_toast;
		d = heap_getattr(old_tuple, info->pixels_att, desc, &isnull);
		if (isnull)
			return "pixels is null";
		bytes = (struct varlena *) DatumGetPointer(d);
		if (VARATT_IS_EXTERNAL_ONDISK(bytes))
			return mnist_cdc_unchanged_toast;
	}
	/* the length from the header: a value of another size is never detoasted */
	if (mnist_image_check(value, toast_raw_datum_size(PointerGetDatum(bytes)) - VARHDRSZ,
						  problem, sizeof(problem)) != MNIST_IMAGE_OK)
		return pstrdup(problem);
	if (VARATT_IS_EXTENDED(bytes))
		bytes = pg_detoast_datum_packed(bytes);
	*label = (int) value;
	*pixels = (const uint8 *) VARDATA_ANY(bytes);
	return NULL;
}

void
mnist_cdc_row_pk(const CdcRelInfo *info, HeapTuple tuple, TupleDesc desc, StringInfo out)
{
	int			i;

	for (i = 0; i < info->npk; i++)
	{
		bool		isnull;
		Datum		d = heap_getattr(tuple, info->pk_att[i], desc, &isnull);

		if (i > 0)
			appendStringInfoChar(out, ',');
		if (!isnull)
			appendStringInfoString(out, OutputFunctionCall((FmgrInfo *) &info->pk_out[i], d));
	}
}

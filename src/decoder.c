/*
 * decoder.c
 *		The logical decoding output plugin "mnist_ml": one text record per inserted or updated
 *		image row, "schema.table<TAB>label<TAB>pixels as CSV".
 *
 * The record format is a contract with its readers (the shipper in shipper.c, pg_recvlogical
 * users): the first field is the schema name, a dot and the table name, each as stored in the
 * catalog except that a backslash is written as \\, a tab as \t, a newline as \n and a carriage
 * return as \r (mnist_cdc_escape_name; mnist_cdc_unescape_name undoes it).  Neither a label nor the pixels
 * contain a tab, so every row record has exactly two tabs (four more fields after the pixels
 * with the shipper option, the last one the primary key text, which runs to the end), and no
 * record contains a newline unless a primary key value does.
 *
 * Options (wal2json style): tables (comma-separated schema.table globs with *),
 * pixels-column and label-column (defaults pixels, label), include-transaction (BEGIN/COMMIT
 * records around transactions that produced rows).  The option shipper (internal, used by
 * the Kafka worker in shipper.c) appends operation and primary key to each row and a commit
 * timestamp to BEGIN.  Deletes and TRUNCATE produce nothing: the key is a label, not a row
 * identity.  Per-relation decisions are cached and invalidated by relcache callbacks, so the
 * per-row path only reads two attributes and encodes the pixels.
 */
#include "postgres.h"

#include "access/detoast.h"
#include "access/heaptoast.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/relcache.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

#include "cdc.h"
#include "cdc_globs.h"
#include "coltype.h"
#include "mnist_ml.h"
#include "pixels_csv.h"

/* State of one decoding session. */
typedef struct DecoderData
{
	MemoryContext row_cxt;		/* reset after every change */
	CdcOptions	opts;
	bool		xact_wrote;		/* BEGIN already sent for the current transaction */
} DecoderData;

/* The relation cache of the live decoding session (one per process at most). */
static HTAB *RelInfoCache = NULL;
static MemoryContext RelInfoCxt = NULL;
static bool relcache_callback_registered = false;

extern void _PG_output_plugin_init(OutputPluginCallbacks *cb);

static void decoder_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt,
							bool is_init);
static void decoder_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn);
static void decoder_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						   Relation relation, ReorderBufferChange *change);
static void decoder_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
						   XLogRecPtr commit_lsn);
static void decoder_shutdown(LogicalDecodingContext *ctx);

void
_PG_output_plugin_init(OutputPluginCallbacks *cb)
{
	cb->startup_cb = decoder_startup;
	cb->begin_cb = decoder_begin;
	cb->change_cb = decoder_change;
	cb->commit_cb = decoder_commit;
	cb->shutdown_cb = decoder_shutdown;
	/* no truncate_cb, message_cb: TRUNCATE and logical messages are not sent */
}

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
mnist_cdc_escape_name(StringInfo out, const char *name)
{
	for (; *name; name++)
	{
		switch (*name)
		{
			case '\\':
				appendStringInfoString(out, "\\\\");
				break;
			case '\t':
				appendStringInfoString(out, "\\t");
				break;
			case '\n':
				appendStringInfoString(out, "\\n");
				break;
			case '\r':
				appendStringInfoString(out, "\\r");
				break;
			default:
				appendStringInfoChar(out, *name);
		}
	}
}

int
mnist_cdc_unescape_name(char *name, int len)
{
	int			n = 0;

	for (int i = 0; i < len; i++)
	{
		if (name[i] == '\\' && i + 1 < len)
		{
			i++;
			name[n++] = name[i] == 't' ? '\t' : name[i] == 'n' ? '\n' :
				name[i] == 'r' ? '\r' : name[i];
		}
		else
			name[n++] = name[i];
	}
	return n;
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
		else
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid option \"%s\" of output plugin mnist_ml", elem->defname),
					 errhint("Valid options are tables, pixels-column, label-column and include-transaction.")));
	}
}

void
mnist_cdc_relinfo_fill(Relation rel, const CdcOptions *opts, CdcRelInfo *info, MemoryContext cxt)
{
	TupleDesc	desc = RelationGetDescr(rel);
	char	   *nspname = get_namespace_name(RelationGetNamespace(rel));
	StringInfoData record_name;
	bool		listed;
	ListCell   *lc;
	Oid			pkindex;
	int			i;

	if (info->name)
		pfree(info->name);
	info->name = MemoryContextStrdup(cxt, psprintf("%s.%s", nspname, RelationGetRelationName(rel)));
	info->name_len = strlen(info->name);
	if (info->record_name)
		pfree(info->record_name);
	initStringInfo(&record_name);
	mnist_cdc_escape_name(&record_name, nspname);
	appendStringInfoChar(&record_name, '.');
	mnist_cdc_escape_name(&record_name, RelationGetRelationName(rel));
	info->record_name = MemoryContextStrdup(cxt, record_name.data);
	info->record_name_len = record_name.len;
	pfree(record_name.data);
	info->captured = false;
	info->pixels_att = InvalidAttrNumber;
	info->label_att = InvalidAttrNumber;
	info->npk = 0;
	info->valid = true;

	if (rel->rd_rel->relkind != RELKIND_RELATION)
		return;
	listed = opts->tables == NIL;
	foreach(lc, opts->tables)
		if (mnist_cdc_glob_match(lfirst(lc), info->name))
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
	info->captured = true;

	/* the primary key, for the shipper's headers */
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

	d = heap_getattr(tuple, info->label_att, desc, &isnull);
	if (isnull)
		return "label is null";
	switch (info->label_type)
	{
		case INT2OID:
			value = DatumGetInt16(d);
			break;
		case INT4OID:
			value = DatumGetInt32(d);
			break;
		default:
			value = DatumGetInt64(d);
			break;
	}
	if (value < 0 || value >= MNIST_CLASSES)
		return psprintf("label %lld is not between 0 and 9", (long long) value);
	*label = (int) value;

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
	if (VARATT_IS_EXTENDED(bytes))
		bytes = pg_detoast_datum_packed(bytes);
	if (VARSIZE_ANY_EXHDR(bytes) != MNIST_PIXELS)
		return psprintf("pixels has %d bytes, not 784", (int) VARSIZE_ANY_EXHDR(bytes));
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

/* Relcache invalidation: recompute the decision for relid (all relations when invalid). */
static void
relinfo_invalidate(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS status;
	CdcRelInfo *info;

	if (RelInfoCache == NULL)
		return;
	if (OidIsValid(relid))
	{
		info = hash_search(RelInfoCache, &relid, HASH_FIND, NULL);
		if (info)
			info->valid = false;
		return;
	}
	hash_seq_init(&status, RelInfoCache);
	while ((info = hash_seq_search(&status)) != NULL)
		info->valid = false;
}

/* Forgets the cache when the decoding context that owns it goes away, even on error. */
static void
relinfo_forget(void *arg)
{
	RelInfoCache = NULL;
	RelInfoCxt = NULL;
}

/* The cached decision for relation, computed on first use or after invalidation. */
static CdcRelInfo *
relinfo_get(DecoderData *data, Relation relation)
{
	Oid			relid = RelationGetRelid(relation);
	bool		found;
	CdcRelInfo *info;

	info = hash_search(RelInfoCache, &relid, HASH_ENTER, &found);
	if (!found)
	{
		info->name = NULL;
		info->record_name = NULL;
	}
	if (!found || !info->valid)
		mnist_cdc_relinfo_fill(relation, &data->opts, info, RelInfoCxt);
	return info;
}

static void
decoder_startup(LogicalDecodingContext *ctx, OutputPluginOptions *opt, bool is_init)
{
	DecoderData *data = palloc0(sizeof(DecoderData));
	MemoryContextCallback *forget;
	HASHCTL		hctl;

	data->row_cxt = AllocSetContextCreate(ctx->context, "mnist_ml row",
										  ALLOCSET_DEFAULT_SIZES);
	mnist_cdc_parse_options(ctx->output_plugin_options, &data->opts);
	ctx->output_plugin_private = data;
	opt->output_type = OUTPUT_PLUGIN_TEXTUAL_OUTPUT;
	opt->receive_rewrites = false;

	hctl.keysize = sizeof(Oid);
	hctl.entrysize = sizeof(CdcRelInfo);
	hctl.hcxt = ctx->context;
	RelInfoCxt = ctx->context;
	RelInfoCache = hash_create("mnist_ml relations", 64, &hctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	forget = MemoryContextAlloc(ctx->context, sizeof(MemoryContextCallback));
	forget->func = relinfo_forget;
	forget->arg = NULL;
	MemoryContextRegisterResetCallback(ctx->context, forget);
	if (!relcache_callback_registered)
	{
		CacheRegisterRelcacheCallback(relinfo_invalidate, (Datum) 0);
		relcache_callback_registered = true;
	}
}

static void
decoder_shutdown(LogicalDecodingContext *ctx)
{
	/* the cache lives in ctx->context; relinfo_forget runs when it is deleted */
}

static void
decoder_begin(LogicalDecodingContext *ctx, ReorderBufferTXN *txn)
{
	DecoderData *data = ctx->output_plugin_private;

	data->xact_wrote = false;
}

/* Writes the BEGIN record before the transaction's first row, when wanted. */
static void
write_begin(LogicalDecodingContext *ctx, DecoderData *data, ReorderBufferTXN *txn)
{
	data->xact_wrote = true;
	if (!data->opts.include_transaction && !data->opts.shipper)
		return;
	OutputPluginPrepareWrite(ctx, false);
	appendStringInfo(ctx->out, "BEGIN %u", txn->xid);
	if (data->opts.shipper)
		appendStringInfo(ctx->out, " " INT64_FORMAT, (int64) txn->xact_time.commit_time);
	OutputPluginWrite(ctx, false);
}

static void
decoder_change(LogicalDecodingContext *ctx, ReorderBufferTXN *txn,
			   Relation relation, ReorderBufferChange *change)
{
	DecoderData *data = ctx->output_plugin_private;
	CdcRelInfo *info;
	HeapTuple	tuple;
	MemoryContext old;
	const char *problem;
	int			label;
	const uint8 *pixels;
	StringInfo	out;

	if (change->action != REORDER_BUFFER_CHANGE_INSERT &&
		change->action != REORDER_BUFFER_CHANGE_UPDATE)
		return;
	info = relinfo_get(data, relation);
	if (!info->captured || change->data.tp.newtuple == NULL)
		return;
	tuple = &change->data.tp.newtuple->tuple;

	old = MemoryContextSwitchTo(data->row_cxt);
	problem = mnist_cdc_row_get(info, tuple,
						  change->data.tp.oldtuple ? &change->data.tp.oldtuple->tuple : NULL,
						  RelationGetDescr(relation), &label, &pixels);
	if (problem)
	{
		mnist_cdc_rows_skipped++;
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("mnist_ml: skipped a row of %s at %X/%X: %s",
						info->name, LSN_FORMAT_ARGS(change->lsn), problem),
				 problem == mnist_cdc_unchanged_toast ?
				 errhint("Logical decoding does not carry an unchanged out-of-line value; run ALTER TABLE %s REPLICA IDENTITY FULL so that updates log the whole old row.",
						 quote_qualified_identifier(get_namespace_name(RelationGetNamespace(relation)),
													RelationGetRelationName(relation))) : 0));
	}
	else
	{
		if (!data->xact_wrote)
			write_begin(ctx, data, txn);
		OutputPluginPrepareWrite(ctx, true);
		out = ctx->out;
		enlargeStringInfo(out, info->record_name_len + 4 + PIXELS_CSV_MAX);
		memcpy(out->data + out->len, info->record_name, info->record_name_len);
		out->len += info->record_name_len;
		out->data[out->len++] = '\t';
		out->data[out->len++] = '0' + label;
		out->data[out->len++] = '\t';
		out->len += mnist_pixels_csv_encode(pixels, out->data + out->len);
		out->data[out->len] = '\0';
		if (data->opts.shipper)
		{
			appendStringInfoString(out, change->action == REORDER_BUFFER_CHANGE_INSERT ?
								   "\tc\t" : "\tu\t");
			mnist_cdc_row_pk(info, tuple, RelationGetDescr(relation), out);
		}
		OutputPluginWrite(ctx, true);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(data->row_cxt);
}

static void
decoder_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	DecoderData *data = ctx->output_plugin_private;

	if (!data->xact_wrote || (!data->opts.include_transaction && !data->opts.shipper))
		return;
	OutputPluginPrepareWrite(ctx, true);
	appendStringInfo(ctx->out, "COMMIT %u", txn->xid);
	OutputPluginWrite(ctx, true);
}

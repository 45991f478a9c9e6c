/*
 * decoder.c
 *		The logical decoding output plugin "mnist_ml": its callbacks.  One text record per
 *		inserted or updated image row, written by the record codec (cdc_record.h).
 *
 * Options (wal2json style): tables (comma-separated schema.table globs with *),
 * pixels-column and label-column (defaults pixels, label), include-transaction (BEGIN/COMMIT
 * records around transactions that produced rows), format_version (the record format asked for;
 * an unknown one is refused, absent is the current one).  The option shipper (internal, used by
 * the CDC worker in cdc_worker.c) appends operation and primary key to each row and a commit
 * timestamp to BEGIN.  Deletes and TRUNCATE produce nothing: the key is a label, not a row
 * identity.  Per-relation decisions are cached and invalidated by relcache callbacks, so the
 * per-row path only reads two attributes and encodes the pixels.  No Kafka here.
 */
#include "postgres.h"

#include "replication/logical.h"
#include "replication/output_plugin.h"
#include "utils/builtins.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"

#include "cdc_capture.h"
#include "cdc_record.h"
#include "pg_compat.h"

/* State of one decoding session. */
typedef struct DecoderData
{
	MemoryContext row_cxt;		/* reset after every change */
	CdcOptions	opts;
	bool		xact_wrote;		/* BEGIN already sent for the current transaction */
	StringInfoData pk;			/* shipper: the current row's primary key text */
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
		/* a partitioned root renamed or changed: the partitions captured by its name */
		hash_seq_init(&status, RelInfoCache);
		while ((info = hash_seq_search(&status)) != NULL)
			if (info->root_relid == relid)
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
	if (data->opts.shipper)
	{
		MemoryContext old = MemoryContextSwitchTo(ctx->context);

		initStringInfo(&data->pk);
		MemoryContextSwitchTo(old);
	}
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

/* Appends rec to the output buffer (prepared by OutputPluginPrepareWrite). */
static void
write_record(StringInfo out, const MnistCdcRecord *rec)
{
	enlargeStringInfo(out, mnist_cdc_record_size(rec));
	out->len += mnist_cdc_record_write(out->data + out->len, rec);
	out->data[out->len] = '\0';
}

/* Writes a BEGIN or COMMIT record, when wanted. */
static void
write_transaction(LogicalDecodingContext *ctx, DecoderData *data, ReorderBufferTXN *txn,
				  MnistCdcRecordKind kind, bool last_write)
{
	MnistCdcRecord rec;

	if (!data->opts.include_transaction && !data->opts.shipper)
		return;
	memset(&rec, 0, sizeof(rec));
	rec.kind = kind;
	rec.xid = txn->xid;
	rec.has_commit_time = kind == MNIST_CDC_RECORD_BEGIN && data->opts.shipper;
	rec.commit_time = txn->xact_time.commit_time;
	OutputPluginPrepareWrite(ctx, last_write);
	write_record(ctx->out, &rec);
	OutputPluginWrite(ctx, last_write);
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
	MnistCdcRecord rec;

	if (change->action != REORDER_BUFFER_CHANGE_INSERT &&
		change->action != REORDER_BUFFER_CHANGE_UPDATE)
		return;
	info = relinfo_get(data, relation);
	if (info->refused)
		mnist_cdc_rows_skipped++;	/* said once per decision (mnist_cdc_relinfo_fill) */
	if (!info->captured || change->data.tp.newtuple == NULL)
		return;
	tuple = mnist_change_tuple(change->data.tp.newtuple);

	old = MemoryContextSwitchTo(data->row_cxt);
	problem = mnist_cdc_row_get(info, tuple,
						  mnist_change_tuple(change->data.tp.oldtuple),
						  RelationGetDescr(relation), &rec.label, &rec.pixels);
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
		{
			data->xact_wrote = true;
			write_transaction(ctx, data, txn, MNIST_CDC_RECORD_BEGIN, false);
		}
		rec.kind = MNIST_CDC_RECORD_ROW;
		rec.table = info->record_name;
		rec.table_len = info->record_name_len;
		rec.op = 0;
		if (data->opts.shipper)
		{
			rec.op = change->action == REORDER_BUFFER_CHANGE_INSERT ?
				MNIST_CDC_OP_INSERT : MNIST_CDC_OP_UPDATE;
			resetStringInfo(&data->pk);
			mnist_cdc_row_pk(info, tuple, RelationGetDescr(relation), &data->pk);
			rec.pk = data->pk.data;
			rec.pk_len = data->pk.len;
		}
		OutputPluginPrepareWrite(ctx, true);
		write_record(ctx->out, &rec);
		OutputPluginWrite(ctx, true);
	}
	MemoryContextSwitchTo(old);
	MemoryContextReset(data->row_cxt);
}

static void
decoder_commit(LogicalDecodingContext *ctx, ReorderBufferTXN *txn, XLogRecPtr commit_lsn)
{
	DecoderData *data = ctx->output_plugin_private;

	if (data->xact_wrote)
		write_transaction(ctx, data, txn, MNIST_CDC_RECORD_COMMIT, true);
}

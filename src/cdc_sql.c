/*
 * cdc_sql.c
 *		SQL functions of change data capture: mnist_cdc_status(), mnist_cdc_snapshot(regclass)
 *		and mnist_cdc_drop_slot().
 */
#include "postgres.h"

#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "catalog/pg_inherits.h"
#include "commands/dbcommands.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "replication/slot.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/pg_lsn.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

#include "cdc_capture.h"
#include "cdc_producer.h"
#include "cdc_txn.h"
#include "cdc_worker.h"
#include "kafka_conf.h"
#include "mnist_ml.h"

PG_FUNCTION_INFO_V1(mnist_cdc_snapshot);
PG_FUNCTION_INFO_V1(mnist_cdc_drop_slot);
PG_FUNCTION_INFO_V1(mnist_cdc_waiting);

/*
 * One row: the worker's shared state and its slot's confirmed position and lag, in columns
 * columns: 12 (1.0's row type) or 13 (1.1's, which adds skipped).
 */
static Datum
cdc_status(FunctionCallInfo fcinfo, int columns)
{
	TupleDesc	desc;
	Datum		values[13];
	bool		nulls[13];
	ReplicationSlot *slot;
	XLogRecPtr	confirmed = InvalidXLogRecPtr;
	Oid			dboid = InvalidOid;
	int			slot_pid = 0;
	CdcShared	copy;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (desc->natts != columns)
		elog(ERROR, "return type must have %d columns, not %d", columns, desc->natts);
	memset(nulls, 0, sizeof(nulls));
	memset(&copy, 0, sizeof(copy));
	if (mnist_cdc_state)
	{
		SpinLockAcquire(&mnist_cdc_state->mutex);
		copy = *mnist_cdc_state;
		SpinLockRelease(&mnist_cdc_state->mutex);
		/* the worker starts when recovery ends (BgWorkerStart_RecoveryFinished) */
		if (copy.pid == 0 && RecoveryInProgress())
			strlcpy(copy.state, "standby", sizeof(copy.state));
	}
	else
		strlcpy(copy.state, "not preloaded", sizeof(copy.state));

	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	slot = SearchNamedReplicationSlot(CDC_SLOT_NAME, false);
	if (slot)
	{
		SpinLockAcquire(&slot->mutex);
		confirmed = slot->data.confirmed_flush;
		dboid = slot->data.database;
		slot_pid = slot->active_pid;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);

	values[0] = CStringGetTextDatum(CDC_SLOT_NAME);
	nulls[0] = slot == NULL;
	values[1] = CStringGetTextDatum(copy.state);
	values[2] = Int32GetDatum(copy.pid);
	nulls[2] = copy.pid == 0;
	values[3] = CStringGetTextDatum(OidIsValid(dboid) ? get_database_name(dboid) : "");
	nulls[3] = !OidIsValid(dboid) || get_database_name(dboid) == NULL;
	/* the slot's own position is the truth; the worker's copy may be newer in memory */
	if (slot_pid != 0 && copy.confirmed_lsn > confirmed)
		confirmed = copy.confirmed_lsn;
	values[4] = LSNGetDatum(confirmed);
	nulls[4] = slot == NULL;
	values[5] = Int64GetDatum(slot && GetFlushRecPtr(NULL) > confirmed ?
							  (int64) (GetFlushRecPtr(NULL) - confirmed) : 0);
	nulls[5] = slot == NULL;
	values[6] = Int64GetDatum((int64) copy.produced);
	values[7] = Int64GetDatum((int64) copy.acknowledged);
	values[8] = Int64GetDatum((int64) copy.failed);
	values[9] = CStringGetTextDatum(copy.last_error);
	nulls[9] = copy.last_error[0] == '\0';
	values[10] = TimestampTzGetDatum(copy.last_error_at);
	nulls[10] = copy.last_error_at == 0;
	values[11] = BoolGetDatum(copy.broker_reachable);
	nulls[11] = copy.pid == 0;
	if (columns > 12)
		values[12] = Int64GetDatum((int64) (copy.skipped + copy.snapshot_skipped));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/*
 * The SQL entry points: mnist_cdc_status_1_1 is bound by the scripts since 1.2 to 1.1's row
 * type (13 columns, unchanged since).  mnist_cdc_status is the symbol the released 1.0 and 1.1
 * install scripts bind, to 1.0's row type (12 columns, without skipped) and to 1.1's: for
 * databases not updated yet it answers the row type its declaration has.
 */
PG_FUNCTION_INFO_V1(mnist_cdc_status_1_1);
PG_FUNCTION_INFO_V1(mnist_cdc_status);

Datum
mnist_cdc_status_1_1(PG_FUNCTION_ARGS)
{
	return cdc_status(fcinfo, 13);
}

Datum
mnist_cdc_status(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	return cdc_status(fcinfo, desc->natts == 12 ? 12 : 13);
}

/* One row: the table whose topic the CDC stream waits for, why and since when (or NULLs). */
Datum
mnist_cdc_waiting(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[3];
	bool		nulls[3];
	char		table[sizeof(((CdcShared *) 0)->waiting_table)];
	char		reason[sizeof(((CdcShared *) 0)->waiting_reason)];
	TimestampTz since = 0;

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	table[0] = reason[0] = '\0';
	if (mnist_cdc_state)
	{
		SpinLockAcquire(&mnist_cdc_state->mutex);
		strlcpy(table, mnist_cdc_state->waiting_table, sizeof(table));
		strlcpy(reason, mnist_cdc_state->waiting_reason, sizeof(reason));
		since = mnist_cdc_state->waiting_since;
		SpinLockRelease(&mnist_cdc_state->mutex);
	}
	values[0] = CStringGetTextDatum(table);
	values[1] = CStringGetTextDatum(reason);
	values[2] = TimestampTzGetDatum(since);
	nulls[0] = nulls[1] = nulls[2] = table[0] == '\0';
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(desc, values, nulls)));
}

/* Delivery counts of one mnist_cdc_snapshot() call. */
typedef struct SnapshotDelivery
{
	uint64		acked;
	uint64		failed;
	rd_kafka_resp_err_t err;
} SnapshotDelivery;

/* Delivery report: record only. */
static void
snapshot_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	SnapshotDelivery *d = opaque;

	if (msg->err)
	{
		d->failed++;
		d->err = msg->err;
	}
	else
		d->acked++;
}

/* exactly once: until when a transactional call may wait for the broker (0: no bound) */
static TimestampTz snapshot_deadline = 0;

/*
 * Queue full during a snapshot, or a transactional call waiting for the broker: serve
 * delivery reports, stay interruptible, give up after mnist_ml.kafka_timeout_ms.
 */
static void
snapshot_wait(CdcProducer *p)
{
	rd_kafka_poll(p->rk, 100);
	CHECK_FOR_INTERRUPTS();
	if (snapshot_deadline != 0 && GetCurrentTimestamp() > snapshot_deadline)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the Kafka broker did not answer within %d ms", mnist_kafka_timeout_ms),
				 errhint("Check mnist_ml.kafka_bootstrap_servers, or raise mnist_ml.kafka_timeout_ms.")));
}

/* Sets the bound of the next transactional call. */
static void
snapshot_bound(void)
{
	snapshot_deadline = TimestampTzPlusMilliseconds(GetCurrentTimestamp(), mnist_kafka_timeout_ms);
}

/* Exactly once: a snapshot's Kafka transaction closes at mnist_ml.cdc_batch_rows rows. */
static void
snapshot_sent(CdcProducer *p)
{
	CdcTxn	   *txn = p->arg;

	if (++txn->rows < (uint64) mnist_cdc_batch_rows)
		return;
	snapshot_bound();
	mnist_cdc_txn_commit(txn, InvalidXLogRecPtr);
	mnist_cdc_txn_begin(txn);
	snapshot_deadline = 0;
}

/* mnist_cdc_snapshot refuses a table whose topic name is illegal... */
static void
snapshot_bad_name(const char *table, int len, const char *topic)
{
	mnist_kafka_topic_name_check(topic);
}

/* ...or whose topic is missing and was not created. */
static void
snapshot_hold(const char *table, const char *why)
{
	ereport(ERROR,
			(errcode(ERRCODE_UNDEFINED_OBJECT),
			 errmsg("the Kafka topic of table %s is not available", table),
			 errdetail("%s.", why),
			 errhint("Create the topic, or allow its creation with mnist_ml.cdc_create_topics.")));
}

static void
snapshot_ready(const char *table)
{
}

static const CdcTopicCallbacks snapshot_topic_callbacks = {
	.bad_name = snapshot_bad_name,
	.hold = snapshot_hold,
	.ready = snapshot_ready,
};

/*
 * Sends a table's current rows to its topic; returns how many the broker acknowledged.  With
 * mnist_ml.cdc_delivery = exactly_once, in Kafka transactions of mnist_ml.cdc_batch_rows rows
 * (an error aborts the open one; the ones before it stay committed).
 */
Datum
mnist_cdc_snapshot(PG_FUNCTION_ARGS)
{
	Oid			relid = PG_GETARG_OID(0);
	Relation	rel;
	bool		partitioned;
	List	   *tables;
	ListCell   *lc;
	CdcOptions	opts;
	CdcRelInfo	info;
	CdcProducer p;
	SnapshotDelivery delivery;
	rd_kafka_conf_t *conf;
	CdcHeaders	h = {0};
	char		lsn_text[32];
	char		txid_text[16];
	char		time_text[32];
	char		timeout[16];
	char		identity[128];
	bool		eos = mnist_cdc_delivery == MNIST_CDC_EXACTLY_ONCE;
	CdcTxn		txn;
	volatile uint64 sent = 0;
	uint64		skipped = 0;
	Snapshot	snap = GetActiveSnapshot();

	/* a standby has no WAL position of its own to stamp the messages with */
	PreventCommandDuringRecovery("mnist_cdc_snapshot()");
	if (pg_class_aclcheck(relid, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied for table %s", get_rel_name(relid))));
	/* a partitioned table's rows are in its partitions (sent by its name) */
	mnist_cdc_parse_options(NIL, &opts);
	partitioned = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE;
	tables = partitioned ? find_all_inheritors(relid, AccessShareLock, NULL) : list_make1_oid(relid);
	foreach(lc, tables)
	{
		rel = table_open(lfirst_oid(lc), AccessShareLock);
		memset(&info, 0, sizeof(info));
		mnist_cdc_relinfo_fill(rel, &opts, &info, CurrentMemoryContext);
		if (info.refused)
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_NAME),
					 errmsg("table %s cannot be captured: its schema's name contains a dot", info.name),
					 errhint("Rename the schema.")));
		if (!info.captured && !(partitioned && rel->rd_rel->relkind != RELKIND_RELATION))
			ereport(ERROR,
					(errcode(ERRCODE_WRONG_OBJECT_TYPE),
					 errmsg("table %s cannot be captured", info.name),
					 errdetail("A captured table is a plain or partitioned table with a bytea column \"pixels\" and a smallint, integer or bigint column \"label\" (or domains over these types).")));
		table_close(rel, NoLock);
	}

	memset(&delivery, 0, sizeof(delivery));
	conf = mnist_kafka_conf(NULL, NULL);
	/* exactly once: a message lives as long as its transaction (transaction.timeout.ms) */
	if (eos)
		mnist_cdc_txn_conf(conf, psprintf("snapshot.%u", relid), identity);
	else
	{
		snprintf(timeout, sizeof(timeout), "%d", mnist_kafka_timeout_ms);
		mnist_kafka_conf_set(conf, "message.timeout.ms", timeout);
	}
	rd_kafka_conf_set_dr_msg_cb(conf, snapshot_dr);
	rd_kafka_conf_set_opaque(conf, &delivery);
	mnist_cdc_producer_start(&p, conf, mnist_topic_prefix, snapshot_wait,
							 &snapshot_topic_callbacks);
	memset(&txn, 0, sizeof(txn));

	mnist_cdc_lsn_text(GetXLogInsertRecPtr(), lsn_text);
	snprintf(txid_text, sizeof(txid_text), "%u", snap->xmin);
	mnist_cdc_time_text(GetCurrentTransactionStartTimestamp(), time_text);
	h.lsn = lsn_text;
	h.txid = txid_text;
	h.commit_time = time_text;

	PG_TRY();
	{
		if (eos)
		{
			snapshot_bound();
			mnist_cdc_txn_start(&txn, &p, identity, false);
			mnist_cdc_txn_begin(&txn);
			snapshot_deadline = 0;
			p.sent = snapshot_sent;
			p.arg = &txn;
		}
		foreach(lc, tables)
		{
			rel = table_open(lfirst_oid(lc), AccessShareLock);
			if (rel->rd_rel->relkind == RELKIND_RELATION)
			{
				mnist_cdc_relinfo_fill(rel, &opts, &info, CurrentMemoryContext);
				sent += mnist_cdc_send_table(&p, rel, &info, snap, &h, NULL, &skipped);
			}
			table_close(rel, NoLock);
		}
		if (eos)
		{
			snapshot_bound();
			mnist_cdc_txn_commit(&txn, InvalidXLogRecPtr);
		}
		while (rd_kafka_outq_len(p.rk) > 0)
		{
			rd_kafka_poll(p.rk, 100);
			CHECK_FOR_INTERRUPTS();
		}
	}
	PG_FINALLY();
	{
		snapshot_deadline = 0;
		if (txn.open)
			mnist_cdc_txn_abort(&txn);
		rd_kafka_purge(p.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
		rd_kafka_poll(p.rk, 0);
		mnist_cdc_producer_close(&p);
	}
	PG_END_TRY();

	/* rows skipped (each with a WARNING) count in mnist_cdc_status.skipped */
	if (skipped > 0 && mnist_cdc_state)
	{
		SpinLockAcquire(&mnist_cdc_state->mutex);
		mnist_cdc_state->snapshot_skipped += skipped;
		SpinLockRelease(&mnist_cdc_state->mutex);
	}

	if (delivery.failed > 0 || delivery.acked != sent)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the Kafka broker acknowledged " UINT64_FORMAT " of " UINT64_FORMAT " snapshot messages of %s",
						delivery.acked, sent, get_rel_name(relid)),
				 delivery.err ? errdetail("%s", rd_kafka_err2str(delivery.err)) : 0));
	PG_RETURN_INT64((int64) sent);
}

/* Drops the worker's slot (and so the WAL it keeps); the worker must be stopped. */
Datum
mnist_cdc_drop_slot(PG_FUNCTION_ARGS)
{
	ReplicationSlot *slot;
	int			active_pid = 0;

	CheckSlotPermissions();
	LWLockAcquire(ReplicationSlotControlLock, LW_SHARED);
	slot = SearchNamedReplicationSlot(CDC_SLOT_NAME, false);
	if (slot)
	{
		SpinLockAcquire(&slot->mutex);
		active_pid = slot->active_pid;
		SpinLockRelease(&slot->mutex);
	}
	LWLockRelease(ReplicationSlotControlLock);

	if (slot == NULL)
	{
		ereport(NOTICE,
				(errmsg("replication slot \"%s\" does not exist", CDC_SLOT_NAME)));
		PG_RETURN_BOOL(false);
	}
	if (active_pid != 0)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_IN_USE),
				 errmsg("replication slot \"%s\" is in use by process %d", CDC_SLOT_NAME, active_pid),
				 errhint("Stop change data capture first: set mnist_ml.cdc_tables = '' and reload.")));
	ReplicationSlotDrop(CDC_SLOT_NAME, true);
	PG_RETURN_BOOL(true);
}

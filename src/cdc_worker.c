/*
 * cdc_worker.c
 *		The change data capture worker: streams its logical slot of the mnist_ml output
 *		plugin to Kafka with librdkafka, at least once and nothing lost, or exactly once
 *		(mnist_ml.cdc_delivery); its registration and its state in shared memory (cdc_worker.h).
 *
 * The worker decodes WAL itself (CreateDecodingContext and an XLogReader loop, like
 * pg_logical_slot_get_changes but continuous), produces one message per row record of the
 * plugin (option shipper: records carry operation and primary key, BEGIN carries the commit
 * time) and confirms to the slot only the commit LSN of transactions whose every message
 * the broker acknowledged.  In-flight transactions sit in commit order in a ring; delivery
 * reports (served by rd_kafka_poll in this thread) only count down their entries.  When the
 * ring is empty, everything read so far is done, so the slot is confirmed up to the reader's
 * position: tables without traffic do not pin WAL.
 *
 * On first start the worker creates the slot (ephemeral until the initial snapshot is fully
 * acknowledged, so a crash mid-snapshot drops the slot and redoes the snapshot), reads the
 * captured tables in the slot's initial snapshot and then streams from the slot's
 * consistent point, without gap.
 *
 * Exactly once (cdc_txn.c): decoded transactions go out in batches, one Kafka transaction
 * each, closed at a transaction boundary once it holds mnist_ml.cdc_batch_rows rows or is
 * mnist_ml.cdc_batch_ms old; the batch's end LSN (its position) is committed with it and
 * confirmed to the slot after Kafka's commit.  A worker that starts reads the last committed
 * position and decodes from there (PostgreSQL skips the transactions that commit before it),
 * so nothing is sent twice; the ring is not used.  The initial snapshot is one Kafka
 * transaction with the slot's consistent point as its position.
 *
 * Producing is cdc_producer.c's (shared with mnist_cdc_snapshot()); the delivery accounting
 * (the ring) is the worker's.  Records are parsed by the record codec (cdc_record.h).
 */
#include "postgres.h"

#include <unistd.h>

#include "access/table.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "access/xlogutils.h"
#include "catalog/pg_extension.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/decode.h"
#include "replication/logical.h"
#include "replication/reorderbuffer.h"
#include "replication/slot.h"
#include "replication/snapbuild.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lwlock.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/varlena.h"

#include "cdc_capture.h"
#include "cdc_producer.h"
#include "cdc_record.h"
#include "cdc_txn.h"
#include "cdc_worker.h"
#include "kafka_conf.h"
#include "kafka_handle.h"
#include "mnist_ml.h"
#include "pg_compat.h"

PGDLLEXPORT void mnist_cdc_worker_main(Datum arg);

CdcShared  *mnist_cdc_state = NULL;

static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;

/* ---- shared memory and registration ---- */

static void
cdc_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(CdcShared)));
}

static void
cdc_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	mnist_cdc_state = ShmemInitStruct("mnist_ml cdc", sizeof(CdcShared), &found);
	if (!found)
	{
		memset(mnist_cdc_state, 0, sizeof(CdcShared));
		SpinLockInit(&mnist_cdc_state->mutex);
		strlcpy(mnist_cdc_state->state, "starting", sizeof(mnist_cdc_state->state));
	}
	LWLockRelease(AddinShmemInitLock);
}

/*
 * Commit wakeup: a backend whose transaction wrote a commit record sets the streaming
 * worker's latch, as XLogFlush wakes walsenders (WalSndWakeup), which a background worker is
 * not.  Called after the commit record is flushed (synchronous_commit on); an asynchronous
 * commit's WAL is found by the worker's fallback poll once the WAL writer has flushed it.
 */
static void
cdc_commit_wakeup(XactEvent event, void *arg)
{
	static XLogRecPtr woken_for = InvalidXLogRecPtr;
	Latch	   *latch;

	if (event != XACT_EVENT_COMMIT || XactLastCommitEnd == woken_for || mnist_cdc_state == NULL)
		return;
	woken_for = XactLastCommitEnd;
	latch = ((volatile CdcShared *) mnist_cdc_state)->wal_latch;
	if (latch != NULL)
		SetLatch(latch);
}

void
mnist_cdc_register(void)
{
	BackgroundWorker worker;

	/* inherited by every backend: the library is preloaded */
	RegisterXactCallback(cdc_commit_wakeup, NULL);

	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = cdc_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = cdc_shmem_startup;

	memset(&worker, 0, sizeof(worker));
	worker.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	worker.bgw_start_time = BgWorkerStart_RecoveryFinished;
	worker.bgw_restart_time = 2;
	strlcpy(worker.bgw_library_name, "mnist_ml", BGW_MAXLEN);
	strlcpy(worker.bgw_function_name, "mnist_cdc_worker_main", BGW_MAXLEN);
	strlcpy(worker.bgw_name, "mnist_ml change data capture", BGW_MAXLEN);
	strlcpy(worker.bgw_type, "mnist_ml cdc", BGW_MAXLEN);
	RegisterBackgroundWorker(&worker);
}

/* Publishes the worker's state word. */
static void
cdc_set_state(const char *state)
{
	SpinLockAcquire(&mnist_cdc_state->mutex);
	strlcpy(mnist_cdc_state->state, state, sizeof(mnist_cdc_state->state));
	SpinLockRelease(&mnist_cdc_state->mutex);
}

/* ---- the worker ---- */

/* One transaction (or the initial snapshot) whose messages are in flight. */
typedef struct RingTxn
{
	XLogRecPtr	end_lsn;		/* confirm this once everything is acknowledged */
	int64		outstanding;	/* messages not yet acknowledged */
	bool		committed;		/* all its messages are enqueued */
} RingTxn;

/* Settings the worker runs with; a SIGHUP that changes them restarts the worker. */
typedef struct WorkerSettings
{
	char	   *servers;
	char	   *tables;
	char	   *database;
	char	   *prefix;
	char	   *properties;
	char	   *properties_file;
	int			delivery;
} WorkerSettings;

static WorkerSettings running;
static CdcProducer producer;
static LogicalDecodingContext *decoding_ctx = NULL;

/* exactly once: the transactional producer, whether a decoded transaction is being sent */
static bool eos = false;
static CdcTxn txn;
static bool in_txn = false;
static XLogRecPtr batch_end = InvalidXLogRecPtr;	/* end of the batch's last transaction */

static RingTxn *ring = NULL;
static uint64 ring_mask = 0;
static uint64 ring_head = 0;	/* oldest unconfirmed transaction */
static uint64 ring_tail = 0;	/* next transaction */
static uint64 cur_seq = 0;		/* transaction being decoded */
static XLogRecPtr confirmed_lsn = InvalidXLogRecPtr;
static XLogRecPtr last_saved_lsn = InvalidXLogRecPtr;
static TimestampTz last_saved_at = 0;
static TimestampTz last_wal_at = 0;	/* when the page reader last found the WAL it needed */

/* counters of earlier workers since server start, continued by this one */
static uint64 base_produced = 0;
static uint64 base_acked = 0;
static uint64 base_failed = 0;
static uint64 base_skipped = 0;

/* counters and errors recorded by librdkafka callbacks (plain memory only) */
static uint64 n_acked = 0;
static uint64 n_failed = 0;
static bool delivery_failed = false;
static rd_kafka_resp_err_t last_kafka_err = RD_KAFKA_RESP_ERR_NO_ERROR;
static char last_kafka_reason[256];
static bool kafka_error_pending = false;
static bool broker_reachable = false;

/* current transaction's header texts */
static char cur_txid[16];
static char cur_time[32];

/* acknowledgements counted when this worker last recorded an error (see service) */
static uint64 acked_at_error = 0;
static bool error_shown = false;

/* Records the last error shown by mnist_cdc_status (never a secret: callers see to it). */
static void
cdc_set_error(const char *msg)
{
	SpinLockAcquire(&mnist_cdc_state->mutex);
	strlcpy(mnist_cdc_state->last_error, msg, sizeof(mnist_cdc_state->last_error));
	mnist_cdc_state->last_error_at = GetCurrentTimestamp();
	SpinLockRelease(&mnist_cdc_state->mutex);
	acked_at_error = n_acked;
	error_shown = true;
}

/* Clears last_error and last_error_at: what it said is over. */
static void
cdc_clear_error(void)
{
	SpinLockAcquire(&mnist_cdc_state->mutex);
	mnist_cdc_state->last_error[0] = '\0';
	mnist_cdc_state->last_error_at = 0;
	SpinLockRelease(&mnist_cdc_state->mutex);
	error_shown = false;
}

/* Publishes the table whose topic the stream waits for (NULL: none) and why. */
static void
cdc_set_waiting(const char *table, const char *why)
{
	SpinLockAcquire(&mnist_cdc_state->mutex);
	if (table == NULL || strcmp(mnist_cdc_state->waiting_table, table) != 0)
		mnist_cdc_state->waiting_since = table ? GetCurrentTimestamp() : 0;
	strlcpy(mnist_cdc_state->waiting_table, table ? table : "",
			sizeof(mnist_cdc_state->waiting_table));
	strlcpy(mnist_cdc_state->waiting_reason, why ? why : "",
			sizeof(mnist_cdc_state->waiting_reason));
	SpinLockRelease(&mnist_cdc_state->mutex);
}

/* Delivery report: count down the message's transaction; nothing else. */
static void
worker_dr(rd_kafka_t *rk, const rd_kafka_message_t *msg, void *opaque)
{
	uint64		seq = (uint64) (uintptr_t) msg->_private;

	if (msg->err)
	{
		/*
		 * The transaction stays unacknowledged: never confirmed, sent again on restart.
		 * Exactly once: the Kafka transaction cannot commit, and is aborted then.
		 */
		n_failed++;
		delivery_failed = !eos;
		last_kafka_err = msg->err;
		strlcpy(last_kafka_reason, rd_kafka_err2str(msg->err), sizeof(last_kafka_reason));
		kafka_error_pending = true;
	}
	else
	{
		if (!eos)
			ring[seq & ring_mask].outstanding--;
		n_acked++;
		broker_reachable = true;
	}
}

/* Error callback: record only. */
static void
worker_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	/* "N/N brokers are down" says less than a pending reason, e.g. a failed authentication */
	if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN && kafka_error_pending)
	{
		broker_reachable = false;
		return;
	}
	last_kafka_err = err;
	strlcpy(last_kafka_reason, reason, sizeof(last_kafka_reason));
	kafka_error_pending = true;
	if (mnist_kafka_error_class(err) == MNIST_KAFKA_ERROR_TRANSPORT)
		broker_reachable = false;
}

/* Grows the ring (never while librdkafka callbacks can run: we are not inside a poll). */
static void
ring_grow(void)
{
	static MemoryContext ring_cxt = NULL;
	uint64		newsize = ring ? (ring_mask + 1) * 2 : 1024;
	RingTxn    *newring;
	uint64		seq;

	if (ring_cxt == NULL)
		ring_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml cdc ring",
										 ALLOCSET_SMALL_SIZES);
	newring = MemoryContextAllocZero(ring_cxt, newsize * sizeof(RingTxn));

	for (seq = ring_head; seq < ring_tail; seq++)
		newring[seq & (newsize - 1)] = ring[seq & ring_mask];
	if (ring)
		pfree(ring);
	ring = newring;
	ring_mask = newsize - 1;
}

/* Starts a ring entry for a transaction about to produce messages. */
static uint64
ring_push(void)
{
	RingTxn    *t;

	if (ring == NULL || ring_tail - ring_head > ring_mask)
		ring_grow();
	t = &ring[ring_tail & ring_mask];
	t->end_lsn = InvalidXLogRecPtr;
	t->outstanding = 0;
	t->committed = false;
	return ring_tail++;
}

/* Confirms lsn to the slot if it moves the confirmed position forward. */
static void
confirm(XLogRecPtr lsn)
{
	if (lsn <= confirmed_lsn)
		return;
	LogicalConfirmReceivedLocation(lsn);
	/* so that any checkpoint, including the shutdown one, saves it */
	ReplicationSlotMarkDirty();
	confirmed_lsn = lsn;
}

/* Pops fully acknowledged transactions in commit order and confirms the last one. */
static void
ring_advance(bool idle)
{
	XLogRecPtr	upto = InvalidXLogRecPtr;

	while (ring_head < ring_tail)
	{
		RingTxn    *t = &ring[ring_head & ring_mask];

		if (!t->committed || t->outstanding > 0)
			break;
		upto = t->end_lsn;
		ring_head++;
	}
	if (upto != InvalidXLogRecPtr)
		confirm(upto);

	/*
	 * Nothing in flight: everything read so far is done (no WAL pinned by idle tables), up to
	 * the start of the oldest transaction still being decoded.  Its rows are not sent before
	 * its commit is read, so confirming past its start would hide them from lag_bytes.
	 */
	if (idle && ring_head == ring_tail && decoding_ctx != NULL)
	{
		ReorderBufferTXN *oldest = ReorderBufferGetOldestTXN(decoding_ctx->reorder);
		XLogRecPtr	upto_read = decoding_ctx->reader->EndRecPtr;

		if (oldest != NULL && oldest->first_lsn < upto_read)
			upto_read = oldest->first_lsn;
		confirm(upto_read);
	}
}

/* The state worker_exit publishes: why this worker ends (the postmaster restarts it in 2 s). */
static const char *exit_state = "stopped";

/* Exits (to be restarted) when a setting the worker depends on changed. */
static void
check_settings(void)
{
	if (!ConfigReloadPending)
		return;
	ConfigReloadPending = false;
	ProcessConfigFile(PGC_SIGHUP);
	if (strcmp(running.servers, mnist_kafka_bootstrap_servers) != 0 ||
		strcmp(running.tables, mnist_cdc_tables) != 0 ||
		strcmp(running.database, mnist_cdc_database) != 0 ||
		strcmp(running.prefix, mnist_topic_prefix) != 0 ||
		strcmp(running.properties, mnist_kafka_properties) != 0 ||
		strcmp(running.properties_file, mnist_kafka_properties_file) != 0 ||
		running.delivery != mnist_cdc_delivery)
	{
		ereport(LOG,
				(errmsg("mnist_ml change data capture settings changed, restarting the worker")));
		/* readers that read committed would wait for an open one until it times out */
		if (eos)
			mnist_cdc_txn_abort(&txn);
		exit_state = "restarting";
		proc_exit(1);
	}
}

/* Exactly once: commits the batch with its position, then confirms the position. */
static void
batch_close(void)
{
	mnist_cdc_txn_commit(&txn, batch_end);
	confirm(batch_end);
}

/* Exactly once: whether the open batch reached mnist_ml.cdc_batch_rows or cdc_batch_ms. */
static bool
batch_full(void)
{
	return txn.rows >= (uint64) mnist_cdc_batch_rows ||
		TimestampDifferenceExceeds(txn.opened_at, GetCurrentTimestamp(), mnist_cdc_batch_ms);
}

/*
 * Serves librdkafka (delivery reports, logs, errors), confirms what is acknowledged and
 * publishes counters.  idle: called between records (nothing half-decoded).
 */
static void
service(bool idle)
{
	rd_kafka_poll(producer.rk, 0);

	if (kafka_error_pending)
	{
		char		msg[300];

		kafka_error_pending = false;
		snprintf(msg, sizeof(msg), "Kafka: %s", last_kafka_reason);
		cdc_set_error(msg);
		ereport(LOG, (errmsg("mnist_ml change data capture: %s", msg)));
	}
	if (delivery_failed)
		ereport(ERROR,
				(errcode(ERRCODE_CONNECTION_FAILURE),
				 errmsg("the Kafka broker did not accept a change data capture message: %s",
						rd_kafka_err2str(last_kafka_err)),
				 errdetail("The worker restarts and sends again from the last acknowledged transaction.")));

	/* exactly once: a batch closes on its time bound too; the read position waits for it */
	if (eos && idle && txn.open && !in_txn && batch_end != InvalidXLogRecPtr && batch_full())
		batch_close();
	ring_advance(idle && !(eos && txn.open));

	/* a Kafka error is over once the broker acknowledges messages again */
	if (error_shown && n_acked > acked_at_error && broker_reachable)
		cdc_clear_error();

	/*
	 * Save the confirmed position about once a second: fewer duplicates after a crash.  Not
	 * needed exactly once: the position Kafka committed is where a new worker starts.
	 */
	if (!eos && confirmed_lsn > last_saved_lsn)
	{
		TimestampTz now = GetCurrentTimestamp();

		if (TimestampDifferenceExceeds(last_saved_at, now, 1000))
		{
			ReplicationSlotSave();
			last_saved_lsn = confirmed_lsn;
			last_saved_at = now;
		}
	}

	SpinLockAcquire(&mnist_cdc_state->mutex);
	mnist_cdc_state->produced = base_produced + producer.produced;
	mnist_cdc_state->acknowledged = base_acked + n_acked;
	mnist_cdc_state->failed = base_failed + n_failed;
	mnist_cdc_state->skipped = base_skipped + mnist_cdc_rows_skipped;
	mnist_cdc_state->broker_reachable = broker_reachable;
	mnist_cdc_state->confirmed_lsn = confirmed_lsn;
	SpinLockRelease(&mnist_cdc_state->mutex);

	check_settings();
}

/* Waits for the queue to drain a little (CdcProducer.wait of the worker). */
static void
worker_queue_wait(CdcProducer *p)
{
	rd_kafka_poll(p->rk, 50);
	service(false);
	CHECK_FOR_INTERRUPTS();
}

/* The wait for WAL that no commit announced (asynchronous commits), in ms */
#define CDC_WAL_POLL_MS 10

/*
 * Page reader: like read_local_xlog_page, but while WAL is not there yet (or, for a failover
 * slot, not yet on the synchronized standbys) it serves Kafka and waits on the latch instead
 * of sleeping blindly.
 */
static int
cdc_page_read(XLogReaderState *state, XLogRecPtr targetPagePtr, int reqLen,
			  XLogRecPtr targetRecPtr, char *cur_page)
{
	for (;;)
	{
		XLogRecPtr	flushed = GetFlushRecPtr(NULL);

		if (targetPagePtr + reqLen <= flushed && mnist_standbys_have(targetPagePtr + reqLen))
			break;
		service(true);
		/* a commit sets the latch (cdc_commit_wakeup); the timeout finds other flushed WAL */
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 CDC_WAL_POLL_MS, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
	}
	last_wal_at = GetCurrentTimestamp();
	return read_local_xlog_page(state, targetPagePtr, reqLen, targetRecPtr, cur_page);
}

static void
cdc_prepare_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid,
				  bool last_write)
{
	resetStringInfo(ctx->out);
}

/* Turns one record of the plugin (shipper option) into Kafka messages and ring entries. */
static void
cdc_write(LogicalDecodingContext *ctx, XLogRecPtr lsn, TransactionId xid, bool last_write)
{
	MnistCdcRecord rec;
	const char *problem = mnist_cdc_record_parse(ctx->out->data, ctx->out->len, &rec);
	char		lsn_text[32];
	char		key[1];
	const char *value;
	size_t		value_len;
	size_t		key_len;
	char		trace[64];
	CdcHeaders	h = {0};
	rd_kafka_topic_t *rkt;

	if (problem == NULL && rec.kind == MNIST_CDC_RECORD_ROW && rec.op == 0)
		problem = "row record has no operation";
	if (problem == NULL && rec.kind == MNIST_CDC_RECORD_BEGIN && !rec.has_commit_time)
		problem = "BEGIN record has no commit time";
	if (problem)
		elog(ERROR, "unexpected record from output plugin: %s: %s", problem, ctx->out->data);
	if (rec.kind == MNIST_CDC_RECORD_BEGIN)
	{
		snprintf(cur_txid, sizeof(cur_txid), "%u", rec.xid);
		mnist_cdc_time_text((TimestampTz) rec.commit_time, cur_time);
		if (eos)
		{
			mnist_cdc_txn_begin(&txn);
			in_txn = true;
		}
		else
			cur_seq = ring_push();
		return;
	}
	if (rec.kind == MNIST_CDC_RECORD_COMMIT)
	{
		if (eos)
		{
			in_txn = false;
			batch_end = lsn;
			if (batch_full())
				batch_close();
		}
		else
		{
			RingTxn    *t = &ring[cur_seq & ring_mask];

			t->end_lsn = lsn;
			t->committed = true;
		}
		return;
	}

	mnist_cdc_lsn_text(lsn, lsn_text);
	h.table = rec.table;
	/* the table field is ours (the output buffer): unescaped in place */
	h.table_len = mnist_cdc_record_unescape((char *) rec.table, rec.table_len);
	h.lsn = lsn_text;
	h.txid = cur_txid;
	h.commit_time = cur_time;
	h.op = &rec.op;
	h.pk = rec.pk;
	h.pk_len = rec.pk_len;
	rkt = mnist_cdc_topic(&producer, h.table, h.table_len);
	if (rkt == NULL)
	{
		/* a table whose topic Kafka refuses: its rows are skipped, counted, said once */
		mnist_cdc_rows_skipped++;
		return;
	}
	if (mnist_cdc_trace_latency)
	{
		char		seen[32];
		char		produced[32];

		mnist_cdc_time_text(last_wal_at, seen);
		mnist_cdc_time_text(GetCurrentTimestamp(), produced);
		snprintf(trace, sizeof(trace), "%s %s", seen, produced);
		h.trace = trace;
	}
	key_len = mnist_cdc_record_message(&rec, key, NULL, &value, &value_len);
	mnist_cdc_produce(&producer, rkt, key, key_len, value, value_len, &h,
				(void *) (uintptr_t) cur_seq);
	if (eos)
		txn.rows++;
	else
		ring[cur_seq & ring_mask].outstanding++;
}

/* True when change data capture is configured on. */
static bool
cdc_enabled(void)
{
	return mnist_kafka_bootstrap_servers[0] != '\0' && mnist_cdc_tables[0] != '\0';
}

/* Idles until a SIGHUP (or timeout_ms, when positive). */
static void
idle_wait(long timeout_ms)
{
	(void) WaitLatch(MyLatch,
					 WL_LATCH_SET | WL_EXIT_ON_PM_DEATH | (timeout_ms > 0 ? WL_TIMEOUT : 0),
					 timeout_ms, PG_WAIT_EXTENSION);
	ResetLatch(MyLatch);
	CHECK_FOR_INTERRUPTS();
	if (ConfigReloadPending)
	{
		ConfigReloadPending = false;
		ProcessConfigFile(PGC_SIGHUP);
	}
}

/* Reports a condition that keeps CDC from running, once per distinct message. */
static void
report_blocked(const char *msg, const char *hint)
{
	static char last[256];

	cdc_set_state("blocked");
	if (strcmp(last, msg) == 0)
		return;
	strlcpy(last, msg, sizeof(last));
	cdc_set_error(msg);
	ereport(WARNING,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("mnist_ml change data capture cannot run: %s", msg),
			 hint ? errhint("%s", hint) : 0));
}

/* True when the server needs mnist_ml in output_plugin_libraries and it is missing there. */
static bool
plugin_not_allowed(void)
{
	const char *libs = GetConfigOption("output_plugin_libraries", true, false);
	char	   *copy;
	List	   *names;
	ListCell   *lc;
	bool		listed = false;

	if (libs == NULL)
		return false;			/* server older than 15.19: every plugin loads */
	copy = pstrdup(libs);
	if (!SplitIdentifierString(copy, ',', &names))
		return true;
	foreach(lc, names)
		if (strcmp(lfirst(lc), "mnist_ml") == 0)
			listed = true;
	return !listed;
}

/* The plugin options the worker decodes with. */
static List *
worker_plugin_options(void)
{
	return list_make3(makeDefElem("tables", (Node *) makeString(running.tables), -1),
					  makeDefElem("shipper", (Node *) makeString("on"), -1),
					  makeDefElem("format_version",
								  (Node *) makeString(CppAsString2(MNIST_CDC_RECORD_VERSION)), -1));
}

/*
 * A captured table whose topic name Kafka refuses: its rows are skipped (counted by the
 * caller) in the snapshot and in the stream alike.
 */
static void
worker_bad_name(const char *table, int len, const char *topic)
{
	ereport(WARNING,
			(errcode(ERRCODE_INVALID_NAME),
			 errmsg("mnist_ml: skipping the rows of %.*s: \"%s\" is not a valid Kafka topic name",
					len, table, topic),
			 errdetail("A topic name has 1 to 249 letters, digits, dots, underscores or hyphens; mnist_cdc_status.skipped counts the rows."),
			 errhint("Rename the table, or leave it out of mnist_ml.cdc_tables.")));
}

/*
 * A captured table whose topic is missing and was not created: the stream holds at its first
 * row (nothing after it is sent or confirmed) for 5 s, then the topic is looked up again.
 * Said once per table and reason; mnist_cdc_status shows the table and the reason.
 */
static void
worker_hold(const char *table, const char *why)
{
	static char warned[sizeof(((CdcShared *) 0)->waiting_table) + 256];
	char	   *said = psprintf("%s\t%s", table, why);

	cdc_set_waiting(table, why);
	if (strcmp(said, warned) != 0)
	{
		strlcpy(warned, said, sizeof(warned));
		ereport(WARNING,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("mnist_ml change data capture waits for the topic \"%s.%s\" of table %s: %s",
						running.prefix, table, table, why),
				 errdetail("Nothing after this table's first row is sent or confirmed to the slot until the topic exists; the topic is looked up every 5 s."),
				 errhint("Create the topic (or allow its creation: mnist_ml.cdc_create_topics, cdc_topic_partitions, cdc_topic_replication_factor), or leave the table out of mnist_ml.cdc_tables.")));
	}
	pfree(said);
	for (int i = 0; i < 50; i++)
	{
		rd_kafka_poll(producer.rk, 100);
		service(false);
		CHECK_FOR_INTERRUPTS();
	}
}

/* The topic a held table waited for exists now: the stream goes on. */
static void
worker_ready(const char *table)
{
	cdc_set_waiting(NULL, NULL);
	ereport(LOG,
			(errmsg("mnist_ml change data capture: the topic of %s exists, its rows are sent", table)));
}

static const CdcTopicCallbacks worker_topic_callbacks = {
	.bad_name = worker_bad_name,
	.hold = worker_hold,
	.ready = worker_ready,
};

/*
 * Defaults the user's properties may override: low latency, a bounded queue and, where
 * librdkafka re-bootstraps (2.10 and later), doing so after 10 s without a usable broker
 * instead of 5 minutes.  A broker fenced by its controller (one that hung past its session
 * timeout) is left out of the metadata it answers; librdkafka then forgets it and, the
 * bootstrap brokers being gone too, has nobody to ask until it re-bootstraps (2.14.2's
 * immediate re-bootstrap on that is not reliable; this timer is).
 */
#define CDC_PRODUCER_DEFAULTS \
	"client.id=mnist_ml-cdc linger.ms=5 " \
	"queue.buffering.max.messages=20000 queue.buffering.max.kbytes=65536"
#define CDC_REBOOTSTRAP_DEFAULT " metadata.recovery.rebootstrap.trigger.ms=10000"

/* Does this librdkafka know the property? */
static bool
rdkafka_knows(const char *name, const char *value)
{
	rd_kafka_conf_t *probe = rd_kafka_conf_new();
	char		errstr[256];
	bool		known = rd_kafka_conf_set(probe, name, value, errstr, sizeof(errstr)) ==
		RD_KAFKA_CONF_OK;

	rd_kafka_conf_destroy(probe);
	return known;
}

/* Creates the librdkafka producer of the worker. */
static void
create_producer(void)
{
	rd_kafka_conf_t *conf = mnist_kafka_conf(NULL,
											 rdkafka_knows("metadata.recovery.rebootstrap.trigger.ms", "10000") ?
											 CDC_PRODUCER_DEFAULTS CDC_REBOOTSTRAP_DEFAULT :
											 CDC_PRODUCER_DEFAULTS);

	char		identity[128];

	/*
	 * Never drop a message, however long the outage.  Exactly once: a message lives as long
	 * as its transaction (librdkafka's default, transaction.timeout.ms), then the transaction
	 * is aborted and sent again.
	 */
	if (eos)
		mnist_cdc_txn_conf(conf, CDC_SLOT_NAME, identity);
	else
		mnist_kafka_conf_set(conf, "message.timeout.ms", "0");
	rd_kafka_conf_set_dr_msg_cb(conf, worker_dr);
	rd_kafka_conf_set_error_cb(conf, worker_error_cb);
	mnist_cdc_producer_start(&producer, conf, running.prefix, worker_queue_wait,
							 &worker_topic_callbacks);
	if (eos)
	{
		cdc_set_state("starting transactions");
		mnist_cdc_txn_start(&txn, &producer, identity, true);
	}
}

/*
 * Creates the slot and sends the captured tables' rows as of its consistent point.  The slot
 * stays ephemeral (dropped by a crash) until the snapshot is fully acknowledged.
 */
static void
create_slot_with_snapshot(void)
{
	LogicalDecodingContext *ctx;
	Snapshot	snap;
	XLogRecPtr	start;
	CdcOptions	opts;
	CdcHeaders	h = {0};
	char		lsn_text[32];
	char		txid_text[16];
	char		time_text[32];
	uint64		seq;
	uint64		total = 0;
	int			ret;
	uint64		i;

	cdc_set_state("creating slot");
	StartTransactionCommand();
	XactIsoLevel = XACT_REPEATABLE_READ;
	CheckLogicalDecodingRequirements();
	mnist_slot_create(CDC_SLOT_NAME, true, RS_EPHEMERAL, false, MNIST_HAVE_FAILOVER_SLOTS);
	ctx = CreateInitDecodingContext("mnist_ml", NIL, true, InvalidXLogRecPtr,
									XL_ROUTINE(.page_read = read_local_xlog_page,
											   .segment_open = wal_segment_open,
											   .segment_close = wal_segment_close),
									cdc_prepare_write, cdc_write, NULL);
	DecodingContextFindStartpoint(ctx);
	start = MyReplicationSlot->data.confirmed_flush;
	snap = SnapBuildInitialSnapshot(ctx->snapshot_builder);
	RestoreTransactionSnapshot(snap, MyProc);
	snap = GetTransactionSnapshot();
	PushActiveSnapshot(snap);

	cdc_set_state("initial snapshot");
	ereport(LOG,
			(errmsg("mnist_ml change data capture: created slot \"%s\" at %X/%X, sending the initial snapshot",
					CDC_SLOT_NAME, LSN_FORMAT_ARGS(start))));

	mnist_cdc_parse_options(worker_plugin_options(), &opts);
	mnist_cdc_lsn_text(start, lsn_text);
	snprintf(txid_text, sizeof(txid_text), "%u", snap->xmin);
	mnist_cdc_time_text(GetCurrentTimestamp(), time_text);
	h.lsn = lsn_text;
	h.txid = txid_text;
	h.commit_time = time_text;
	seq = eos ? 0 : ring_push();
	if (eos)
		mnist_cdc_txn_begin(&txn);

	SPI_connect();
	ret = SPI_execute("SELECT c.oid FROM pg_catalog.pg_class c "
					  "JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace "
					  "WHERE c.relkind OPERATOR(pg_catalog.=) 'r' AND c.relpersistence OPERATOR(pg_catalog.=) 'p' "
					  "AND n.nspname OPERATOR(pg_catalog.<>) ALL ('{pg_catalog,information_schema}'::pg_catalog.name[]) "
					  "AND n.nspname OPERATOR(pg_catalog.!~) '^pg_toast' ORDER BY c.oid", true, 0);
	if (ret != SPI_OK_SELECT)
		elog(ERROR, "could not list tables for the initial snapshot");
	for (i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));
		Relation	rel = table_open(relid, AccessShareLock);
		CdcRelInfo	info;

		memset(&info, 0, sizeof(info));
		mnist_cdc_relinfo_fill(rel, &opts, &info, CurrentMemoryContext);
		if (info.captured)
		{
			uint64		n = mnist_cdc_send_table(&producer, rel, &info, snap, &h,
										   (void *) (uintptr_t) seq, &mnist_cdc_rows_skipped);

			if (eos)
				txn.rows += n;
			else
				ring[seq & ring_mask].outstanding += n;
			total += n;
			ereport(LOG,
					(errmsg("mnist_ml change data capture: initial snapshot of %s: " UINT64_FORMAT " rows",
							info.name, n)));
		}
		table_close(rel, AccessShareLock);
	}
	SPI_finish();

	/* wait until the broker has acknowledged (committed) the whole snapshot, then keep the slot */
	if (eos)
		mnist_cdc_txn_commit(&txn, start);
	else
	{
		ring[seq & ring_mask].end_lsn = start;
		ring[seq & ring_mask].committed = true;
		while (ring_head < ring_tail)
		{
			rd_kafka_poll(producer.rk, 100);
			service(false);
			CHECK_FOR_INTERRUPTS();
		}
	}
	ReplicationSlotPersist();
	FreeDecodingContext(ctx);
	PopActiveSnapshot();
	CommitTransactionCommand();
	confirmed_lsn = start;
	ereport(LOG,
			(errmsg("mnist_ml change data capture: initial snapshot done, " UINT64_FORMAT " rows acknowledged",
					total)));
}

/*
 * Streams the slot to Kafka until the worker exits.  position: where Kafka's committed data
 * ends (exactly once), or Invalid: the decoded transactions that commit before it are skipped,
 * and the slot is confirmed there.
 */
static void
stream(XLogRecPtr position)
{
	XLogRecPtr	restart;
	XLogRecPtr	slot_confirmed;
	int			n = 0;

	SpinLockAcquire(&MyReplicationSlot->mutex);
	slot_confirmed = MyReplicationSlot->data.confirmed_flush;
	SpinLockRelease(&MyReplicationSlot->mutex);
	if (position <= slot_confirmed)
		position = InvalidXLogRecPtr;
	decoding_ctx = CreateDecodingContext(position, worker_plugin_options(), false,
										 XL_ROUTINE(.page_read = cdc_page_read,
													.segment_open = wal_segment_open,
													.segment_close = wal_segment_close),
										 cdc_prepare_write, cdc_write, NULL);
	SpinLockAcquire(&MyReplicationSlot->mutex);
	restart = MyReplicationSlot->data.restart_lsn;
	confirmed_lsn = MyReplicationSlot->data.confirmed_flush;
	SpinLockRelease(&MyReplicationSlot->mutex);
	last_saved_lsn = confirmed_lsn;
	XLogBeginRead(decoding_ctx->reader, restart);
	if (position != InvalidXLogRecPtr)
	{
		ereport(LOG,
				(errmsg("mnist_ml change data capture: Kafka committed the changes up to %X/%X, the slot confirmed %X/%X: the transactions between are not sent again",
						LSN_FORMAT_ARGS(position), LSN_FORMAT_ARGS(confirmed_lsn))));
		confirm(position);
	}

	SpinLockAcquire(&mnist_cdc_state->mutex);
	mnist_cdc_state->wal_latch = MyLatch;
	SpinLockRelease(&mnist_cdc_state->mutex);
	cdc_set_state("streaming");
	/* what kept the worker from streaming (a start-up error, an earlier failure) is over */
	cdc_clear_error();
	ereport(LOG,
			(errmsg("mnist_ml change data capture: streaming slot \"%s\" from %X/%X to %s",
					CDC_SLOT_NAME, LSN_FORMAT_ARGS(confirmed_lsn), running.servers)));
	for (;;)
	{
		XLogRecord *record;
		char	   *errm = NULL;

		record = XLogReadRecord(decoding_ctx->reader, &errm);
		if (errm)
			elog(ERROR, "could not read WAL for change data capture: %s", errm);
		if (record != NULL)
			LogicalDecodingProcessRecord(decoding_ctx, decoding_ctx->reader);
		if (++n % 64 == 0)
			service(true);
		CHECK_FOR_INTERRUPTS();
	}
}

static void worker_body(void);

/* Marks the worker gone in shared memory, saying why (exit_state). */
static void
worker_exit(int code, Datum arg)
{
	SpinLockAcquire(&mnist_cdc_state->mutex);
	mnist_cdc_state->pid = 0;
	mnist_cdc_state->wal_latch = NULL;
	strlcpy(mnist_cdc_state->state, exit_state, sizeof(mnist_cdc_state->state));
	SpinLockRelease(&mnist_cdc_state->mutex);
}

/* Runs the worker until it exits; an error is published (state failed, last_error) first. */
static void
worker_run(void)
{
	PG_TRY();
	{
		worker_body();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(TopMemoryContext);
		edata = CopyErrorData();
		cdc_set_error(edata->detail ? psprintf("%s: %s", edata->message, edata->detail) :
					  edata->message);
		exit_state = "failed";
		PG_RE_THROW();
	}
	PG_END_TRY();
}

void
mnist_cdc_worker_main(Datum arg)
{
	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();

	SpinLockAcquire(&mnist_cdc_state->mutex);
	mnist_cdc_state->pid = MyProcPid;
	base_produced = mnist_cdc_state->produced;
	base_acked = mnist_cdc_state->acknowledged;
	base_failed = mnist_cdc_state->failed;
	base_skipped = mnist_cdc_state->skipped;
	mnist_cdc_state->waiting_table[0] = '\0';
	mnist_cdc_state->waiting_reason[0] = '\0';
	mnist_cdc_state->waiting_since = 0;
	SpinLockRelease(&mnist_cdc_state->mutex);
	on_shmem_exit(worker_exit, (Datum) 0);
	worker_run();
}

/* The worker: waits until CDC can run, then creates its producer and slot and streams. */
static void
worker_body(void)
{
	Oid			ext;
	XLogRecPtr	position = InvalidXLogRecPtr;

	/* CDC off: idle, reconsider on every reload */
	while (!cdc_enabled())
	{
		cdc_set_state("off");
		idle_wait(0);
	}
	while (plugin_not_allowed())
	{
		report_blocked("output plugin mnist_ml is not listed in output_plugin_libraries",
					   "Add mnist_ml to output_plugin_libraries in postgresql.conf (output_plugin_libraries = 'pgoutput, test_decoding, mnist_ml') and reload.");
		idle_wait(0);
	}

	running.servers = pstrdup(mnist_kafka_bootstrap_servers);
	running.tables = pstrdup(mnist_cdc_tables);
	running.database = pstrdup(mnist_cdc_database);
	running.prefix = pstrdup(mnist_topic_prefix);
	running.properties = pstrdup(mnist_kafka_properties);
	running.properties_file = pstrdup(mnist_kafka_properties_file);
	running.delivery = mnist_cdc_delivery;
	eos = running.delivery == MNIST_CDC_EXACTLY_ONCE;

	cdc_set_state("connecting");
	BackgroundWorkerInitializeConnection(running.database, NULL, 0);
	/* a superuser process: no object of a user's schema may stand in for a catalog one */
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	for (;;)
	{
		StartTransactionCommand();
		ext = get_extension_oid("mnist_ml", true);
		CommitTransactionCommand();
		if (OidIsValid(ext))
			break;
		report_blocked(psprintf("extension mnist_ml does not exist in database \"%s\"",
								running.database),
					   "Run CREATE EXTENSION mnist_ml in that database, or set mnist_ml.cdc_database.");
		idle_wait(5000);
		check_settings();
	}

	create_producer();
	if (SearchNamedReplicationSlot(CDC_SLOT_NAME, true) == NULL)
		create_slot_with_snapshot();
	else
	{
		mnist_slot_acquire(CDC_SLOT_NAME, true);
		if (eos)
		{
			cdc_set_state("reading position");
			position = mnist_cdc_txn_read_position(&txn);
		}
	}
	stream(position);
}

/*
 * pg_compat.h
 *		The differences between the PostgreSQL majors mnist_ml builds against (15 to 18), in
 *		one place: the rest of the code calls these and carries no version tests.
 *
 * Tested: 15 and 18; compiled against 17; 16 is written from PostgreSQL's headers' history
 * and untested (it differs from 15 in nothing used here).  Include it after the PostgreSQL
 * header that declares what a macro uses (storage/proc.h, replication/slot.h,
 * replication/reorderbuffer.h).
 */
#ifndef MNIST_PG_COMPAT_H
#define MNIST_PG_COMPAT_H

#if PG_VERSION_NUM < 150000
#error "mnist_ml needs PostgreSQL 15 or later"
#endif

/*
 * A function that does not return: 18 replaced pg_attribute_noreturn() (after the
 * declaration's specifiers, GCC's attribute) by pg_noreturn (C11's _Noreturn, first).
 */
#ifndef pg_noreturn
#define pg_noreturn pg_attribute_noreturn()
#endif

/*
 * The local transaction id of a backend.  17 moved it into PGPROC's vxid (commit "Replace
 * BackendIds with 0-based ProcNumbers").
 */
#if PG_VERSION_NUM >= 170000
#define mnist_proc_lxid(proc) ((proc)->vxid.lxid)
#else
#define mnist_proc_lxid(proc) ((proc)->lxid)
#endif

/*
 * A decoded change's old or new tuple as a HeapTuple (NULL when absent).  Up to 16 it is a
 * ReorderBufferTupleBuf holding the HeapTupleData; since 17 it is the HeapTuple itself.
 */
#if PG_VERSION_NUM >= 170000
#define mnist_change_tuple(t) (t)
#else
#define mnist_change_tuple(t) ((t) != NULL ? &(t)->tuple : NULL)
#endif

/* Begin an index scan; 18 added an instrumentation argument (NULL: none). */
#if PG_VERSION_NUM >= 180000
#define mnist_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), NULL, (nkeys), (norderbys))
#else
#define mnist_index_beginscan(heap, index, snapshot, nkeys, norderbys) \
	index_beginscan((heap), (index), (snapshot), (nkeys), (norderbys))
#endif

/*
 * Failover slots (17+): a logical slot marked failover is synchronized to physical standbys
 * that set sync_replication_slots, so decoding continues from it after a promotion.  Up to 16
 * the flag is ignored: a promoted standby has no copy of the slot.
 */
#define MNIST_HAVE_FAILOVER_SLOTS (PG_VERSION_NUM >= 170000)

/*
 * Whether the WAL up to lsn may be decoded by a backend holding a slot: for a failover slot
 * (17+), only once the physical standbys named in synchronized_standby_slots have it, so that
 * the slot never runs ahead of a standby that may be promoted (what walsenders and
 * pg_logical_slot_get_changes() do).  Never waits; misconfigured names are reported at DEBUG1.
 */
#if PG_VERSION_NUM >= 170000
#define mnist_standbys_have(lsn) \
	(!MyReplicationSlot->data.failover || StandbySlotsHaveCaughtup((lsn), DEBUG1))
#else
#define mnist_standbys_have(lsn) true
#endif

/* Create a slot of this backend (not one synchronized from a primary). */
#if PG_VERSION_NUM >= 170000
#define mnist_slot_create(name, db_specific, persistency, two_phase, failover) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase), (failover), false)
#else
#define mnist_slot_create(name, db_specific, persistency, two_phase, failover) \
	ReplicationSlotCreate((name), (db_specific), (persistency), (two_phase))
#endif

/*
 * Acquire a slot.  Since 18 the caller says whether an invalidated slot is an error; it is,
 * as for pg_logical_slot_get_changes() (before 18 decoding from one fails further on).
 */
#if PG_VERSION_NUM >= 180000
#define mnist_slot_acquire(name, nowait) ReplicationSlotAcquire((name), (nowait), true)
#else
#define mnist_slot_acquire(name, nowait) ReplicationSlotAcquire((name), (nowait))
#endif

#endif							/* MNIST_PG_COMPAT_H */

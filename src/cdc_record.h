/*
 * cdc_record.h
 *		The one codec of the output plugin's records (write and parse) and of the Kafka key and
 *		value of a captured row.  Plain C with no PostgreSQL calls: the plugin (decoder.c)
 *		writes records, the CDC worker (cdc_worker.c) parses them, snapshots (cdc_producer.c)
 *		build their messages with it, and the fuzz target test/fuzz/cdc_record.c checks that
 *		parse and write are inverse.
 *
 * Record format, version 1 (MNIST_CDC_RECORD_VERSION), a contract with its readers (the CDC
 * worker, pg_recvlogical users).  Terms: a row record, one per inserted or updated row of a
 * captured table, and transaction records around a transaction's row records:
 *
 *		schema.table<TAB>label<TAB>pixels[<TAB>op<TAB>pk]
 *		BEGIN xid[ commit_time]
 *		COMMIT xid
 *
 * schema.table is the schema name, a dot and the table name, each as stored in the catalog
 * except that a backslash is written as \\, a tab as \t, a newline as \n and a carriage return
 * as \r (mnist_cdc_record_escape; mnist_cdc_record_unescape undoes it).  label is one digit
 * 0..9 and pixels the CSV of pixels_csv.h; neither contains a tab, so every row record has
 * exactly two tabs before its optional part.  op ('c' insert, 'u' update) and pk (the primary
 * key's values as text joined by commas, empty without one; it runs to the end of the record
 * and may hold tabs or newlines) are written for the CDC worker only (the plugin's internal
 * option shipper), which also gets BEGIN's commit_time (microseconds since 2000-01-01).  xid
 * is the transaction id in decimal.
 *
 * A row's Kafka message: key the label digit, value the pixels field as it stands, headers
 * table (unescaped), lsn, txid, commit_time, op ('r' for a snapshot read) and pk (omitted when
 * empty), made by cdc_producer.c.
 *
 * Adding a field: this header's MnistCdcRecord and comment, cdc_record.c, the fuzz target,
 * and the record's description in the READMEs; a change that breaks older readers raises
 * MNIST_CDC_RECORD_VERSION.
 */
#ifndef MNIST_CDC_RECORD_H
#define MNIST_CDC_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pixels_csv.h"

/* The record format the plugin writes; its option format_version asks for it (absent: this). */
#define MNIST_CDC_RECORD_VERSION 1

/* Operations of a row record; MNIST_CDC_OP_READ only in snapshot messages. */
#define MNIST_CDC_OP_INSERT 'c'
#define MNIST_CDC_OP_UPDATE 'u'
#define MNIST_CDC_OP_READ 'r'

/* Longest transaction record: "COMMIT " or "BEGIN " + 10-digit xid + " " + int64. */
#define MNIST_CDC_RECORD_TXN_MAX 48

typedef enum MnistCdcRecordKind
{
	MNIST_CDC_RECORD_ROW,
	MNIST_CDC_RECORD_BEGIN,
	MNIST_CDC_RECORD_COMMIT
} MnistCdcRecordKind;

/*
 * One record.  Parsing points into the record (nothing copied); writing reads pixels (784 raw
 * bytes) instead of value.
 */
typedef struct MnistCdcRecord
{
	MnistCdcRecordKind kind;
	/* BEGIN and COMMIT */
	uint32_t	xid;
	bool		has_commit_time;	/* BEGIN: commit_time present */
	int64_t		commit_time;	/* microseconds since 2000-01-01 */
	/* rows */
	const char *table;			/* escaped schema.table (mnist_cdc_record_escape) */
	size_t		table_len;
	int			label;			/* 0..9 */
	const uint8_t *pixels;		/* write: MNIST_PIXELS bytes */
	const char *value;			/* parse: the pixels' CSV as in the record (not checked) */
	size_t		value_len;
	char		op;				/* MNIST_CDC_OP_INSERT or _UPDATE; 0: no op and pk */
	const char *pk;				/* with op: the primary key's text (may be empty) */
	size_t		pk_len;
} MnistCdcRecord;

/* True when the plugin writes record format version (only MNIST_CDC_RECORD_VERSION). */
extern bool mnist_cdc_record_version_known(long version);

/* Bytes mnist_cdc_record_write needs at most for rec. */
extern size_t mnist_cdc_record_size(const MnistCdcRecord *rec);

/* Writes rec into out (mnist_cdc_record_size bytes, no NUL added); returns the length. */
extern size_t mnist_cdc_record_write(char *out, const MnistCdcRecord *rec);

/*
 * Parses one record of len bytes into rec, pointing into data.  Returns NULL, or a static
 * message saying what is wrong.
 */
extern const char *mnist_cdc_record_parse(const char *data, size_t len, MnistCdcRecord *rec);

/*
 * The Kafka message of row rec: its key (the label digit, 1 byte) into key, returning the
 * key's length, and its value (the pixels' CSV) in *value: rec->value when parsed, else
 * encoded from rec->pixels into buf (PIXELS_CSV_MAX bytes).
 */
extern size_t mnist_cdc_record_message(const MnistCdcRecord *rec, char *key, char *buf,
									   const char **value, size_t *value_len);

/* Escapes name (len bytes) into out (2 * len bytes at most); returns the written length. */
extern size_t mnist_cdc_record_escape(char *out, const char *name, size_t len);

/* Undoes mnist_cdc_record_escape in place; returns the new length. */
extern size_t mnist_cdc_record_unescape(char *name, size_t len);

#endif							/* MNIST_CDC_RECORD_H */

/*
 * test/fuzz/cdc_record.c
 *		libFuzzer target of the output plugin's record codec (src/cdc_record.c): the plugin writes
 *		records, the CDC worker parses every one of them.
 *
 * Properties checked on every input:
 *	- parsing never reads outside the record (AddressSanitizer), and what it returns points
 *	  inside it: a row's table is non-empty without a tab or line break, its label is 0..9, its
 *	  value has no tab, its operation is 'c', 'u' or absent;
 *	- a parsed transaction record writes back to the very input bytes;
 *	- a parsed row whose value is a canonical pixel CSV writes back (from the decoded pixels)
 *	  to the very input bytes, and its Kafka message is the label digit and that value;
 *	- written records parse back to what was written: a row built from the input (name, label,
 *	  pixels, operation, primary key) and BEGIN/COMMIT records with the input's numbers;
 *	- escaping any name gives a name without tab or line break that unescapes to the name.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc_record.h"

/* Reads n bytes of the input from *p as an integer (zero past its end). */
static uint64_t
take(const uint8_t **p, const uint8_t *end, int n)
{
	uint64_t	v = 0;

	for (int i = 0; i < n; i++)
		v = (v << 8) | (*p < end ? *(*p)++ : 0);
	return v;
}

/* The checks of a parsed record rec of data (len bytes). */
static void
check_parsed(const char *data, size_t len, const MnistCdcRecord *rec)
{
	char	   *again = malloc(mnist_cdc_record_size(rec) + 1);
	uint8_t		pixels[PIXELS_CSV_COUNT];
	char		text[PIXELS_CSV_MAX];
	size_t		n;

	if (rec->kind != MNIST_CDC_RECORD_ROW)
	{
		n = mnist_cdc_record_write(again, rec);
		if (n != len || memcmp(again, data, len) != 0)
			abort();
		free(again);
		return;
	}
	if (rec->table != data || rec->table_len == 0 ||
		memchr(rec->table, '\t', rec->table_len) || memchr(rec->table, '\n', rec->table_len) ||
		memchr(rec->table, '\r', rec->table_len) || rec->label < 0 || rec->label > 9 ||
		rec->value < data || rec->value + rec->value_len > data + len ||
		memchr(rec->value, '\t', rec->value_len) ||
		(rec->op != 0 && rec->op != MNIST_CDC_OP_INSERT && rec->op != MNIST_CDC_OP_UPDATE) ||
		(rec->op && rec->pk + rec->pk_len != data + len))
		abort();
	if (mnist_pixels_csv_decode(rec->value, rec->value_len, pixels) == NULL)
	{
		MnistCdcRecord copy = *rec;
		char		key[1];
		const char *value;
		size_t		value_len;
		size_t		canon = mnist_pixels_csv_encode(pixels, text);

		if (mnist_cdc_record_message(rec, key, NULL, &value, &value_len) != 1 ||
			key[0] != '0' + rec->label || value != rec->value || value_len != rec->value_len)
			abort();
		copy.pixels = pixels;
		copy.value = NULL;
		n = mnist_cdc_record_write(again, &copy);
		if (n > mnist_cdc_record_size(&copy))
			abort();
		if (canon == rec->value_len && memcmp(text, rec->value, canon) == 0 &&
			(n != len || memcmp(again, data, len) != 0))
			abort();
	}
	free(again);
}

/* Writes a row and transaction records built from the input and parses them back. */
static void
check_written(const uint8_t *data, size_t size)
{
	const uint8_t *p = data;
	const uint8_t *end = data + size;
	uint8_t		pixels[PIXELS_CSV_COUNT],
				again[PIXELS_CSV_COUNT];
	char		name[256];
	char		escaped[512];
	char		key[1];
	char		valuebuf[PIXELS_CSV_MAX];
	const char *value;
	size_t		value_len;
	size_t		name_len = take(&p, end, 1);
	size_t		pk_len;
	MnistCdcRecord rec,
				back;
	char	   *out;
	size_t		n;

	for (size_t i = 0; i < name_len; i++)
		name[i] = (char) take(&p, end, 1);
	memset(&rec, 0, sizeof(rec));
	rec.kind = MNIST_CDC_RECORD_ROW;
	rec.table = escaped;
	rec.table_len = mnist_cdc_record_escape(escaped, name, name_len);
	if (rec.table_len > 2 * name_len || memchr(escaped, '\t', rec.table_len) ||
		memchr(escaped, '\n', rec.table_len) || memchr(escaped, '\r', rec.table_len))
		abort();
	rec.label = take(&p, end, 1) % 10;
	rec.op = (char) "\0cu"[take(&p, end, 1) % 3];
	for (size_t i = 0; i < PIXELS_CSV_COUNT; i++)
		pixels[i] = (uint8_t) take(&p, end, 1);
	rec.pixels = pixels;
	pk_len = rec.op ? (size_t) (end - p) : 0;
	rec.pk = (const char *) p;
	rec.pk_len = pk_len;
	out = malloc(mnist_cdc_record_size(&rec));
	n = mnist_cdc_record_write(out, &rec);
	if (n > mnist_cdc_record_size(&rec))
		abort();
	if (rec.table_len == 0)
	{
		/* an empty name is never written by the plugin and not parsed */
		if (mnist_cdc_record_parse(out, n, &back) == NULL)
			abort();
	}
	else
	{
		if (mnist_cdc_record_parse(out, n, &back) != NULL ||
			back.kind != MNIST_CDC_RECORD_ROW || back.table_len != rec.table_len ||
			memcmp(back.table, escaped, rec.table_len) != 0 || back.label != rec.label ||
			back.op != rec.op || back.pk_len != pk_len ||
			(pk_len && memcmp(back.pk, rec.pk, pk_len) != 0) ||
			mnist_cdc_record_message(&rec, key, valuebuf, &value, &value_len) != 1 ||
			value_len != back.value_len || memcmp(value, back.value, value_len) != 0 ||
			mnist_pixels_csv_decode(back.value, back.value_len, again) != NULL ||
			memcmp(again, pixels, sizeof(pixels)) != 0 || back.table != out)
			abort();
		if (mnist_cdc_record_unescape(out, back.table_len) != name_len ||
			memcmp(out, name, name_len) != 0)
			abort();
	}
	free(out);

	/* transaction records */
	{
		char		txn[MNIST_CDC_RECORD_TXN_MAX];
		MnistCdcRecord t;

		memset(&t, 0, sizeof(t));
		p = data;
		t.kind = take(&p, end, 1) % 2 ? MNIST_CDC_RECORD_BEGIN : MNIST_CDC_RECORD_COMMIT;
		t.xid = (uint32_t) take(&p, end, 4);
		t.has_commit_time = t.kind == MNIST_CDC_RECORD_BEGIN && take(&p, end, 1) % 2;
		t.commit_time = t.has_commit_time ? (int64_t) take(&p, end, 8) : 0;
		n = mnist_cdc_record_write(txn, &t);
		if (n >= sizeof(txn) || mnist_cdc_record_parse(txn, n, &back) != NULL ||
			back.kind != t.kind || back.xid != t.xid ||
			back.has_commit_time != t.has_commit_time || back.commit_time != t.commit_time)
			abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	MnistCdcRecord rec;
	char	   *copy = malloc(size ? size : 1);

	/* an exact-size copy: reading past the record is an ASan report */
	memcpy(copy, data, size);
	if (mnist_cdc_record_parse(copy, size, &rec) == NULL)
		check_parsed(copy, size, &rec);
	free(copy);
	check_written(data, size);
	return 0;
}

/*
 * cdc_record.c
 *		Write and parse the output plugin's records, and name escaping (the format and its terms:
 *		cdc_record.h).  Plain C: no PostgreSQL calls, no allocation.
 *
 * Numbers are written in their canonical decimal form (no sign on xid, no leading zero) and
 * parsing accepts only that form, so that a parsed record writes back to the very same bytes.
 */
#include "cdc_record.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

bool
mnist_cdc_record_version_known(long version)
{
	return version == MNIST_CDC_RECORD_VERSION;
}

size_t
mnist_cdc_record_size(const MnistCdcRecord *rec)
{
	if (rec->kind != MNIST_CDC_RECORD_ROW)
		return MNIST_CDC_RECORD_TXN_MAX;
	return rec->table_len + 3 + PIXELS_CSV_MAX + (rec->op ? 3 + rec->pk_len : 0);
}

/* The key of a row with label: one digit. */
static size_t
write_key(int label, char *key)
{
	key[0] = '0' + label;
	return 1;
}

size_t
mnist_cdc_record_message(const MnistCdcRecord *rec, char *key, char *buf,
						 const char **value, size_t *value_len)
{
	if (rec->value)
	{
		*value = rec->value;
		*value_len = rec->value_len;
	}
	else
	{
		*value = buf;
		*value_len = mnist_pixels_csv_encode(rec->pixels, buf);
	}
	return write_key(rec->label, key);
}

size_t
mnist_cdc_record_write(char *out, const MnistCdcRecord *rec)
{
	char	   *p = out;

	switch (rec->kind)
	{
		case MNIST_CDC_RECORD_BEGIN:
			if (rec->has_commit_time)
				return snprintf(out, MNIST_CDC_RECORD_TXN_MAX, "BEGIN %" PRIu32 " %" PRId64,
								rec->xid, rec->commit_time);
			return snprintf(out, MNIST_CDC_RECORD_TXN_MAX, "BEGIN %" PRIu32, rec->xid);
		case MNIST_CDC_RECORD_COMMIT:
			return snprintf(out, MNIST_CDC_RECORD_TXN_MAX, "COMMIT %" PRIu32, rec->xid);
		case MNIST_CDC_RECORD_ROW:
			break;
	}
	memcpy(p, rec->table, rec->table_len);
	p += rec->table_len;
	*p++ = '\t';
	p += write_key(rec->label, p);
	*p++ = '\t';
	p += mnist_pixels_csv_encode(rec->pixels, p);
	if (rec->op)
	{
		*p++ = '\t';
		*p++ = rec->op;
		*p++ = '\t';
		if (rec->pk_len > 0)
			memcpy(p, rec->pk, rec->pk_len);
		p += rec->pk_len;
	}
	return p - out;
}

/*
 * Parses a canonical unsigned decimal (no leading zero) of data[*i..len) up to max, advancing
 * *i.  Returns false when there is none or it exceeds max.
 */
static bool
parse_decimal(const char *data, size_t len, size_t *i, uint64_t max, uint64_t *value)
{
	size_t		start = *i;
	uint64_t	v = 0;

	while (*i < len && data[*i] >= '0' && data[*i] <= '9')
	{
		unsigned	d = data[*i] - '0';

		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
		(*i)++;
	}
	if (*i == start || (data[start] == '0' && *i - start > 1))
		return false;
	*value = v;
	return true;
}

/* Parses "BEGIN xid[ commit_time]" or "COMMIT xid" (data has no tab). */
static const char *
parse_transaction(const char *data, size_t len, MnistCdcRecord *rec)
{
	size_t		i;
	uint64_t	v;

	memset(rec, 0, sizeof(*rec));
	if (len > 6 && memcmp(data, "BEGIN ", 6) == 0)
	{
		rec->kind = MNIST_CDC_RECORD_BEGIN;
		i = 6;
	}
	else if (len > 7 && memcmp(data, "COMMIT ", 7) == 0)
	{
		rec->kind = MNIST_CDC_RECORD_COMMIT;
		i = 7;
	}
	else
		return "record is neither a row nor BEGIN or COMMIT";
	if (!parse_decimal(data, len, &i, UINT32_MAX, &v))
		return "transaction record has no valid xid";
	rec->xid = (uint32_t) v;
	if (i == len)
		return NULL;
	if (rec->kind != MNIST_CDC_RECORD_BEGIN || data[i] != ' ')
		return "transaction record has trailing data";
	i++;
	if (i < len && data[i] == '-')
	{
		i++;
		if (!parse_decimal(data, len, &i, (uint64_t) INT64_MAX + 1, &v) || v == 0)
			return "BEGIN record has no valid commit time";
		rec->commit_time = v > INT64_MAX ? INT64_MIN : -(int64_t) v;
	}
	else
	{
		if (!parse_decimal(data, len, &i, INT64_MAX, &v))
			return "BEGIN record has no valid commit time";
		rec->commit_time = (int64_t) v;
	}
	rec->has_commit_time = true;
	if (i != len)
		return "BEGIN record has trailing data";
	return NULL;
}

const char *
mnist_cdc_record_parse(const char *data, size_t len, MnistCdcRecord *rec)
{
	const char *end = data + len;
	const char *tab = memchr(data, '\t', len);
	const char *p;

	if (tab == NULL)
		return parse_transaction(data, len, rec);
	rec->kind = MNIST_CDC_RECORD_ROW;
	rec->table = data;
	rec->table_len = tab - data;
	if (rec->table_len == 0 || memchr(data, '\n', rec->table_len) ||
		memchr(data, '\r', rec->table_len))
		return "row record has no valid table name";
	p = tab + 1;
	if (end - p < 2 || p[0] < '0' || p[0] > '9' || p[1] != '\t')
		return "row record has no valid label";
	rec->label = p[0] - '0';
	rec->pixels = NULL;
	rec->value = p + 2;
	tab = memchr(rec->value, '\t', end - rec->value);
	rec->value_len = (tab ? tab : end) - rec->value;
	rec->op = 0;
	rec->pk = NULL;
	rec->pk_len = 0;
	if (tab == NULL)
		return NULL;
	p = tab + 1;
	if (end - p < 2 || (p[0] != MNIST_CDC_OP_INSERT && p[0] != MNIST_CDC_OP_UPDATE) ||
		p[1] != '\t')
		return "row record has no valid operation";
	rec->op = p[0];
	rec->pk = p + 2;
	rec->pk_len = end - rec->pk;
	return NULL;
}

size_t
mnist_cdc_record_escape(char *out, const char *name, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
	{
		char		c = name[i];

		if (c == '\\' || c == '\t' || c == '\n' || c == '\r')
		{
			out[n++] = '\\';
			c = c == '\t' ? 't' : c == '\n' ? 'n' : c == '\r' ? 'r' : '\\';
		}
		out[n++] = c;
	}
	return n;
}

size_t
mnist_cdc_record_unescape(char *name, size_t len)
{
	size_t		n = 0;

	for (size_t i = 0; i < len; i++)
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

/*
 * test/fuzz/cdc_globs.c
 *		libFuzzer target of the output plugin's table patterns (src/cdc_globs.c): the option
 *		tables of a replication slot's consumer, matched against every captured relation's
 *		"schema.table".
 *
 * Input: the pattern list, a newline, the relation name (both NUL-free prefixes).
 * Properties checked on every input:
 *	- parsing stays inside the list and always advances; a pattern is non-empty, has no comma
 *	  and no white space at either end, and has a dot exactly when reported so;
 *	- matching agrees with a dynamic-programming reference (for short patterns and names) and
 *	  finishes in time for any (a hang is a libFuzzer timeout);
 *	- a pattern matches itself with its stars removed, and "*" matches everything;
 *	- a table (the name split at its first dot into schema and table) matches a pattern
 *	  exactly when the pattern's schema glob (before its first dot) matches the schema and the
 *	  rest the table; where neither the schema nor the schema glob can span a dot (no dot in
 *	  the schema, no star in the schema glob), that is the match of the whole name.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cdc_globs.h"

#define REF_MAX 64

/* Reference glob matcher: m[i][j] tells whether pat[i..] matches str[j..]. */
static bool
reference_match(const char *pat, const char *str)
{
	size_t		np = strlen(pat),
				ns = strlen(str);
	static bool m[REF_MAX + 1][REF_MAX + 1];

	for (size_t i = np + 1; i-- > 0;)
		for (size_t j = ns + 1; j-- > 0;)
		{
			if (i == np)
				m[i][j] = (j == ns);
			else if (pat[i] == '*')
				m[i][j] = m[i + 1][j] || (j < ns && m[i][j + 1]);
			else
				m[i][j] = j < ns && pat[i] == str[j] && m[i + 1][j + 1];
		}
	return m[0][0];
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char	   *text = malloc(size + 1);
	char	   *name;
	char	   *nl;
	const char *p,
			   *start;
	size_t		len;
	MnistGlobsResult rc;

	memcpy(text, data, size);
	text[size] = '\0';
	nl = strchr(text, '\n');
	name = nl ? nl + 1 : text + size;
	if (nl)
		*nl = '\0';

	p = text;
	while ((rc = mnist_cdc_globs_next(&p, &start, &len)) != MNIST_GLOBS_END)
	{
		char	   *pat = strndup(start, len);
		char	   *plain = malloc(len + 1);
		size_t		n = 0;

		if (len == 0 || start < text || start + len > p || memchr(start, ',', len) ||
			isspace((unsigned char) start[0]) || isspace((unsigned char) start[len - 1]) ||
			(rc == MNIST_GLOBS_PATTERN) != (memchr(start, '.', len) != NULL))
			abort();
		if (strlen(pat) <= REF_MAX && strlen(name) <= REF_MAX &&
			mnist_cdc_glob_match(pat, name) != reference_match(pat, name))
			abort();
		(void) mnist_cdc_glob_match(pat, name);
		for (size_t i = 0; i < len; i++)
			if (pat[i] != '*')
				plain[n++] = pat[i];
		plain[n] = '\0';
		if (!mnist_cdc_glob_match(pat, plain) || !mnist_cdc_glob_match("*", pat))
			abort();
		{
			char	   *dot = strchr(name, '.');

			if (dot && rc == MNIST_GLOBS_PATTERN)
			{
				char	   *schema = strndup(name, dot - name);
				char	   *schema_pat = strndup(pat, strchr(pat, '.') - pat);
				bool		apart = mnist_cdc_glob_match(schema_pat, schema) &&
					mnist_cdc_glob_match(strchr(pat, '.') + 1, dot + 1);

				if (mnist_cdc_table_match(pat, schema, dot + 1) != apart)
					abort();
				if (!strchr(schema_pat, '*') &&
					mnist_cdc_table_match(pat, schema, dot + 1) != mnist_cdc_glob_match(pat, name))
					abort();
				free(schema);
				free(schema_pat);
			}
		}
		free(pat);
		free(plain);
	}
	if (*p != '\0')
		abort();
	free(text);
	return 0;
}

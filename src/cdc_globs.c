/*
 * cdc_globs.c
 *		Parsing and matching of the output plugin's table patterns (option tables).
 *
 * A pattern list is comma-separated; a pattern is schema.table with '*' matching any run of
 * characters.  A pattern must contain a dot, so that a schema is always named: the part
 * before its first dot is matched against the schema's name, the rest against the table's
 * (which may itself contain dots), each as stored in the catalog.
 */
#include "cdc_globs.h"

#include <ctype.h>
#include <string.h>

MnistGlobsResult
mnist_cdc_globs_next(const char **pp, const char **start, size_t *len)
{
	const char *p = *pp;
	const char *end;

	while (*p == ',' || isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
	{
		*pp = p;
		return MNIST_GLOBS_END;
	}
	*start = p;
	while (*p && *p != ',')
		p++;
	end = p;
	while (end > *start && isspace((unsigned char) end[-1]))
		end--;
	*len = end - *start;
	*pp = p;
	return memchr(*start, '.', *len) ? MNIST_GLOBS_PATTERN : MNIST_GLOBS_NO_SCHEMA;
}

/*
 * Greedy with one backtrack point: when a literal run after a star fails, only the last star
 * needs to take one more character (earlier stars can never help), so the time is at most
 * length(pat) x length(str).  Trying every split at every star instead (recursion) is
 * exponential in the number of stars: "*a*a*...*b" against a long name never finished.
 */
/* mnist_cdc_glob_match of the pattern pat..pend-1. */
static bool
glob_match_range(const char *pat, const char *pend, const char *str)
{
	const char *star = NULL;	/* just past the last star seen */
	const char *resume = NULL;	/* where that star's match ends, so far */

	while (*str)
	{
		if (pat < pend && *pat == '*')
		{
			while (pat < pend && *pat == '*')
				pat++;
			if (pat == pend)
				return true;
			star = pat;
			resume = str;
		}
		else if (pat < pend && *pat == *str)
		{
			pat++;
			str++;
		}
		else if (star)
		{
			pat = star;
			str = ++resume;
		}
		else
			return false;
	}
	while (pat < pend && *pat == '*')
		pat++;
	return pat == pend;
}

bool
mnist_cdc_glob_match(const char *pat, const char *str)
{
	return glob_match_range(pat, pat + strlen(pat), str);
}

bool
mnist_cdc_table_match(const char *pat, const char *schema, const char *table)
{
	const char *dot = strchr(pat, '.');

	return dot != NULL && glob_match_range(pat, dot, schema) && mnist_cdc_glob_match(dot + 1, table);
}

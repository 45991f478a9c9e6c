/*
 * kafka_props.c
 *		Parsing of Kafka properties strings and files, and the classification of keys.
 *
 * A properties string (mnist_ml.kafka_properties, and callers' defaults) holds key=value
 * pairs separated by commas or white space; a value may be double-quoted to contain either
 * ("a \"b\"" escapes a quote).  A properties file (mnist_ml.kafka_properties_file) holds one
 * key=value per line, # comments.  A secret key is one whose value is never shown or logged;
 * a security key is one that carries or selects credentials.
 */
#include "kafka_props.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool
mnist_kafka_property_is_security(const char *key)
{
	return strncmp(key, "sasl.", 5) == 0 ||
		strncmp(key, "ssl.", 4) == 0 ||
		strcmp(key, "security.protocol") == 0;
}

bool
mnist_kafka_property_is_secret(const char *key)
{
	return strstr(key, "password") != NULL ||
		strstr(key, "secret") != NULL ||
		strstr(key, "key.pem") != NULL ||
		strstr(key, "token") != NULL ||
		strstr(key, "oauthbearer.config") != NULL ||
		strstr(key, "jaas") != NULL ||
		strcmp(key, "sasl.username") == 0;
}

const char *
mnist_kafka_property_refused(const char *key, const char *value)
{
	if (strcmp(key, "isolation.level") == 0 && strcmp(value, "read_committed") != 0)
		return "mnist_ml reads Kafka with isolation.level=read_committed only: a reader of uncommitted messages would see the rows of aborted transactions";
	return NULL;
}

/* A separator between pairs of a properties string. */
static bool
is_separator(char c)
{
	return c == ',' || isspace((unsigned char) c);
}

void
mnist_kafka_props_begin(MnistPropsReader *r, const char *props)
{
	r->p = props;
	r->pair = 0;
	r->after_secret = false;
	r->last_secret = false;
}

void
mnist_kafka_props_where(const MnistPropsReader *r, const char *key, char *out, size_t size)
{
	if (r->after_secret)
		snprintf(out, size, "at pair %d", r->pair);
	else
		snprintf(out, size, "\"%s\"", key);
}

MnistPropsResult
mnist_kafka_props_next(MnistPropsReader *r, char *key, char *value)
{
	const char *p = r->p;
	char	   *k = key,
			   *v = value;
	bool		quoted;

	r->after_secret |= r->last_secret;
	r->last_secret = false;
	*k = *v = '\0';
	while (is_separator(*p))
		p++;
	if (*p == '\0')
		return MNIST_PROPS_END;
	r->pair++;
	while (*p && *p != '=' && !is_separator(*p))
		*k++ = *p++;
	*k = '\0';
	if (*p != '=' || k == key)
		return MNIST_PROPS_MALFORMED;
	p++;
	quoted = *p == '"';
	if (quoted)
	{
		p++;
		while (*p && *p != '"')
		{
			if (*p == '\\' && p[1])
				p++;
			*v++ = *p++;
		}
		*v = '\0';
		if (*p != '"')
			return MNIST_PROPS_MALFORMED;
		p++;
	}
	else
	{
		while (*p && !is_separator(*p))
			*v++ = *p++;
		*v = '\0';
	}
	r->p = p;
	/* a quoted value ends where its writer meant it to */
	r->last_secret = !quoted && mnist_kafka_property_is_secret(key);
	return MNIST_PROPS_PAIR;
}

size_t
mnist_kafka_props_quote(const char *value, char *out)
{
	char	   *o = out;
	bool		quote = value[0] == '\0';

	for (const char *v = value; *v && !quote; v++)
		quote = is_separator(*v) || *v == '"' || *v == '\\';
	if (!quote)
	{
		strcpy(out, value);
		return strlen(out);
	}
	*o++ = '"';
	for (const char *v = value; *v; v++)
	{
		if (*v == '"' || *v == '\\')
			*o++ = '\\';
		*o++ = *v;
	}
	*o++ = '"';
	*o = '\0';
	return o - out;
}

/* Cuts white space off both ends of s in place. */
static char *
trim(char *s)
{
	char	   *end;

	while (isspace((unsigned char) *s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char) end[-1]))
		*--end = '\0';
	return s;
}

MnistPropsResult
mnist_kafka_props_file_next(FILE *file, char *line, size_t size, int *lineno,
							char **key, char **value)
{
	while (fgets(line, size, file) != NULL)
	{
		size_t		len = strlen(line);
		char	   *p,
				   *eq;

		(*lineno)++;
		if (len == size - 1 && line[len - 1] != '\n')
		{
			int			c = getc(file);

			if (c != EOF)
				return MNIST_PROPS_TOO_LONG;
		}
		p = trim(line);
		if (*p == '\0' || *p == '#')
			continue;
		eq = strchr(p, '=');
		if (eq == NULL || eq == p)
			return MNIST_PROPS_MALFORMED;
		*eq = '\0';
		*key = trim(p);
		*value = trim(eq + 1);
		return MNIST_PROPS_PAIR;
	}
	return MNIST_PROPS_END;
}

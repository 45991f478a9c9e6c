/*
 * kafka_conf.c
 *		Builds librdkafka configurations from mnist_ml.kafka_bootstrap_servers and
 *		mnist_ml.kafka_properties, keeping secrets out of messages and away from foreign servers.
 *
 * mnist_ml.kafka_properties holds key=value pairs separated by commas or white space; a value
 * may be double-quoted to contain either ("a \"b\"" escapes a quote).  Secrets are better
 * kept in mnist_ml.kafka_properties_file (one key=value per line), which PostgreSQL never
 * logs or shows; SHOW masks the values of secret keys in mnist_ml.kafka_properties.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "kafka_conf.h"
#include "mnist_ml.h"

/* Properties that carry or select credentials. */
static bool
is_security_property(const char *key)
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

bool
mnist_kafka_topic_name_ok(const char *topic)
{
	size_t		len = strlen(topic);

	return len > 0 && len <= 249 && strcmp(topic, ".") != 0 && strcmp(topic, "..") != 0 &&
		strspn(topic, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == len;
}

void
mnist_kafka_topic_name_check(const char *topic)
{
	if (!mnist_kafka_topic_name_ok(topic))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_NAME),
				 errmsg("invalid Kafka topic name \"%s\"", topic),
				 errdetail("A topic name has 1 to 249 letters, digits, dots, underscores or hyphens.")));
}

void
mnist_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		bool		secret = mnist_kafka_property_is_secret(key);

		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka property \"%s\"", key),
				 secret ? 0 : errdetail("%s", errstr)));
	}
}

/*
 * Reads the next key=value pair of a properties string into key and value, advancing *pp.
 * Returns 1 for a pair, 0 at the end, -1 when malformed (key holds what was read).
 */
static int
next_property(const char **pp, StringInfo key, StringInfo value)
{
	const char *p = *pp;

	resetStringInfo(key);
	resetStringInfo(value);
	while (*p == ',' || isspace((unsigned char) *p))
		p++;
	if (*p == '\0')
		return 0;
	while (*p && *p != '=' && *p != ',' && !isspace((unsigned char) *p))
		appendStringInfoChar(key, *p++);
	if (*p != '=' || key->len == 0)
		return -1;
	p++;
	if (*p == '"')
	{
		p++;
		while (*p && *p != '"')
		{
			if (*p == '\\' && p[1])
				p++;
			appendStringInfoChar(value, *p++);
		}
		if (*p != '"')
			return -1;
		p++;
	}
	else
	{
		while (*p && *p != ',' && !isspace((unsigned char) *p))
			appendStringInfoChar(value, *p++);
	}
	*pp = p;
	return 1;
}

/* Sets each key=value pair of a properties string on conf; ERROR when malformed. */
static void
apply_properties(rd_kafka_conf_t *conf, const char *props, const char *origin,
				 bool skip_security)
{
	const char *p = props;
	StringInfoData key,
				value;
	int			rc;

	initStringInfo(&key);
	initStringInfo(&value);
	while ((rc = next_property(&p, &key, &value)) != 0)
	{
		if (rc < 0)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s near \"%s\"", origin, key.data),
					 errhint("Write key=value pairs separated by commas or spaces; double-quote values that contain them.")));
		}
		if (skip_security && is_security_property(key.data))
			continue;
		mnist_kafka_conf_set(conf, key.data, value.data);
	}
	pfree(key.data);
	pfree(value.data);
}

/* Applies mnist_ml.kafka_properties_file: one key=value per line, # comments. */
static void
apply_properties_file(rd_kafka_conf_t *conf, const char *path, bool skip_security)
{
	FILE	   *file = AllocateFile(path, "r");
	char		line[8192];
	int			lineno = 0;

	if (file == NULL)
	{
		int			save_errno = errno;

		rd_kafka_conf_destroy(conf);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open mnist_ml.kafka_properties_file \"%s\": %m", path)));
	}
	while (fgets(line, sizeof(line), file) != NULL)
	{
		char	   *p = line,
				   *eq,
				   *end;

		lineno++;
		while (isspace((unsigned char) *p))
			p++;
		if (*p == '\0' || *p == '#')
			continue;
		end = p + strlen(p);
		while (end > p && isspace((unsigned char) end[-1]))
			*--end = '\0';
		eq = strchr(p, '=');
		if (eq == NULL || eq == p)
		{
			FreeFile(file);
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("line %d of mnist_ml.kafka_properties_file \"%s\" is not key=value",
							lineno, path)));
		}
		*eq = '\0';
		for (end = eq; end > p && isspace((unsigned char) end[-1]);)
			*--end = '\0';
		for (eq++; isspace((unsigned char) *eq); eq++)
			;
		if (skip_security && is_security_property(p))
			continue;
		PG_TRY();
		{
			mnist_kafka_conf_set(conf, p, eq);
		}
		PG_CATCH();
		{
			FreeFile(file);
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	FreeFile(file);
}

const char *
mnist_kafka_properties_show(void)
{
	static char *shown = NULL;
	const char *p = mnist_kafka_properties ? mnist_kafka_properties : "";
	StringInfoData out,
				key,
				value;
	int			rc;

	initStringInfo(&out);
	initStringInfo(&key);
	initStringInfo(&value);
	while ((rc = next_property(&p, &key, &value)) > 0)
	{
		if (out.len > 0)
			appendStringInfoChar(&out, ' ');
		if (mnist_kafka_property_is_secret(key.data))
			appendStringInfo(&out, "%s=********", key.data);
		else
		{
			appendStringInfo(&out, "%s=", key.data);
			if (strpbrk(value.data, ", \t\"\\") != NULL || value.len == 0)
			{
				appendStringInfoChar(&out, '"');
				for (const char *v = value.data; *v; v++)
				{
					if (*v == '"' || *v == '\\')
						appendStringInfoChar(&out, '\\');
					appendStringInfoChar(&out, *v);
				}
				appendStringInfoChar(&out, '"');
			}
			else
				appendStringInfoString(&out, value.data);
		}
	}
	if (rc < 0)
		appendStringInfoString(&out, out.len > 0 ? " (invalid)" : "(invalid)");

	/* the result must outlive this call: keep the last one in TopMemoryContext */
	if (shown)
		pfree(shown);
	shown = MemoryContextStrdup(TopMemoryContext, out.data);
	pfree(out.data);
	pfree(key.data);
	pfree(value.data);
	return shown;
}

rd_kafka_conf_t *
mnist_kafka_conf(const char *servers, const char *defaults)
{
	const char *configured = mnist_kafka_bootstrap_servers ? mnist_kafka_bootstrap_servers : "";
	bool		foreign = servers != NULL && strcmp(servers, configured) != 0;
	rd_kafka_conf_t *conf;

	/* outbound connections to servers of the caller's choosing are for superusers */
	if (foreign && !superuser())
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("only superusers may name Kafka servers other than mnist_ml.kafka_bootstrap_servers"),
				 errhint("Pass bootstrap_servers => NULL to use the configured servers.")));
	if (servers == NULL)
		servers = configured;
	if (servers[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no Kafka bootstrap servers"),
				 errhint("Set mnist_ml.kafka_bootstrap_servers or pass bootstrap_servers.")));

	conf = rd_kafka_conf_new();
	mnist_kafka_conf_set(conf, "bootstrap.servers", servers);
	if (defaults != NULL)
		apply_properties(conf, defaults, "default Kafka properties", false);
	if (mnist_kafka_properties && mnist_kafka_properties[0] != '\0')
		apply_properties(conf, mnist_kafka_properties, "mnist_ml.kafka_properties", foreign);
	if (mnist_kafka_properties_file && mnist_kafka_properties_file[0] != '\0')
		apply_properties_file(conf, mnist_kafka_properties_file, foreign);
	return conf;
}

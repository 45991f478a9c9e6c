/*
 * kafka_conf.c
 *		Builds librdkafka configurations from mnist_ml.kafka_bootstrap_servers and
 *		mnist_ml.kafka_properties, keeping secrets out of messages and away from foreign servers.
 *
 * mnist_ml.kafka_properties holds key=value pairs separated by commas or white space; a value
 * may be double-quoted to contain either ("a \"b\"" escapes a quote).
 */
#include "postgres.h"

#include "lib/stringinfo.h"

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
		strcmp(key, "sasl.username") == 0;
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

/* Sets each key=value pair of a properties string on conf; ERROR when malformed. */
static void
apply_properties(rd_kafka_conf_t *conf, const char *props, bool skip_security)
{
	const char *p = props;
	StringInfoData key,
				value;

	initStringInfo(&key);
	initStringInfo(&value);
	for (;;)
	{
		while (*p == ',' || isspace((unsigned char) *p))
			p++;
		if (*p == '\0')
			break;

		resetStringInfo(&key);
		resetStringInfo(&value);
		while (*p && *p != '=' && *p != ',' && !isspace((unsigned char) *p))
			appendStringInfoChar(&key, *p++);
		if (*p != '=' || key.len == 0)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid mnist_ml.kafka_properties near \"%s\"", key.data),
					 errhint("Write key=value pairs separated by commas or spaces; quote values that contain them.")));
		}
		p++;
		if (*p == '"')
		{
			p++;
			while (*p && *p != '"')
			{
				if (*p == '\\' && p[1])
					p++;
				appendStringInfoChar(&value, *p++);
			}
			if (*p != '"')
			{
				rd_kafka_conf_destroy(conf);
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("unterminated quoted value for Kafka property \"%s\"", key.data)));
			}
			p++;
		}
		else
		{
			while (*p && *p != ',' && !isspace((unsigned char) *p))
				appendStringInfoChar(&value, *p++);
		}

		if (skip_security && is_security_property(key.data))
			continue;
		mnist_kafka_conf_set(conf, key.data, value.data);
	}
	pfree(key.data);
	pfree(value.data);
}

rd_kafka_conf_t *
mnist_kafka_conf(const char *servers)
{
	const char *configured = mnist_kafka_bootstrap_servers ? mnist_kafka_bootstrap_servers : "";
	bool		foreign = servers != NULL && strcmp(servers, configured) != 0;
	rd_kafka_conf_t *conf;

	if (servers == NULL)
		servers = configured;
	if (servers[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("no Kafka bootstrap servers"),
				 errhint("Set mnist_ml.kafka_bootstrap_servers or pass bootstrap_servers.")));

	conf = rd_kafka_conf_new();
	mnist_kafka_conf_set(conf, "bootstrap.servers", servers);
	if (mnist_kafka_properties && mnist_kafka_properties[0] != '\0')
		apply_properties(conf, mnist_kafka_properties, foreign);
	return conf;
}

/*
 * kafka_conf.c
 *		Builds librdkafka configurations from mnist_ml.kafka_bootstrap_servers and
 *		mnist_ml.kafka_properties, keeping secrets out of messages and away from foreign servers.
 *
 * The syntax of mnist_ml.kafka_properties and of the properties file is kafka_props.c's; this
 * file applies them with PostgreSQL's file API and error reporting.  Secrets are better
 * kept in mnist_ml.kafka_properties_file (one key=value per line), which PostgreSQL never
 * logs or shows; SHOW masks the values of secret keys in mnist_ml.kafka_properties.
 */
#include "postgres.h"

#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "storage/fd.h"
#include "utils/memutils.h"

#include "kafka_conf.h"
#include "kafka_props.h"
#include "mnist_ml.h"

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

/*
 * Sets key=value on conf; an ERROR names the property as shown (its quoted key, or where it
 * stands when even the key must not be shown) and gives librdkafka's reason unless the
 * value may be secret.
 */
static void
conf_set_shown(rd_kafka_conf_t *conf, const char *key, const char *value, const char *shown,
			   bool secret)
{
	char		errstr[512];

	if (rd_kafka_conf_set(conf, key, value, errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK)
	{
		rd_kafka_conf_destroy(conf);
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid Kafka property %s", shown),
				 secret ? 0 : errdetail("%s", errstr)));
	}
}

/* Refuses (ERROR) a user's property that mnist_ml never applies (kafka_props.c says which). */
static void
conf_check_refused(rd_kafka_conf_t *conf, const char *key, const char *value, const char *origin)
{
	const char *why = mnist_kafka_property_refused(key, value);

	if (why == NULL)
		return;
	rd_kafka_conf_destroy(conf);
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("Kafka property \"%s\" of %s cannot be \"%s\"", key, origin, value),
			 errdetail("%s.", why),
			 errhint("Remove the property; mnist_ml sets isolation.level=read_committed itself.")));
}

void
mnist_kafka_conf_set(rd_kafka_conf_t *conf, const char *key, const char *value)
{
	conf_set_shown(conf, key, value, psprintf("\"%s\"", key), mnist_kafka_property_is_secret(key));
}

/*
 * Sets each key=value pair of a properties string on conf; ERROR when malformed.  No error
 * shows text that may belong to a secret value (mnist_kafka_props_where).
 */
static void
apply_properties(rd_kafka_conf_t *conf, const char *props, const char *origin,
				 bool skip_security)
{
	MnistPropsReader reader;
	char	   *key = palloc(strlen(props) + 1);
	char	   *value = palloc(strlen(props) + 1);
	char		shown[256];
	MnistPropsResult rc;

	mnist_kafka_props_begin(&reader, props);
	while ((rc = mnist_kafka_props_next(&reader, key, value)) != MNIST_PROPS_END)
	{
		mnist_kafka_props_where(&reader, key, shown, sizeof(shown));
		if (rc != MNIST_PROPS_PAIR)
		{
			rd_kafka_conf_destroy(conf);
			ereport(ERROR,
					(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
					 errmsg("invalid %s %s%s", origin, reader.after_secret ? "" : "near ", shown),
					 reader.after_secret ?
					 errdetail("Text after a secret property's value is never shown.") : 0,
					 errhint("Write key=value pairs separated by commas or spaces; double-quote values that contain them.")));
		}
		if (skip_security && mnist_kafka_property_is_security(key))
			continue;
		if (!reader.after_secret && !mnist_kafka_property_is_secret(key))
			conf_check_refused(conf, key, value, origin);
		conf_set_shown(conf, key, value,
					   reader.after_secret ? psprintf("%s of %s", shown, origin) : shown,
					   reader.after_secret || mnist_kafka_property_is_secret(key));
	}
	pfree(key);
	pfree(value);
}

/* Applies mnist_ml.kafka_properties_file: one key=value per line, # comments. */
static void
apply_properties_file(rd_kafka_conf_t *conf, const char *path, bool skip_security)
{
	FILE	   *file = AllocateFile(path, "r");
	char		line[8192];
	int			lineno = 0;
	char	   *key,
			   *value;
	MnistPropsResult rc;

	if (file == NULL)
	{
		int			save_errno = errno;

		rd_kafka_conf_destroy(conf);
		errno = save_errno;
		ereport(ERROR,
				(errcode_for_file_access(),
				 errmsg("could not open mnist_ml.kafka_properties_file \"%s\": %m", path)));
	}
	while ((rc = mnist_kafka_props_file_next(file, line, sizeof(line), &lineno,
											 &key, &value)) != MNIST_PROPS_END)
	{
		if (rc != MNIST_PROPS_PAIR)
		{
			FreeFile(file);
			rd_kafka_conf_destroy(conf);
			if (rc == MNIST_PROPS_TOO_LONG)
				ereport(ERROR,
						(errcode(ERRCODE_CONFIG_FILE_ERROR),
						 errmsg("line %d of mnist_ml.kafka_properties_file \"%s\" is longer than %zu bytes",
								lineno, path, sizeof(line) - 2)));
			ereport(ERROR,
					(errcode(ERRCODE_CONFIG_FILE_ERROR),
					 errmsg("line %d of mnist_ml.kafka_properties_file \"%s\" is not key=value",
							lineno, path)));
		}
		if (skip_security && mnist_kafka_property_is_security(key))
			continue;
		PG_TRY();
		{
			if (!mnist_kafka_property_is_secret(key))
				conf_check_refused(conf, key, value, "mnist_ml.kafka_properties_file");
			mnist_kafka_conf_set(conf, key, value);
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
	static MemoryContext shown_cxt = NULL;
	const char *p = mnist_kafka_properties ? mnist_kafka_properties : "";
	MnistPropsReader reader;
	char	   *key = palloc(strlen(p) + 1);
	char	   *value = palloc(strlen(p) + 1);
	char	   *quoted = palloc(2 * strlen(p) + 3);
	StringInfoData out;
	MnistPropsResult rc;

	initStringInfo(&out);
	mnist_kafka_props_begin(&reader, p);
	while ((rc = mnist_kafka_props_next(&reader, key, value)) == MNIST_PROPS_PAIR)
	{
		if (out.len > 0)
			appendStringInfoChar(&out, ' ');
		if (reader.after_secret)
		{
			/* what follows a secret's unquoted value may be the rest of it */
			appendStringInfoString(&out, "********");
			rc = MNIST_PROPS_END;
			break;
		}
		if (mnist_kafka_property_is_secret(key))
			appendStringInfo(&out, "%s=********", key);
		else
		{
			mnist_kafka_props_quote(value, quoted);
			appendStringInfo(&out, "%s=%s", key, quoted);
		}
	}
	if (rc != MNIST_PROPS_END)
		appendStringInfoString(&out, out.len > 0 ? " (invalid)" : "(invalid)");

	/* the result must outlive this call: keep the last one in a context of its own */
	if (shown_cxt == NULL)
		shown_cxt = AllocSetContextCreate(TopMemoryContext, "mnist_ml kafka properties shown",
										  ALLOCSET_SMALL_SIZES);
	if (shown)
		pfree(shown);
	shown = MemoryContextStrdup(shown_cxt, out.data);
	pfree(out.data);
	pfree(key);
	pfree(value);
	pfree(quoted);
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

rd_kafka_conf_t *
mnist_kafka_consumer_conf(const char *servers, const char *defaults)
{
	rd_kafka_conf_t *conf = mnist_kafka_conf(servers, defaults);

	/* explicit, though librdkafka's default: the user's properties cannot set otherwise */
	mnist_kafka_conf_set(conf, "isolation.level", "read_committed");
	return conf;
}

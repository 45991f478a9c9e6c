/*
 * topic_sql.c
 *		Training, evaluation and prediction from Kafka topics: mnist_train_topic (every message
 *		present when the call starts, like tensorflow-io's from_kafka) and mnist_evaluate_topic /
 *		mnist_predict_topic (a consumer group streaming until it sees no new message for a while,
 *		like KafkaGroupIODataset).
 *
 * The consumer (its lifetime, polls, offsets, errors) is kafka_consumer.c's; this file holds
 * the SQL functions: their arguments, what they read, bad messages (skipped and counted, or an
 * ERROR under mnist_ml.strict_messages) and their results.  mnist_train_topic's messages go
 * into a training set bounded by mnist_ml.train_memory (trainset.h), in (partition, offset)
 * order.
 */
#include "postgres.h"

#include <librdkafka/rdkafka.h>

#include "fmgr.h"
#include "funcapi.h"
#include "utils/builtins.h"
#include "utils/json.h"
#include "utils/timestamp.h"
#include "utils/tuplestore.h"

#include "kafka_conf.h"
#include "kafka_consumer.h"
#include "mnist_ml.h"
#include "model.h"
#include "model_cache.h"
#include "net.h"
#include "train.h"

/* What was wrong with the messages of one call. */
typedef struct BadMessages
{
	int64		count;
	int32		first_partition;
	int64		first_offset;
	const char *first_reason;	/* static text of mnist_kafka_decode */
} BadMessages;

PG_FUNCTION_INFO_V1(mnist_evaluate_topic);
PG_FUNCTION_INFO_V1(mnist_predict_topic);

/* ---- messages ---- */

/* Records a bad message; ERROR at once under mnist_ml.strict_messages. */
static void
bad_message(BadMessages *bad, const char *topic, int32 partition, int64 offset,
			const char *reason)
{
	if (mnist_strict_messages)
		ereport(ERROR,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("bad message in topic \"%s\" at partition %d offset " INT64_FORMAT ": %s",
						topic, partition, offset, reason),
				 errhint("Set mnist_ml.strict_messages to off to skip bad messages.")));
	if (bad->count++ == 0)
	{
		bad->first_partition = partition;
		bad->first_offset = offset;
		bad->first_reason = reason;
	}
}

/* WARNING with the count and the first bad message, if any. */
static void
report_bad_messages(const BadMessages *bad, const char *topic)
{
	if (bad->count > 0)
		ereport(WARNING,
				(errcode(ERRCODE_DATA_EXCEPTION),
				 errmsg("skipped " INT64_FORMAT " bad message%s in topic \"%s\"",
						bad->count, bad->count == 1 ? "" : "s", topic),
				 errdetail("The first is at partition %d offset " INT64_FORMAT ": %s.",
						   bad->first_partition, bad->first_offset, bad->first_reason)));
}

/* Decodes a message's key (label) and value (pixels); false (recorded) when bad. */
static bool
decode_message(const rd_kafka_message_t *msg, const char *topic, uint8 *pixels, int *label,
			   BadMessages *bad)
{
	const char *reason = mnist_kafka_decode(msg, pixels, label);

	if (reason == NULL)
		return true;
	bad_message(bad, topic, msg->partition, msg->offset, reason);
	return false;
}


/* ---- mnist_train_topic ---- */

/*
 * What mnist_train_topic reads: each partition from its low to its high watermark as they
 * were when the call started, into a training set in (partition, offset) order, whatever the
 * broker's interleaving of partitions (so that a seed gives the same model).
 */
typedef struct TopicRead
{
	const char *topic;
	int64	   *low;			/* per partition: the range [low, high) */
	int64	   *high;
	int64	   *next;			/* per partition: the next offset wanted (high: all read) */
	int64		total;			/* offsets in the ranges (holes included) */
	int64		received;		/* messages received in the ranges */
	BadMessages bad;
	TrainSet	set;
	int64	   *base;			/* placing: the slot of each partition's low offset */
	bool	   *valid;			/* placing: the slots holding a good message */
} TopicRead;

/* Takes a message in its partition's range (messages come in offset order in a partition). */
typedef void (*TopicReadFn) (TopicRead *rd, const rd_kafka_message_t *msg);

/* TopicReadFn: the message goes to its slot in the set's arrays, which hold every slot. */
static void
place_message(TopicRead *rd, const rd_kafka_message_t *msg)
{
	int64		slot = rd->base[msg->partition] + (msg->offset - rd->low[msg->partition]);
	int			label;

	if (decode_message(msg, rd->topic, rd->set.images + slot * MNIST_PIXELS, &label, &rd->bad))
	{
		rd->set.labels[slot] = label;
		rd->valid[slot] = true;
	}
}

/* TopicReadFn: the message is appended to the set (which spills beyond its bound). */
static void
append_message(TopicRead *rd, const rd_kafka_message_t *msg)
{
	uint8		pixels[MNIST_PIXELS];
	int			label;

	if (decode_message(msg, rd->topic, pixels, &label, &rd->bad))
		mnist_trainset_add(&rd->set, pixels, label);
}

/*
 * Reads partitions first .. last - 1 together, each from its next offset to its high
 * watermark, handing every message in range to fn; ERROR after mnist_ml.kafka_timeout_ms
 * without a message.
 */
static void
read_partitions(MnistConsumer *tc, TopicRead *rd, int first, int last, TopicReadFn fn)
{
	int32	   *partitions = palloc((last - first) * sizeof(int32));
	int64	   *offsets = palloc((last - first) * sizeof(int64));
	int			remaining = 0;
	TimestampTz last_progress;

	for (int p = first; p < last; p++)
		if (rd->next[p] < rd->high[p])
		{
			partitions[remaining] = p;
			offsets[remaining] = rd->next[p];
			remaining++;
		}
	if (remaining > 0)
		mnist_consumer_assign(tc, rd->topic, remaining, partitions, offsets);
	pfree(partitions);
	pfree(offsets);
	if (remaining == 0)
		return;

	last_progress = GetCurrentTimestamp();
	while (remaining > 0)
	{
		rd_kafka_message_t *msg = mnist_consumer_poll(tc);
		int32		p;

		if (msg == NULL)
		{
			if (mnist_consumer_elapsed_ms(last_progress) >= mnist_kafka_timeout_ms)
				ereport(ERROR,
						(errcode(ERRCODE_CONNECTION_FAILURE),
						 errmsg("no message from Kafka topic \"%s\" for %d ms, " INT64_FORMAT
								" of " INT64_FORMAT " read",
								rd->topic, mnist_kafka_timeout_ms, rd->received, rd->total),
						 tc->h->last_error[0] ? errdetail("%s", tc->h->last_error) : 0));
			continue;
		}
		p = msg->partition;
		if (msg->err && msg->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			mnist_consumer_message_error(tc, msg, rd->topic);
			continue;
		}
		last_progress = GetCurrentTimestamp();
		if (p < first || p >= last || rd->next[p] >= rd->high[p] || msg->offset < rd->next[p])
			continue;
		if (msg->err == RD_KAFKA_RESP_ERR__PARTITION_EOF)
		{
			/* offsets may have holes (compaction, transaction markers) */
			if (msg->offset >= rd->high[p])
			{
				rd->next[p] = rd->high[p];
				remaining--;
			}
		}
		else if (msg->offset < rd->high[p])
		{
			fn(rd, msg);
			rd->received++;
			rd->next[p] = msg->offset + 1;
			if (rd->next[p] == rd->high[p])
				remaining--;
		}
	}
}

/*
 * mnist_train_topic(topic, model_name, epochs, batch_size, learning_rate, hidden_units, seed,
 * init_model, bootstrap_servers[, validation, deploy]): trains on every message present when
 * the call starts.  1.0's signature stops at bootstrap_servers, 1.1's adds validation and
 * deploy (gated).
 */
static Datum
train_topic(FunctionCallInfo fcinfo, bool gated)
{
	char	   *servers;
	TrainOptions opt;
	MnistConsumer *tc;
	int			nparts;
	TopicRead	rd = {0};
	TrainSet	vset;
	TimestampTz start;
	StringInfoData source;
	int64		model_id;

	static const char *const argnames[] = {"topic", "model_name", "epochs", "batch_size",
	"learning_rate", "hidden_units", "seed"};

	/* only init_model and bootstrap_servers may be null */
	for (int i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	rd.topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mnist_kafka_topic_name_check(rd.topic);
	memset(&opt, 0, sizeof(opt));
	opt.model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	opt.epochs = PG_GETARG_INT32(2);
	opt.batch_size = PG_GETARG_INT32(3);
	opt.learning_rate = PG_GETARG_FLOAT8(4);
	opt.hidden_units = PG_GETARG_INT32(5);
	opt.seed = PG_GETARG_INT64(6);
	opt.init_model = PG_ARGISNULL(7) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(7));
	servers = PG_ARGISNULL(8) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(8));
	if (gated)
		mnist_train_options_gate(&opt, fcinfo, 9);
	else
		mnist_train_options_ungated(&opt);
	mnist_train_options_validate(&opt);	/* before reading the topic */
	if (OidIsValid(opt.validation))
		mnist_train_read_validation(&opt, "pixels", "label", true, &vset);

	start = GetCurrentTimestamp();
	tc = mnist_consumer_create(servers, NULL);
	nparts = mnist_consumer_wait_broker(tc, servers, rd.topic);
	if (nparts == 0)
		ereport(ERROR,
				(errcode(ERRCODE_UNDEFINED_OBJECT),
				 errmsg("Kafka topic \"%s\" does not exist", rd.topic)));

	elog(DEBUG1, "topic \"%s\": broker answered after " INT64_FORMAT " ms", rd.topic, mnist_consumer_elapsed_ms(start));

	/* the watermarks when the call starts bound what it reads */
	rd.low = palloc0(sizeof(int64) * nparts);
	rd.high = palloc0(sizeof(int64) * nparts);
	rd.next = palloc0(sizeof(int64) * nparts);
	rd.base = palloc0(sizeof(int64) * nparts);
	for (int p = 0; p < nparts; p++)
	{
		mnist_consumer_watermarks(tc, rd.topic, p, start, &rd.low[p], &rd.high[p]);
		rd.next[p] = rd.low[p];
		rd.base[p] = rd.total;
		rd.total += Max(rd.high[p] - rd.low[p], 0);
	}
	if (rd.total == 0)
		ereport(ERROR,
				(errcode(ERRCODE_NO_DATA_FOUND),
				 errmsg("Kafka topic \"%s\" has no messages", rd.topic)));
	elog(DEBUG1, "topic \"%s\": watermarks after " INT64_FORMAT " ms", rd.topic, mnist_consumer_elapsed_ms(start));
	if (mnist_progress)
		ereport(NOTICE,
				(errmsg("reading " INT64_FORMAT " messages from %d partitions of topic \"%s\"",
						rd.total, nparts, rd.topic)));

	/*
	 * The set holds what mnist_ml.train_memory allows.  When that is every offset of the
	 * ranges, all partitions are read at once, each message going to its slot in (partition,
	 * offset) order as it arrives, straight into the set's arrays; holes (bad or missing
	 * messages) are squeezed out at the end.  Otherwise the partitions are read one after the
	 * other, their good messages appended in offset order: the same rows in the same order,
	 * the set spilling to a temporary file beyond its bound.
	 */
	mnist_trainset_init_bounded(&rd.set, rd.total);
	if (rd.total <= rd.set.capacity)
	{
		rd.valid = palloc_extended(rd.total, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
		read_partitions(tc, &rd, 0, nparts, place_message);
		for (int64 i = 0; i < rd.total; i++)
			if (rd.valid[i])
			{
				if (rd.set.n != i)
				{
					memcpy(rd.set.images + rd.set.n * MNIST_PIXELS,
						   rd.set.images + i * MNIST_PIXELS, MNIST_PIXELS);
					rd.set.labels[rd.set.n] = rd.set.labels[i];
				}
				rd.set.n++;
			}
		pfree(rd.valid);
	}
	else
		for (int p = 0; p < nparts; p++)
			read_partitions(tc, &rd, p, p + 1, append_message);
	elog(DEBUG1, "topic \"%s\": last message after " INT64_FORMAT " ms", rd.topic, mnist_consumer_elapsed_ms(start));
	mnist_consumer_close(tc);
	elog(DEBUG1, "topic \"%s\": consumer closed after " INT64_FORMAT " ms", rd.topic, mnist_consumer_elapsed_ms(start));

	report_bad_messages(&rd.bad, rd.topic);
	if (mnist_progress)
		ereport(NOTICE,
				(errmsg("read " INT64_FORMAT " messages (" INT64_FORMAT " usable) from topic \"%s\" in %.2f s",
						rd.received, rd.set.n, rd.topic, mnist_consumer_elapsed_ms(start) / 1000.0),
				 rd.set.spill ? errdetail("They exceed mnist_ml.train_memory (" INT64_FORMAT
										  " rows) and were spilled to a temporary file.",
										  rd.set.capacity) : 0));

	/* the source: topic, servers and the offset range read from each partition */
	initStringInfo(&source);
	appendStringInfoString(&source, "{\"topic\": ");
	escape_json(&source, rd.topic);
	appendStringInfoString(&source, ", \"servers\": ");
	escape_json(&source, servers ? servers : mnist_kafka_bootstrap_servers);
	appendStringInfo(&source, ", \"messages\": " INT64_FORMAT ", \"skipped\": " INT64_FORMAT
					 ", \"offsets\": [", rd.received, rd.bad.count);
	for (int p = 0; p < nparts; p++)
		appendStringInfo(&source, "%s{\"partition\": %d, \"from\": " INT64_FORMAT
						 ", \"to\": " INT64_FORMAT "}",
						 p ? ", " : "", p, rd.low[p], rd.high[p]);
	appendStringInfoString(&source, "]}");

	model_id = mnist_train_and_store(&rd.set, &opt, source.data,
									 OidIsValid(opt.validation) ? &vset : NULL);
	PG_RETURN_INT64(model_id);
}

/*
 * The SQL entry points: mnist_train_topic_1_1 is bound by the scripts since 1.2 to 1.1's signature (11
 * arguments, unchanged since).  mnist_train_topic is the symbol the released 1.0 and 1.1 install
 * scripts bind, to 1.0's signature (9 arguments) and to 1.1's: for databases not updated
 * yet it tells them apart by their number of arguments.
 */
PG_FUNCTION_INFO_V1(mnist_train_topic_1_1);
PG_FUNCTION_INFO_V1(mnist_train_topic);

Datum
mnist_train_topic_1_1(PG_FUNCTION_ARGS)
{
	return train_topic(fcinfo, true);
}

Datum
mnist_train_topic(PG_FUNCTION_ARGS)
{
	return train_topic(fcinfo, PG_NARGS() == 11);
}


/* ---- mnist_evaluate_topic, mnist_predict_topic ---- */

/* One streaming read of a topic through a consumer group. */
typedef struct StreamCall
{
	const char *topic;
	const char *model_name;
	const char *group_id;
	int			stream_timeout_ms;
	const char *servers;
} StreamCall;

/* Called for each good message of a stream. */
typedef void (*StreamVisit) (void *arg, const rd_kafka_message_t *msg, int label,
							 const uint8 *pixels);

static void
stream_args(FunctionCallInfo fcinfo, StreamCall *call)
{
	static const char *const argnames[] = {"topic", "model_name", "group_id",
	"stream_timeout_ms"};

	/* only bootstrap_servers may be null */
	for (int i = 0; i < lengthof(argnames); i++)
		if (PG_ARGISNULL(i))
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("%s must not be null", argnames[i])));
	call->topic = text_to_cstring(PG_GETARG_TEXT_PP(0));
	mnist_kafka_topic_name_check(call->topic);
	call->model_name = text_to_cstring(PG_GETARG_TEXT_PP(1));
	call->group_id = text_to_cstring(PG_GETARG_TEXT_PP(2));
	call->stream_timeout_ms = PG_GETARG_INT32(3);
	call->servers = PG_ARGISNULL(4) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(4));
	if (call->stream_timeout_ms < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("stream_timeout_ms must not be negative")));
	if (call->group_id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("group_id must not be empty")));
}

/*
 * Reads the topic through the consumer group until stream_timeout_ms pass without a new
 * message (counted from the latest assignment or message), visiting each good message, then
 * commits the group's offsets.  Returns the number of messages visited.
 */
static int64
stream_topic(const StreamCall *call, StreamVisit visit, void *arg)
{
	MnistConsumer *tc;
	BadMessages bad = {0};
	uint8		pixels[MNIST_PIXELS];
	int			seen_assignments = 0,
				seen_revocations = 0;
	int64		visited = 0;
	TimestampTz waiting_since,
				last_activity = 0,
				last_notice = 0;

	tc = mnist_consumer_create(call->servers, call->group_id);
	mnist_consumer_wait_broker(tc, call->servers, call->topic);

	mnist_consumer_subscribe(tc, call->topic);
	waiting_since = GetCurrentTimestamp();

	for (;;)
	{
		rd_kafka_message_t *msg = mnist_consumer_poll(tc);
		int			label;

		if (tc->revocations != seen_revocations)
		{
			seen_revocations = tc->revocations;
			waiting_since = GetCurrentTimestamp();
		}
		if (tc->assignments != seen_assignments)
		{
			seen_assignments = tc->assignments;
			last_activity = GetCurrentTimestamp();
			if (mnist_progress)
				ereport(NOTICE,
						(errmsg("consumer group \"%s\" assigned %d partition%s of topic \"%s\"; streaming until %d ms pass without a message",
								call->group_id, tc->assigned, tc->assigned == 1 ? "" : "s",
								call->topic, call->stream_timeout_ms)));
		}

		if (msg == NULL)
		{
			if (seen_assignments == 0)
			{
				/*
				 * The broker answered: the group must form within a session timeout more (a
				 * member that died without leaving holds the rebalance until it expires).
				 */
				if (mnist_consumer_elapsed_ms(waiting_since) >= mnist_kafka_timeout_ms + tc->session_timeout_ms)
					ereport(ERROR,
							(errcode(ERRCODE_CONNECTION_FAILURE),
							 errmsg("consumer group \"%s\" got no assignment from \"%s\"",
									call->group_id,
									call->servers ? call->servers : mnist_kafka_bootstrap_servers),
							 tc->h->last_error[0] ? errdetail("%s", tc->h->last_error) : 0));
			}
			else if (tc->revoked &&
					 mnist_consumer_elapsed_ms(waiting_since) < mnist_kafka_timeout_ms + tc->session_timeout_ms)
				;				/* rebalancing: the stream waits for the partitions to come back */
			else if (mnist_consumer_elapsed_ms(last_activity) >= call->stream_timeout_ms)
				break;
			continue;
		}

		if (msg->err)
		{
			/* a topic that does not exist yet, say: keep waiting */
			mnist_consumer_message_error(tc, msg, call->topic);
			continue;
		}

		mnist_consumer_mark_read(tc, msg);
		last_activity = GetCurrentTimestamp();
		if (decode_message(msg, call->topic, pixels, &label, &bad))
		{
			visit(arg, msg, label, pixels);
			visited++;
		}

		if (mnist_progress && TimestampDifferenceExceeds(last_notice, last_activity, 2000))
		{
			if (last_notice != 0)
				ereport(NOTICE,
						(errmsg("received " INT64_FORMAT " messages from topic \"%s\"",
								visited + bad.count, call->topic)));
			last_notice = last_activity;
		}
	}

	mnist_consumer_commit(tc, call->topic);
	mnist_consumer_close(tc);
	report_bad_messages(&bad, call->topic);
	return visited;
}

/* Running totals of mnist_evaluate_topic. */
typedef struct EvalState
{
	MnistModel *model;
	double		loss_sum;
	int64		correct;
} EvalState;

static void
evaluate_visit(void *arg, const rd_kafka_message_t *msg, int label, const uint8 *pixels)
{
	EvalState  *st = (EvalState *) arg;
	float		logits[NET_OUTPUTS];

	if (mnist_net_predict(&st->model->net, pixels, st->model->scratch, NULL, logits) == label)
		st->correct++;
	st->loss_sum += mnist_net_cross_entropy(logits, label);
}

/*
 * mnist_evaluate_topic(topic, model_name, group_id, stream_timeout_ms, bootstrap_servers):
 * rows, mean loss and accuracy over the messages streamed through a consumer group.
 */
Datum
mnist_evaluate_topic(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	StreamCall	call;
	EvalState	st = {0};
	int64		rows;
	Datum		values[3];
	bool		nulls[3] = {false, false, false};

	stream_args(fcinfo, &call);
	InitMaterializedSRF(fcinfo, 0);
	st.model = mnist_model_get(call.model_name, CurrentMemoryContext);

	rows = stream_topic(&call, evaluate_visit, &st);

	values[0] = Int64GetDatum(rows);
	if (rows > 0)
	{
		values[1] = Float8GetDatum(st.loss_sum / rows);
		values[2] = Float8GetDatum((double) st.correct / rows);
	}
	else
		nulls[1] = nulls[2] = true;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	return (Datum) 0;
}

/* What mnist_predict_topic's visits need. */
typedef struct PredictState
{
	MnistModel *model;
	ReturnSetInfo *rsinfo;
} PredictState;

static void
predict_visit(void *arg, const rd_kafka_message_t *msg, int label, const uint8 *pixels)
{
	PredictState *st = (PredictState *) arg;
	float		probs[NET_OUTPUTS];
	int			predicted;
	Datum		values[5];
	bool		nulls[5] = {false, false, false, false, false};

	predicted = mnist_net_predict(&st->model->net, pixels, st->model->scratch, probs, NULL);
	values[0] = Int32GetDatum(msg->partition);
	values[1] = Int64GetDatum(msg->offset);
	values[2] = Int16GetDatum(label);
	values[3] = Int16GetDatum(predicted);
	values[4] = Float4GetDatum(probs[predicted]);
	tuplestore_putvalues(st->rsinfo->setResult, st->rsinfo->setDesc, values, nulls);
}

/*
 * mnist_predict_topic(topic, model_name, group_id, stream_timeout_ms, bootstrap_servers):
 * a row per message streamed through a consumer group, with the model's prediction.
 */
Datum
mnist_predict_topic(PG_FUNCTION_ARGS)
{
	StreamCall	call;
	PredictState st;

	stream_args(fcinfo, &call);
	InitMaterializedSRF(fcinfo, 0);
	st.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	st.model = mnist_model_get(call.model_name, CurrentMemoryContext);

	stream_topic(&call, predict_visit, &st);
	return (Datum) 0;
}

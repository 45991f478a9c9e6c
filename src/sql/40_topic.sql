-- Training, evaluation and prediction from Kafka topics (src/topic_sql.c).

CREATE FUNCTION mnist_train_topic(topic text, model_name text DEFAULT 'default',
								  epochs int DEFAULT 5, batch_size int DEFAULT 64,
								  learning_rate float8 DEFAULT 0.001,
								  hidden_units int DEFAULT 128, seed bigint DEFAULT 0,
								  init_model text DEFAULT NULL,
								  bootstrap_servers text DEFAULT NULL,
								  validation regclass DEFAULT NULL,
								  deploy text DEFAULT 'always')
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train_topic_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION mnist_train_topic(text, text, int, int, float8, int, bigint, text, text, regclass, text) IS
'Trains a model on every message present in a Kafka topic when the call starts (all partitions, from the beginning up to the high watermarks; key = label, value = 784 comma-separated pixels), in (partition, offset) order, as mnist_train does (validation and deploy included); stores it with the topic and offsets in its metadata and returns its id';

CREATE FUNCTION mnist_evaluate_topic(topic text, model_name text DEFAULT 'default',
									 group_id text DEFAULT 'mnistcg',
									 stream_timeout_ms int DEFAULT 9000,
									 bootstrap_servers text DEFAULT NULL)
RETURNS TABLE(rows bigint, loss float8, accuracy float8)
AS 'MODULE_PATHNAME', 'mnist_evaluate_topic'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION mnist_evaluate_topic(text, text, text, int, text) IS
'Evaluates a model on a Kafka topic read through a consumer group (from the earliest offset for a new group), waiting for new messages until stream_timeout_ms pass without one; returns the rows, mean cross-entropy and accuracy, and commits the group''s offsets when it succeeds';

CREATE FUNCTION mnist_predict_topic(topic text, model_name text DEFAULT 'default',
									group_id text DEFAULT 'mnistcg',
									stream_timeout_ms int DEFAULT 9000,
									bootstrap_servers text DEFAULT NULL)
RETURNS TABLE(partition int, "offset" bigint, label smallint, predicted smallint,
			  probability float4)
AS 'MODULE_PATHNAME', 'mnist_predict_topic'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION mnist_predict_topic(text, text, text, int, text) IS
'Streams a Kafka topic through a consumer group as mnist_evaluate_topic does and returns a row per message: partition, offset, label (the key), the model''s prediction and its probability';

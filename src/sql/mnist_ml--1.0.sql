-- mnist_ml install script, assembled from src/sql/*.sql in name order.
\echo Use "CREATE EXTENSION mnist_ml" to load this file. \quit

-- Stored models and training (src/model.c, src/train.c).

CREATE TABLE mnist_models (
	id bigserial PRIMARY KEY,
	name text NOT NULL CHECK (name <> ''),
	created_at timestamptz NOT NULL DEFAULT now(),
	hyperparameters jsonb NOT NULL,
	metrics jsonb NOT NULL,
	weights bytea NOT NULL,
	trained_by regrole NOT NULL DEFAULT current_user::regrole
);
CREATE INDEX mnist_models_name_id ON mnist_models (name, id);

COMMENT ON TABLE mnist_models IS 'Trained models; the newest (highest id) of a name is the one served. Written only by the training functions.';
COMMENT ON SEQUENCE mnist_models_id_seq IS 'Ids of mnist_models.';
COMMENT ON COLUMN mnist_models.id IS 'Model id, returned by mnist_train.';
COMMENT ON COLUMN mnist_models.name IS 'Model name, as given to mnist_train and mnist_predict.';
COMMENT ON COLUMN mnist_models.created_at IS 'When the model was stored.';
COMMENT ON COLUMN mnist_models.hyperparameters IS 'epochs, batch_size, learning_rate, hidden_units, seed, init_model and the Adam settings.';
COMMENT ON COLUMN mnist_models.metrics IS 'rows, seconds, final loss and accuracy, per-epoch loss/accuracy/seconds, and the source (table, or topic and offsets).';
COMMENT ON COLUMN mnist_models.trained_by IS 'Role that trained the model; a name belongs to the role of its first model.';
COMMENT ON COLUMN mnist_models.weights IS 'Versioned binary weights: magic MNML, version, layer sizes, flags, little-endian float32 parameters (and Adam state); see the README.';

-- models survive pg_dump
SELECT pg_catalog.pg_extension_config_dump('mnist_models', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_models_id_seq', '');

-- everybody may read models; only the functions (running as the owner) write them
REVOKE ALL ON mnist_models FROM PUBLIC;
GRANT SELECT ON mnist_models TO PUBLIC;

CREATE FUNCTION mnist_models_changed() RETURNS trigger
	AS 'MODULE_PATHNAME', 'mnist_models_changed' LANGUAGE C;
COMMENT ON FUNCTION mnist_models_changed() IS 'Statement trigger on mnist_models: makes every session re-check its cached models at its next statement.';

CREATE TRIGGER mnist_models_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mnist_models
	FOR EACH STATEMENT EXECUTE FUNCTION mnist_models_changed();

CREATE FUNCTION mnist_train(
	source regclass,
	model_name text DEFAULT 'default',
	epochs int DEFAULT 5,
	batch_size int DEFAULT 64,
	learning_rate float8 DEFAULT 0.001,
	hidden_units int DEFAULT 128,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label',
	seed bigint DEFAULT 0,
	init_model text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET synchronize_seqscans = off;
COMMENT ON FUNCTION mnist_train(regclass, text, int, int, float8, int, name, name, bigint, text) IS 'Trains 784 -> Dense(hidden_units, relu) -> Dense(10) with Adam on the rows of source (read as the caller), stores the model in mnist_models and returns its id; init_model continues from a stored model.';

-- Inference and images (src/predict.c).

CREATE FUNCTION mnist_predict(pixels bytea, model_name text DEFAULT 'default')
RETURNS smallint
AS 'MODULE_PATHNAME', 'mnist_predict'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_predict(bytea, text) IS 'The class 0..9 that the newest model of that name predicts for 784 pixels.';

CREATE FUNCTION mnist_predict_proba(pixels bytea, model_name text DEFAULT 'default')
RETURNS float4[]
AS 'MODULE_PATHNAME', 'mnist_predict_proba'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_predict_proba(bytea, text) IS 'The 10 softmax probabilities of the classes 0..9 for 784 pixels.';

CREATE FUNCTION mnist_evaluate(
	source regclass,
	model_name text DEFAULT 'default',
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(rows bigint, loss float8, accuracy float8)
AS 'MODULE_PATHNAME', 'mnist_evaluate'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1;
COMMENT ON FUNCTION mnist_evaluate(regclass, text, name, name) IS 'Number of rows, mean cross-entropy and accuracy of a model on the labelled rows of source (read as the caller).';

CREATE FUNCTION mnist_confusion_matrix(
	source regclass,
	model_name text DEFAULT 'default',
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(label smallint, predicted smallint, count bigint)
AS 'MODULE_PATHNAME', 'mnist_confusion_matrix'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION mnist_confusion_matrix(regclass, text, name, name) IS 'For each of the 100 (label, predicted) pairs, how many rows of source the model classifies so.';

CREATE FUNCTION mnist_classify() RETURNS trigger
AS 'MODULE_PATHNAME', 'mnist_classify'
LANGUAGE C;
COMMENT ON FUNCTION mnist_classify() IS 'Row trigger: BEFORE INSERT OR UPDATE OF pixels ... FOR EACH ROW EXECUTE FUNCTION mnist_classify(''pixels'', ''predicted'' [, ''model_name'']) stores the prediction of each new row.';

CREATE FUNCTION mnist_pixels("values" int[])
RETURNS bytea
AS 'MODULE_PATHNAME', 'mnist_pixels'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_pixels(int[]) IS 'The pixels bytea of 784 grey levels 0..255 (row by row).';

CREATE FUNCTION mnist_render(pixels bytea)
RETURNS text
AS 'MODULE_PATHNAME', 'mnist_render'
LANGUAGE C STRICT IMMUTABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_render(bytea) IS 'The image as 28 lines of text shading, to look at it in psql.';
-- Change data capture to Kafka: status, ad hoc snapshot, slot removal.

CREATE FUNCTION mnist_cdc_status(
    OUT slot_name text, OUT state text, OUT pid integer, OUT database text,
    OUT confirmed_lsn pg_lsn, OUT lag_bytes bigint,
    OUT produced bigint, OUT acknowledged bigint, OUT failed bigint,
    OUT last_error text, OUT last_error_at timestamptz, OUT broker_reachable boolean)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_status() IS
'State of the change data capture worker: its slot, confirmed LSN, lag, message counters since server start, last error, broker reachability.';

CREATE VIEW mnist_cdc_status AS SELECT * FROM mnist_cdc_status();
COMMENT ON VIEW mnist_cdc_status IS
'One row describing change data capture to Kafka (see mnist_cdc_status()).';

CREATE FUNCTION mnist_cdc_snapshot(tbl regclass)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_cdc_snapshot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_snapshot(regclass) IS
'Sends every current row of a table (label, pixels) to its topic <prefix>.<schema>.<table> as snapshot reads (header op=r); returns the number of messages the broker acknowledged.';

CREATE FUNCTION mnist_cdc_drop_slot()
RETURNS boolean
AS 'MODULE_PATHNAME', 'mnist_cdc_drop_slot'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_drop_slot() IS
'Drops the change data capture slot mnist_ml_cdc and the WAL it retains; stop CDC first (mnist_ml.cdc_tables = ''''). A later start takes a new initial snapshot.';
REVOKE ALL ON FUNCTION mnist_cdc_drop_slot() FROM PUBLIC;
-- publishing to the captured topics is for operators (GRANT EXECUTE to allow others)
REVOKE ALL ON FUNCTION mnist_cdc_snapshot(regclass) FROM PUBLIC;
-- Training, evaluation and prediction from Kafka topics (src/topic.c).

CREATE FUNCTION mnist_train_topic(topic text, model_name text DEFAULT 'default',
								  epochs int DEFAULT 5, batch_size int DEFAULT 64,
								  learning_rate float8 DEFAULT 0.001,
								  hidden_units int DEFAULT 128, seed bigint DEFAULT 0,
								  init_model text DEFAULT NULL,
								  bootstrap_servers text DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train_topic'
LANGUAGE C VOLATILE PARALLEL UNSAFE;

COMMENT ON FUNCTION mnist_train_topic(text, text, int, int, float8, int, bigint, text, text) IS
'Trains a model on every message present in a Kafka topic when the call starts (all partitions, from the beginning up to the high watermarks; key = label, value = 784 comma-separated pixels), in (partition, offset) order, as mnist_train does; stores it with the topic and offsets in its metadata and returns its id';

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

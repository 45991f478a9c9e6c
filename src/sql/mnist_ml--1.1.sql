-- mnist_ml install script, assembled from src/sql/NN_*.sql in name order.
\echo Use "CREATE EXTENSION mnist_ml" to load this file. \quit

-- Stored models and training (src/model.c, src/train.c).

CREATE TABLE mnist_models (
	id bigserial PRIMARY KEY,
	name text NOT NULL CHECK (name <> '' AND octet_length(name) <= 200),
	created_at timestamptz NOT NULL DEFAULT now(),
	hyperparameters jsonb NOT NULL,
	metrics jsonb NOT NULL,
	weights bytea NOT NULL,
	trained_by regrole NOT NULL DEFAULT current_user::regrole
);
CREATE INDEX mnist_models_name_id ON mnist_models (name, id);
-- out of line and uncompressed: serving reads the parameters alone, a prefix of the value,
-- without the Adam state after them (weights of floats hardly compress anyway)
ALTER TABLE mnist_models ALTER COLUMN weights SET STORAGE EXTERNAL;

COMMENT ON TABLE mnist_models IS 'Trained models; a name is served by its deployed model (mnist_deployments), else by its newest (highest id). Written only by the training functions.';
COMMENT ON SEQUENCE mnist_models_id_seq IS 'Ids of mnist_models.';
COMMENT ON COLUMN mnist_models.id IS 'Model id, returned by mnist_train.';
COMMENT ON COLUMN mnist_models.name IS 'Model name (1 to 200 bytes), as given to mnist_train and mnist_predict.';
COMMENT ON COLUMN mnist_models.created_at IS 'When the model was stored.';
COMMENT ON COLUMN mnist_models.hyperparameters IS 'epochs, batch_size, learning_rate, hidden_units, seed, init_model and the Adam settings.';
COMMENT ON COLUMN mnist_models.metrics IS 'rows, seconds, final loss and accuracy, per-epoch loss/accuracy/seconds, and the source (table, or topic and offsets).';
COMMENT ON COLUMN mnist_models.trained_by IS 'Role that trained the model (or was given it by mnist_model_reassign); a name belongs to the role of its first model.';
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

-- a name whose role was dropped stays locked until a superuser gives it to another role
CREATE FUNCTION mnist_model_reassign(model_name text, new_owner regrole) RETURNS bigint
LANGUAGE plpgsql VOLATILE
SET search_path = @extschema@, pg_temp
AS $$
DECLARE
	n bigint;
BEGIN
	UPDATE mnist_models SET trained_by = new_owner WHERE name = model_name;
	GET DIAGNOSTICS n = ROW_COUNT;
	IF n = 0 THEN
		RAISE EXCEPTION 'model "%" does not exist', model_name USING ERRCODE = 'undefined_object';
	END IF;
	RETURN n;
END $$;
COMMENT ON FUNCTION mnist_model_reassign(text, regrole) IS 'Gives every model of a name to another role (trained_by), e.g. the name of a dropped role; returns the number of models. Superusers only (it updates mnist_models).';
REVOKE ALL ON FUNCTION mnist_model_reassign(text, regrole) FROM PUBLIC;

CREATE FUNCTION mnist_model_cache(OUT name text, OUT model_id bigint, OUT hidden_units int, OUT bytes bigint)
RETURNS SETOF record
AS 'MODULE_PATHNAME', 'mnist_model_cache'
LANGUAGE C VOLATILE PARALLEL RESTRICTED;
COMMENT ON FUNCTION mnist_model_cache() IS 'The decoded models this session keeps (most recently used first) and the memory each takes; mnist_ml.model_cache_size bounds their sum.';

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
	init_model text DEFAULT NULL,
	validation regclass DEFAULT NULL,
	deploy text DEFAULT 'always')
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_train'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET synchronize_seqscans = off;
COMMENT ON FUNCTION mnist_train(regclass, text, int, int, float8, int, name, name, bigint, text, regclass, text) IS 'Trains 784 -> Dense(hidden_units, relu) -> Dense(10) with Adam on the rows of source (read as the caller), stores the model in mnist_models and returns its id; init_model continues from the model serving that name; deploy (always, never, if_better) decides whether it serves its name, if_better comparing validation accuracies with the deployed model.';
-- Deployments: which stored model serves a name (src/deploy.c; the resolver is in src/model.c).

CREATE TABLE mnist_deployments (
	id bigserial PRIMARY KEY,
	name text NOT NULL,
	model_id bigint NOT NULL,
	replaced_model_id bigint,
	deployed_at timestamptz NOT NULL DEFAULT now(),
	deployed_by regrole NOT NULL,
	reason text NOT NULL,
	rollback_to bigint
);
CREATE INDEX mnist_deployments_name_id ON mnist_deployments (name, id);

COMMENT ON TABLE mnist_deployments IS 'Deployment history: the latest row of a name whose model still exists names the model serving it (a name never deployed serves its newest model). Written only by mnist_deploy, mnist_rollback and the training functions.';
COMMENT ON SEQUENCE mnist_deployments_id_seq IS 'Ids of mnist_deployments.';
COMMENT ON COLUMN mnist_deployments.id IS 'Deployment id, in the order of the decisions.';
COMMENT ON COLUMN mnist_deployments.name IS 'Model name.';
COMMENT ON COLUMN mnist_deployments.model_id IS 'The model deployed (mnist_models.id).';
COMMENT ON COLUMN mnist_deployments.replaced_model_id IS 'The model that served the name before, or NULL.';
COMMENT ON COLUMN mnist_deployments.deployed_at IS 'When the deployment was decided (its transaction''s start).';
COMMENT ON COLUMN mnist_deployments.deployed_by IS 'Role that deployed.';
COMMENT ON COLUMN mnist_deployments.reason IS 'manual, rollback, trained (storing deployed it), gate (with the validation accuracies that decided), or upgrade.';
COMMENT ON COLUMN mnist_deployments.rollback_to IS 'The deployment (id) that mnist_rollback returns to from this one, or NULL when there is nothing earlier.';

-- the history survives pg_dump
SELECT pg_catalog.pg_extension_config_dump('mnist_deployments', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_deployments_id_seq', '');

-- everybody may read deployments; only the functions (running as the owner) write them
REVOKE ALL ON mnist_deployments FROM PUBLIC;
GRANT SELECT ON mnist_deployments TO PUBLIC;

CREATE TRIGGER mnist_deployments_changed
	AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON mnist_deployments
	FOR EACH STATEMENT EXECUTE FUNCTION mnist_models_changed();

CREATE FUNCTION mnist_deploy(model_name text, model_id bigint DEFAULT NULL)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_deploy'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_deploy(text, bigint) IS 'Deploys a stored model of that name (model_id NULL: its newest): every session serves it from its next statement. Only the role owning the name may. Returns the model id.';

CREATE FUNCTION mnist_rollback(model_name text)
RETURNS bigint
AS 'MODULE_PATHNAME', 'mnist_rollback'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_rollback(text) IS 'Deploys again the model deployed before the current one, one step further back per call (an error when there is nothing earlier). Only the role owning the name may. Returns the model id.';
-- Online learning: jobs that keep a model learning from a Kafka topic, run by the online
-- learning worker (src/online.c, src/online_worker.c).

CREATE TABLE mnist_online_jobs (
	model_name text PRIMARY KEY,
	topic text NOT NULL,
	validation text NOT NULL,
	group_id text NOT NULL,
	every interval NOT NULL,
	min_rows int NOT NULL,
	max_rows int NOT NULL,
	epochs int NOT NULL,
	batch_size int NOT NULL,
	learning_rate float8 NOT NULL,
	start_from text NOT NULL,
	bootstrap_servers text,
	started_by regrole NOT NULL,
	started_at timestamptz NOT NULL,
	started_in text NOT NULL,
	state text NOT NULL,
	offsets jsonb,
	last_model_id bigint,
	served_model_id bigint,
	last_error text,
	last_error_at timestamptz
);
COMMENT ON TABLE mnist_online_jobs IS 'Online learning jobs, one per model name: registered by mnist_online_start, run by the online learning worker; see mnist_online_status.';
COMMENT ON COLUMN mnist_online_jobs.model_name IS 'The model the job keeps training (its own line of candidates, deployed through the gate).';
COMMENT ON COLUMN mnist_online_jobs.topic IS 'Kafka topic of labelled images (key = label, value = 784 comma-separated pixels).';
COMMENT ON COLUMN mnist_online_jobs.validation IS 'Qualified name of the validation table (pixels, label), read as started_by every round.';
COMMENT ON COLUMN mnist_online_jobs.group_id IS 'Consumer group id (the job assigns partitions itself and commits nothing to the group).';
COMMENT ON COLUMN mnist_online_jobs.every IS 'Time between rounds.';
COMMENT ON COLUMN mnist_online_jobs.min_rows IS 'A round waits for at least this many new messages.';
COMMENT ON COLUMN mnist_online_jobs.max_rows IS 'A round takes at most this many new messages; the rest wait for the next round.';
COMMENT ON COLUMN mnist_online_jobs.epochs IS 'Epochs over the new messages per round.';
COMMENT ON COLUMN mnist_online_jobs.batch_size IS 'Mini-batch size.';
COMMENT ON COLUMN mnist_online_jobs.learning_rate IS 'Adam learning rate.';
COMMENT ON COLUMN mnist_online_jobs.start_from IS 'latest or earliest: where a job without stored offsets starts reading.';
COMMENT ON COLUMN mnist_online_jobs.bootstrap_servers IS 'Kafka servers, or NULL for mnist_ml.kafka_bootstrap_servers.';
COMMENT ON COLUMN mnist_online_jobs.started_by IS 'The role that started the job; every round runs as this role.';
COMMENT ON COLUMN mnist_online_jobs.started_at IS 'When mnist_online_start last started the job.';
COMMENT ON COLUMN mnist_online_jobs.started_in IS 'The cluster (system identifier) and database OID where the job was started: a job restored elsewhere by pg_dump is stopped.';
COMMENT ON COLUMN mnist_online_jobs.state IS 'running, paused (broker unreachable; resumes by itself), stopped, or failed (see last_error).';
COMMENT ON COLUMN mnist_online_jobs.offsets IS 'Next offset of each partition ({"partition": offset}), stored in the transaction of each round: the worker resumes there.';
COMMENT ON COLUMN mnist_online_jobs.last_model_id IS 'The job''s last candidate, from which the next round continues (NULL: start from the deployed model).';
COMMENT ON COLUMN mnist_online_jobs.served_model_id IS 'The model serving the name after the job''s last round: if another has been deployed since, the next round is superseded.';
COMMENT ON COLUMN mnist_online_jobs.last_error IS 'Why the job is paused or failed.';
COMMENT ON COLUMN mnist_online_jobs.last_error_at IS 'When last_error was recorded.';

CREATE TABLE mnist_online_rounds (
	id bigserial PRIMARY KEY,
	model_name text NOT NULL,
	finished_at timestamptz NOT NULL DEFAULT now(),
	seconds float8 NOT NULL,
	rows bigint NOT NULL,
	skipped bigint NOT NULL,
	from_offsets jsonb NOT NULL,
	to_offsets jsonb NOT NULL,
	model_id bigint NOT NULL,
	accuracy_before float8,
	accuracy_after float8 NOT NULL,
	deployed boolean NOT NULL,
	reason text NOT NULL
);
CREATE INDEX mnist_online_rounds_name_id ON mnist_online_rounds (model_name, id);
COMMENT ON TABLE mnist_online_rounds IS 'One row per online learning round, written in the round''s transaction with its model, its deployment decision and its offsets.';
COMMENT ON SEQUENCE mnist_online_rounds_id_seq IS 'Ids of mnist_online_rounds.';
COMMENT ON COLUMN mnist_online_rounds.id IS 'Round id.';
COMMENT ON COLUMN mnist_online_rounds.model_name IS 'The job''s model name.';
COMMENT ON COLUMN mnist_online_rounds.finished_at IS 'When the round committed.';
COMMENT ON COLUMN mnist_online_rounds.seconds IS 'Seconds from the round''s start (messages taken) to its commit.';
COMMENT ON COLUMN mnist_online_rounds.rows IS 'Messages trained on.';
COMMENT ON COLUMN mnist_online_rounds.skipped IS 'Bad messages skipped.';
COMMENT ON COLUMN mnist_online_rounds.from_offsets IS 'Offsets the round started from ({"partition": offset}).';
COMMENT ON COLUMN mnist_online_rounds.to_offsets IS 'Offsets after the round: the next round starts there.';
COMMENT ON COLUMN mnist_online_rounds.model_id IS 'The candidate stored by the round.';
COMMENT ON COLUMN mnist_online_rounds.accuracy_before IS 'Validation accuracy of the model deployed at decision time (NULL: none).';
COMMENT ON COLUMN mnist_online_rounds.accuracy_after IS 'Validation accuracy of the candidate.';
COMMENT ON COLUMN mnist_online_rounds.deployed IS 'Whether the gate deployed the candidate.';
COMMENT ON COLUMN mnist_online_rounds.reason IS 'The gate''s decision with both accuracies.';

-- jobs come back from pg_dump stopped (started_in names the original database)
SELECT pg_catalog.pg_extension_config_dump('mnist_online_jobs', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_online_rounds', '');
SELECT pg_catalog.pg_extension_config_dump('mnist_online_rounds_id_seq', '');

REVOKE ALL ON mnist_online_jobs, mnist_online_rounds FROM PUBLIC;
GRANT SELECT ON mnist_online_jobs, mnist_online_rounds TO PUBLIC;

CREATE FUNCTION mnist_online_instance() RETURNS text
AS 'MODULE_PATHNAME', 'mnist_online_instance'
LANGUAGE C STRICT STABLE PARALLEL SAFE;
COMMENT ON FUNCTION mnist_online_instance() IS 'This cluster''s system identifier and this database''s OID, as recorded in mnist_online_jobs.started_in.';

CREATE FUNCTION mnist_online_start(model_name text, topic text, validation regclass,
								   group_id text DEFAULT NULL,
								   every interval DEFAULT '1 minute',
								   min_rows int DEFAULT 1000, max_rows int DEFAULT 100000,
								   epochs int DEFAULT 1, batch_size int DEFAULT 64,
								   learning_rate float8 DEFAULT 0.001,
								   start_from text DEFAULT 'latest',
								   bootstrap_servers text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'mnist_online_start'
LANGUAGE C VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) IS
'Starts (or restarts) online learning of a model from a Kafka topic: the online learning worker trains a candidate on each round''s new messages and deploys it if its accuracy on validation is at least the deployed model''s. Not granted to PUBLIC.';
REVOKE ALL ON FUNCTION mnist_online_start(text, text, regclass, text, interval, int, int, int, int, float8, text, text) FROM PUBLIC;

CREATE FUNCTION mnist_online_stop(model_name text)
RETURNS boolean
AS 'MODULE_PATHNAME', 'mnist_online_stop'
LANGUAGE C STRICT VOLATILE PARALLEL UNSAFE;
COMMENT ON FUNCTION mnist_online_stop(text) IS 'Stops online learning of a model (its stored offsets are kept for a later start); false if it was not running. Not granted to PUBLIC.';
REVOKE ALL ON FUNCTION mnist_online_stop(text) FROM PUBLIC;

CREATE VIEW mnist_online_status AS
SELECT j.model_name, j.topic,
	   CASE WHEN j.started_in = mnist_online_instance() THEN j.state ELSE 'stopped' END AS state,
	   r.finished_at AS last_round_at,
	   (SELECT count(*) FROM mnist_online_rounds x WHERE x.model_name = j.model_name) AS rounds,
	   (SELECT coalesce(sum(x.rows), 0) FROM mnist_online_rounds x WHERE x.model_name = j.model_name) AS rows_consumed,
	   j.offsets,
	   CASE WHEN r.deployed THEN r.accuracy_after ELSE r.accuracy_before END AS deployed_accuracy,
	   CASE WHEN j.started_in = mnist_online_instance() THEN j.last_error
			ELSE 'restored from another database: start it again with mnist_online_start' END AS last_error,
	   j.last_error_at
  FROM mnist_online_jobs j
  LEFT JOIN LATERAL (SELECT * FROM mnist_online_rounds x WHERE x.model_name = j.model_name
					 ORDER BY x.id DESC LIMIT 1) r ON true;
COMMENT ON VIEW mnist_online_status IS 'Each online learning job: state, last round, rounds and rows consumed, offsets, the deployed model''s validation accuracy at the last round, last error.';
GRANT SELECT ON mnist_online_status TO PUBLIC;

-- Inference and images (src/predict.c).
--
-- A prediction costs about 0.5 to 2 us, some 100 times a built-in operator (cpu_operator_cost):
-- COST 100 lets the planner see that, so that scoring a large table runs in parallel workers
-- (each loads the model into its own cache) and cheap conditions are tested first.

CREATE FUNCTION mnist_predict(pixels bytea, model_name text DEFAULT 'default')
RETURNS smallint
AS 'MODULE_PATHNAME', 'mnist_predict'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;
COMMENT ON FUNCTION mnist_predict(bytea, text) IS 'The class 0..9 that the model serving that name (its deployed model, else its newest) predicts for 784 pixels.';

CREATE FUNCTION mnist_predict_proba(pixels bytea, model_name text DEFAULT 'default')
RETURNS float4[]
AS 'MODULE_PATHNAME', 'mnist_predict_proba'
LANGUAGE C STRICT STABLE PARALLEL SAFE COST 100;
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

CREATE FUNCTION mnist_evaluate(
	source regclass,
	model_id bigint,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(rows bigint, loss float8, accuracy float8)
AS 'MODULE_PATHNAME', 'mnist_evaluate_id'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 1;
COMMENT ON FUNCTION mnist_evaluate(regclass, bigint, name, name) IS 'mnist_evaluate of a stored model given by id, deployed or not (to compare a candidate).';

CREATE FUNCTION mnist_confusion_matrix(
	source regclass,
	model_id bigint,
	pixels_column name DEFAULT 'pixels',
	label_column name DEFAULT 'label')
RETURNS TABLE(label smallint, predicted smallint, count bigint)
AS 'MODULE_PATHNAME', 'mnist_confusion_matrix_id'
LANGUAGE C STRICT STABLE PARALLEL RESTRICTED ROWS 100;
COMMENT ON FUNCTION mnist_confusion_matrix(regclass, bigint, name, name) IS 'mnist_confusion_matrix of a stored model given by id, deployed or not.';

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
    OUT last_error text, OUT last_error_at timestamptz, OUT broker_reachable boolean,
    OUT skipped bigint)
RETURNS record
AS 'MODULE_PATHNAME', 'mnist_cdc_status'
LANGUAGE C STRICT VOLATILE;
COMMENT ON FUNCTION mnist_cdc_status() IS
'State of the change data capture worker: its slot, confirmed LSN, lag, message counters since server start, last error, broker reachability, captured rows skipped (each with a WARNING).';

CREATE VIEW mnist_cdc_status AS SELECT * FROM mnist_cdc_status();
COMMENT ON VIEW mnist_cdc_status IS
'One row describing change data capture to Kafka (see mnist_cdc_status()).';
-- everybody may read it, as everybody may call the function behind it
GRANT SELECT ON mnist_cdc_status TO PUBLIC;

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
AS 'MODULE_PATHNAME', 'mnist_train_topic'
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

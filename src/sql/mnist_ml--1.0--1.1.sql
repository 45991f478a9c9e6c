-- mnist_ml 1.0 -> 1.1.  Every SQL change since 1.0 goes here until 1.1 is released; the result
-- must equal a fresh 1.1 install (test/integration/extension_upgrade.sh compares the catalogs).
\echo Use "ALTER EXTENSION mnist_ml UPDATE TO '1.1'" to load this file. \quit

-- Model names: 1 to 200 bytes.  An upgrade over a longer stored name fails here, naming the
-- constraint: rename that model's name first.
ALTER TABLE mnist_models DROP CONSTRAINT mnist_models_name_check;
ALTER TABLE mnist_models ADD CONSTRAINT mnist_models_name_check
	CHECK (name <> '' AND octet_length(name) <= 200);
COMMENT ON COLUMN mnist_models.name IS 'Model name (1 to 200 bytes), as given to mnist_train and mnist_predict.';
COMMENT ON COLUMN mnist_models.trained_by IS 'Role that trained the model (or was given it by mnist_model_reassign); a name belongs to the role of its first model.';

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

-- mnist_cdc_status: a column for skipped rows; the view readable by everyone
DROP VIEW mnist_cdc_status;
DROP FUNCTION mnist_cdc_status();
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

-- Deployments (issue 11): a name is served by its deployed model.  Every existing name starts
-- deployed at its newest model, the one it served at 1.0.
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

INSERT INTO mnist_deployments (name, model_id, deployed_by, reason)
SELECT DISTINCT ON (name) name, id, trained_by, 'upgrade' FROM mnist_models ORDER BY name, id DESC;

COMMENT ON TABLE mnist_models IS 'Trained models; a name is served by its deployed model (mnist_deployments), else by its newest (highest id). Written only by the training functions.';
COMMENT ON FUNCTION mnist_predict(bytea, text) IS 'The class 0..9 that the model serving that name (its deployed model, else its newest) predicts for 784 pixels.';

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

-- gated training: validation and deploy, appended to mnist_train and mnist_train_topic
DROP FUNCTION mnist_train(regclass, text, int, int, float8, int, name, name, bigint, text);
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

DROP FUNCTION mnist_train_topic(text, text, int, int, float8, int, bigint, text, text);
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


-- Stored models and training (src/model_store.c, src/train.c).

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
AS 'MODULE_PATHNAME', 'mnist_train_1_1'
LANGUAGE C VOLATILE PARALLEL UNSAFE
SET synchronize_seqscans = off;
COMMENT ON FUNCTION mnist_train(regclass, text, int, int, float8, int, name, name, bigint, text, regclass, text) IS 'Trains 784 -> Dense(hidden_units, relu) -> Dense(10) with Adam on the rows of source (read as the caller), stores the model in mnist_models and returns its id; init_model continues from the model serving that name; deploy (always, never, if_better) decides whether it serves its name, if_better comparing validation accuracies with the deployed model.';

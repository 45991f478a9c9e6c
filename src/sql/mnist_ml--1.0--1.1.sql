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

-- A model served from the first row of a new session.  Serving reads a stored model's header
-- and parameters only, not its Adam state: from the toast chunks straight into memory when the
-- weights are stored out of line uncompressed (STORAGE EXTERNAL, since 1.1), through a
-- detoasted prefix when they are stored compressed (as 1.0's default storage could).  A new
-- connection, parallel workers (each loads the model cold) and this session's cached model give
-- the same classes; a truncated or corrupt value is still refused.
\set schema predict_cold
\i sql/common/setup.psql
\setenv PGDATABASE :DBNAME
\setenv PGUSER :USER
SELECT attstorage AS weights_storage FROM pg_attribute
 WHERE attrelid = 'mnist_models'::regclass AND attname = 'weights';
SELECT mnist_train('mnist_train', 'cold', epochs => 1, seed => 5) AS cold_id \gset
-- with its Adam state (three times the parameters), out of line, uncompressed
SELECT octet_length(weights) = 32 + 3 * 4 * (784 * 128 + 128 + 10 * 128 + 10) AS with_adam_state,
	   pg_column_size(weights) = octet_length(weights) AS uncompressed
  FROM mnist_models WHERE id = :cold_id;

-- the classes of every digit (in id order) in a new connection, whose first row loads the model
\set classes 'SELECT md5(string_agg(mnist_predict(pixels, ''cold'')::text, '''' ORDER BY id)) FROM predict_cold.mnist_train'
\set cold `psql -X -qAt -c :'classes'`
-- this session: loaded by the first statement, cached for the second
SELECT md5(string_agg(mnist_predict(pixels, 'cold')::text, '' ORDER BY id)) AS first FROM mnist_train \gset
SELECT md5(string_agg(mnist_predict(pixels, 'cold')::text, '' ORDER BY id)) AS warm FROM mnist_train \gset
SELECT :'cold' = :'warm' AS cold_equals_warm, :'first' = :'warm' AS first_equals_warm;
-- the screen (mnist_predict) and the float network (mnist_evaluate) agree cell by cell
CREATE TABLE mnist_test AS SELECT pixels, label FROM mnist_train WHERE id % 4 = 0;
\set model cold
\i sql/common/predict_matches_evaluate.psql

-- parallel workers, the leader only gathering: every row is scored by a worker's cold load
\i sql/common/workers_launched.psql
SET max_parallel_workers_per_gather = 2;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SET parallel_leader_participation = off;
\set scored 'SELECT id, mnist_predict(pixels, ''cold'') AS predicted FROM mnist_train'
SELECT workers_launched(:'scored') > 0 AS workers_launched;
CREATE TABLE par AS :scored;
RESET ALL;
SET search_path = predict_cold, public;
SET mnist_ml.progress = off;
SELECT md5(string_agg(predicted::text, '' ORDER BY id)) = :'warm' AS workers_equal_warm FROM par;

-- the same parameters stored without Adam state (flags 0, step 0): a value that is all prefix
INSERT INTO mnist_models (name, hyperparameters, metrics, weights)
SELECT 'cold_params', hyperparameters, metrics,
	   overlay(substring(weights FROM 1 FOR 32 + 4 * (784 * 128 + 128 + 10 * 128 + 10))
			   PLACING '\x000000000000000000000000' FROM 21)
  FROM mnist_models WHERE id = :cold_id;
SELECT md5(string_agg(mnist_predict(pixels, 'cold_params')::text, '' ORDER BY id)) = :'warm' AS params_only_equal
  FROM mnist_train;

-- a value stored compressed, as 1.0's storage (EXTENDED, pglz) did with compressible weights:
-- the first two pixels' weights (the top-left corner, 0 in every digit) and the Adam state zero
CREATE TABLE zeroed (weights bytea, hyperparameters jsonb, metrics jsonb);
ALTER TABLE zeroed ALTER COLUMN weights SET STORAGE EXTERNAL;	-- kept uncompressed
INSERT INTO zeroed
SELECT overlay(overlay(weights PLACING decode(repeat('00', 2 * 128 * 4), 'hex') FROM 33)
			   PLACING decode(repeat('00', 2 * 4 * (784 * 128 + 128 + 10 * 128 + 10)), 'hex')
			   FROM 33 + 4 * (784 * 128 + 128 + 10 * 128 + 10)),
	   hyperparameters, metrics
  FROM mnist_models WHERE id = :cold_id;
ALTER TABLE mnist_models ALTER COLUMN weights SET STORAGE EXTENDED;
INSERT INTO mnist_models (name, hyperparameters, metrics, weights)
SELECT 'cold_compressed', hyperparameters, metrics, weights FROM zeroed;
ALTER TABLE mnist_models ALTER COLUMN weights SET STORAGE EXTERNAL;
INSERT INTO mnist_models (name, hyperparameters, metrics, weights)
SELECT 'cold_external', hyperparameters, metrics, weights FROM zeroed;
SELECT name, pg_column_size(weights) < octet_length(weights) / 2 AS compressed
  FROM mnist_models WHERE name IN ('cold_compressed', 'cold_external') ORDER BY name;
\set classes 'SELECT md5(string_agg(mnist_predict(pixels, ''cold_compressed'')::text, '''' ORDER BY id)) FROM predict_cold.mnist_train'
\set compressed_cold `psql -X -qAt -c :'classes'`
SELECT md5(string_agg(mnist_predict(pixels, 'cold_external')::text, '' ORDER BY id)) AS external
  FROM mnist_train \gset
SELECT :'compressed_cold' = :'external' AS compressed_equals_external,
	   count(*) FILTER (WHERE mnist_predict(pixels, 'cold_external') = mnist_predict(pixels, 'cold')) > 7900
		 AS nearly_the_model_it_was_made_from
  FROM mnist_train;

-- the header is checked against the length of the whole value, though the Adam state is not
-- read: a value short of one byte, or of its whole Adam state, is refused
UPDATE mnist_models m SET weights = substring(c.weights FROM 1 FOR octet_length(c.weights) - 1)
  FROM mnist_models c WHERE m.name = 'cold_external' AND c.id = :cold_id;
SELECT try($$SELECT mnist_predict(pixels, 'cold_external') FROM mnist_train LIMIT 1$$);
UPDATE mnist_models m SET weights = substring(c.weights FROM 1 FOR 32 + 4 * (784 * 128 + 128 + 10 * 128 + 10))
  FROM mnist_models c WHERE m.name = 'cold_external' AND c.id = :cold_id;
SELECT try($$SELECT mnist_predict(pixels, 'cold_external') FROM mnist_train LIMIT 1$$);
-- a non-finite parameter is refused by the first row, also in a new connection
UPDATE mnist_models m SET weights = overlay(c.weights PLACING '\x0000c07f' FROM 33 + 4 * 1000)
  FROM mnist_models c WHERE m.name = 'cold_external' AND c.id = :cold_id;
\set first_row 'SELECT mnist_predict(pixels, ''cold_external'') FROM predict_cold.mnist_train LIMIT 1'
\set new_connection `psql -X -qAt -c :'first_row' 2>&1 | head -n 2 | tr -s ' \n' ' '`
SELECT :'new_connection' AS new_connection;
-- a non-finite Adam moment: serving never reads it, warm starts do and refuse it
UPDATE mnist_models m SET weights = overlay(c.weights PLACING '\x0000807f' FROM octet_length(c.weights) - 3)
  FROM mnist_models c WHERE m.name = 'cold_external' AND c.id = :cold_id;
SELECT try($$SELECT mnist_predict(pixels, 'cold_external') FROM mnist_train LIMIT 1$$) AS served;
SELECT try($$SELECT mnist_train('mnist_train', 'cold_bad', epochs => 1, init_model => 'cold_external')$$) AS warm_start;

SET client_min_messages = warning;
DROP SCHEMA predict_cold CASCADE;
DELETE FROM mnist_models WHERE name LIKE 'cold%';

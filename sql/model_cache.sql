-- The per-backend model cache: a newer model stored by another session is served by the next
-- statement, without reconnecting; so is a deletion.
\set schema model_cache
\i sql/common/setup.psql
CREATE TABLE src AS SELECT pixels, label FROM mnist_train ORDER BY id LIMIT 500;
CREATE TABLE probe AS SELECT pixels FROM mnist_train ORDER BY id DESC LIMIT 1;
\setenv PGDATABASE :DBNAME
\setenv PGUSER :USER

SELECT mnist_train('src', 'cache', epochs => 1, seed => 1) AS v1 \gset
SELECT mnist_predict_proba(pixels, 'cache')::text AS p1 FROM probe \gset
-- another session stores a newer model of that name
\! psql -X -qAt -c "SET mnist_ml.progress = off" -c "SELECT mnist_train('model_cache.src', 'cache', epochs => 1, seed => 2) > 0 AS other_session_trained"
SELECT (SELECT max(id) FROM mnist_models WHERE name = 'cache') > :v1 AS newer_stored;
SELECT mnist_predict_proba(pixels, 'cache')::text <> :'p1' AS next_statement_sees_it FROM probe;
SELECT mnist_predict_proba(pixels, 'cache')::text AS p2 FROM probe \gset
-- a new connection agrees
\c
SET search_path = model_cache, public;
SET mnist_ml.progress = off;
SELECT mnist_predict_proba(pixels, 'cache')::text = :'p2' AS same_as_new_connection FROM probe;
-- another session deletes the newest model: the previous one is served again
\! psql -X -qAt -c "DELETE FROM mnist_models WHERE id = (SELECT max(id) FROM mnist_models WHERE name = 'cache')"
SELECT mnist_predict_proba(pixels, 'cache')::text = :'p1' AS previous_model_again FROM probe;
-- a model stored by this session, in the middle of a transaction
BEGIN;
SELECT mnist_train('src', 'cache', epochs => 1, seed => 3) > 0 AS trained;
SELECT mnist_predict_proba(pixels, 'cache')::text <> :'p1' AS sees_own_model FROM probe;
ROLLBACK;
SELECT mnist_predict_proba(pixels, 'cache')::text = :'p1' AS rolled_back FROM probe;
-- in a REPEATABLE READ transaction the model is the one of the transaction's snapshot
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT mnist_predict_proba(pixels, 'cache')::text = :'p1' AS before_other_session FROM probe;
\! psql -X -qAt -c "SET mnist_ml.progress = off" -c "SELECT mnist_train('model_cache.src', 'cache', epochs => 1, seed => 4) > 0 AS other_session_trained"
SELECT mnist_predict_proba(pixels, 'cache')::text = :'p1' AS snapshot_model FROM probe;
COMMIT;
SELECT mnist_predict_proba(pixels, 'cache')::text <> :'p1' AS next_transaction_sees_it FROM probe;
-- every model of the name gone: a clear error
\! psql -X -qAt -c "DELETE FROM mnist_models WHERE name = 'cache'"
SELECT mnist_predict(pixels, 'cache') FROM probe;

-- the cached model is the stored row, whatever happened to ids: after TRUNCATE ... RESTART
-- IDENTITY, an UPDATE of the weights, or DROP/CREATE EXTENSION, id 1 is another model
TRUNCATE mnist_models RESTART IDENTITY;
SELECT mnist_train('src', 'stale', epochs => 1, seed => 1) AS stale_id;
SELECT mnist_predict_proba(pixels, 'stale')::text AS q1 FROM probe \gset
\! psql -X -qAt -c "SET mnist_ml.progress = off" -c "TRUNCATE mnist_models RESTART IDENTITY" -c "SELECT mnist_train('model_cache.src', 'stale', epochs => 1, seed => 2, hidden_units => 16) AS other_session_id"
SELECT mnist_predict_proba(pixels, 'stale')::text <> :'q1' AS truncated_model_not_served FROM probe;
SELECT mnist_predict_proba(pixels, 'stale')::text AS q2 FROM probe \gset
\! psql -X -qAt -c "UPDATE mnist_models SET weights = decode('00', 'hex') WHERE name = 'stale'"
SELECT try($$SELECT mnist_predict(pixels, 'stale') FROM probe$$) AS updated_weights;
\! psql -X -qAt -c "SET client_min_messages = warning" -c "DROP EXTENSION mnist_ml CASCADE" -c "CREATE EXTENSION mnist_ml" -c "SET mnist_ml.progress = off" -c "SELECT mnist_train('model_cache.src', 'stale', epochs => 1, seed => 3, hidden_units => 32) AS other_session_id"
SELECT mnist_predict_proba(pixels, 'stale')::text NOT IN (:'q1', :'q2') AS recreated_model_served FROM probe;
SELECT mnist_predict_proba(pixels, 'stale')::text AS q3 FROM probe \gset
\c
SET search_path = model_cache, public;
SELECT mnist_predict_proba(pixels, 'stale')::text = :'q3' AS same_as_new_connection FROM probe;

DROP SCHEMA model_cache CASCADE;

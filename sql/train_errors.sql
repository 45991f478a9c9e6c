-- Bad input: every case answers a clear error with a fitting SQLSTATE, and stores nothing.
\set schema train_errors
\i sql/common/setup.psql
CREATE TABLE t AS SELECT * FROM mnist_train ORDER BY id LIMIT 300;
ALTER TABLE t ADD PRIMARY KEY (id);

-- runs a statement, prints its SQLSTATE and message (or 'ok')

SELECT mnist_train('t', 'errors_ok', epochs => 1) > 0 AS trained;

-- pixels and images
SELECT try($$SELECT mnist_predict('\x00', 'errors_ok')$$);
SELECT try($$SELECT mnist_predict_proba(''::bytea, 'errors_ok')$$);
SELECT try($$SELECT mnist_render('\x0102')$$);
SELECT try($$SELECT mnist_pixels(array_fill(0, ARRAY[783]))$$);
SELECT try($$SELECT mnist_pixels(array_fill(0, ARRAY[785]))$$);
SELECT try($$SELECT mnist_pixels('{}')$$);
SELECT try($$SELECT mnist_pixels(array_fill(0, ARRAY[783]) || 256)$$);
SELECT try($$SELECT mnist_pixels(array_fill(0, ARRAY[783]) || -1)$$);
SELECT try($$SELECT mnist_pixels(array_fill(0, ARRAY[783]) || NULL::int)$$);
SELECT length(mnist_pixels(array_fill(7, ARRAY[28, 28]))) AS two_d_ok;
SELECT mnist_pixels(NULL) IS NULL AS null_ok, mnist_predict(NULL) IS NULL AS predict_null_ok,
       mnist_render(NULL) IS NULL AS render_null_ok;

-- unknown model
SELECT try($$SELECT mnist_predict(pixels, 'no_such_model') FROM t$$);
SELECT try($$SELECT * FROM mnist_evaluate('t', 'no_such_model')$$);

-- hyperparameters
SELECT try($$SELECT mnist_train('t', 'bad', epochs => 0)$$);
-- model names: 1 to 200 bytes, checked before any work
SELECT try($$SELECT mnist_train('t', repeat('n', 201), epochs => 1)$$);
SELECT try($$SELECT mnist_train('t', (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 300) i), epochs => 1)$$);
SELECT try($$SELECT mnist_train('t', repeat('é', 101), epochs => 1)$$);
SELECT mnist_train('t', repeat('n', 200), epochs => 1) > 0 AS longest_name_ok;
SELECT try($$SELECT mnist_train('t', 'bad', epochs => 1001)$$);
SELECT try($$SELECT mnist_train('t', 'bad', batch_size => 0)$$);
SELECT try($$SELECT mnist_train('t', 'bad', batch_size => 100000)$$);
SELECT try($$SELECT mnist_train('t', 'bad', learning_rate => 0)$$);
SELECT try($$SELECT mnist_train('t', 'bad', learning_rate => -0.1)$$);
SELECT try($$SELECT mnist_train('t', 'bad', learning_rate => 'NaN')$$);
SELECT try($$SELECT mnist_train('t', 'bad', learning_rate => 2)$$);
SELECT try($$SELECT mnist_train('t', 'bad', hidden_units => 0)$$);
SELECT try($$SELECT mnist_train('t', 'bad', hidden_units => 5000)$$);
SELECT try($$SELECT mnist_train('t', '')$$);
SELECT try($$SELECT mnist_train('t', 'bad', epochs => NULL)$$);
SELECT try($$SELECT mnist_train(NULL)$$);

-- a read-only transaction is refused before any work
BEGIN READ ONLY;
SELECT try($$SELECT mnist_train('t', 'bad')$$);
ROLLBACK;

-- warm start from an unknown model or one of another shape
SELECT try($$SELECT mnist_train('t', 'bad', epochs => 1, init_model => 'no_such_model')$$);
SELECT try($$SELECT mnist_train('t', 'bad', epochs => 1, init_model => 'errors_ok', hidden_units => 64)$$);

-- the source
SELECT try($$SELECT mnist_train('no_such_table')$$);
CREATE TABLE empty (pixels bytea, label smallint);
SELECT try($$SELECT mnist_train('empty', 'bad')$$);
SELECT * FROM mnist_evaluate('empty', 'errors_ok');
SELECT count(*) AS pairs, sum(count) AS total FROM mnist_confusion_matrix('empty', 'errors_ok');
SELECT try($$SELECT mnist_train('t', 'bad', pixels_column => 'image')$$);
SELECT try($$SELECT mnist_train('t', 'bad', label_column => 'digit')$$);
CREATE TABLE wrong_types AS SELECT encode(pixels, 'hex') AS hex, pixels, label::text AS label, label AS ok_label FROM t;
SELECT try($$SELECT mnist_train('wrong_types', 'bad', pixels_column => 'hex', label_column => 'ok_label')$$);
SELECT try($$SELECT mnist_train('wrong_types', 'bad')$$);
SELECT try($$SELECT mnist_train('wrong_types', 'bad', pixels_column => 'ok_label', label_column => 'ok_label')$$);
-- bad rows are named: by id when there is an id column, else by position
UPDATE t SET label = NULL WHERE id = 17;
SELECT try($$SELECT mnist_train('t', 'bad')$$);
UPDATE t SET label = 10 WHERE id = 17;
SELECT try($$SELECT mnist_train('t', 'bad')$$);
UPDATE t SET label = -1 WHERE id = 17;
SELECT try($$SELECT * FROM mnist_evaluate('t', 'errors_ok')$$);
UPDATE t SET label = 1, pixels = NULL WHERE id = 17;
SELECT try($$SELECT mnist_train('t', 'bad')$$);
UPDATE t SET pixels = '\x00' WHERE id = 17;
SELECT try($$SELECT mnist_train('t', 'bad')$$);
CREATE TABLE no_id AS SELECT pixels, label FROM t WHERE id <> 17 ORDER BY id;
INSERT INTO no_id VALUES (mnist_pixels(array_fill(0, ARRAY[784])), 12);
SELECT try($$SELECT mnist_train('no_id', 'bad')$$);
-- a label column of type integer or bigint is fine
CREATE TABLE int_labels AS SELECT pixels, label::bigint AS label FROM t WHERE id <> 17;
SELECT mnist_train('int_labels', 'errors_int', epochs => 1) > 0 AS bigint_labels_ok;

-- corrupted weights are detected when read
CREATE TABLE saved AS SELECT id, weights FROM mnist_models WHERE name = 'errors_int';
UPDATE mnist_models SET weights = substring(weights FROM 1 FOR 1000) WHERE name = 'errors_int';
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models SET weights = '\x4d4e' WHERE name = 'errors_int';
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models m SET weights = overlay(s.weights PLACING 'XXXX' FROM 1) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models m SET weights = overlay(s.weights PLACING '\x02000000' FROM 5) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models m SET weights = overlay(s.weights PLACING '\x11000000' FROM 9) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models m SET weights = overlay(s.weights PLACING '\x04000000' FROM 21) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
UPDATE mnist_models m SET weights = overlay(s.weights PLACING '\x0000c07f' FROM 1001) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
SELECT try($$SELECT mnist_train('int_labels', 'bad', epochs => 1, init_model => 'errors_int')$$);
-- finite weights so large that a logit overflows (every w2 3e38: 128 hidden units, so w2 starts
-- at byte 32 + 4 * (784 * 128 + 128)) would classify every image as 0: refused as corrupted
UPDATE mnist_models m SET weights = overlay(s.weights PLACING decode(repeat('e6b1617f', 1280), 'hex') FROM 401953)
	FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_predict(pixels, 'errors_int') FROM t LIMIT 1$$);
SELECT try($$SELECT mnist_predict_proba(pixels, 'errors_int') FROM t LIMIT 1$$);
-- an infinite Adam moment (after the parameters) is caught too
UPDATE mnist_models m SET weights = overlay(s.weights PLACING '\x0000807f' FROM length(s.weights) - 3) FROM saved s WHERE m.id = s.id;
SELECT try($$SELECT mnist_train('int_labels', 'bad', epochs => 1, init_model => 'errors_int')$$);
UPDATE mnist_models m SET weights = s.weights FROM saved s WHERE m.id = s.id;
SELECT mnist_predict(pixels, 'errors_int') BETWEEN 0 AND 9 AS restored FROM t LIMIT 1;

-- statement_timeout stops training within a second and stores nothing
SELECT count(*) AS models_before FROM mnist_models \gset
SET statement_timeout = '300ms';
SELECT clock_timestamp() AS t0 \gset
SELECT mnist_train('int_labels', 'bad', epochs => 1000);
RESET statement_timeout;
SELECT clock_timestamp() - :'t0' < interval '1.3 s' AS stopped_quickly;

-- also inside one big mini-batch (24,000 rows x 4,096 hidden units, many seconds)
CREATE TABLE big AS SELECT pixels, label FROM mnist_train, generate_series(1, 3);
SET statement_timeout = '1s';
SELECT clock_timestamp() AS t0 \gset
-- (terse: on a slow build, e.g. the sanitized one, the timeout may come while the rows are read)
\set VERBOSITY terse
SELECT mnist_train('big', 'bad', epochs => 1, batch_size => 65536, hidden_units => 4096);
\set VERBOSITY default
RESET statement_timeout;
SELECT clock_timestamp() - :'t0' < interval '10 s' AS big_batch_stopped_in_time;
DROP TABLE big;

-- so does a query cancel (from another session, as soon as the training runs)
\setenv PGDATABASE :DBNAME
\setenv PGUSER :USER
\! (for i in $(seq 100); do sleep 0.1; psql -X -qAt -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE 'SELECT mnist_train(''mnist_train'', ''cancel_me''%'" | grep -q t && break; done) >/dev/null 2>&1 &
SET statement_timeout = '20s';
SELECT mnist_train('mnist_train', 'cancel_me', epochs => 1000);
RESET statement_timeout;
SELECT count(*) FROM mnist_models WHERE name = 'cancel_me';

-- nothing was stored by any failed call
SELECT count(*) = :models_before AS nothing_stored, count(*) FILTER (WHERE name = 'bad') AS bad_models
  FROM mnist_models;

DELETE FROM mnist_models WHERE name IN ('errors_ok', 'errors_int', repeat('n', 200));
DROP SCHEMA train_errors CASCADE;

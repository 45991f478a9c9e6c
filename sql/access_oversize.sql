-- Oversized inputs: pixels of another size than 784 bytes are rejected by their stored length,
-- never detoasted.  A 100 MB bytea stored out of line (STORAGE EXTERNAL) goes to every reader
-- of pixels; the toast table's block reads in this transaction
-- (pg_stat_get_xact_blocks_fetched) show whether its chunks were read.  Hyperparameters at
-- the edges of their ranges.
\set schema access_oversize
\i sql/common/setup.psql
CREATE TABLE src AS SELECT id, pixels, label FROM mnist_train ORDER BY id LIMIT 200;
SELECT mnist_train('src', 'oversize', epochs => 1) > 0 AS trained;

CREATE TABLE big (id int, pixels bytea, label smallint);
ALTER TABLE big ALTER COLUMN pixels SET STORAGE EXTERNAL;
INSERT INTO big VALUES (1, convert_to(repeat('x', 100000000), 'SQL_ASCII'), 1);
SELECT octet_length(pixels) AS stored_bytes FROM big;
CREATE TABLE incoming (pixels bytea, predicted smallint);
CREATE TRIGGER classify BEFORE INSERT ON incoming
	FOR EACH ROW EXECUTE FUNCTION mnist_classify('pixels', 'predicted', 'oversize');
CREATE FUNCTION toast_blocks(t regclass) RETURNS bigint LANGUAGE sql AS $$
	SELECT pg_stat_get_xact_blocks_fetched(reltoastrelid) FROM pg_class WHERE oid = t $$;

BEGIN;
SELECT toast_blocks('big') AS blocks_before;
SELECT try($$SELECT mnist_predict(pixels, 'oversize') FROM big$$);
SELECT try($$SELECT mnist_predict_proba(pixels, 'oversize') FROM big$$);
SELECT try($$SELECT mnist_render(pixels) FROM big$$);
SELECT try($$INSERT INTO incoming SELECT pixels FROM big$$);
SELECT try($$SELECT mnist_train('big', 'oversize_big', epochs => 1)$$);
SELECT try($$SELECT * FROM mnist_evaluate('big', 'oversize')$$);
SELECT try($$SELECT * FROM mnist_confusion_matrix('big', 'oversize')$$);
-- not one chunk was read
SELECT toast_blocks('big') AS blocks_after_calls;
-- (the counter does count: a slice of the value reads a chunk)
SELECT length(substr(pixels, 50000000, 100)) AS slice FROM big;
SELECT toast_blocks('big') > 0 AS counter_counts;
COMMIT;

-- an inline value (compressed or not) of another size is rejected the same way
SELECT try($$SELECT mnist_predict(convert_to(repeat('x', 785), 'SQL_ASCII'), 'oversize')$$);
SELECT try($$SELECT mnist_predict(convert_to(repeat('x', 1000000), 'SQL_ASCII'), 'oversize')$$);
SELECT try($$SELECT mnist_predict(''::bytea, 'oversize')$$);
-- and 784 bytes stored out of line are read (a wide row is toasted down to 128 bytes)
CREATE TABLE external_784 (pixels bytea, pad bytea);
ALTER TABLE external_784 ALTER COLUMN pixels SET STORAGE EXTERNAL, ALTER COLUMN pad SET STORAGE EXTERNAL;
ALTER TABLE external_784 SET (toast_tuple_target = 128);
INSERT INTO external_784 SELECT pixels, convert_to(repeat('x', 3000), 'SQL_ASCII') FROM src ORDER BY id LIMIT 1;
BEGIN;
SELECT mnist_predict(pixels, 'oversize') = (SELECT mnist_predict(pixels, 'oversize') FROM src ORDER BY id LIMIT 1) AS same_class
  FROM external_784;
SELECT toast_blocks('external_784') > 0 AS read_out_of_line;
COMMIT;

-- hyperparameters at the edges: a batch larger than the table is one batch per epoch; the
-- widest hidden layer trains; one more is rejected before any work
SELECT mnist_train('src', 'oversize_batch', epochs => 2, batch_size => 65536) > 0 AS batch_above_rows;
SELECT (metrics->>'rows')::int AS rows, hyperparameters->'batch_size' AS batch_size
  FROM mnist_models WHERE name = 'oversize_batch';
SELECT mnist_train('src', 'oversize_wide', epochs => 1, hidden_units => 4096) > 0 AS hidden_4096;
SELECT count(mnist_predict(pixels, 'oversize_wide')) AS predicted FROM src;
SELECT try($$SELECT mnist_train('src', 'oversize_x', hidden_units => 4097)$$);
SELECT try($$SELECT mnist_train('src', 'oversize_x', batch_size => 65537)$$);

DELETE FROM mnist_models WHERE name LIKE 'oversize%';
DROP SCHEMA access_oversize CASCADE;

-- Training on the real MNIST digits (8,000 train / 2,000 test): quality, the reference's "3",
-- model rows, determinism, warm start.
\set schema train_digits
\i sql/common/setup.psql
\set ECHO none
\set f :data '/digits/mnist_test.sql'
\i :f
\set ECHO all
SELECT count(*) FROM mnist_train;
SELECT count(*) FROM mnist_test;

-- 10 epochs, fixed seed
SELECT mnist_train('mnist_train', 'train_digits', epochs => 10, seed => 42) AS digits_id \gset
SELECT rows, accuracy >= 0.93 AS accuracy_ok, loss < 0.3 AS loss_ok
  FROM mnist_evaluate('mnist_test', 'train_digits');

-- the model row
SELECT name = 'train_digits' AS name_ok,
       created_at <= now() AS created_ok,
       hyperparameters - 'seed' AS hyperparameters,
       hyperparameters->'seed' AS seed,
       metrics->'rows' AS rows,
       metrics->'source' AS source,
       jsonb_array_length(metrics->'epochs') AS epochs,
       (metrics->'epochs'->9->>'accuracy')::float8 = (metrics->>'accuracy')::float8 AS last_epoch_ok,
       (metrics->'epochs'->0->>'loss')::float8 > (metrics->'epochs'->9->>'loss')::float8 AS loss_decreased,
       metrics->'adam_step' AS adam_step,
       length(weights) AS weights_bytes,
       substring(weights from 1 for 24) AS weights_header
  FROM mnist_models WHERE id = :digits_id;

-- confusion matrix: 100 pairs covering the test set, diagonal = accuracy
SELECT count(*) AS pairs, sum(count) AS total,
       sum(count) FILTER (WHERE label = predicted) / 2000.0 =
         (SELECT accuracy FROM mnist_evaluate('mnist_test', 'train_digits'))::numeric AS diagonal_ok
  FROM mnist_confusion_matrix('mnist_test', 'train_digits');
SELECT bool_and(n = (SELECT count(*) FROM mnist_test t WHERE t.label = c.label)) AS rows_per_label_ok
  FROM (SELECT label, sum(count) AS n FROM mnist_confusion_matrix('mnist_test', 'train_digits')
         GROUP BY label) c;

\set model train_digits
\i sql/common/predict_matches_evaluate.psql
-- predictions agree with the evaluation and with predict_proba
SELECT avg((mnist_predict(pixels, 'train_digits') = label)::int)::float8 =
         (SELECT accuracy FROM mnist_evaluate('mnist_test', 'train_digits')) AS predict_agrees
  FROM mnist_test;
-- in parallel workers too (16 renamed force_parallel_mode to debug_parallel_query)
SELECT CASE WHEN current_setting('server_version_num')::int >= 160000
            THEN 'debug_parallel_query' ELSE 'force_parallel_mode' END AS force_parallel \gset
SET :force_parallel = on;
SET parallel_setup_cost = 0;
SET parallel_tuple_cost = 0;
SET min_parallel_table_scan_size = 0;
SELECT avg((mnist_predict(pixels, 'train_digits') = label)::int)::float8 =
         (SELECT accuracy FROM mnist_evaluate('mnist_test', 'train_digits')) AS parallel_agrees
  FROM mnist_test;
RESET :force_parallel;
RESET parallel_setup_cost;
RESET parallel_tuple_cost;
RESET min_parallel_table_scan_size;
SELECT bool_and(abs((SELECT sum(p) FROM unnest(pr) p) - 1) < 1e-5) AS sums_to_one,
       bool_and(array_length(pr, 1) = 10) AS ten_values,
       bool_and(pr[mnist_predict(pixels, 'train_digits') + 1] = (SELECT max(p) FROM unnest(pr) p)) AS argmax_ok
  FROM (SELECT pixels, mnist_predict_proba(pixels, 'train_digits') AS pr FROM mnist_test LIMIT 200) s;

-- the reference's handwritten "3"
CREATE TABLE three AS SELECT mnist_pixels(ARRAY[
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,108,43,6,6,6,6,5,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,10,84,248,254,254,254,254,254,241,45,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,90,254,254,254,223,173,173,173,253,156,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,1,79,157,228,245,251,188,63,17,0,0,54,252,132,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,32,254,254,254,244,131,0,0,0,0,13,220,254,122,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,83,254,225,160,47,0,0,0,0,59,211,254,206,50,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,1,21,14,0,0,0,2,17,146,245,250,194,12,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,81,140,140,171,254,254,254,203,55,1,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,211,254,254,254,254,179,211,254,254,202,171,14,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,167,233,193,69,16,3,9,16,107,231,248,195,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,73,229,182,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,26,99,252,254,146,0,0,0,0,0,
0,0,0,79,142,0,0,0,0,0,0,0,0,0,26,28,116,147,247,254,239,150,22,0,0,0,0,0,
0,0,0,175,230,174,155,66,66,132,174,174,174,174,250,255,254,192,189,99,36,0,0,0,0,0,0,0,
0,0,0,106,226,254,254,254,254,254,254,254,254,217,151,80,43,2,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,4,7,114,114,114,46,5,5,5,3,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,
0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0
]) AS pixels;
SELECT mnist_predict(pixels, 'train_digits') AS predicted FROM three;
\pset format unaligned
SELECT mnist_render(pixels) FROM three;
\pset format aligned
-- an untyped literal still resolves to the bytea function
SELECT mnist_predict('\x00000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000000', 'train_digits') BETWEEN 0 AND 9 AS untyped_literal_ok;
SELECT mnist_predict(NULL, 'train_digits') IS NULL AS null_in_null_out;

-- determinism: same seed and data => identical weights; another seed => different
CREATE TABLE small AS SELECT * FROM mnist_train ORDER BY id LIMIT 1000;
SELECT mnist_train('small', 'det_a', epochs => 2, seed => 7) AS a \gset
SELECT mnist_train('small', 'det_b', epochs => 2, seed => 7) AS b \gset
SELECT mnist_train('small', 'det_c', epochs => 2, seed => 8) AS c \gset
SELECT (SELECT weights FROM mnist_models WHERE id = :a) = (SELECT weights FROM mnist_models WHERE id = :b) AS same_seed_same_weights,
       (SELECT weights FROM mnist_models WHERE id = :a) <> (SELECT weights FROM mnist_models WHERE id = :c) AS other_seed_other_weights;

-- other shapes and batch sizes
SELECT mnist_train('small', 'det_h32', epochs => 1, hidden_units => 32, batch_size => 1) AS h32 \gset
SELECT length(weights) = 32 + 3 * 4 * (784 * 32 + 32 + 32 * 10 + 10) AS h32_size_ok,
       metrics->'adam_step' AS adam_step
  FROM mnist_models WHERE id = :h32;
SELECT mnist_predict(pixels, 'det_h32') BETWEEN 0 AND 9 AS h32_predicts FROM three;
SELECT mnist_train('small', 'det_big_batch', epochs => 1, batch_size => 5000) > 0 AS one_batch_per_epoch;
SELECT metrics->'adam_step' AS adam_step FROM mnist_models WHERE name = 'det_big_batch';

-- warm start: continues from det_a's weights and Adam state (2 epochs of 16 batches each)
SELECT mnist_train('small', 'det_warm', epochs => 1, seed => 7, init_model => 'det_a') AS w \gset
SELECT hyperparameters->>'init_model' AS init_model,
       (metrics->>'init_model_id')::bigint = :a AS init_id_ok,
       metrics->'adam_step' AS adam_step,
       (SELECT metrics->'adam_step' FROM mnist_models WHERE id = :a) AS previous_adam_step,
       (metrics->>'loss')::float8 < (SELECT (metrics->'epochs'->0->>'loss')::float8 FROM mnist_models WHERE id = :a) AS better_than_first_epoch
  FROM mnist_models WHERE id = :w;
-- a warm start is not a fresh start with the same seed
SELECT mnist_train('small', 'det_fresh', epochs => 1, seed => 7) AS f \gset
SELECT (SELECT weights FROM mnist_models WHERE id = :w) <> (SELECT weights FROM mnist_models WHERE id = :f) AS warm_differs;
-- the newest model of a name is served
SELECT mnist_train('small', 'det_a', epochs => 1, seed => 9) AS a2 \gset
SELECT (SELECT loss FROM mnist_evaluate('small', 'det_a')) =
       (SELECT loss FROM mnist_evaluate('small', :a2::bigint)) AS serves_the_newest,
       (SELECT loss FROM mnist_evaluate('small', 'det_a')) <>
       (SELECT loss FROM mnist_evaluate('small', :a::bigint)) AS not_the_older;

-- models survive pg_dump; every object has a comment
SELECT extconfig::regclass[] FROM pg_extension WHERE extname = 'mnist_ml';
SELECT pg_describe_object(classid, objid, objsubid) AS without_comment
  FROM pg_depend d
 WHERE refclassid = 'pg_extension'::regclass
   AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'mnist_ml')
   AND deptype = 'e'
   AND obj_description(objid, (SELECT relname FROM pg_class WHERE oid = classid)) IS NULL
   AND classid <> 'pg_type'::regclass
 ORDER BY 1;

DELETE FROM mnist_models WHERE name IN ('train_digits', 'det_a', 'det_b', 'det_c', 'det_warm', 'det_fresh', 'det_h32', 'det_big_batch');
DROP SCHEMA train_digits CASCADE;

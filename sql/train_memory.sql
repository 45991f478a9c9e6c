-- Bounded training memory (mnist_ml.train_memory): a source that fits trains exactly as
-- without a bound, a larger one is spilled to a temporary file (counted in pg_stat_database)
-- and trained block-shuffled; validation rows are bounded too; the file is gone after an error;
-- too small a bound for the batch.
\set schema train_memory
\i sql/common/setup.psql
\set ECHO none
\set f :data '/digits/mnist_test.sql'
\i :f
\set ECHO all
SHOW mnist_ml.train_memory;
SELECT try($$SET mnist_ml.train_memory = '63kB'$$);

-- temporary files this database has created so far (the statistics of the transactions
-- before the last are flushed)
CREATE FUNCTION temp_files() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_stat_clear_snapshot();
	RETURN (SELECT temp_files FROM pg_stat_database WHERE datname = current_database());
END $$;

-- 8000 rows of 785 bytes: 6133 kB hold them, 6132 kB do not
SELECT mnist_train('mnist_train', 'train_memory', epochs => 2, seed => 42) AS free_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files() AS files \gset
SET mnist_ml.train_memory = '6133kB';
SELECT mnist_train('mnist_train', 'train_memory', epochs => 2, seed => 42) AS fit_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files() - :files AS new_temp_files;
SET mnist_ml.train_memory = '6132kB';
SELECT mnist_train('mnist_train', 'train_memory', epochs => 2, seed => 42) AS spill_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files() - :files AS new_temp_files;
SELECT f.weights = b.weights AS fit_same_weights, s.weights <> b.weights AS spilled_other_weights,
       s.metrics->'rows' AS spilled_rows, s.metrics->'adam_step' AS spilled_steps
  FROM mnist_models b, mnist_models f, mnist_models s
 WHERE b.id = :free_id AND f.id = :fit_id AND s.id = :spill_id;

-- 83 rows in memory, blocks of 5: still learns
SET mnist_ml.train_memory = '64kB';
SELECT mnist_train('mnist_train', 'train_memory', epochs => 2, seed => 42) AS tiny_id \gset
SELECT rows, accuracy >= 0.88 AS accuracy_ok FROM mnist_evaluate('mnist_test', :tiny_id::bigint);
SELECT (metrics->>'accuracy')::float8 > 0.88 AS train_accuracy_ok, metrics->'adam_step' AS steps
  FROM mnist_models WHERE id = :tiny_id;
-- the same seed gives the same model
SELECT mnist_train('mnist_train', 'train_memory', epochs => 2, seed => 42) AS tiny2_id \gset
SELECT a.weights = b.weights AS deterministic FROM mnist_models a, mnist_models b
 WHERE a.id = :tiny_id AND b.id = :tiny2_id;

-- a batch and a block must fit
SELECT try($$SELECT mnist_train('mnist_train', 'train_memory', batch_size => 80)$$);

-- validation rows are held under the same bound: under 6000kB (7826 rows) the 2000 training
-- rows fit and the 8000 validation rows spill; the same model and validation figures as
-- without a bound
RESET mnist_ml.train_memory;
SET client_min_messages = warning;
SELECT mnist_train('mnist_test', 'train_memory', epochs => 1, seed => 7,
                   validation => 'mnist_train', deploy => 'never') AS vfree_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files() AS files \gset
SET mnist_ml.train_memory = '6000kB';
SELECT mnist_train('mnist_test', 'train_memory', epochs => 1, seed => 7,
                   validation => 'mnist_train', deploy => 'never') AS vcap_id \gset
SELECT FROM pg_stat_force_next_flush();
SELECT temp_files() - :files AS new_temp_files;
RESET client_min_messages;
SELECT a.weights = b.weights AS same_weights, a.metrics->'validation' = b.metrics->'validation' AS same_validation,
       b.metrics->'validation'->'rows' AS validation_rows
  FROM mnist_models a, mnist_models b WHERE a.id = :vfree_id AND b.id = :vcap_id;
SET mnist_ml.train_memory = '64kB';

-- an error mid-training removes the file
SET statement_timeout = '1s';
SELECT mnist_train('mnist_train', 'train_memory', epochs => 1000);
RESET statement_timeout;
SELECT count(*) AS files_left FROM pg_ls_tmpdir();
RESET mnist_ml.train_memory;

DELETE FROM mnist_models WHERE name = 'train_memory';
DROP SCHEMA train_memory CASCADE;
